//! Retention: terminal events, logs and attempts older than a window are purged in small
//! batches, so intake and delivery never wait long. UNPROCESSED events are never purged.

use std::sync::Arc;

use hookplane_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::telemetry::Metrics;

/// Background purge of old bucket entries and logs.
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Terminal events (SUCCESS, FAILED, SKIPPED) and logs older than this are purged.
    /// UNPROCESSED events are never purged.
    pub max_age: std::time::Duration,
    /// How often the purge runs.
    pub interval: std::time::Duration,
    /// Rows per statement, so intake and delivery never wait long.
    pub batch: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age: std::time::Duration::from_secs(30 * 24 * 3600),
            interval: std::time::Duration::from_secs(600),
            batch: 1_000,
        }
    }
}

/// Purge old entries every `interval` until shutdown.
pub async fn purge_periodically(
    store: Store,
    metrics: Arc<Metrics>,
    retention: RetentionConfig,
    shutdown: CancellationToken,
) {
    let max_age = chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
    loop {
        let cutoff = chrono::Utc::now().checked_sub_signed(max_age);
        if let Some(cutoff) = cutoff {
            let span = tracing::info_span!("retention", %cutoff);
            let purged =
                tracing::Instrument::instrument(store.purge(cutoff, retention.batch), span).await;
            match purged {
                Ok(stats) => {
                    for (kind, rows) in [
                        ("events", stats.events),
                        ("logs", stats.logs),
                        ("attempts", stats.attempts),
                    ] {
                        metrics.purged.with_label_values(&[kind]).inc_by(rows);
                    }
                    if stats.events + stats.logs > 0 {
                        info!(
                            events = stats.events,
                            logs = stats.logs,
                            "retention purged old entries"
                        );
                    }
                }
                Err(error) => error!(%error, "retention purge failed; retrying next interval"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retention.interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
