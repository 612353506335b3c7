//! The claim loop: lease due events in rounds planned around each destination's room
//! ([`super::dispatch`]) and process them with bounded concurrency.
//!
//! Guarantees: a worker slot is only ever taken by an event whose destination admitted it, so
//! a slow, rate-limited or held destination occupies at most its own `maxConcurrency` slots
//! and never makes other touchpoints' events wait.
//!
//! A destination whose requests are all in flight may have up to `maxConcurrency` more events
//! claimed and *waiting* at this worker, started as its requests finish: claims are the
//! worker's serial cost (a write each), so a busy destination is fed in claims of many events
//! rather than one per finished request. Waiting events start oldest first;
//! they are handed back (`release_lease`) when their destination is throttled or held, when
//! they waited half their lease, and on shutdown. Any other event that was claimed but cannot
//! start (its touchpoint is not in this worker's snapshot, no room to wait) is handed back at
//! once, never left to its lease. On shutdown the loop stops claiming, requests not yet
//! started hand their events back, and requests in flight finish and are recorded.

use std::{
    collections::{HashMap, VecDeque},
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
    limiter::Closed,
    process::{Job, Processor, Slot},
};
use crate::{
    runtime::{Runtime, Snapshot},
    telemetry::Metrics,
};

/// Outcomes waiting for their commit, per delivery slot (see [`Slot`]).
const RECORDING_PER_SLOT: usize = 4;

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
        let permits = Slots {
            delivering: Arc::new(Semaphore::new(self.config.concurrency.max(1))),
            recording: Arc::new(Semaphore::new(
                self.config.concurrency.max(1) * RECORDING_PER_SLOT,
            )),
        };
        let mut tasks = JoinSet::new();
        let mut destinations = Destinations::new(Arc::clone(&self.freed));
        let mut dispatcher = Dispatcher::default();
        let mut waiting = Waiting::default();
        let mut unknown: (Option<Arc<Snapshot>>, Vec<Uuid>) = (None, Vec::new());
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            if permits.delivering.available_permits() == 0 {
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
                    &mut waiting,
                    &permits,
                    &mut tasks,
                    &shutdown,
                )
                .await;
            match round {
                Ok(round) => {
                    failures = 0;
                    unknown.1.extend(round.unknown);
                    // With every slot taken, the next thing to wait for is a task finishing
                    // (the top of the loop), not the store.
                    if !round.full && permits.delivering.available_permits() > 0 {
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
        for event in waiting.drain() {
            self.hand_back(&event).await;
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
        waiting: &mut Waiting,
        permits: &Slots,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> Result<Round, hookplane_store::StoreError> {
        self.start_waiting(snapshot, destinations, waiting, permits, tasks, shutdown)
            .await;
        let now = Instant::now();
        let mut touchpoints: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for running in snapshot.touchpoints().filter(|running| running.auto_sync) {
            touchpoints
                .entry(running.connection_id)
                .or_default()
                .push(running.id);
        }
        let mut rooms = Vec::with_capacity(touchpoints.len());
        // Events claims may bring beyond the free slots: those that can wait for one.
        let mut waiting_room = 0;
        for (connection, touchpoints) in touchpoints {
            let Some(destination) = destinations.get(connection) else {
                continue;
            };
            // Room to start now, plus room to wait for a slot.
            let may_wait = waiting.room(connection, &destination.limiter);
            let room = match destination.limiter.room(now) {
                Ok(room) => Ok(room + may_wait),
                Err(Closed::Concurrency) if may_wait > 0 => Ok(may_wait),
                Err(closed) => Err(closed),
            };
            if room.is_ok() {
                waiting_room += may_wait;
            }
            rooms.push(DestinationRoom {
                connection,
                touchpoints,
                room,
            });
        }
        let mut round = Round::default();
        for claim in dispatcher.plan(&rooms, unknown, scope) {
            let limit = claim
                .limit
                .min(permits.delivering.available_permits() + waiting_room);
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
                        let Some(event) = waiting.offer(connection, destinations, event) else {
                            continue;
                        };
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
        permits: &Slots,
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
        let Ok(delivering) = Arc::clone(&permits.delivering).try_acquire_owned() else {
            // Claims never ask for more than the free slots; keep the invariant visible.
            return Started::NoRoom(running.connection_id, event, "worker_full");
        };
        let slot = Slot {
            delivering,
            recording: Arc::clone(&permits.recording),
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
                processor.process(job, slot, &shutdown).await;
            }
            .instrument(span),
        );
        Started::Yes
    }

    /// Starts the events waiting for a slot, oldest first, while their destinations admit
    /// them; hands back those whose destination is throttled or held, and those that waited
    /// half their lease.
    async fn start_waiting(
        &self,
        snapshot: &Snapshot,
        destinations: &Destinations,
        waiting: &mut Waiting,
        permits: &Slots,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let mut handed_back = Vec::new();
        let now = Instant::now();
        for (connection, queue) in &mut waiting.by_connection {
            let throttled = destinations.get(*connection).is_none_or(|destination| {
                matches!(
                    destination.limiter.room(now),
                    Err(Closed::Rate | Closed::Held)
                )
            });
            if throttled {
                handed_back.extend(queue.drain(..).map(|waiter| waiter.event));
                continue;
            }
            while let Some(waiter) = queue.pop_front() {
                if waiter.since.elapsed() > self.config.lease / 2 {
                    handed_back.push(waiter.event);
                    continue;
                }
                if permits.delivering.available_permits() == 0 {
                    queue.push_front(waiter);
                    break;
                }
                let since = waiter.since;
                match self.start(
                    snapshot,
                    destinations,
                    waiter.event,
                    permits,
                    tasks,
                    shutdown,
                ) {
                    Started::Yes => {}
                    Started::NoRoom(_, event, _) => {
                        queue.push_front(Waiter { event, since });
                        break;
                    }
                    Started::Unknown(event) => handed_back.push(event),
                }
            }
        }
        waiting.by_connection.retain(|_, queue| !queue.is_empty());
        for event in handed_back {
            self.hand_back(&event).await;
        }
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
            warn!(event = %event.id, error = &error as &dyn std::error::Error, "handing an event back; its lease will expire instead");
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
        // Every touchpoint this worker knows waits for a full destination: a finished request
        // wakes it, and asking the store when the rest is due (a scan of the whole backlog)
        // would only delay that.
        let any_open = snapshot.touchpoints().any(|running| {
            running.auto_sync
                && !waiting.exclude.contains(&running.id)
                && scope
                    .only
                    .as_ref()
                    .is_none_or(|only| only.contains(&running.id))
        });
        let due = if any_open || closed.is_empty() {
            self.metrics.worker_due_lookups.inc();
            self.store.next_due_at_where(&waiting).await
        } else {
            Ok(None)
        };
        if let Ok(Some(due)) = due {
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

/// The worker's slots: events being delivered, and outcomes waiting for their commit.
struct Slots {
    delivering: Arc<Semaphore>,
    recording: Arc<Semaphore>,
}

/// An event claimed for a destination that was full, waiting at this worker for a slot.
struct Waiter {
    event: Event,
    since: Instant,
}

/// The events waiting for a slot, per destination (connection), oldest first.
#[derive(Default)]
struct Waiting {
    by_connection: HashMap<Uuid, VecDeque<Waiter>>,
}

impl Waiting {
    /// How many more events to claim to wait for `connection`: up to its `maxConcurrency`
    /// waiting, and none while more than half of that still wait (so a busy destination is
    /// fed in claims of many events, not one per finished request).
    fn room(&self, connection: Uuid, limiter: &super::limiter::Limiter) -> usize {
        let most = limiter.max_concurrency() as usize;
        let queued = self.by_connection.get(&connection).map_or(0, VecDeque::len);
        if queued > most / 2 { 0 } else { most - queued }
    }

    /// Whether one more event may wait for `connection`.
    fn has_space(&self, connection: Uuid, limiter: &super::limiter::Limiter) -> bool {
        let most = limiter.max_concurrency() as usize;
        self.by_connection
            .get(&connection)
            .is_none_or(|queue| queue.len() < most)
    }

    /// Keeps `event` waiting for a slot at `connection` if there is room to wait (`None`);
    /// gives it back otherwise.
    fn offer(
        &mut self,
        connection: Uuid,
        destinations: &Destinations,
        event: Event,
    ) -> Option<Event> {
        let Some(destination) = destinations.get(connection) else {
            return Some(event);
        };
        if !self.has_space(connection, &destination.limiter) {
            return Some(event);
        }
        self.by_connection
            .entry(connection)
            .or_default()
            .push_back(Waiter {
                event,
                since: Instant::now(),
            });
        None
    }

    fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.by_connection
            .drain()
            .flat_map(|(_, queue)| queue.into_iter().map(|waiter| waiter.event))
    }
}

enum Started {
    Yes,
    NoRoom(Uuid, Event, &'static str),
    Unknown(Event),
}
