//! Scenario 3: the compiled 20-field mapping applied in-process to 1 KiB orders, on one
//! thread (so the figures are per core). Baseline: parsing and re-serializing the same
//! payloads with serde_json. `bounded` is what the worker runs: the shortcut under the fuel
//! budget of the default expression limits (`Mapping::try_shortcut`); `apply` is the same
//! evaluation without a budget (as inside an evaluator process), so their ratio is the cost
//! of the limits. Also the worker's whole step: parse, map (bounded), serialize the output.
//! Measured twice: the mapping as 20 field rules, and the same 20 fields written as one jq
//! `program` (`program` in the line).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use hookplane_crds::MappingSpec;
use hookplane_mapping::{Limits, Mapping};
use serde_json::{Value, json};

use super::Run;
use crate::{
    stats::{ratio, round},
    workload::{order_body, twenty_fields_program, twenty_rules},
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
    let rules = Mapping::compile(&twenty_rules()).context("compiling the rules")?;
    let program = Mapping::compile(&twenty_fields_program()).context("compiling the program")?;
    for seq in 0..16 {
        let payload: Value = serde_json::from_slice(&order_body(seq)).context("an order")?;
        anyhow::ensure!(
            rules.apply(&payload).ok() == program.apply(&payload).ok(),
            "the program and the rules map order {seq} differently"
        );
    }
    let mut line = measure_spec(&twenty_rules(), duration)?;
    let program = measure_spec(&twenty_fields_program(), duration)?;
    line["program"] = json!({
        "hookplane": program["hookplane"],
        "baseline": program["baseline"],
        "ratio_to_baseline": program["ratio_to_baseline"],
        "met": program["met"],
    });
    Ok(line)
}

fn measure_spec(spec: &MappingSpec, duration: Duration) -> Result<Value> {
    let mapping = Mapping::compile(spec).context("compiling the mapping")?;
    let bodies: Vec<Vec<u8>> = (0..256).map(order_body).collect();
    let payloads: Vec<Value> = bodies
        .iter()
        .map(|body| serde_json::from_slice(body))
        .collect::<Result<_, _>>()
        .context("parsing the orders")?;
    let limits = Limits::default();
    // The mapping must be one the server runs in-process. A single run can still exceed the
    // wall-clock budget when the machine preempts it (CI runs this beside the whole test
    // suite), so one in-process run out of the 256 is the proof, not every one.
    let mut in_process = 0;
    for payload in &payloads {
        mapping.apply(payload).context("the mapping applies")?;
        if let Some(bounded) = mapping.try_shortcut(payload, &limits) {
            bounded.context("the bounded mapping applies")?;
            in_process += 1;
        }
    }
    anyhow::ensure!(
        in_process > 0,
        "the benchmark mapping runs in-process within the default limits (no evaluator)"
    );
    let n = bodies.len();
    // The in-process run has a wall-clock budget: on a busy machine a preempted run can
    // exceed it, and the server would hand that event to an evaluator. Counted, not fatal.
    let handed_over = std::cell::Cell::new(0_u64);
    let bounded_step = |payload: &Value| match mapping.try_shortcut(payload, &limits) {
        Some(result) => result.expect("applied above"),
        None => {
            handed_over.set(handed_over.get() + 1);
            mapping.apply(payload).expect("applied above")
        }
    };

    let baseline = per_second(duration, |i| {
        let value: Value = serde_json::from_slice(&bodies[i % n]).expect("parsed above");
        black_box(serde_json::to_vec(&value).expect("a value serializes"));
    });
    let apply = per_second(duration, |i| {
        black_box(mapping.apply(&payloads[i % n]).expect("applied above"));
    });
    let bounded = per_second(duration, |i| {
        black_box(bounded_step(&payloads[i % n]));
    });
    let pipeline = per_second(duration, |i| {
        let value: Value = serde_json::from_slice(&bodies[i % n]).expect("parsed above");
        let mapped = bounded_step(&value);
        black_box(serde_json::to_vec(&mapped).expect("a value serializes"));
    });
    let apply_ratio = ratio(apply, baseline);
    let bounded_ratio = ratio(bounded, baseline);
    Ok(json!({
        "scenario": "mapping",
        "mapping_fields": 20,
        "payload_bytes": bodies[0].len(),
        "duration_s_each": duration.as_secs_f64(),
        "hookplane": {
            "apply_per_s_per_core": round(apply),
            "bounded_per_s_per_core": round(bounded),
            "parse_apply_serialize_per_s_per_core": round(pipeline),
            "apply_us": round(1e6 / apply),
            "bounded_us": round(1e6 / bounded),
            "bounded_runs_over_budget": handed_over.get(),
        },
        "baseline": {
            "parse_serialize_per_s_per_core": round(baseline),
            "parse_serialize_us": round(1e6 / baseline),
        },
        "ratio_to_baseline": {
            "apply": apply_ratio,
            "bounded": bounded_ratio,
            "parse_apply_serialize": ratio(pipeline, baseline),
        },
        "target": { "apply_ratio_min": 0.5, "bounded_ratio_min": 0.5 },
        "met": { "apply_ratio": apply_ratio >= 0.5, "bounded_ratio": bounded_ratio >= 0.5 },
    }))
}
