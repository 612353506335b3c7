//! Delivery under intake pressure, and backlog drain with intake idle.
//!
//! `ingest-sync`: signed 1 KiB Shopify webhooks at fixed concurrency with Auto-sync on, so
//! intake and delivery share the store; figures: intake against the bare server, and the
//! share of accepted webhooks that reached the sink within 2 s after the window.
//!
//! `backlog`: webhooks stored with Auto-sync off, then Auto-sync switched on with nothing
//! arriving; figure: deliveries per second until the sink has them all.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Database, Run,
    deploy::{Topology, deploy},
};
use crate::{
    client,
    sink::Sink,
    stats::{Summary, ratio, round},
    workload::{self, hook_path, shopify_webhooks},
};

/// How long after the window the accepted webhooks have to reach the sink.
const DELIVERY_GRACE: Duration = Duration::from_secs(2);

impl Run {
    pub async fn ingest_sync(&mut self) -> Result<Value> {
        let database = Database::sqlite()?;
        let line = self.ingest_sync_on(&database).await;
        database.remove().await;
        line
    }

    async fn ingest_sync_on(&mut self, database: &Database) -> Result<Value> {
        let baseline = self.ingest_baseline().await?;
        let sink = Sink::start().await?;
        let deployed = deploy(
            &self.settings.hookplane,
            database,
            Topology::Serve,
            &sink.url(),
            true,
        )
        .await?;
        let first = self.seqs(10_000_000);
        // No warm-up: every accepted webhook counts, so the delivered share is exact.
        let load = client::closed_loop(
            deployed.front.address,
            self.settings.concurrency,
            Duration::ZERO,
            self.settings.duration,
            first,
            shopify_webhooks(&hook_path()),
        )
        .await;
        tokio::time::sleep(DELIVERY_GRACE).await;
        let delivered_in_grace = sink.distinct() as u64;
        // How long the rest takes, up to 60 s.
        let drain_started = Instant::now();
        while (sink.distinct() as u64) < load.ok
            && drain_started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drained_after_s = drain_started.elapsed().as_secs_f64() + DELIVERY_GRACE.as_secs_f64();
        let delivered_total = sink.distinct() as u64;
        deployed.stop().await?;

        let per_second = load.per_second();
        let throughput = ratio(
            per_second,
            baseline["requests_per_s"].as_f64().unwrap_or(0.0),
        );
        let share = if load.ok == 0 {
            0.0
        } else {
            (delivered_in_grace.min(load.ok) as f64) / (load.ok as f64)
        };
        Ok(json!({
            "scenario": "ingest-sync",
            "backend": database.backend(),
            "concurrency": self.settings.concurrency,
            "duration_s": self.settings.duration.as_secs_f64(),
            "hookplane": {
                "requests_per_s": round(per_second),
                "accepted": load.ok,
                "errors": load.errors,
                "first_error": load.first_error,
                "latency_ms": Summary::of_nanos(load.latencies.clone()).json(),
                "delivered_within_2s_after": delivered_in_grace,
                "delivered_total": delivered_total,
                "all_delivered_after_s": round(drained_after_s),
            },
            "baseline": baseline,
            "ratio_to_baseline": { "throughput": throughput },
            "delivered_share_within_2s": round(share),
            "target": { "throughput_ratio_min": 0.25, "delivered_share_min": 0.95 },
            "met": { "throughput": throughput >= 0.25, "delivered": share >= 0.95 },
        }))
    }

    pub async fn backlog(&mut self) -> Result<Value> {
        let database = Database::sqlite()?;
        let line = self.backlog_on(&database).await;
        database.remove().await;
        line
    }

    async fn backlog_on(&mut self, database: &Database) -> Result<Value> {
        // 20,000: a drain of several seconds (5,000 drained in under 2 s, too short to measure
        // steadily), and a backlog large enough that a claim costing time per stored event
        // shows.
        let count: u64 = if self.settings.quick { 500 } else { 20_000 };
        let sink = Sink::start().await?;
        let deployed = deploy(
            &self.settings.hookplane,
            database,
            Topology::Serve,
            &sink.url(),
            false,
        )
        .await?;
        let server = &deployed.front;
        // Fill the backlog as fast as intake takes it.
        let first = self.seqs(count);
        let filled = client::send_count(
            server.address,
            self.settings.concurrency,
            count,
            first,
            shopify_webhooks(&hook_path()),
        )
        .await;
        anyhow::ensure!(
            filled.ok == count,
            "filling the backlog: {} of {count} accepted ({:?})",
            filled.ok,
            filled.first_error
        );
        let http = reqwest::Client::new();
        let touchpoints = workload::gql(&http, server, "{ touchpoints { id } }", json!({})).await?;
        let id = touchpoints["touchpoints"][0]["id"]
            .as_str()
            .context("a touchpoint id")?
            .to_owned();
        let started = Instant::now();
        workload::gql(
            &http,
            server,
            "mutation($id: ID!) { setAutoSync(id: $id, enabled: true) { autoSync } }",
            json!({ "id": id }),
        )
        .await?;
        let limit = if self.settings.quick {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(60)
        };
        while (sink.distinct() as u64) < count && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let delivered = sink.distinct() as u64;
        deployed.stop().await?;
        let per_second = delivered as f64 / elapsed.max(1e-9);
        Ok(json!({
            "scenario": "backlog",
            "backend": database.backend(),
            "events": count,
            "delivered": delivered,
            "seconds": round(elapsed),
            "deliveries_per_s": round(per_second),
            "target": { "deliveries_per_s_min": 5000.0 },
            "met": { "deliveries_per_s": delivered == count && per_second >= 5000.0 },
        }))
    }
}
