//! The scenarios, and what they share: settings, the databases they run on, the baselines
//! (measured once per run and reused), and the open-loop delivery measurement.

mod deploy;
mod e2e;
mod fanout;
mod footprint;
mod ingest;
mod mapping;
mod postgres;
mod pressure;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{
    client::{self, RequestFactory},
    sink::Sink,
    stats::{Summary, nanos, round},
};

/// What the command line chose.
pub struct Settings {
    pub quick: bool,
    /// Length of each measured run.
    pub duration: Duration,
    pub concurrency: usize,
    pub rate: f64,
    pub subscribers: usize,
    pub fanout_rate: f64,
    pub hookplane: PathBuf,
    pub postgres_url: Option<String>,
}

impl Settings {
    /// Warm-up before a closed-loop measurement.
    fn warmup(&self) -> Duration {
        if self.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        }
    }
}

/// One invocation: settings, plus baselines measured so far.
pub struct Run {
    pub settings: Settings,
    ingest_baseline: Option<Value>,
    relay_baseline: Option<Value>,
    /// Sequence numbers are unique across the whole run, so every webhook is a new delivery.
    next_seq: u64,
}

impl Run {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            ingest_baseline: None,
            relay_baseline: None,
            next_seq: 0,
        }
    }

    /// Reserve `count` sequence numbers; returns the first.
    fn seqs(&mut self, count: u64) -> u64 {
        let first = self.next_seq;
        self.next_seq += count;
        first
    }
}

/// Where `hookplane serve` keeps its data for one scenario.
pub enum Database {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        admin_url: String,
        name: String,
    },
}

impl Database {
    pub fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir().context("a temporary directory")?;
        let url = format!("sqlite://{}", dir.path().join("hookplane.db").display());
        Ok(Self::Sqlite { url, _dir: dir })
    }

    /// A fresh database on the server `admin_url` points at.
    pub async fn postgres(admin_url: &str) -> Result<Self> {
        let mut url = url::Url::parse(admin_url).context("the PostgreSQL URL")?;
        let name = format!("hp_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating the database {name}"))?;
        let _ = admin.close().await;
        url.set_path(&format!("/{name}"));
        Ok(Self::Postgres {
            url: url.to_string(),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// Another fresh database on the same backend.
    pub async fn another(&self) -> Result<Self> {
        match self {
            Self::Sqlite { .. } => Self::sqlite(),
            Self::Postgres { admin_url, .. } => Self::postgres(admin_url).await,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// Drop a PostgreSQL database (SQLite's directory goes with the value).
    pub async fn remove(self) {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
            && let Ok(admin) = sea_orm::Database::connect(&admin_url).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
    }
}

/// An open-loop run measured at the destination.
pub struct Delivered {
    pub offered_rate: f64,
    pub scheduled: u64,
    pub accepted: u64,
    pub delivered: u64,
    /// From each webhook's scheduled send time to its first arrival at the sink.
    pub latency: Summary,
    /// From each webhook's scheduled send time to the webhook's response.
    pub acknowledged: Summary,
    /// Delivered events per second, from the first scheduled send to the last arrival.
    pub delivered_rate: f64,
    pub first_error: Option<String>,
}

impl Delivered {
    pub fn json(&self) -> Value {
        json!({
            "offered_per_s": round(self.offered_rate),
            "scheduled": self.scheduled,
            "accepted": self.accepted,
            "delivered": self.delivered,
            "delivered_per_s": round(self.delivered_rate),
            "latency_ms": self.latency.json(),
            "ack_latency_ms": self.acknowledged.json(),
            "first_error": self.first_error,
        })
    }

    /// Every scheduled webhook was accepted and delivered.
    pub fn complete(&self) -> bool {
        self.accepted == self.scheduled && self.delivered == self.accepted
    }
}

/// Send `rate` webhooks/s for `duration` to `address` (open loop), then wait up to `drain`
/// for the sink to receive every accepted one.
#[allow(clippy::too_many_arguments)]
async fn deliver_at_rate(
    address: std::net::SocketAddr,
    make: RequestFactory,
    sink: &Sink,
    rate: f64,
    duration: Duration,
    first_seq: u64,
    drain: Duration,
) -> Delivered {
    let sent = client::open_loop(address, rate, duration, 128, first_seq, drain, make).await;
    let accepted: Vec<u64> = sent.accepted().map(|s| s.seq).collect();
    let deadline = Instant::now() + drain;
    while accepted.iter().any(|&seq| sink.arrival(seq).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::with_capacity(accepted.len());
    let mut last_arrival = sent.start;
    for &seq in &accepted {
        if let Some(arrival) = sink.arrival(seq) {
            latencies.push(nanos(
                arrival.saturating_duration_since(sent.scheduled_at(seq)),
            ));
            last_arrival = last_arrival.max(arrival);
        }
    }
    let delivered = latencies.len() as u64;
    let span = last_arrival.saturating_duration_since(sent.start);
    Delivered {
        offered_rate: rate,
        scheduled: sent.scheduled,
        accepted: accepted.len() as u64,
        delivered,
        latency: Summary::of_nanos(latencies),
        acknowledged: Summary::of_nanos(sent.accepted().map(|s| s.latency).collect()),
        delivered_rate: delivered as f64 / span.as_secs_f64().max(1e-9),
        first_error: sent.first_error,
    }
}
