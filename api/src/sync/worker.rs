//! The claim loop: lease due events in batches and process them with bounded concurrency.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use hookplane_store::Store;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info_span, warn};

use super::{Deliverer, process::Processor};
use crate::{runtime::Runtime, telemetry::Metrics};

/// Worker tuning.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Events processed at once.
    pub concurrency: usize,
    /// How long a claimed event is reserved for this worker. An event whose worker died is
    /// claimed again once its lease expires.
    pub lease: Duration,
    /// Longest sleep between looks at the bucket when nothing wakes the worker.
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            lease: Duration::from_secs(120),
            idle_poll: Duration::from_secs(1),
        }
    }
}

pub struct Worker {
    store: Store,
    wake: Arc<Notify>,
    config: WorkerConfig,
    processor: Arc<Processor>,
}

impl Worker {
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        config: WorkerConfig,
    ) -> Self {
        let deliverer = Deliverer::new().expect("the HTTP client's static configuration is valid");
        let processor = Arc::new(Processor {
            store: store.clone(),
            runtime,
            metrics,
            deliverer,
        });
        Self {
            store,
            wake,
            config,
            processor,
        }
    }

    /// Claim and process events until `shutdown`; then finish what is in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let claimed = self
                .store
                .claim_due_events(Utc::now(), self.config.lease, free as u64)
                .await;
            let events = match claimed {
                Ok(events) => {
                    failures = 0;
                    events
                }
                Err(claim_error) => {
                    failures = failures.saturating_add(1);
                    error!(error = %claim_error, "claiming events");
                    let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            if events.is_empty() {
                self.idle(&shutdown).await;
                continue;
            }
            for event in events {
                let permit = Arc::clone(&permits)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let processor = Arc::clone(&self.processor);
                let span =
                    info_span!("event", event = %event.id, touchpoint = %event.touchpoint_id);
                tasks.spawn(
                    async move {
                        processor.process(event).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
        if !tasks.is_empty() {
            warn!(in_flight = tasks.len(), "waiting for in-flight deliveries");
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Sleep until woken by intake, the next scheduled retry, or the idle poll.
    async fn idle(&self, shutdown: &CancellationToken) {
        let mut sleep_for = self.config.idle_poll;
        if let Ok(Some(due)) = self.store.next_due_at().await {
            let until_due = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            sleep_for = sleep_for.min(until_due);
        }
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(sleep_for) => {}
            () = shutdown.cancelled() => {}
        }
    }
}
