//! Scenario 4: many `graphql-transport-ws` subscribers on one touchpoint's resync bucket while
//! webhooks arrive at a fixed rate (Auto-sync off, so each webhook is one change). Figures:
//! time from each entry's `receivedAt` (stamped at intake, before the commit) to each
//! subscriber's receipt, so an upper bound of commit-to-receipt; the server's resident memory
//! per subscriber. Baseline: the bare server broadcasting each webhook to the same number of
//! WebSocket clients through a `tokio::sync::broadcast` channel.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Database, Run, ingest::UNUSED_DESTINATION};
use crate::{
    bare::SMALL_BUFFER,
    child::{RssSampler, Server},
    client::{self, RequestFactory},
    stats::{Summary, ratio, round},
    workload::{self, hook_path, shopify_webhooks},
    ws,
};

struct Fanout {
    subscribers: usize,
    accepted: u64,
    received: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Summary,
    rss_before_kib: u64,
    rss_subscribed_kib: u64,
    rss_peak_kib: u64,
    connect_s: f64,
}

impl Fanout {
    fn per_subscriber_kib(&self) -> f64 {
        (self.rss_subscribed_kib.saturating_sub(self.rss_before_kib)) as f64
            / self.subscribers as f64
    }

    fn json(&self) -> Value {
        let expected = self.accepted * self.subscribers as u64;
        json!({
            "subscribers": self.subscribers,
            "connect_s": round(self.connect_s),
            "events_accepted": self.accepted,
            "changes_expected": expected,
            "changes_received": self.received,
            "received_fraction": ratio(self.received as f64, expected as f64),
            "errors": self.errors,
            "first_error": self.first_error,
            "latency_ms": self.latency.json(),
            "rss_before_kib": self.rss_before_kib,
            "rss_subscribed_kib": self.rss_subscribed_kib,
            "rss_peak_kib": self.rss_peak_kib,
            "per_subscriber_kib": round(self.per_subscriber_kib()),
            "per_subscriber_peak_kib": round(
                (self.rss_peak_kib.saturating_sub(self.rss_before_kib)) as f64
                    / self.subscribers as f64
            ),
        })
    }
}

impl Run {
    pub async fn fanout(&mut self) -> Result<Value> {
        let bare = Server::bare(UNUSED_DESTINATION).await?;
        let baseline = self
            .fan_out(&bare, &bare.ws_url("/ws"), "none", "/broadcast")
            .await;
        bare.stop().await?;
        let baseline = baseline?;
        let small_buffers_kib = self.idle_subscriber_kib("/ws-small").await?;

        let database = Database::sqlite()?;
        let server = Server::hookplane(&self.settings.hookplane, database.url()).await?;
        let touchpoint = workload::setup_touchpoint(&server, UNUSED_DESTINATION, false).await?;
        let measured = self
            .fan_out(
                &server,
                &server.ws_url("/graphql/ws"),
                &touchpoint,
                &hook_path(),
            )
            .await;
        server.stop().await?;
        database.remove().await;
        let measured = measured?;

        let p99 = measured.latency.p99;
        let per_subscriber = measured.per_subscriber_kib();
        let complete = measured.received == measured.accepted * measured.subscribers as u64;
        Ok(json!({
            "scenario": "fanout",
            "backend": "sqlite",
            "events_per_s": self.settings.fanout_rate,
            "duration_s": self.settings.duration.as_secs_f64(),
            "hookplane": measured.json(),
            "baseline": baseline.json(),
            "baseline_small_buffers": {
                "buffer_bytes": SMALL_BUFFER,
                "per_subscriber_kib": round(small_buffers_kib),
            },
            "ratio_to_baseline": {
                "p99": ratio(p99, baseline.latency.p99),
                "per_subscriber_kib": ratio(per_subscriber, baseline.per_subscriber_kib()),
            },
            "target": { "p99_ms_max": 100.0, "per_subscriber_kib_max": 50.0, "subscribers": 1000 },
            "met": {
                "p99": complete && p99 < 100.0,
                "per_subscriber": per_subscriber < 50.0,
            },
        }))
    }

    /// Resident memory per idle subscriber of a fresh bare server's `path`, in KiB.
    async fn idle_subscriber_kib(&self, path: &str) -> Result<f64> {
        let bare = Server::bare(UNUSED_DESTINATION).await?;
        let settle = Duration::from_millis(if self.settings.quick { 500 } else { 1500 });
        tokio::time::sleep(settle).await;
        let before = bare.rss_kib()?;
        let url = bare.ws_url(path);
        let sockets: Vec<_> = stream::iter(0..self.settings.subscribers)
            .map(|_| ws::subscribe(&url, None, "none"))
            .buffer_unordered(32)
            .try_collect()
            .await
            .context("subscribing")?;
        tokio::time::sleep(settle).await;
        let after = bare.rss_kib()?;
        drop(sockets);
        bare.stop().await?;
        Ok(after.saturating_sub(before) as f64 / self.settings.subscribers as f64)
    }

    async fn fan_out(
        &mut self,
        server: &Server,
        ws_url: &str,
        touchpoint: &str,
        hook: &str,
    ) -> Result<Fanout> {
        let subscribers = self.settings.subscribers;
        let settle = Duration::from_millis(if self.settings.quick { 500 } else { 1500 });
        tokio::time::sleep(settle).await;
        let rss_before_kib = server.rss_kib()?;

        let connecting = Instant::now();
        let sockets: Vec<_> = stream::iter(0..subscribers)
            .map(|_| ws::subscribe(ws_url, server.token.as_deref(), touchpoint))
            .buffer_unordered(32)
            .try_collect()
            .await
            .context("subscribing")?;
        let connect_s = connecting.elapsed().as_secs_f64();
        let stop = CancellationToken::new();
        let counter = Arc::new(AtomicU64::new(0));
        let receivers: Vec<_> = sockets
            .into_iter()
            .map(|socket| tokio::spawn(ws::receive(socket, stop.clone(), Arc::clone(&counter))))
            .collect();
        // Let the server register every subscription before the first webhook.
        tokio::time::sleep(settle).await;
        let rss_subscribed_kib = server.rss_kib()?;

        let sampler = RssSampler::start(server.pid, Duration::from_millis(100));
        let make: RequestFactory = shopify_webhooks(hook);
        let rate = self.settings.fanout_rate;
        let first = self.seqs(10_000_000);
        let sent = client::open_loop(
            server.address,
            rate,
            self.settings.duration,
            16,
            first,
            Duration::from_secs(5),
            make,
        )
        .await;
        let accepted = sent.accepted().count() as u64;
        let expected = accepted * subscribers as u64;
        let drain = Duration::from_secs(if self.settings.quick { 5 } else { 15 });
        let deadline = Instant::now() + drain;
        while counter.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rss_peak_kib = sampler.finish().await;
        stop.cancel();

        let mut latencies = Vec::with_capacity(expected as usize);
        let mut errors = 0;
        let mut first_error = sent.first_error;
        for receiver in receivers {
            let received = receiver.await.context("a subscriber task")?;
            latencies.extend(received.latencies_us.iter().map(|us| us * 1000));
            errors += received.errors;
            if first_error.is_none() {
                first_error = received.first_error;
            }
        }
        Ok(Fanout {
            subscribers,
            accepted,
            received: latencies.len() as u64,
            errors,
            first_error,
            latency: Summary::of_nanos(latencies),
            rss_before_kib,
            rss_subscribed_kib,
            rss_peak_kib,
            connect_s,
        })
    }
}
