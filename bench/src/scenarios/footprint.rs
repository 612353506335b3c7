//! Scenario 5: resident memory of `hookplane serve` idle (one published touchpoint) and
//! during intake at fixed concurrency; start-up time from spawning the process to its first
//! accepted webhook, on an existing SQLite database. Baseline: the bare server's idle memory
//! and time to listening.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{Database, Run, ingest::UNUSED_DESTINATION};
use crate::{
    child::{RssSampler, Server},
    client::{self, RequestFactory},
    stats::{Summary, nanos, ratio, round},
    workload::{self, hook_path, shopify_webhooks},
};

const MIB: f64 = 1024.0;

/// POST webhooks until one is accepted; returns when it was.
async fn first_accepted(server: &Server, make: &RequestFactory, seq: u64) -> Result<Instant> {
    let client = reqwest::Client::new();
    let url = server.url(&hook_path());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = make(seq);
        let (parts, body) = request.into_parts();
        let body = http_body_util::BodyExt::collect(body)
            .await
            .context("a static body")?
            .to_bytes();
        let mut post = client.post(&url).body(body);
        for (name, value) in &parts.headers {
            post = post.header(name.as_str(), value.as_bytes());
        }
        if let Ok(response) = post.send().await
            && response.status().is_success()
        {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("no webhook was accepted within 30 s of start-up");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl Run {
    pub async fn footprint(&mut self) -> Result<Value> {
        let quick = self.settings.quick;
        let idle_wait = Duration::from_secs(if quick { 1 } else { 3 });
        let starts = if quick { 2 } else { 5 };

        let bare = Server::bare(UNUSED_DESTINATION).await?;
        tokio::time::sleep(idle_wait).await;
        let bare_idle_kib = bare.rss_kib()?;
        let bare_listening = bare.listening_after;
        bare.stop().await?;

        let database = Database::sqlite()?;
        let binary = self.settings.hookplane.clone();
        let server = Server::hookplane(&binary, database.url()).await?;
        workload::setup_touchpoint(&server, UNUSED_DESTINATION, false).await?;
        tokio::time::sleep(idle_wait).await;
        let idle_kib = server.rss_kib()?;
        server.stop().await?;

        let make = shopify_webhooks(&hook_path());
        let mut to_listening = Vec::new();
        let mut to_accepted = Vec::new();
        for _ in 0..starts {
            let server = Server::hookplane(&binary, database.url()).await?;
            let seq = self.seqs(1);
            let accepted = first_accepted(&server, &make, seq).await?;
            to_listening.push(nanos(server.listening_after));
            to_accepted.push(nanos(accepted.duration_since(server.spawned_at)));
            server.stop().await?;
        }
        let to_listening = Summary::of_nanos(to_listening);
        let to_accepted = Summary::of_nanos(to_accepted);

        let server = Server::hookplane(&binary, database.url()).await?;
        let sampler = RssSampler::start(server.pid, Duration::from_millis(100));
        let load_for = if quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        };
        let first = self.seqs(10_000_000);
        let load = client::closed_loop(
            server.address,
            self.settings.concurrency,
            Duration::ZERO,
            load_for,
            first,
            make,
        )
        .await;
        let under_load_kib = sampler.finish().await;
        let peak_kib = server.peak_rss_kib()?;
        server.stop().await?;
        database.remove().await;

        let idle_mib = idle_kib as f64 / MIB;
        Ok(json!({
            "scenario": "footprint",
            "backend": "sqlite",
            "hookplane": {
                "idle_rss_mib": round(idle_mib),
                "ingest_rss_mib": round(under_load_kib as f64 / MIB),
                "ingest_peak_rss_mib": round(peak_kib as f64 / MIB),
                "ingest_requests_per_s": round(load.per_second()),
                "ingest_concurrency": self.settings.concurrency,
                "starts": starts,
                "start_to_listening_ms": { "p50": round(to_listening.p50), "max": round(to_listening.max) },
                "start_to_first_accepted_ms": { "p50": round(to_accepted.p50), "max": round(to_accepted.max) },
            },
            "baseline": {
                "idle_rss_mib": round(bare_idle_kib as f64 / MIB),
                "start_to_listening_ms": round(bare_listening.as_secs_f64() * 1000.0),
            },
            "ratio_to_baseline": {
                "idle_rss": ratio(idle_kib as f64, bare_idle_kib as f64),
            },
            "target": { "idle_rss_mib_max": 30.0, "start_ms_max": 200.0 },
            "met": {
                "idle_rss": idle_mib < 30.0,
                "start": to_accepted.max < 200.0,
            },
        }))
    }
}
