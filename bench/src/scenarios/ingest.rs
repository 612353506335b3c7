//! Scenario 1: signed 1 KiB Shopify webhooks at fixed concurrency, answered after their
//! event has committed; against a bare axum server that reads the body and answers 200.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::{
    Database, Run,
    deploy::{Topology, deploy},
};
use crate::{
    child::{RssSampler, Server},
    client::{self, LoadResult},
    stats::{Summary, ratio, round},
    workload::{self, hook_path, shopify_webhooks},
};

/// Destination of touchpoints whose events are never delivered (Auto-sync off).
pub const UNUSED_DESTINATION: &str = "http://127.0.0.1:9/unused";

fn load_json(load: &LoadResult) -> Value {
    json!({
        "requests_per_s": round(load.per_second()),
        "ok": load.ok,
        "errors": load.errors,
        "first_error": load.first_error,
        "latency_ms": Summary::of_nanos(load.latencies.clone()).json(),
    })
}

impl Run {
    pub async fn ingest(&mut self) -> Result<Value> {
        let database = Database::sqlite()?;
        let line = self.ingest_on(&database, Topology::Serve).await;
        database.remove().await;
        line
    }

    /// The bare server at the same concurrency, measured once per run.
    pub(super) async fn ingest_baseline(&mut self) -> Result<Value> {
        if let Some(baseline) = &self.ingest_baseline {
            return Ok(baseline.clone());
        }
        let bare = Server::bare(UNUSED_DESTINATION).await?;
        let first = self.seqs(10_000_000);
        let load = client::closed_loop(
            bare.address,
            self.settings.concurrency,
            self.settings.warmup(),
            self.settings.duration,
            first,
            shopify_webhooks("/ingest"),
        )
        .await;
        bare.stop().await?;
        let baseline = load_json(&load);
        self.ingest_baseline = Some(baseline.clone());
        Ok(baseline)
    }

    pub(super) async fn ingest_on(
        &mut self,
        database: &Database,
        topology: Topology,
    ) -> Result<Value> {
        let baseline = self.ingest_baseline().await?;
        // Auto-sync off: this scenario measures intake alone.
        let deployed = deploy(
            &self.settings.hookplane,
            database,
            topology,
            UNUSED_DESTINATION,
            false,
        )
        .await?;
        let server = &deployed.front;
        let sampler = RssSampler::start(server.pid, Duration::from_millis(100));
        let first = self.seqs(10_000_000);
        let load = client::closed_loop(
            server.address,
            self.settings.concurrency,
            self.settings.warmup(),
            self.settings.duration,
            first,
            shopify_webhooks(&hook_path()),
        )
        .await;
        let peak_rss_kib = sampler.finish().await;
        deployed.stop().await?;

        let measured = load_json(&load);
        let throughput = ratio(
            measured["requests_per_s"].as_f64().unwrap_or(0.0),
            baseline["requests_per_s"].as_f64().unwrap_or(0.0),
        );
        let p99 = measured["latency_ms"]["p99"].as_f64().unwrap_or(f64::MAX);
        // Issue 14's targets: half the bare server on SQLite; 10,000 req/s on PostgreSQL.
        let (target, met) = if database.backend() == "sqlite" {
            (
                json!({ "throughput_ratio_min": 0.5, "p99_ms_max": 10.0 }),
                json!({ "throughput": throughput >= 0.5, "p99": p99 < 10.0 }),
            )
        } else {
            let rate = measured["requests_per_s"].as_f64().unwrap_or(0.0);
            (
                json!({ "requests_per_s_min": 10_000.0 }),
                json!({ "throughput": rate >= 10_000.0 }),
            )
        };
        Ok(json!({
            "scenario": if database.backend() == "sqlite" { "ingest" } else { "postgres-ingest" },
            "backend": database.backend(),
            "topology": topology.describe(),
            "concurrency": self.settings.concurrency,
            "duration_s": self.settings.duration.as_secs_f64(),
            "payload_bytes": workload::order_body(0).len(),
            "hookplane": measured,
            "receiving_process_peak_rss_kib": peak_rss_kib,
            "baseline": baseline,
            "ratio_to_baseline": {
                "throughput": throughput,
                "p99": ratio(p99, baseline["latency_ms"]["p99"].as_f64().unwrap_or(0.0)),
            },
            "target": target,
            "met": met,
        }))
    }
}
