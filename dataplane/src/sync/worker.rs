//! The claim loop: lease due events in rounds planned around each destination's room
//! ([`super::dispatch`]) and process them with bounded concurrency.
//!
//! Guarantees: a worker slot is only ever taken by an event whose destination admitted it, so
//! a slow, rate-limited or held destination occupies at most its own `maxConcurrency` slots
//! and never makes other touchpoints' events wait; an event that was claimed but cannot start
//! (its destination had no room after all, its touchpoint is not in this worker's snapshot) is
//! handed back at once with `release_lease`, never left to its lease. On shutdown the loop
//! stops claiming, requests not yet started hand their events back, and requests in flight
//! finish and are recorded.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use hookplane_store::{ChangeKind, ClaimFilter, Event, EventStatus, Store};
use tokio::{
    sync::{Notify, Semaphore, broadcast},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span, warn};
use uuid::Uuid;

use super::{
    Deliverer, DestinationPolicy,
    destinations::Destinations,
    dispatch::{DestinationRoom, Dispatcher},
    process::{Job, Processor},
};
use crate::{
    runtime::{Runtime, Snapshot},
    telemetry::Metrics,
};

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
    /// Which addresses deliveries may connect to (the process adds its own listeners).
    pub destinations: DestinationPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            lease: Duration::from_secs(120),
            idle_poll: Duration::from_secs(1),
            destinations: DestinationPolicy::default(),
        }
    }
}

/// Wake the worker whenever work may have arrived for a touchpoint it runs with auto-sync on:
/// an event was created, or one went back to UNPROCESSED (a resync, a retry scheduled). On
/// PostgreSQL the store's feed also carries other processes' changes, so a receiver or an API
/// in another process wakes this worker without waiting for its idle poll. Changes of
/// touchpoints it does not run wake nothing (a thousand webhooks a second for a touchpoint
/// with auto-sync off must not turn into a thousand empty claims).
pub async fn wake_on_new_work(
    store: Store,
    runtime: Arc<Runtime>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut changes = store.subscribe();
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            change = changes.recv() => change,
        };
        match change {
            Ok(change) => {
                let new_work = change.kind == ChangeKind::EventCreated
                    || (change.kind == ChangeKind::EventUpdated
                        && change.status == Some(EventStatus::Unprocessed));
                let runs = || {
                    runtime
                        .snapshot()
                        .touchpoint(change.touchpoint_id)
                        .is_some_and(|running| running.auto_sync)
                };
                if new_work && runs() {
                    wake.notify_one();
                }
            }
            // Fell behind: something certainly changed.
            Err(broadcast::error::RecvError::Lagged(_)) => wake.notify_one(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

pub struct Worker {
    store: Store,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// Told when a destination finishes a request (it may have room again).
    freed: Arc<Notify>,
    config: WorkerConfig,
    processor: Arc<Processor>,
}

/// What one round did.
#[derive(Default)]
struct Round {
    /// Some claim came back full: there may be more to claim at once.
    full: bool,
    /// Touchpoints whose events this worker cannot run, until the snapshot changes.
    unknown: Vec<Uuid>,
}

impl Worker {
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        config: WorkerConfig,
    ) -> Self {
        let deliverer = Deliverer::new(config.destinations.clone())
            .expect("the HTTP client's static configuration is valid");
        let processor = Arc::new(Processor {
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            deliverer,
            sandbox: runtime.sandbox().clone(),
        });
        Self {
            store,
            runtime,
            metrics,
            wake,
            freed: Arc::new(Notify::new()),
            config,
            processor,
        }
    }

    /// Claim and process events until `shutdown`; then finish what is in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut destinations = Destinations::new(Arc::clone(&self.freed));
        let mut dispatcher = Dispatcher::default();
        let mut unknown: (Option<Arc<Snapshot>>, Vec<Uuid>) = (None, Vec::new());
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            if permits.available_permits() == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let snapshot = self.runtime.snapshot();
            if !unknown
                .0
                .as_ref()
                .is_some_and(|seen| Arc::ptr_eq(seen, &snapshot))
            {
                unknown = (Some(Arc::clone(&snapshot)), Vec::new());
            }
            destinations.sync(snapshot.connections(), Instant::now());
            let scope = self.claim_scope();
            dispatcher.retain(|connection| destinations.get(*connection).is_some());
            let round = self
                .round(
                    &snapshot,
                    &destinations,
                    &mut dispatcher,
                    &scope,
                    &unknown.1,
                    &permits,
                    &mut tasks,
                    &shutdown,
                )
                .await;
            match round {
                Ok(round) => {
                    failures = 0;
                    unknown.1.extend(round.unknown);
                    if !round.full {
                        self.idle(&destinations, &scope, &unknown.1, &shutdown)
                            .await;
                    }
                }
                Err(claim_error) => {
                    failures = failures.saturating_add(1);
                    error!(error = %claim_error, "claiming events");
                    let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        // Finished tasks stay in the set until joined; count only those still running.
        while tasks.try_join_next().is_some() {}
        if !tasks.is_empty() {
            warn!(in_flight = tasks.len(), "waiting for in-flight deliveries");
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Plan and make one round of claims; start what the destinations admit, hand back the
    /// rest.
    #[allow(clippy::too_many_arguments)]
    async fn round(
        &self,
        snapshot: &Snapshot,
        destinations: &Destinations,
        dispatcher: &mut Dispatcher,
        scope: &ClaimFilter,
        unknown: &[Uuid],
        permits: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> Result<Round, hookplane_store::StoreError> {
        let now = Instant::now();
        let mut touchpoints: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for running in snapshot.touchpoints().filter(|running| running.auto_sync) {
            touchpoints
                .entry(running.connection_id)
                .or_default()
                .push(running.id);
        }
        let rooms: Vec<DestinationRoom> = touchpoints
            .into_iter()
            .filter_map(|(connection, touchpoints)| {
                let destination = destinations.get(connection)?;
                Some(DestinationRoom {
                    connection,
                    touchpoints,
                    room: destination.limiter.room(now),
                })
            })
            .collect();
        let mut round = Round::default();
        for claim in dispatcher.plan(&rooms, unknown, scope) {
            let limit = claim.limit.min(permits.available_permits());
            if limit == 0 {
                continue;
            }
            let events = self
                .store
                .claim_due_events_where(Utc::now(), self.config.lease, limit as u64, &claim.filter)
                .await?;
            dispatcher.claimed(&claim, limit, events.len());
            round.full |= events.len() == limit;
            for event in events {
                match self.start(snapshot, destinations, event, permits, tasks, shutdown) {
                    Started::Yes => {}
                    Started::NoRoom(connection, event, reason) => {
                        dispatcher.overflowed(connection);
                        self.metrics
                            .delivery_throttled
                            .with_label_values(&[reason])
                            .inc();
                        self.hand_back(&event).await;
                    }
                    Started::Unknown(event) => {
                        round.unknown.push(event.touchpoint_id);
                        self.hand_back(&event).await;
                    }
                }
            }
        }
        Ok(round)
    }

    fn start(
        &self,
        snapshot: &Snapshot,
        destinations: &Destinations,
        event: Event,
        permits: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> Started {
        let Some(lease_id) = event.lease_id else {
            warn!(event = %event.id, "a claimed event carries no lease; leaving it");
            return Started::Yes;
        };
        let running = snapshot
            .touchpoint(event.touchpoint_id)
            .filter(|running| running.auto_sync);
        let Some(running) = running else {
            return Started::Unknown(event);
        };
        let Some(destination) = destinations.get(running.connection_id) else {
            return Started::Unknown(event);
        };
        let admission = match destination.limiter.reserve(Instant::now()) {
            Ok(admission) => admission,
            Err(closed) => return Started::NoRoom(running.connection_id, event, closed.label()),
        };
        let Ok(slot) = Arc::clone(permits).try_acquire_owned() else {
            // Claims never ask for more than the free slots; keep the invariant visible.
            return Started::NoRoom(running.connection_id, event, "worker_full");
        };
        let job = Job {
            event,
            lease_id,
            running: Arc::clone(running),
            destination: Arc::clone(destination),
            admission,
        };
        let processor = Arc::clone(&self.processor);
        let shutdown = shutdown.clone();
        let span = info_span!(
            "event",
            event = %job.event.id,
            touchpoint = %job.event.touchpoint_id,
            generation = job.running.generation,
        );
        tasks.spawn(
            async move {
                processor.process(job, &shutdown).await;
                drop(slot);
            }
            .instrument(span),
        );
        Started::Yes
    }

    /// The touchpoints this worker may claim at all: every runnable one embedded, its own
    /// connection's with a rendered configuration.
    fn claim_scope(&self) -> ClaimFilter {
        self.runtime.claim_filter()
    }

    async fn hand_back(&self, event: &Event) {
        let Some(lease_id) = event.lease_id else {
            return;
        };
        if let Err(error) = self.store.release_lease(event.id, lease_id).await {
            warn!(event = %event.id, %error, "handing an event back; its lease will expire instead");
        }
    }

    /// Sleep until woken by intake, a destination finishing a request, the next retry due at
    /// a destination with room, a destination's hold or rate opening again, or the idle poll.
    async fn idle(
        &self,
        destinations: &Destinations,
        scope: &ClaimFilter,
        unknown: &[Uuid],
        shutdown: &CancellationToken,
    ) {
        let now = Instant::now();
        let mut sleep_for = self.config.idle_poll;
        let mut closed = Vec::new();
        for (_, destination) in destinations.iter() {
            if destination.limiter.room(now).is_err() {
                closed.push(destination.connection.id);
                if let Some(opens) = destination.limiter.opens_at(now) {
                    sleep_for = sleep_for.min(opens.saturating_duration_since(now));
                }
            }
        }
        // Events due at a closed destination wait for it to open (its time above, or a
        // finished request), not for their own due time; this worker does not run unknown
        // touchpoints' events at all.
        let snapshot = self.runtime.snapshot();
        let waiting = ClaimFilter {
            only: scope.only.clone(),
            exclude: snapshot
                .touchpoints()
                .filter(|running| closed.contains(&running.connection_id))
                .map(|running| running.id)
                .chain(scope.exclude.iter().copied())
                .chain(unknown.iter().copied())
                .collect(),
        };
        if let Ok(Some(due)) = self.store.next_due_at_where(&waiting).await {
            // Due already but not claimed (a race with intake, or another worker's claim):
            // look again soon rather than spin.
            let until_due = (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::from_millis(10));
            sleep_for = sleep_for.min(until_due);
        }
        debug!(?sleep_for, "idle");
        // A finished request matters only to a destination that was out of room.
        let freed = async {
            if closed.is_empty() {
                std::future::pending::<()>().await;
            } else {
                self.freed.notified().await;
            }
        };
        tokio::select! {
            () = self.wake.notified() => {}
            () = freed => {}
            () = tokio::time::sleep(sleep_for) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

enum Started {
    Yes,
    NoRoom(Uuid, Event, &'static str),
    Unknown(Event),
}
