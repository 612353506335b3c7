//! Scenario 2: webhook -> commit -> 20-field mapping -> delivery to a local sink, open loop at
//! a fixed rate (latency from each webhook's scheduled send time to its arrival at the sink),
//! then a ramp of rising rates to find the highest one Hookplane sustains. Baseline: the bare
//! server relaying each webhook through the same mapping to the same sink, with nothing
//! durable, at the same rate.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::{
    Database, Delivered, Run, deliver_at_rate,
    deploy::{Topology, deploy},
};
use crate::{
    child::Server,
    sink::Sink,
    stats::{ratio, round},
    workload::{self, hook_path, shopify_webhooks},
};

/// A ramp step is sustained when every webhook is accepted and delivered within the drain
/// time after the step, with p99 under this, at no less than [`SUSTAINED_SHARE`] of the
/// offered rate (a step that only completes because the load generator fell behind, on a
/// machine whose cores it shares, is not sustained).
const SUSTAINED_P99_MS: f64 = 250.0;
const SUSTAINED_SHARE: f64 = 0.95;

impl Run {
    pub async fn e2e(&mut self) -> Result<Value> {
        let database = Database::sqlite()?;
        let line = self.e2e_on(&database, Topology::Serve).await;
        database.remove().await;
        line
    }

    fn drain(&self) -> Duration {
        if self.settings.quick {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(10)
        }
    }

    fn ramp_rates(&self) -> (Vec<f64>, Duration) {
        if self.settings.quick {
            (vec![100.0, 200.0], Duration::from_secs(1))
        } else {
            (
                vec![
                    100.0, 200.0, 400.0, 700.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 5000.0,
                    6000.0,
                ],
                (self.settings.duration / 3).max(Duration::from_secs(2)),
            )
        }
    }

    fn fixed_rate(&self) -> f64 {
        if self.settings.quick {
            self.settings.rate.min(200.0)
        } else {
            self.settings.rate
        }
    }

    async fn relay_baseline(&mut self) -> Result<Value> {
        if let Some(baseline) = &self.relay_baseline {
            return Ok(baseline.clone());
        }
        let sink = Sink::start().await?;
        let bare = Server::bare(&sink.url()).await?;
        let rate = self.fixed_rate();
        let first = self.seqs(10_000_000);
        let run = deliver_at_rate(
            bare.address,
            shopify_webhooks("/relay"),
            &sink,
            rate,
            self.settings.duration,
            first,
            self.drain(),
        )
        .await;
        bare.stop().await?;
        let baseline = run.json();
        self.relay_baseline = Some(baseline.clone());
        Ok(baseline)
    }

    pub(super) async fn e2e_on(
        &mut self,
        database: &Database,
        topology: Topology,
    ) -> Result<Value> {
        let baseline = self.relay_baseline().await?;
        let sink = Sink::start().await?;
        let deployed = deploy(
            &self.settings.hookplane,
            database,
            topology,
            &sink.url(),
            true,
        )
        .await?;
        let server = &deployed.front;

        let rate = self.fixed_rate();
        let first = self.seqs(10_000_000);
        let fixed = deliver_at_rate(
            server.address,
            shopify_webhooks(&hook_path()),
            &sink,
            rate,
            self.settings.duration,
            first,
            self.drain(),
        )
        .await;

        let repeats = sink.requests() - sink.distinct() as u64;
        deployed.stop().await?;

        // The ramp runs on a fresh deployment and database, so a backlog the fixed-rate run
        // left behind does not count against it.
        let ramp_database = database.another().await?;
        let ramp = self.ramp(&ramp_database, topology).await;
        ramp_database.remove().await;
        let (steps, step, max_sustained) = ramp?;

        let p99 = fixed.latency.p99;
        // The targets of issue 14: p99 under 10 ms on SQLite, under 20 ms on PostgreSQL (its
        // commits cross a socket and it shares the two cores with three processes).
        let p99_max = if database.backend() == "sqlite" {
            10.0
        } else {
            20.0
        };
        Ok(json!({
            "scenario": if database.backend() == "sqlite" { "e2e" } else { "postgres-e2e" },
            "backend": database.backend(),
            "topology": topology.describe(),
            "mapping_fields": workload::twenty_rules().rules.len(),
            "duration_s": self.settings.duration.as_secs_f64(),
            "hookplane": fixed.json(),
            "baseline": baseline,
            "ratio_to_baseline": {
                "p50": ratio(fixed.latency.p50, baseline["latency_ms"]["p50"].as_f64().unwrap_or(0.0)),
                "p99": ratio(p99, baseline["latency_ms"]["p99"].as_f64().unwrap_or(0.0)),
            },
            "ramp": {
                "step_s": step.as_secs_f64(),
                "sustained_when": format!(
                    "every webhook accepted and delivered, p99 <= {SUSTAINED_P99_MS} ms, \
                     at >= {SUSTAINED_SHARE} of the offered rate"
                ),
                "steps": steps,
                "max_sustained_per_s": max_sustained,
            },
            "repeated_deliveries": repeats,
            "target": { "p99_ms_max": p99_max, "at_rate_per_s": 2000.0 },
            "met": { "p99": fixed.complete() && p99 < p99_max && rate >= 2000.0 },
        }))
    }
}

impl Run {
    /// Rising rates on a fresh deployment until one is not sustained; returns the steps, the
    /// step length and the highest sustained rate.
    async fn ramp(
        &mut self,
        database: &Database,
        topology: Topology,
    ) -> Result<(Vec<Value>, Duration, f64)> {
        let sink = Sink::start().await?;
        let deployed = deploy(
            &self.settings.hookplane,
            database,
            topology,
            &sink.url(),
            true,
        )
        .await?;
        let (rates, step) = self.ramp_rates();
        let mut steps = Vec::new();
        let mut max_sustained = 0.0;
        for rate in rates {
            let first = self.seqs(10_000_000);
            let run = deliver_at_rate(
                deployed.front.address,
                shopify_webhooks(&hook_path()),
                &sink,
                rate,
                step,
                first,
                self.drain(),
            )
            .await;
            let sustained = run.complete()
                && run.latency.p99 <= SUSTAINED_P99_MS
                && run.delivered_rate >= SUSTAINED_SHARE * rate;
            steps.push(step_json(&run, sustained));
            if !sustained {
                break;
            }
            max_sustained = rate;
        }
        deployed.stop().await?;
        Ok((steps, step, max_sustained))
    }
}

fn step_json(run: &Delivered, sustained: bool) -> Value {
    json!({
        "offered_per_s": round(run.offered_rate),
        "accepted": run.accepted,
        "delivered": run.delivered,
        "delivered_per_s": round(run.delivered_rate),
        "p50_ms": round(run.latency.p50),
        "p99_ms": round(run.latency.p99),
        "ack_p99_ms": round(run.acknowledged.p99),
        "sustained": sustained,
        "first_error": run.first_error,
    })
}
