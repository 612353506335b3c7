//! The group-commit writer: one task that owns the hot write path.
//!
//! Event appends, log appends and outcome records are sent to the task over an `mpsc`
//! channel with a `oneshot` for the answer. The task takes everything queued (up to
//! [`MAX_BATCH`] requests), runs them in ONE transaction and commits once, so concurrent
//! callers share a commit (and, on SQLite, its fsync). While a commit is in flight new
//! requests queue up and form the next batch: the busier the store, the bigger the batches.
//!
//! A batch first runs every request straight in the transaction (one statement for a
//! webhook, instead of three with a savepoint around it); the rows nothing reads back (log
//! entries, attempt rows) are kept aside and inserted for the whole batch in a few
//! multi-row statements before the commit ([`Deferred`]); on PostgreSQL the batch's
//! outcomes are one `UPDATE … FROM (VALUES …)` too, instead of a round trip each. If any
//! request fails, that transaction is rolled back, nothing of it is answered, and the batch
//! runs again with each request inside its own savepoint: a request that fails on its own
//! (an unknown touchpoint, a missing event) is rolled back to its savepoint and answered with
//! its error; the rest of the batch still commits. If the transaction itself fails (begin, a
//! savepoint, the commit), every request of the batch gets the error and nothing of the
//! batch is stored. No caller is answered before the commit that holds its request, and changes are
//! published to the feed only after that commit.
//!
//! On a SQLite file the fast path runs on the writer's own `rusqlite` connection instead
//! ([`direct`]): one hand-off per batch rather than one per statement, prepared statements
//! cached, and only what the batch needs read back. It keeps every promise above; anything
//! out of the ordinary sends the batch to the careful path here.
//!
//! Shutdown is a message like the others: everything queued before it is committed, anything
//! after it is refused with [`StoreError::WriterClosed`].

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use serde::Serialize;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::Instrument;
use uuid::Uuid;

use self::work::{Claim, IntakeWork, OutcomeWork, Received, Work};
pub(crate) use self::{deferred::Deferred, direct::Direct, work::Context};
use crate::{
    Backend, StoreError, begin_immediate,
    change::Feed,
    events::{
        Appended, Event, IntakeLog, NewEvent, Outcome, OutcomeLog, append,
        outcome::{self, Recorded},
    },
    logs::{LogEntry, NewLog},
};

mod checkpoint;
mod deferred;
mod direct;
mod work;

/// Most requests in one transaction.
const MAX_BATCH: usize = 256;
/// Requests that may wait for the writer before senders wait too (backpressure).
const QUEUE: usize = 4096;

/// How the writer has batched so far (for tests and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriterStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions that failed as a whole.
    pub failed_transactions: u64,
    /// Batches the fast path handed to the careful path (a request that failed on its own,
    /// a key to retire, a lost lease, or a transaction that failed).
    pub careful_batches: u64,
    /// Requests answered from committed transactions.
    pub requests: u64,
    /// Events appended (including duplicates absorbed).
    pub events: u64,
    /// Log entries appended.
    pub logs: u64,
    /// Outcomes recorded.
    pub outcomes: u64,
    /// Claims run in the writer's batches (SQLite).
    pub claims: u64,
    /// Events those claims leased.
    pub claimed: u64,
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    failed_transactions: AtomicU64,
    careful_batches: AtomicU64,
    requests: AtomicU64,
    events: AtomicU64,
    logs: AtomicU64,
    outcomes: AtomicU64,
    claims: AtomicU64,
    claimed: AtomicU64,
}

/// The handle the store keeps.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    task: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// The writer on `db`, with its fast path on `direct` when there is one (SQLite files).
    pub(crate) fn spawn(
        db: DatabaseConnection,
        direct: Option<Direct>,
        backend: Backend,
        feed: Feed,
        context: Context,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let span = tracing::info_span!("store_writer", ?backend);
        let task = match direct {
            // The loop, its SQLite connection and the answers on one thread: a batch does
            // not cross threads to be committed and back to be answered.
            Some(direct) => {
                let counters = counters.clone();
                let runtime = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| {
                        run_direct(direct, db, queue, &feed, &context, &counters, &runtime);
                    });
                })
            }
            None => tokio::spawn(run(db, queue, feed, context, counters.clone()).instrument(span)),
        };
        Self {
            jobs,
            task: Mutex::new(Some(task)),
            counters,
        }
    }

    pub(crate) async fn append_events(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            Job::Events(Request {
                work: events,
                reply,
            }),
            answer,
        )
        .await
    }

    pub(crate) async fn receive_events(
        &self,
        events: Vec<NewEvent>,
        log: IntakeLog,
    ) -> Result<Vec<Appended>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let work = IntakeWork { events, log };
        let received: Received = self
            .submit(Job::Intake(Request { work, reply }), answer)
            .await?;
        Ok(received.appended)
    }

    pub(crate) async fn append_logs(&self, logs: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Logs(Request { work: logs, reply }), answer)
            .await
    }

    pub(crate) async fn record_outcome(
        &self,
        id: Uuid,
        lease_id: Uuid,
        outcome: Outcome,
        log: Option<OutcomeLog>,
        held: Option<Arc<Event>>,
    ) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        let work = OutcomeWork {
            id,
            lease_id,
            outcome,
            log,
            held,
        };
        self.submit(Job::Outcome(Request { work, reply }), answer)
            .await
    }

    /// Runs a claim in the next batch (SQLite); the leased events, after its commit.
    pub(crate) async fn claim(&self, claim: Claim) -> Result<Vec<Event>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Claim(Box::new(Request { work: claim, reply })), answer)
            .await
    }

    async fn submit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }

    /// Commits everything queued so far, then stops the task.
    pub(crate) async fn shutdown(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(task) = task else {
            return;
        };
        // Fails only if the task already stopped, which is what we want anyway.
        let _ = self.jobs.send(Job::Shutdown).await;
        if let Err(error) = task.await {
            tracing::error!(error = %error, "the store writer task failed");
        }
    }

    pub(crate) fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            failed_transactions: c.failed_transactions.load(Ordering::Relaxed),
            careful_batches: c.careful_batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            logs: c.logs.load(Ordering::Relaxed),
            outcomes: c.outcomes.load(Ordering::Relaxed),
            claims: c.claims.load(Ordering::Relaxed),
            claimed: c.claimed.load(Ordering::Relaxed),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

struct Request<W: Work> {
    work: W,
    reply: Reply<W::Output>,
}

/// A request that ran in the open transaction, waiting for the commit.
struct Staged<W: Work> {
    reply: Reply<W::Output>,
    result: Result<W::Output, StoreError>,
}

enum Job {
    Events(Request<Vec<NewEvent>>),
    Intake(Request<IntakeWork>),
    Logs(Request<Vec<NewLog>>),
    Outcome(Request<OutcomeWork>),
    // Boxed: a claim's statement is much bigger than the other requests.
    Claim(Box<Request<Claim>>),
    Shutdown,
}

enum StagedJob {
    Events(Staged<Vec<NewEvent>>),
    Intake(Staged<IntakeWork>),
    Logs(Staged<Vec<NewLog>>),
    // Boxed: an `Event` (in `Recorded`) is much bigger than the other variants.
    Outcome(Box<Staged<OutcomeWork>>),
    Claim(Staged<Claim>),
}

impl<W: Work> Request<W> {
    /// Runs the request in a savepoint of `txn`. `Err` means the transaction itself failed;
    /// the request is answered with that error.
    async fn stage(self, txn: &DatabaseTransaction, context: &Context) -> Result<Staged<W>, DbErr> {
        let Self { work, reply } = self;
        let failed = |reply: Reply<W::Output>, error: DbErr| {
            let _ = reply.send(Err(W::batch_failed(error.clone())));
            error
        };
        let savepoint = match txn.begin().await {
            Ok(savepoint) => savepoint,
            Err(error) => return Err(failed(reply, error)),
        };
        let mut deferred = Deferred::default();
        let mut result = work.apply(&savepoint, context, &mut deferred).await;
        if result.is_ok()
            && let Err(error) = deferred.flush(&savepoint).await
        {
            result = Err(error);
        }
        let closed = if result.is_ok() {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        match closed {
            Ok(()) => Ok(Staged { reply, result }),
            Err(error) => Err(failed(reply, error)),
        }
    }

    fn refuse(self, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }

    /// Answers that the transaction holding the request failed.
    fn abort(self, error: &DbErr) {
        self.refuse(W::batch_failed(error.clone()));
    }
}

impl<W: Work> Staged<W> {
    /// Answers after a commit; publishes the committed changes first.
    fn committed(self, feed: &Feed, counters: &Counters) {
        if let Ok(output) = &self.result {
            feed.publish(W::changes(output));
            W::count(counters, output);
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        // The caller may have gone away (its request was cancelled); the write stands.
        let _ = self.reply.send(self.result);
    }

    /// Answers after the transaction failed: nothing of the batch is stored.
    fn aborted(self, error: &DbErr) {
        let result = match self.result {
            Err(own) => Err(own),
            Ok(_) => Err(W::batch_failed(error.clone())),
        };
        let _ = self.reply.send(result);
    }
}

impl Job {
    fn abort(self, error: &DbErr) {
        match self {
            Self::Events(request) => request.abort(error),
            Self::Intake(request) => request.abort(error),
            Self::Logs(request) => request.abort(error),
            Self::Outcome(request) => request.abort(error),
            Self::Claim(request) => request.abort(error),
            Self::Shutdown => {}
        }
    }

    /// Answers from the fast path, after its commit.
    fn committed(self, output: Output, feed: &Feed, counters: &Counters) {
        fn staged<W: Work>(request: Request<W>, output: W::Output) -> Staged<W> {
            Staged {
                reply: request.reply,
                result: Ok(output),
            }
        }
        match (self, output) {
            (Self::Events(r), Output::Events(o)) => staged(r, o).committed(feed, counters),
            (Self::Intake(r), Output::Intake(o)) => staged(r, o).committed(feed, counters),
            (Self::Logs(r), Output::Logs(o)) => staged(r, o).committed(feed, counters),
            (Self::Outcome(r), Output::Outcome(o)) => staged(r, *o).committed(feed, counters),
            (Self::Claim(r), Output::Claimed(o)) => staged(*r, o).committed(feed, counters),
            (Self::Shutdown, _) => {}
            _ => unreachable!("each job's output has its own kind"),
        }
    }

    fn refuse(self) {
        match self {
            Self::Events(request) => request.refuse(StoreError::WriterClosed),
            Self::Intake(request) => request.refuse(StoreError::WriterClosed),
            Self::Logs(request) => request.refuse(StoreError::WriterClosed),
            Self::Outcome(request) => request.refuse(StoreError::WriterClosed),
            Self::Claim(request) => request.refuse(StoreError::WriterClosed),
            Self::Shutdown => {}
        }
    }
}

impl StagedJob {
    fn committed(self, feed: &Feed, counters: &Counters) {
        match self {
            Self::Events(staged) => staged.committed(feed, counters),
            Self::Intake(staged) => staged.committed(feed, counters),
            Self::Logs(staged) => staged.committed(feed, counters),
            Self::Outcome(staged) => staged.committed(feed, counters),
            Self::Claim(staged) => staged.committed(feed, counters),
        }
    }

    fn aborted(self, error: &DbErr) {
        match self {
            Self::Events(staged) => staged.aborted(error),
            Self::Intake(staged) => staged.aborted(error),
            Self::Logs(staged) => staged.aborted(error),
            Self::Outcome(staged) => staged.aborted(error),
            Self::Claim(staged) => staged.aborted(error),
        }
    }
}

async fn run(
    db: DatabaseConnection,
    mut queue: mpsc::Receiver<Job>,
    feed: Feed,
    context: Context,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            // Every handle is gone.
            return;
        }
        let (batch, after_shutdown) = split_at_shutdown(&mut batch);
        if !batch.is_empty() {
            let started = Instant::now();
            let requests = batch.len();
            let fast = commit_directly(&db, batch, &feed, &context, &counters).await;
            commit_carefully(&db, fast, &feed, &context, &counters, started, requests).await;
        }
        if let Some(refused) = after_shutdown {
            stop(&mut queue, refused);
            return;
        }
    }
}

/// The writer on a SQLite file, on a blocking thread: batches commit on `direct`, and a batch
/// that must go request by request runs on `db` (sqlx) with `runtime`.
fn run_direct(
    mut direct: Direct,
    db: DatabaseConnection,
    mut queue: mpsc::Receiver<Job>,
    feed: &Feed,
    context: &Context,
    counters: &Counters,
    runtime: &tokio::runtime::Handle,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.blocking_recv_many(&mut batch, MAX_BATCH) == 0 {
            return;
        }
        let (batch, after_shutdown) = split_at_shutdown(&mut batch);
        if !batch.is_empty() {
            let started = Instant::now();
            let requests = batch.len();
            match commit_direct(&mut direct, batch, feed, context, counters) {
                Ok(()) => committed(requests, started),
                fell_back => runtime.block_on(commit_carefully(
                    &db, fell_back, feed, context, counters, started, requests,
                )),
            }
        }
        if let Some(refused) = after_shutdown {
            stop(&mut queue, refused);
            return;
        }
    }
}

/// What `received` holds before the shutdown request, to commit, and from the request on,
/// to refuse (`None` without one); `received` is left empty for the next receive.
fn split_at_shutdown(received: &mut Vec<Job>) -> (Vec<Job>, Option<Vec<Job>>) {
    let after_shutdown = received
        .iter()
        .position(|job| matches!(job, Job::Shutdown))
        .map(|at| received.split_off(at));
    (std::mem::take(received), after_shutdown)
}

/// Refuses what came after the shutdown request, and everything still queued.
fn stop(queue: &mut mpsc::Receiver<Job>, refused: Vec<Job>) {
    queue.close();
    refused.into_iter().for_each(Job::refuse);
    while let Ok(job) = queue.try_recv() {
        job.refuse();
    }
    tracing::debug!("store writer stopped");
}

/// After the fast path: nothing to do if it committed, else the batch request by request.
async fn commit_carefully(
    db: &DatabaseConnection,
    fast: Result<(), Vec<Job>>,
    feed: &Feed,
    context: &Context,
    counters: &Counters,
    started: Instant,
    requests: usize,
) {
    let Err(batch) = fast else {
        committed(requests, started);
        return;
    };
    counters.careful_batches.fetch_add(1, Ordering::Relaxed);
    commit_with_savepoints(db, batch, feed, context, counters).await;
    tracing::debug!(
        requests,
        elapsed_us = started.elapsed().as_micros() as u64,
        "committed a write batch, request by request"
    );
}

fn committed(requests: usize, started: Instant) {
    tracing::debug!(
        requests,
        elapsed_us = started.elapsed().as_micros() as u64,
        "committed a write batch"
    );
}

/// What a request produced, kept until its commit.
enum Output {
    Events(Vec<Appended>),
    Intake(Received),
    Logs(Vec<LogEntry>),
    Outcome(Box<Recorded>),
    Claimed(Vec<Event>),
    Nothing,
}

/// Counts a fast-path transaction that committed and answers its requests, in order.
fn answer_committed(batch: Vec<Job>, outputs: Vec<Output>, feed: &Feed, counters: &Counters) {
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    for (job, output) in batch.into_iter().zip(outputs) {
        job.committed(output, feed, counters);
    }
}

/// The fast path on the writer's own SQLite connection; `Err(batch)` when the batch must run
/// request by request (nothing of it was stored and nobody was answered).
fn commit_direct(
    direct: &mut Direct,
    batch: Vec<Job>,
    feed: &Feed,
    context: &Context,
    counters: &Counters,
) -> Result<(), Vec<Job>> {
    // A panic inside the transaction (a bug) costs its batch, not the writer: the transaction
    // rolls back as it unwinds, the batch's callers hear that the writer closed, and the next
    // batch runs, as when each batch ran on a blocking task of its own.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        direct.commit(batch, context)
    }));
    match ran {
        Ok(Ok((batch, outputs))) => {
            answer_committed(batch, outputs, feed, counters);
            Ok(())
        }
        Ok(Err((batch, fallback))) => {
            tracing::debug!(reason = %fallback, error = ?std::error::Error::source(&fallback), "a write batch goes request by request");
            Err(batch)
        }
        Err(_) => {
            tracing::error!("a write batch panicked; its requests failed");
            counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
            Err(Vec::new())
        }
    }
}

/// The fast path: every request straight in one transaction. `Err(batch)` when a request
/// failed: the transaction was rolled back and nobody was answered.
async fn commit_directly(
    db: &DatabaseConnection,
    batch: Vec<Job>,
    feed: &Feed,
    context: &Context,
    counters: &Counters,
) -> Result<(), Vec<Job>> {
    let txn = match begin_immediate(db).await {
        Ok(txn) => txn,
        Err(error) => {
            tracing::warn!(error = %error, requests = batch.len(), "could not begin a write batch");
            counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
            batch.into_iter().for_each(|job| job.abort(&error));
            return Ok(());
        }
    };
    let mut outputs = Vec::with_capacity(batch.len());
    let mut deferred = Deferred::default();
    let mut appended = match appended_together(&txn, &batch, context).await {
        Ok(appended) => appended,
        Err(()) => return rolled_back(txn, batch).await,
    };
    let mut recorded = match recorded_together(&txn, &batch, context, &mut deferred).await {
        Ok(recorded) => recorded,
        Err(()) => return rolled_back(txn, batch).await,
    };
    for job in &batch {
        let output = match job {
            Job::Events(r) => match appended.as_mut() {
                Some(appended) => Ok(Output::Events(appended.split_off_front(r.work.len()))),
                None => r
                    .work
                    .clone()
                    .apply(&txn, context, &mut deferred)
                    .await
                    .map(Output::Events),
            },
            Job::Intake(r) => match appended.as_mut() {
                Some(appended) => {
                    let mine = appended.split_off_front(r.work.events.len());
                    Ok(Output::Intake(r.work.received(
                        mine,
                        context,
                        &mut deferred,
                    )))
                }
                None => r
                    .work
                    .clone()
                    .apply(&txn, context, &mut deferred)
                    .await
                    .map(Output::Intake),
            },
            Job::Logs(r) => r
                .work
                .clone()
                .apply(&txn, context, &mut deferred)
                .await
                .map(Output::Logs),
            Job::Outcome(r) => match recorded.as_mut() {
                Some(recorded) => Ok(Output::Outcome(Box::new(
                    recorded
                        .pop_front()
                        .expect("one recorded outcome per outcome of the batch"),
                ))),
                None => r
                    .work
                    .clone()
                    .apply(&txn, context, &mut deferred)
                    .await
                    .map(|recorded| Output::Outcome(Box::new(recorded))),
            },
            Job::Claim(r) => r
                .work
                .clone()
                .apply(&txn, context, &mut deferred)
                .await
                .map(Output::Claimed),
            Job::Shutdown => Ok(Output::Nothing),
        };
        match output {
            Ok(output) => outputs.push(output),
            Err(_) => return rolled_back(txn, batch).await,
        }
    }
    if deferred.flush(&txn).await.is_err() {
        return rolled_back(txn, batch).await;
    }
    match txn.commit().await {
        Ok(()) => answer_committed(batch, outputs, feed, counters),
        Err(error) => {
            tracing::warn!(error = %error, requests = batch.len(), "could not commit a write batch");
            counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
            batch.into_iter().for_each(|job| job.abort(&error));
        }
    }
    Ok(())
}

/// The events of every request of `batch` appended in a few multi-row statements, in batch
/// order; `Ok(None)` when they cannot be (one key twice: each request runs on its own), and
/// `Err` when the statement failed (the caller rolls back and runs the batch carefully).
async fn appended_together(
    txn: &DatabaseTransaction,
    batch: &[Job],
    context: &Context,
) -> Result<Option<AppendedQueue>, ()> {
    let events: Vec<&NewEvent> = batch
        .iter()
        .flat_map(|job| match job {
            Job::Events(r) => r.work.as_slice(),
            Job::Intake(r) => r.work.events.as_slice(),
            _ => &[],
        })
        .collect();
    if events.len() < 2 || !append::batchable(events.iter().copied()) {
        return Ok(None);
    }
    let events = events.into_iter().cloned().collect();
    match append::insert_batch(txn, events, context).await {
        Ok(appended) => Ok(Some(AppendedQueue(appended.into()))),
        Err(error) => {
            tracing::debug!(error = %error, "a batch's events go one by one");
            Err(())
        }
    }
}

/// The outcomes of every request of `batch` recorded in one statement on PostgreSQL, in batch
/// order; `Ok(None)` when there are fewer than two or another backend (each request runs on
/// its own), and `Err` when they cannot all be recorded together (a lost lease, a missing
/// event, a failed statement: the caller rolls back and runs the batch carefully, which
/// answers each with its own error).
async fn recorded_together(
    txn: &DatabaseTransaction,
    batch: &[Job],
    context: &Context,
    deferred: &mut Deferred,
) -> Result<Option<std::collections::VecDeque<Recorded>>, ()> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(None);
    }
    let works: Vec<OutcomeWork> = batch
        .iter()
        .filter_map(|job| match job {
            Job::Outcome(r) => Some(r.work.clone()),
            _ => None,
        })
        .collect();
    if works.len() < 2 {
        return Ok(None);
    }
    match outcome::apply_many(txn, works, context.clock.now(), deferred).await {
        Ok(Some(recorded)) => Ok(Some(recorded.into())),
        Ok(None) => Err(()),
        Err(error) => {
            tracing::debug!(error = %error, "a batch's outcomes go one by one");
            Err(())
        }
    }
}

/// Appended events waiting to be handed to the requests they came from, in order.
struct AppendedQueue(std::collections::VecDeque<Appended>);

impl AppendedQueue {
    fn split_off_front(&mut self, count: usize) -> Vec<Appended> {
        self.0.drain(..count.min(self.0.len())).collect()
    }
}

/// Rolls back a fast-path transaction that a request failed, to run the batch carefully.
async fn rolled_back(txn: DatabaseTransaction, batch: Vec<Job>) -> Result<(), Vec<Job>> {
    if let Err(error) = txn.rollback().await {
        tracing::warn!(error = %error, "could not roll back a write batch");
    }
    Err(batch)
}

/// The careful path: each request in its own savepoint, so one failing request is answered
/// with its error and the others still commit.
async fn commit_with_savepoints(
    db: &DatabaseConnection,
    batch: Vec<Job>,
    feed: &Feed,
    context: &Context,
    counters: &Counters,
) {
    let requests = batch.len();
    let txn = match begin_immediate(db).await {
        Ok(txn) => txn,
        Err(error) => {
            tracing::warn!(error = %error, requests, "could not begin a write batch");
            counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
            batch.into_iter().for_each(|job| job.abort(&error));
            return;
        }
    };
    let mut staged = Vec::with_capacity(requests);
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let failure = match job {
            Job::Events(request) => request.stage(&txn, context).await.map(StagedJob::Events),
            Job::Intake(request) => request.stage(&txn, context).await.map(StagedJob::Intake),
            Job::Logs(request) => request.stage(&txn, context).await.map(StagedJob::Logs),
            Job::Outcome(request) => request
                .stage(&txn, context)
                .await
                .map(|staged| StagedJob::Outcome(Box::new(staged))),
            Job::Claim(request) => request.stage(&txn, context).await.map(StagedJob::Claim),
            Job::Shutdown => continue,
        };
        match failure {
            Ok(job) => staged.push(job),
            Err(error) => {
                tracing::warn!(error = %error, requests, "a write batch failed");
                counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
                staged.into_iter().for_each(|job| job.aborted(&error));
                jobs.for_each(|job| job.abort(&error));
                if let Err(error) = txn.rollback().await {
                    tracing::warn!(error = %error, "could not roll back a failed write batch");
                }
                return;
            }
        }
    }
    match txn.commit().await {
        Ok(()) => {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            staged
                .into_iter()
                .for_each(|job| job.committed(feed, counters));
        }
        Err(error) => {
            tracing::warn!(error = %error, requests, "could not commit a write batch");
            counters.failed_transactions.fetch_add(1, Ordering::Relaxed);
            staged.into_iter().for_each(|job| job.aborted(&error));
        }
    }
}
