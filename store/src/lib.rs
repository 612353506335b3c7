//! Durable storage for Hookplane on SQLite (embedded) or PostgreSQL (cluster).
//!
//! [`Store`] holds the portal model (organization, connections that can be paused,
//! touchpoints with a draft and a published spec, write-only secrets, JSON schemas of source
//! entities), each touchpoint's resync bucket (the events, which double as the sync worker's
//! queue, with the attempt history of each) and its log bucket.
//!
//! Guarantees to the next step:
//! - Only a verified, parsed event gets in: a [`NewEvent`] is made only from a
//!   `hookplane_sources::ParsedEvent`, which only that crate's verify-then-parse chain makes.
//! - [`Store::append_events`] returns only after the events are committed (SQLite:
//!   `synchronous=FULL` in WAL mode, so committed means on disk). Appends, log appends,
//!   outcome records and (on SQLite) claims go through one group-commit writer (module
//!   `writer`; on a SQLite file it runs on its own `rusqlite` connection): concurrent callers
//!   share a transaction and its fsync, and each caller's request is applied all or nothing.
//! - [`Store::claim_due_events`] never hands the same event to two claimers while a lease holds,
//!   and [`Store::record_outcome`] applies only under the lease the claim handed out
//!   ([`StoreError::LeaseLost`] otherwise): a worker that lost its event cannot overwrite newer
//!   processing. An outcome and its attempt row commit together, and with
//!   [`Store::record_outcome_with_log`] its log entry too (as intake's
//!   [`Store::receive_events`] does for an event and its entry).
//! - Events sharing a touchpoint and an ordering key are leased one at a time, in arrival
//!   order (a FAILED head holds its key unless parked), under any number of concurrent
//!   claimers on either backend. Events of a paused connection are kept but not claimed.
//! - A dedupe key absorbs duplicates for [`StoreOptions::dedupe_window`] after its event
//!   arrived; later, the same key is a new event.
//! - [`Store::purge`] never deletes an UNPROCESSED event, and works in bounded batches beside
//!   intake and delivery.
//! - [`Store::subscribe`] delivers a [`Change`] only after the change is committed, so a
//!   subscriber that loads the row sees it.
//! - Ids are UUIDv7: ordering by id is ordering by creation time, on both backends.
//! - Every timestamp the store sets comes from [`StoreOptions::clock`] (tests use a
//!   [`ManualClock`]).

#![forbid(unsafe_code)]

mod audit;
mod change;
mod cluster;
mod connect;
mod connections;
mod entity;
mod error;
mod events;
mod logs;
mod migration;
mod organization;
mod page;
mod relay;
mod retention;
mod schemas;
mod secret_key;
mod secrets;
pub mod testing;
mod time;
mod tokens;
mod touchpoints;
mod writer;

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::broadcast;

pub use crate::connect::sqlite_file;
pub use crate::{
    audit::{AuditEntry, NewAudit},
    change::{Change, ChangeKind, ChangedRow},
    cluster::{Clash, ExternalTouchpoint, KubeResource, Mirrored},
    connections::Connection,
    error::StoreError,
    events::{
        Appended, Attempt, AttemptRecord, AttemptTrigger, Event, EventQuery, EventStatus,
        IntakeLog, NewEvent, Outcome, OutcomeLog, ParseStatusError, StatusCounts,
        attempts::{ERROR_MAX_BYTES, SNIPPET_MAX_BYTES},
        queue::ClaimFilter,
    },
    logs::{LogEntry, LogLevel, LogQuery, NewLog, ParseLevelError},
    organization::Organization,
    page::Page,
    retention::{MAX_PURGE_BATCH, PurgeStats},
    schemas::Schema,
    secret_key::{SecretKey, SecretKeyError},
    time::{Clock, ManualClock},
    tokens::{ApiToken, NewToken},
    touchpoints::{Published, Touchpoint},
    writer::WriterStats,
};
use crate::{change::Feed, migration::Migrator, writer::Writer};

/// The PostgreSQL advisory lock key that serializes migrators ("hookplane" in ASCII, folded
/// into 63 bits).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_706c_616e & i64::MAX;

/// Tuning for [`Store::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections in the pool used for reads and for writes outside the group-commit
    /// writer. The writer has its own connection on SQLite and borrows from this pool on
    /// PostgreSQL.
    pub max_connections: u32,
    /// Where the store reads the current time for the timestamps it sets (received, updated,
    /// log times). [`Clock::System`] except in tests.
    pub clock: Clock,
    /// How long a dedupe key keeps absorbing duplicates: an event whose key matches an event
    /// of its touchpoint received longer ago than this is a new event (72 hours by default).
    pub dedupe_window: std::time::Duration,
    /// The key write-only secrets are encrypted with at rest; `None` stores new ones in clear
    /// (and reads encrypted ones as errors).
    pub secret_key: Option<SecretKey>,
}

/// The default [`StoreOptions::dedupe_window`]: 72 hours, longer than the retry schedules
/// of the webhook sources.
pub const DEFAULT_DEDUPE_WINDOW: std::time::Duration = std::time::Duration::from_secs(72 * 3600);

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            clock: Clock::System,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            secret_key: None,
        }
    }
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The store: cheap to clone, every clone shares the pools, the writer and the change feed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    /// The writer's own pool (SQLite files); the same pool as `db` otherwise.
    writer_db: DatabaseConnection,
    backend: Backend,
    writer: Writer,
    feed: Feed,
    clock: Clock,
    /// PostgreSQL: the tasks relaying changes to and from other processes.
    relay: Option<RelayTasks>,
    /// See [`StoreOptions::secret_key`].
    secret_key: Option<SecretKey>,
}

/// The relay's tasks (`relay`): the notifier drains on `stop`; the listener is aborted.
struct RelayTasks {
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    notifier: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Store {
    /// Opens a database: `sqlite://path/to/file.db` (created if missing), a bare file path,
    /// `sqlite::memory:` (one connection, gone when the store closes) or `postgres://...`.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL` (acknowledged means durable), a 5 s
    /// busy timeout and foreign keys on. Does not migrate: call [`Store::migrate`].
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let pools = connect::connect(url, &options).await?;
        let origin = uuid::Uuid::now_v7();
        let (relay_queue, relay_rx) = match pools.backend {
            Backend::Postgres => {
                let (tx, rx) = tokio::sync::mpsc::channel(relay::QUEUE);
                (Some(tx), Some(rx))
            }
            Backend::Sqlite => (None, None),
        };
        let feed = Feed::new(relay_queue);
        let relay = match relay_rx {
            Some(queue) => Some(start_relay(&pools.db, origin, queue, &feed).await),
            None => None,
        };
        let writer = Writer::spawn(
            pools.writer.clone(),
            pools.direct,
            pools.backend,
            feed.clone(),
            writer::Context {
                clock: options.clock.clone(),
                dedupe_window: options.dedupe_window,
            },
        );
        tracing::debug!(backend = ?pools.backend, "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                db: pools.db,
                writer_db: pools.writer,
                backend: pools.backend,
                writer,
                feed,
                clock: options.clock,
                relay,
                secret_key: options.secret_key,
            }),
        })
    }

    /// The backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Applies every pending migration (the same set on both backends), all in one
    /// transaction. Concurrent migrators (replicas starting together) take turns: SQLite's
    /// `BEGIN IMMEDIATE` and a PostgreSQL advisory lock serialize them, and the later ones find
    /// nothing pending.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let txn = self.begin_write().await.map_err(StoreError::Migrate)?;
        if self.backend() == Backend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await
                .map_err(StoreError::Migrate)?;
        }
        Migrator::up(&txn, None)
            .await
            .map_err(StoreError::Migrate)?;
        txn.commit().await.map_err(StoreError::Migrate)
    }

    /// Ready when the database answers and no migration is pending ([`StoreError::NotMigrated`]
    /// otherwise). Creates nothing.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        self.inner.db.ping().await.map_err(StoreError::CheckReady)?;
        let pending = Migrator::get_pending_migrations_read_only(&self.inner.db)
            .await
            .map_err(StoreError::CheckReady)?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::NotMigrated)
        }
    }

    /// The change feed: one [`Change`] per created or updated event and per created log entry,
    /// sent after its transaction committed. On PostgreSQL it also carries what other
    /// processes on the same database committed (relayed with `NOTIFY`, without the row). A
    /// receiver that falls more than 4096 changes behind gets `RecvError::Lagged` and should
    /// reload what it shows.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.feed.subscribe()
    }

    /// How the group-commit writer has batched so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Stops the writer after it has committed everything queued before this call, then
    /// closes the pools. Later writes fail with [`StoreError::WriterClosed`]; later reads fail.
    pub async fn close(&self) {
        self.inner.writer.shutdown().await;
        if let Some(relay) = &self.inner.relay {
            let stop = relay
                .stop
                .lock()
                .expect("the relay lock is never poisoned")
                .take();
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            if let Some(notifier) = relay.notifier.lock().await.take() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), notifier).await;
            }
            relay.listener.abort();
        }
        if let Err(error) = self.inner.writer_db.close_by_ref().await {
            tracing::warn!(error = %error, "closing the writer's database pool failed");
        }
        if let Err(error) = self.inner.db.close_by_ref().await {
            tracing::warn!(error = %error, "closing the database pool failed");
        }
    }

    /// The current time from the store's clock, as stored (token expiry is judged by it).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// A transaction for a write outside the group-commit writer. On SQLite it is
    /// `BEGIN IMMEDIATE`: it takes the write lock up front (waiting up to the busy timeout), so
    /// a transaction that reads before it writes never fails to upgrade its lock.
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        begin_immediate(self.db()).await
    }
}

/// Start relaying changes to and from other processes (PostgreSQL); returns once listening,
/// or after 5 s with a warning (the listener keeps retrying).
async fn start_relay(
    db: &DatabaseConnection,
    origin: uuid::Uuid,
    queue: tokio::sync::mpsc::Receiver<Vec<relay::WireChange>>,
    feed: &Feed,
) -> RelayTasks {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let notifier = tokio::spawn(relay::notify(db.clone(), origin, queue, stopped));
    let (listening, listened) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(relay::listen(db.clone(), origin, feed.local(), listening));
    if tokio::time::timeout(std::time::Duration::from_secs(5), listened)
        .await
        .is_err()
    {
        tracing::warn!("not yet listening for other processes' changes; continuing");
    }
    RelayTasks {
        stop: std::sync::Mutex::new(Some(stop)),
        notifier: tokio::sync::Mutex::new(Some(notifier)),
        listener,
    }
}

/// `BEGIN IMMEDIATE` on SQLite, a plain `BEGIN` elsewhere.
pub(crate) async fn begin_immediate(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}
