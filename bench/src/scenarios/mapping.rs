//! Scenario 3: the compiled 20-field mapping applied in-process to 1 KiB orders, on one
//! thread (so the figures are per core). Baseline: parsing and re-serializing the same
//! payloads with serde_json. Also the worker's whole step: parse, map, serialize the output.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use hookplane_mapping::Mapping;
use serde_json::{Value, json};

use super::Run;
use crate::{
    stats::{ratio, round},
    workload::{order_body, twenty_rules},
};

/// Calls `step(i)` for `duration`; returns calls per second.
fn per_second(duration: Duration, mut step: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut calls = 0usize;
    loop {
        for _ in 0..64 {
            step(calls);
            calls += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return calls as f64 / elapsed.as_secs_f64();
        }
    }
}

impl Run {
    pub async fn mapping(&mut self) -> Result<Value> {
        let duration = if self.settings.quick {
            Duration::from_millis(500)
        } else {
            (self.settings.duration / 2).max(Duration::from_secs(1))
        };
        tokio::task::spawn_blocking(move || measure(duration))
            .await
            .context("the mapping benchmark thread")?
    }
}

fn measure(duration: Duration) -> Result<Value> {
    let mapping = Mapping::compile(&twenty_rules()).context("compiling the mapping")?;
    let bodies: Vec<Vec<u8>> = (0..256).map(order_body).collect();
    let payloads: Vec<Value> = bodies
        .iter()
        .map(|body| serde_json::from_slice(body))
        .collect::<Result<_, _>>()
        .context("parsing the orders")?;
    for payload in &payloads {
        mapping.apply(payload).context("the mapping applies")?;
    }
    let n = bodies.len();

    let baseline = per_second(duration, |i| {
        let value: Value = serde_json::from_slice(&bodies[i % n]).expect("parsed above");
        black_box(serde_json::to_vec(&value).expect("a value serializes"));
    });
    let apply = per_second(duration, |i| {
        black_box(mapping.apply(&payloads[i % n]).expect("applied above"));
    });
    let pipeline = per_second(duration, |i| {
        let value: Value = serde_json::from_slice(&bodies[i % n]).expect("parsed above");
        let mapped = mapping.apply(&value).expect("applied above");
        black_box(serde_json::to_vec(&mapped).expect("a value serializes"));
    });
    let apply_ratio = ratio(apply, baseline);
    Ok(json!({
        "scenario": "mapping",
        "mapping_fields": twenty_rules().rules.len(),
        "payload_bytes": bodies[0].len(),
        "duration_s_each": duration.as_secs_f64(),
        "hookplane": {
            "apply_per_s_per_core": round(apply),
            "parse_apply_serialize_per_s_per_core": round(pipeline),
            "apply_us": round(1e6 / apply),
        },
        "baseline": {
            "parse_serialize_per_s_per_core": round(baseline),
            "parse_serialize_us": round(1e6 / baseline),
        },
        "ratio_to_baseline": {
            "apply": apply_ratio,
            "parse_apply_serialize": ratio(pipeline, baseline),
        },
        "target": { "apply_ratio_min": 0.5 },
        "met": { "apply_ratio": apply_ratio >= 0.5 },
    }))
}
