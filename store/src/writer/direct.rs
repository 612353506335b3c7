//! The writer's fast path on a SQLite file: the whole batch on the writer's own `rusqlite`
//! connection, on the writer's own thread (see `run_direct`).
//!
//! Through sqlx each statement is a hand-off to its SQLite worker thread and back, built by
//! sea-query and decoded row by row into models; here a batch does not cross threads (the
//! thread that takes it from the queue commits it and answers its requests), each
//! statement is prepared once and cached, and only what the batch needs is read back: a new
//! event is built from the values it was inserted with; a duplicate's holder and an
//! outcome's event are read back, because the change feed publishes them as they are now.
//!
//! Values are stored exactly as sqlx stores them (UUIDs as 16-byte blobs, times as RFC 3339
//! text with `+00:00` and as many fraction digits as needed, JSON as text, booleans as 0/1),
//! so the read side (sea-orm) cannot tell the paths apart: a test compares rows written both
//! ways, column by column.
//!
//! Anything out of the ordinary (a statement failing, say for an unknown touchpoint; a key
//! whose holder is older than the dedupe window; a lost lease or a missing event) rolls the
//! whole transaction back and hands the batch back: the caller runs it on the careful path
//! (sqlx, a savepoint per request), which answers each request with its own result. Nothing
//! here answers a request; the caller does, after the commit.

use std::{path::Path, sync::Arc, time::Duration};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
    types::{Type, Value as SqlValue, ValueRef},
};
use sea_orm::{DbBackend, QueryTrait};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Context, Deferred, Job, Output,
    checkpoint::Checkpointer,
    work::{Claim, Received},
};
use crate::{
    LogEntry,
    entity::event,
    events::{
        Appended, Event, NewEvent,
        append::{judged, model},
        attempts::NewAttempt,
        outcome::{self, Recorded, Update},
    },
    logs, time,
};

/// Statements kept prepared (there are six).
const STATEMENT_CACHE: usize = 16;

/// Why a batch left the fast path (it then runs request by request).
#[derive(Debug, thiserror::Error)]
pub(super) enum Fallback {
    #[error("a statement failed")]
    Statement(#[from] rusqlite::Error),
    #[error("a dedupe key's holder is older than the window and its key must be retired")]
    RetireKey,
    #[error("an outcome's event no longer holds its lease, or is gone")]
    LeaseLostOrMissing,
    #[error("an event's stored row could not be read")]
    Decode(#[from] crate::StoreError),
    #[error("a statement's value has no direct binding: {0}")]
    Value(&'static str),
}

/// A batch with its outputs, in order; or the batch with why it was rolled back.
pub(super) type Committed = Result<(Vec<Job>, Vec<Output>), (Vec<Job>, Fallback)>;

/// The writer's own connection to the SQLite file.
pub(crate) struct Direct {
    connection: Connection,
    /// Checkpoints the WAL off this connection's commits; `None` if it could not start (the
    /// connection then checkpoints as SQLite does, inside a commit now and then).
    checkpointer: Option<Checkpointer>,
}

impl Direct {
    /// Opens `path` (which the writer's sqlx pool has created and switched to WAL) with the
    /// settings every connection of the store has: `synchronous=FULL`, foreign keys on, the
    /// same busy timeout.
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<Self, rusqlite::Error> {
        let connection = connect(path, busy_timeout)?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpointer = match Checkpointer::start(path, busy_timeout) {
            Ok(checkpointer) => {
                connection.pragma_update(None, "wal_autocheckpoint", 0)?;
                Some(checkpointer)
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), error = %error, "the WAL checkpoint thread did not start; the writer checkpoints in its commits");
                None
            }
        };
        Ok(Self {
            connection,
            checkpointer,
        })
    }

    /// Runs `batch` in one transaction and commits it, on the calling thread (the writer's).
    /// The batch comes back with the outputs of its requests in order, or with why the
    /// transaction was rolled back (nothing of the batch is stored then).
    pub(super) fn commit(&mut self, mut batch: Vec<Job>, context: &Context) -> Committed {
        match run(&mut self.connection, &mut batch, context) {
            Ok(outputs) => {
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.committed();
                }
                Ok((batch, outputs))
            }
            Err(fallback) => Err((batch, fallback)),
        }
    }
}

/// A read-write connection to the WAL file at `path` that waits `busy_timeout` for locks and
/// syncs as every connection of the store does (`synchronous=FULL`).
pub(super) fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(busy_timeout)?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(connection)
}

/// The whole batch in one transaction; dropped uncommitted (rolled back) on any error, and
/// then the requests get back what their new events took from them.
fn run(
    connection: &mut Connection,
    batch: &mut [Job],
    context: &Context,
) -> Result<Vec<Output>, Fallback> {
    let mut outputs = Vec::with_capacity(batch.len());
    match run_into(connection, batch, context, &mut outputs) {
        Ok(()) => Ok(outputs),
        Err(fallback) => {
            for (job, output) in batch.iter_mut().zip(outputs) {
                match (job, output) {
                    (Job::Events(r), Output::Events(appended)) => give_back(&mut r.work, appended),
                    (Job::Intake(r), Output::Intake(received)) => {
                        give_back(&mut r.work.events, received.appended);
                    }
                    _ => {}
                }
            }
            Err(fallback)
        }
    }
}

fn run_into(
    connection: &mut Connection,
    batch: &mut [Job],
    context: &Context,
    outputs: &mut Vec<Output>,
) -> Result<(), Fallback> {
    let txn = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = context.clock.now();
    let mut deferred = Deferred::default();
    for job in batch {
        outputs.push(match job {
            Job::Events(r) => Output::Events(append(&txn, &mut r.work, context, now)?),
            Job::Intake(r) => {
                let appended = append(&txn, &mut r.work.events, context, now)?;
                let received: Received = r.work.received(appended, context, &mut deferred);
                Output::Intake(received)
            }
            Job::Logs(r) => {
                #[cfg(test)]
                tests::panic_if_planted(&r.work);
                let entries = logs::entries(r.work.clone(), now);
                deferred.log(&entries);
                Output::Logs(entries)
            }
            Job::Outcome(r) => {
                let recorded = record(&txn, &mut r.work, now, &mut deferred)?;
                Output::Outcome(Box::new(recorded))
            }
            Job::Claim(r) => Output::Claimed(claim(&txn, &r.work)?),
            Job::Shutdown => Output::Nothing,
        });
    }
    let (attempts, entries) = deferred.take();
    insert_attempts(&txn, &attempts)?;
    insert_logs(&txn, &entries)?;
    txn.commit()?;
    Ok(())
}

const INSERT_EVENT: &str = "INSERT INTO events (id, touchpoint_id, received_at, headers, \
     raw_body, payload, dedupe_key, duplicates, status, attempts, next_attempt_at, last_error, \
     updated_at, ordering_key, parked) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, 0, ?3, ?9, ?3, ?10, ?11) \
     ON CONFLICT (touchpoint_id, dedupe_key) DO UPDATE \
     SET duplicates = events.duplicates + 1, updated_at = ?3 \
     WHERE events.received_at >= ?12 RETURNING id";

/// Every column of `events`, in the order [`event_model`] reads them.
const EVENT_COLUMNS: &str = "id, touchpoint_id, received_at, headers, raw_body, payload, \
     dedupe_key, duplicates, status, attempts, next_attempt_at, lease_until, mapped_output, \
     last_error, response_status, published_generation, updated_at, lease_id, ordering_key, \
     parked, retired_dedupe_key, last_attempt_at, resynced_at";

/// Appends `events` in order: each new one is built from what was inserted; a duplicate
/// comes back as its holder, read after the bump.
///
/// A new event takes its request's headers, raw body and payload rather than a copy of
/// them; on any error they are given back (see [`give_back`]), so that the careful path
/// finds the requests as they came.
fn append(
    txn: &Transaction<'_>,
    events: &mut [NewEvent],
    context: &Context,
    now: DateTime<Utc>,
) -> Result<Vec<Appended>, Fallback> {
    let mut appended = Vec::with_capacity(events.len());
    match append_into(txn, events, context, now, &mut appended) {
        Ok(()) => Ok(appended),
        Err(fallback) => {
            give_back(events, appended);
            Err(fallback)
        }
    }
}

fn append_into(
    txn: &Transaction<'_>,
    events: &mut [NewEvent],
    context: &Context,
    now: DateTime<Utc>,
    appended: &mut Vec<Appended>,
) -> Result<(), Fallback> {
    let cutoff = time::before(now, context.dedupe_window);
    let mut insert = txn.prepare_cached(INSERT_EVENT)?;
    for new in events {
        let id = Uuid::now_v7();
        let (status, last_error, parked) = new.intake_status();
        let stored: Option<Vec<u8>> = insert
            .query_row(
                rusqlite::params![
                    id.as_bytes(),
                    new.touchpoint_id.as_bytes(),
                    text(now),
                    json(&new.headers),
                    new.raw_body,
                    json(&new.payload),
                    new.dedupe_key,
                    status.as_str(),
                    last_error,
                    new.ordering_key,
                    parked,
                    text(cutoff),
                ],
                |returned| returned.get(0),
            )
            .optional()?;
        let stored = stored.ok_or(Fallback::RetireKey)?;
        let event = if stored.as_slice() == id.as_bytes() {
            Event::try_from(model(id, taken(new), now))?
        } else {
            let holder = read_event(txn, &stored)?.ok_or(Fallback::RetireKey)?;
            Event::try_from(holder)?
        };
        appended.push(judged(id, event));
    }
    Ok(())
}

/// `new` with its large values moved out: headers, raw body and payload are left empty.
fn taken(new: &mut NewEvent) -> NewEvent {
    NewEvent {
        touchpoint_id: new.touchpoint_id,
        headers: std::mem::take(&mut new.headers),
        raw_body: std::mem::take(&mut new.raw_body),
        payload: std::mem::take(&mut new.payload),
        dedupe_key: new.dedupe_key.clone(),
        ordering_key: new.ordering_key.clone(),
        intake_failure: new.intake_failure.clone(),
    }
}

/// Puts back what [`taken`] moved out of `events` into the new events of `appended` (in the
/// same order; duplicates took nothing).
fn give_back(events: &mut [NewEvent], appended: Vec<Appended>) {
    for (new, appended) in events.iter_mut().zip(appended) {
        let Appended::Created(event) = appended else {
            continue;
        };
        let event = Arc::unwrap_or_clone(event);
        new.headers = event.headers;
        new.raw_body = event.raw_body;
        new.payload = event.payload;
    }
}

fn read_event(txn: &Transaction<'_>, id: &[u8]) -> Result<Option<event::Model>, Fallback> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1");
    let mut select = txn.prepare_cached(&sql)?;
    Ok(select.query_row([id], event_model).optional()?)
}

const RECORD_OUTCOME: &str = "UPDATE events SET lease_until = NULL, lease_id = NULL, \
     updated_at = ?1, attempts = attempts + ?2, \
     next_attempt_at = COALESCE(?3, next_attempt_at), parked = COALESCE(?4, parked), \
     last_attempt_at = COALESCE(?5, last_attempt_at), status = ?6, mapped_output = ?7, \
     last_error = ?8, response_status = ?9, published_generation = ?10 \
     WHERE id = ?11 AND lease_id = ?12";

/// The columns an outcome returns when its caller holds the event, in [`EVENT_COLUMNS`]
/// order: the headers, raw body and payload (which no statement changes after the insert)
/// and the mapped output (which the outcome sets) are `NULL` here and come from the caller.
const HELD_EVENT_COLUMNS: &str = "id, touchpoint_id, received_at, NULL, NULL, NULL, \
     dedupe_key, duplicates, status, attempts, next_attempt_at, lease_until, NULL, \
     last_error, response_status, published_generation, updated_at, lease_id, ordering_key, \
     parked, retired_dedupe_key, last_attempt_at, resynced_at";

/// Applies an outcome (see `events::outcome`): the event, if it still holds the lease. The
/// event the caller holds, if any, is taken: its large columns are not read back.
fn record(
    txn: &Transaction<'_>,
    work: &mut outcome::Work,
    now: DateTime<Utc>,
    deferred: &mut Deferred,
) -> Result<Recorded, Fallback> {
    let mut update = Update::of(work.outcome.clone());
    let held = work.held.take().map(|event| {
        let event = Arc::unwrap_or_clone(event);
        Held {
            headers: event.headers,
            raw_body: event.raw_body,
            payload: event.payload,
            mapped_output: update.mapped.clone(),
        }
    });
    let columns = if held.is_some() {
        HELD_EVENT_COLUMNS
    } else {
        EVENT_COLUMNS
    };
    let sql = format!("{RECORD_OUTCOME} RETURNING {columns}");
    let mut statement = txn.prepare_cached(&sql)?;
    let row = statement
        .query_row(
            rusqlite::params![
                text(now),
                i32::from(update.counts_attempt),
                update.next_attempt_at.map(text),
                update.park,
                update
                    .attempt
                    .as_ref()
                    .map(|attempt| text(time::stored(attempt.started_at))),
                update.status.as_str(),
                update.mapped.as_ref().map(json),
                update.error,
                update.response_status,
                update.generation,
                work.id.as_bytes(),
                work.lease_id.as_bytes(),
            ],
            |row| read_model(row, held),
        )
        .optional()?
        .ok_or(Fallback::LeaseLostOrMissing)?;
    let attempt = update.attempt_row(&row);
    let event = Event::try_from(row)?;
    Ok(outcome::recorded(
        event,
        attempt,
        work.log.clone(),
        now,
        deferred,
    ))
}

/// Runs a claim's lease update (built by `events::queue`, rendered for SQLite).
fn claim(txn: &Transaction<'_>, claim: &Claim) -> Result<Vec<Event>, Fallback> {
    let statement = claim.update.build(DbBackend::Sqlite);
    let values = statement
        .values
        .map(|values| values.0)
        .unwrap_or_default()
        .into_iter()
        .map(sql_value)
        .collect::<Result<Vec<_>, _>>()?;
    let sql = format!("{} RETURNING {EVENT_COLUMNS}", statement.sql);
    let mut update = txn.prepare_cached(&sql)?;
    let rows = update
        .query_map(rusqlite::params_from_iter(values), event_model)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(Event::try_from)
        .collect::<Result<Vec<_>, _>>()?)
}

/// A statement's value as sqlx binds it on SQLite; the kinds a claim uses.
fn sql_value(value: sea_orm::Value) -> Result<SqlValue, Fallback> {
    use sea_orm::Value as V;
    Ok(match value {
        V::Bool(value) => value.into(),
        V::TinyInt(value) => value.into(),
        V::SmallInt(value) => value.into(),
        V::Int(value) => value.into(),
        V::BigInt(value) => value.into(),
        V::TinyUnsigned(value) => value.into(),
        V::SmallUnsigned(value) => value.into(),
        V::Unsigned(value) => value.into(),
        V::BigUnsigned(value) => value
            .map(i64::try_from)
            .transpose()
            .map_err(|_| Fallback::Value("an unsigned integer beyond i64"))?
            .into(),
        V::String(value) => value.map(|value| value.to_string()).into(),
        V::Uuid(value) => value.map(|value| value.as_bytes().to_vec()).into(),
        V::ChronoDateTimeUtc(value) => value.map(text).into(),
        V::Json(value) => value.map(|value| json(&value)).into(),
        _ => return Err(Fallback::Value("a kind of value claims do not use")),
    })
}

const INSERT_ATTEMPT: &str = "INSERT INTO attempts (id, event_id, touchpoint_id, number, \
     started_at, duration_ms, response_status, error, response_snippet, generation, trigger) \
     VALUES (?1, ?2, ?3, \
     (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE event_id = ?2), \
     ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// See `attempts::insert_all`: each numbered after its event's last.
fn insert_attempts(txn: &Transaction<'_>, attempts: &[NewAttempt]) -> Result<(), Fallback> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut insert = txn.prepare_cached(INSERT_ATTEMPT)?;
    for attempt in attempts {
        let row = attempt.row();
        insert.execute(rusqlite::params![
            Uuid::now_v7().as_bytes(),
            row.event_id.as_bytes(),
            row.touchpoint_id.as_bytes(),
            text(row.started_at),
            row.duration_ms,
            row.response_status,
            row.error,
            row.response_snippet,
            row.generation,
            row.trigger,
        ])?;
    }
    Ok(())
}

const INSERT_LOG: &str = "INSERT INTO logs (id, touchpoint_id, event_id, time, level, message, \
     fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn insert_logs(txn: &Transaction<'_>, entries: &[LogEntry]) -> Result<(), Fallback> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut insert = txn.prepare_cached(INSERT_LOG)?;
    for entry in entries {
        insert.execute(rusqlite::params![
            entry.id.as_bytes(),
            entry.touchpoint_id.as_bytes(),
            entry.event_id.as_ref().map(|id| id.as_bytes()),
            text(entry.time),
            entry.level.rank(),
            entry.message,
            json(&entry.fields),
        ])?;
    }
    Ok(())
}

/// A time as sqlx stores a `DateTime<Utc>` on SQLite.
fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// JSON as sqlx stores it on SQLite.
fn json(value: &Value) -> String {
    value.to_string()
}

/// An `events` row read in [`EVENT_COLUMNS`] order.
fn event_model(row: &Row<'_>) -> rusqlite::Result<event::Model> {
    read_model(row, None)
}

/// What the caller of an outcome holds of its event (see [`HELD_EVENT_COLUMNS`]).
struct Held {
    headers: Value,
    raw_body: Vec<u8>,
    payload: Value,
    mapped_output: Option<Value>,
}

/// An `events` row in [`EVENT_COLUMNS`] order, or in [`HELD_EVENT_COLUMNS`] order with the
/// rest from `held`.
fn read_model(row: &Row<'_>, held: Option<Held>) -> rusqlite::Result<event::Model> {
    let held = match held {
        Some(held) => held,
        None => Held {
            headers: json_at(row, 3)?,
            raw_body: row.get(4)?,
            payload: json_at(row, 5)?,
            mapped_output: optional(row, 12, json_at)?,
        },
    };
    Ok(event::Model {
        id: uuid_at(row, 0)?,
        touchpoint_id: uuid_at(row, 1)?,
        received_at: time_at(row, 2)?,
        headers: held.headers,
        raw_body: held.raw_body,
        payload: held.payload,
        dedupe_key: row.get(6)?,
        duplicates: row.get(7)?,
        status: row.get(8)?,
        attempts: row.get(9)?,
        next_attempt_at: time_at(row, 10)?,
        lease_until: optional(row, 11, time_at)?,
        mapped_output: held.mapped_output,
        last_error: row.get(13)?,
        response_status: row.get(14)?,
        published_generation: row.get(15)?,
        updated_at: time_at(row, 16)?,
        lease_id: optional(row, 17, uuid_at)?,
        ordering_key: row.get(18)?,
        parked: row.get(19)?,
        retired_dedupe_key: row.get(20)?,
        last_attempt_at: optional(row, 21, time_at)?,
        resynced_at: optional(row, 22, time_at)?,
    })
}

fn optional<T>(
    row: &Row<'_>,
    index: usize,
    read: fn(&Row<'_>, usize) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    match row.get_ref(index)? {
        ValueRef::Null => Ok(None),
        _ => read(row, index).map(Some),
    }
}

fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(index)?.as_blob()?;
    Uuid::from_slice(bytes).map_err(|error| conversion(index, Type::Blob, error))
}

fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text = row.get_ref(index)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%F %T%.f").map(|time| time.and_utc()))
        .map_err(|error| conversion(index, Type::Text, error))
}

fn json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text = match row.get_ref(index)? {
        ValueRef::Text(text) | ValueRef::Blob(text) => text,
        other => return Err(conversion(index, other.data_type(), InvalidJson)),
    };
    serde_json::from_slice(text).map_err(|error| conversion(index, Type::Text, error))
}

#[derive(Debug, thiserror::Error)]
#[error("not JSON text")]
struct InvalidJson;

fn conversion(
    index: usize,
    kind: Type,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, kind, Box::new(error))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use sea_orm::{
        ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
        TransactionTrait, Value as SqlValue,
    };
    use serde_json::json;
    use tokio::sync::oneshot;

    use super::*;
    use crate::{
        Clock, LogLevel, ManualClock, Outcome, Store, StoreOptions,
        events::{AttemptRecord, OutcomeLog, append},
        writer::Request,
    };

    /// A migrated SQLite file, reached both ways with foreign keys off (no touchpoint rows).
    struct Both {
        _dir: tempfile::TempDir,
        sqlx: DatabaseConnection,
        direct: Direct,
        context: Context,
    }

    async fn both() -> Both {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("store.db");
        let url = format!("sqlite://{}", path.display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        store.close().await;
        let mut options = ConnectOptions::new(url);
        options.max_connections(1).sqlx_logging(false);
        let sqlx = Database::connect(options).await.expect("sqlx");
        sqlx.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .expect("pragma");
        let direct = Direct::open(&path, Duration::from_secs(5)).expect("rusqlite");
        direct
            .connection
            .execute_batch("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        // Fraction digits that AutoSi would write as six.
        let start =
            Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap() + TimeDelta::microseconds(123_450);
        let context = Context {
            clock: ManualClock::new(start).into(),
            dedupe_window: crate::DEFAULT_DEDUPE_WINDOW,
        };
        Both {
            _dir: dir,
            sqlx,
            direct,
            context,
        }
    }

    fn new_event(touchpoint_id: Uuid, key: &str) -> NewEvent {
        NewEvent {
            touchpoint_id,
            headers: json!({ "x-shopify-topic": "orders/create" }),
            raw_body: "{\"id\":1,\"name\":\"Zoë\"}".as_bytes().to_vec(),
            payload: json!({ "id": 1, "name": "Zoë", "total": 12.5 }),
            dedupe_key: Some(key.to_owned()),
            ordering_key: Some("customer-7".to_owned()),
            intake_failure: None,
        }
    }

    impl Both {
        /// Every column of the rows `filter` selects, as SQLite quotes it (type and value),
        /// without the columns named in `except`.
        async fn quoted(&self, table: &str, filter: &str, except: &[&str]) -> Vec<Vec<String>> {
            let columns = self
                .sqlx
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
                ))
                .await
                .expect("columns");
            let columns: Vec<String> = columns
                .iter()
                .map(|row| row.try_get::<String>("", "name").expect("name"))
                .filter(|name| !except.contains(&name.as_str()))
                .collect();
            let select = columns
                .iter()
                .map(|column| format!("quote({column}) AS {column}"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = self
                .sqlx
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    format!("SELECT {select} FROM {table} WHERE {filter}"),
                ))
                .await
                .expect("rows");
            rows.iter()
                .map(|row| {
                    columns
                        .iter()
                        .map(|column| row.try_get::<String>("", column).expect("quoted"))
                        .collect()
                })
                .collect()
        }

        async fn through_direct(&mut self, job: Job) -> Output {
            let (_, mut outputs) = self
                .direct
                .commit(vec![job], &self.context)
                .map_err(|(_, fallback)| fallback)
                .expect("the fast path takes it");
            outputs.pop().expect("one output")
        }

        async fn lease(&self, id: Uuid, lease: Uuid) {
            self.sqlx
                .execute_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Sqlite,
                    "UPDATE events SET lease_id = ?, lease_until = ? WHERE id = ?",
                    [
                        SqlValue::from(lease),
                        SqlValue::from(self.context.clock.now()),
                        SqlValue::from(id),
                    ],
                ))
                .await
                .expect("lease");
        }

        async fn read(&self, id: Uuid) -> Event {
            let row = event::Entity::find_by_id(id)
                .one(&self.sqlx)
                .await
                .expect("read")
                .expect("stored");
            Event::try_from(row).expect("an event")
        }
    }

    fn created(output: Output) -> Event {
        match output {
            Output::Events(mut appended) => match appended.pop() {
                Some(Appended::Created(event)) => Arc::unwrap_or_clone(event),
                other => panic!("expected a new event, got {other:?}"),
            },
            _ => panic!("expected appended events"),
        }
    }

    /// The message of a log entry that makes the batch holding it panic (tests only).
    const PLANTED_PANIC: &str = "a panic planted in the writer";

    pub(super) fn panic_if_planted(logs: &[crate::NewLog]) {
        assert!(
            logs.iter().all(|log| log.message != PLANTED_PANIC),
            "{PLANTED_PANIC}"
        );
    }

    /// A bug that panics inside a batch's transaction costs that batch, not the writer.
    #[tokio::test]
    async fn a_panic_in_a_batch_fails_that_batch_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        let log = |message: &str| crate::NewLog {
            touchpoint_id: Uuid::now_v7(),
            event_id: None,
            level: LogLevel::Info,
            message: message.to_owned(),
            fields: json!({}),
        };

        let failed = store.append_logs(vec![log(PLANTED_PANIC)]).await;
        assert!(
            matches!(failed, Err(crate::StoreError::WriterClosed)),
            "{failed:?}"
        );
        // The writer goes on: the next request gets its own answer (its touchpoint does
        // not exist), from the careful path, which only a running writer reaches.
        let next = store.append_logs(vec![log("after the panic")]).await;
        assert!(
            matches!(next, Err(crate::StoreError::TouchpointNotFound)),
            "{next:?}"
        );
        assert_eq!(store.writer_stats().failed_transactions, 1);
        store.close().await;
    }

    /// New events take their requests' large values instead of copying them; a batch that
    /// falls back must hand every request back as it came, for the careful path to run.
    #[tokio::test]
    async fn a_batch_that_falls_back_gives_its_requests_back_whole() {
        let mut both = both().await;
        let touchpoint = Uuid::now_v7();
        let (reply, _answer) = oneshot::channel();
        let old = vec![new_event(touchpoint, "old")];
        both.through_direct(Job::Events(Request { work: old, reply }))
            .await;
        let Clock::Manual(clock) = &both.context.clock else {
            panic!("a manual clock");
        };
        let window = TimeDelta::from_std(both.context.dedupe_window).expect("window");
        clock.advance(window + TimeDelta::seconds(1));

        // Inside one request: a new event, then a key whose holder is past the window.
        let first = vec![new_event(touchpoint, "fresh"), new_event(touchpoint, "old")];
        // Across requests: new events, then an outcome for an event that does not exist.
        let second = vec![new_event(touchpoint, "x"), new_event(touchpoint, "y")];
        let missing = outcome::Work {
            id: Uuid::now_v7(),
            lease_id: Uuid::now_v7(),
            outcome: Outcome::Skipped { generation: 1 },
            log: None,
            held: None,
        };
        let events = |work| {
            Job::Events(Request {
                work,
                reply: oneshot::channel().0,
            })
        };
        let lost = Job::Outcome(Request {
            work: missing,
            reply: oneshot::channel().0,
        });
        let cases = [
            (vec![events(first.clone())], &first, Fallback::RetireKey),
            (
                vec![events(second.clone()), lost],
                &second,
                Fallback::LeaseLostOrMissing,
            ),
        ];
        for (jobs, sent, expected) in cases {
            let (back, fallback) = match both.direct.commit(jobs, &both.context) {
                Ok(_) => panic!("the batch must fall back"),
                Err(failed) => failed,
            };
            assert_eq!(fallback.to_string(), expected.to_string());
            let Some(Job::Events(request)) = back.into_iter().next() else {
                panic!("the events request comes back first");
            };
            assert_eq!(&request.work, sent, "handed back as it came");
        }
    }

    #[tokio::test]
    async fn rows_written_directly_are_the_rows_sqlx_writes() {
        let mut both = both().await;
        let touchpoint = Uuid::now_v7();

        let txn = both.sqlx.begin().await.expect("begin");
        let through_sqlx = append::insert(&txn, vec![new_event(touchpoint, "a")], &both.context)
            .await
            .expect("sqlx append");
        txn.commit().await.expect("commit");
        let (reply, _answer) = oneshot::channel();
        let work = vec![new_event(touchpoint, "b")];
        let direct = created(
            both.through_direct(Job::Events(Request { work, reply }))
                .await,
        );
        assert_eq!(
            direct,
            both.read(direct.id).await,
            "what it answers is what is stored"
        );
        let except = ["id", "dedupe_key"];
        assert_eq!(
            both.quoted("events", "dedupe_key = 'a'", &except).await,
            both.quoted("events", "dedupe_key = 'b'", &except).await,
        );

        // A duplicate comes back as its holder, bumped.
        let (reply, _answer) = oneshot::channel();
        let work = vec![new_event(touchpoint, "a")];
        match both
            .through_direct(Job::Events(Request { work, reply }))
            .await
        {
            Output::Events(appended) => match appended.as_slice() {
                [Appended::Duplicate(holder)] => {
                    assert_eq!(holder.id, through_sqlx[0].event().id);
                    assert_eq!(holder.duplicates, 1);
                    assert_eq!(**holder, both.read(holder.id).await);
                }
                other => panic!("expected a duplicate, got {other:?}"),
            },
            _ => panic!("expected appended events"),
        }

        // Outcomes: a retry with an attempt and a log entry, then a parked failure.
        let later = both.context.clock.now() + TimeDelta::milliseconds(1500);
        let outcomes = [
            Outcome::Retry {
                mapped: Some(json!({ "order": 1 })),
                error: "HTTP 503".to_owned(),
                response_status: Some(503),
                next_attempt_at: later,
                generation: 3,
                attempt: Some(AttemptRecord {
                    started_at: later - TimeDelta::milliseconds(700),
                    duration_ms: 12,
                    response_status: Some(503),
                    error: Some("HTTP 503".to_owned()),
                    response_snippet: Some("busy".to_owned()),
                }),
            },
            Outcome::Failed {
                park: true,
                mapped: None,
                error: "gave up".to_owned(),
                response_status: None,
                generation: 3,
                attempt: None,
            },
        ];
        let sqlx_id = through_sqlx[0].event().id;
        // The first outcome is recorded for the event as its caller holds it (its large
        // columns not read back), the second by id.
        for (index, outcome) in outcomes.into_iter().enumerate() {
            let log = OutcomeLog {
                level: LogLevel::Warn,
                message: "delivery failed".to_owned(),
                fields: json!({ "status": 503 }),
            };
            let (sqlx_lease, direct_lease) = (Uuid::now_v7(), Uuid::now_v7());
            both.lease(sqlx_id, sqlx_lease).await;
            both.lease(direct.id, direct_lease).await;
            let held = if index == 0 {
                Some(Arc::new(both.read(direct.id).await))
            } else {
                None
            };
            let work = |id, lease_id, held| outcome::Work {
                id,
                lease_id,
                outcome: outcome.clone(),
                log: Some(log.clone()),
                held,
            };
            let txn = both.sqlx.begin().await.expect("begin");
            let mut deferred = Deferred::default();
            let now = both.context.clock.now();
            outcome::apply(&txn, work(sqlx_id, sqlx_lease, None), now, &mut deferred)
                .await
                .expect("sqlx outcome");
            deferred.flush(&txn).await.expect("flush");
            txn.commit().await.expect("commit");
            let (reply, _answer) = oneshot::channel();
            let request = Request {
                work: work(direct.id, direct_lease, held),
                reply,
            };
            let Output::Outcome(recorded) = both.through_direct(Job::Outcome(request)).await else {
                panic!("expected an outcome");
            };
            assert_eq!(*recorded.event, both.read(direct.id).await);
            let (a, b) = (
                format!("x'{}'", sqlx_id.simple()),
                format!("x'{}'", direct.id.simple()),
            );
            // `duplicates` differs: the sqlx row absorbed the duplicate above.
            let except = ["id", "dedupe_key", "duplicates", "updated_at"];
            assert_eq!(
                both.quoted("events", &format!("id = {a}"), &except).await,
                both.quoted("events", &format!("id = {b}"), &except).await,
            );
            let except = ["id", "event_id"];
            let order = "ORDER BY number";
            assert_eq!(
                both.quoted("attempts", &format!("event_id = {a} {order}"), &except)
                    .await,
                both.quoted("attempts", &format!("event_id = {b} {order}"), &except)
                    .await,
            );
            assert_eq!(
                both.quoted("logs", &format!("event_id = {a} ORDER BY id"), &except)
                    .await,
                both.quoted("logs", &format!("event_id = {b} ORDER BY id"), &except)
                    .await,
            );
        }
        let attempts = both.quoted("attempts", "1 = 1", &[]).await.len();
        assert_eq!(attempts, 2, "one attempt row each");

        // A lease lost: the fast path gives up, nothing stored.
        let (reply, _answer) = oneshot::channel();
        let work = outcome::Work {
            id: direct.id,
            lease_id: Uuid::now_v7(),
            outcome: Outcome::Skipped { generation: 3 },
            log: None,
            held: Some(Arc::new(both.read(direct.id).await)),
        };
        let gave_up = both
            .direct
            .commit(vec![Job::Outcome(Request { work, reply })], &both.context);
        assert!(matches!(gave_up, Err((_, Fallback::LeaseLostOrMissing))));
    }
}
