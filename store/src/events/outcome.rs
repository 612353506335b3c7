//! Recording what processing a leased event came to: its status, the attempt row of the
//! request that decided it (if one was made), its retry schedule, and optionally the log
//! entry that tells the story, all in one group commit (together, or not at all).
//!
//! Guarantees: an outcome applies only while the event still carries the lease it names
//! ([`StoreError::LeaseLost`] otherwise, with nothing changed: see [`super::queue`]); the
//! caller is answered only after the commit that holds it; and with
//! [`Store::record_outcome_with_log`] the outcome and its log entry are stored together or
//! not at all, so the log bucket never tells of an outcome the bucket does not hold, nor
//! misses one it does.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Event, EventStatus, Outcome,
    attempts::{AttemptOf, AttemptRecord, NewAttempt},
    queue::lease_lost_or_missing,
};
use crate::{
    AttemptTrigger, LogEntry, LogLevel, NewLog, Store, StoreError, entity::event, logs, time,
    writer::Deferred,
};

/// The log entry written with an outcome, about its event (see
/// [`Store::record_outcome_with_log`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeLog {
    /// Severity.
    pub level: LogLevel,
    /// What happened.
    pub message: String,
    /// Structured details (an object).
    pub fields: Value,
}

impl OutcomeLog {
    fn entry(self, event: &Event) -> NewLog {
        NewLog {
            touchpoint_id: event.touchpoint_id,
            event_id: Some(event.id),
            level: self.level,
            message: self.message,
            fields: self.fields,
        }
    }
}

/// What recording an outcome stored. The event is shared with the change feed.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) event: Arc<Event>,
    pub(crate) log: Option<LogEntry>,
}

impl Store {
    /// Records what processing a leased event came to, with its attempt row if the outcome
    /// carries one, and clears the lease. Returns after the change is committed.
    ///
    /// [`StoreError::LeaseLost`] (nothing changed) when the event no longer carries
    /// `lease_id`; [`StoreError::EventNotFound`] if the event is gone.
    pub async fn record_outcome(
        &self,
        id: Uuid,
        lease_id: Uuid,
        outcome: Outcome,
    ) -> Result<Event, StoreError> {
        let recorded = self
            .inner
            .writer
            .record_outcome(id, lease_id, outcome, None, None)
            .await?;
        Ok(Arc::unwrap_or_clone(recorded.event))
    }

    /// [`Store::record_outcome`] and the event's log entry `log`, in one savepoint of one
    /// group commit: both are stored or neither (a lost lease, a missing event, a failed
    /// insert roll back both). Returns the event and the entry after the commit.
    pub async fn record_outcome_with_log(
        &self,
        id: Uuid,
        lease_id: Uuid,
        outcome: Outcome,
        log: OutcomeLog,
    ) -> Result<(Event, LogEntry), StoreError> {
        let recorded = self
            .inner
            .writer
            .record_outcome(id, lease_id, outcome, Some(log), None)
            .await?;
        let entry = recorded
            .log
            .expect("an outcome recorded with a log returns its entry");
        Ok((Arc::unwrap_or_clone(recorded.event), entry))
    }

    /// [`Store::record_outcome_with_log`] for the leased `event` as its claim returned it,
    /// answering nothing but success. The store then need not read the event's payload,
    /// headers and raw body back (no statement changes them after the insert): the change
    /// feed publishes them from `event`, with the rest of the row as the outcome left it.
    pub async fn record_outcome_of(
        &self,
        event: Event,
        lease_id: Uuid,
        outcome: Outcome,
        log: OutcomeLog,
    ) -> Result<(), StoreError> {
        self.inner
            .writer
            .record_outcome(
                event.id,
                lease_id,
                outcome,
                Some(log),
                Some(Arc::new(event)),
            )
            .await?;
        Ok(())
    }
}

/// One outcome to record.
#[derive(Clone)]
pub(crate) struct Work {
    pub(crate) id: Uuid,
    pub(crate) lease_id: Uuid,
    pub(crate) outcome: Outcome,
    pub(crate) log: Option<OutcomeLog>,
    /// The event as the caller holds it (from its claim), if it gave it: a path that uses it
    /// takes it, so a later one reads the row back. Shared, so cloning the work is cheap.
    pub(crate) held: Option<Arc<Event>>,
}

/// Applies an outcome on `txn` (inside the group-commit writer); its attempt row and log
/// entry, if any, go to `deferred`, which the batch inserts before its commit. An error
/// leaves the caller to roll all of it back.
pub(crate) async fn apply(
    txn: &impl ConnectionTrait,
    work: Work,
    now: DateTime<Utc>,
    deferred: &mut Deferred,
) -> Result<Recorded, StoreError> {
    let Work {
        id,
        lease_id,
        outcome,
        log,
        held: _,
    } = work;
    let (event, attempt) = apply_outcome(txn, id, lease_id, outcome, now).await?;
    Ok(recorded(event, attempt, log, now, deferred))
}

/// What an outcome sets on its event's row, besides clearing the lease and stamping
/// `updated_at` (the same on both of the writer's paths).
pub(crate) struct Update {
    pub(crate) status: EventStatus,
    /// Whether `attempts` goes up by one.
    pub(crate) counts_attempt: bool,
    pub(crate) mapped: Option<Value>,
    pub(crate) error: Option<String>,
    pub(crate) response_status: Option<i32>,
    pub(crate) generation: i64,
    /// The retry's time (stored precision); `None` leaves `next_attempt_at` as it is.
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    /// `None` leaves `parked` as it is.
    pub(crate) park: Option<bool>,
    /// The request that decided it, if one was made.
    pub(crate) attempt: Option<AttemptRecord>,
}

impl Update {
    pub(crate) fn of(outcome: Outcome) -> Self {
        let counts_attempt = outcome.is_attempt();
        let update = |status, generation| Self {
            status,
            counts_attempt,
            mapped: None,
            error: None,
            response_status: None,
            generation,
            next_attempt_at: None,
            park: None,
            attempt: None,
        };
        match outcome {
            Outcome::Success {
                mapped,
                response_status,
                generation,
                attempt,
            } => Self {
                mapped: Some(mapped),
                response_status: Some(response_status),
                attempt,
                ..update(EventStatus::Success, generation)
            },
            Outcome::Skipped { generation } => update(EventStatus::Skipped, generation),
            Outcome::Retry {
                mapped,
                error,
                response_status,
                next_attempt_at,
                generation,
                attempt,
            } => Self {
                mapped,
                error: Some(error),
                response_status,
                next_attempt_at: Some(time::stored(next_attempt_at)),
                attempt,
                ..update(EventStatus::Unprocessed, generation)
            },
            Outcome::Failed {
                park,
                mapped,
                error,
                response_status,
                generation,
                attempt,
            } => Self {
                mapped,
                error: Some(error),
                response_status,
                park: Some(park),
                attempt,
                ..update(EventStatus::Failed, generation)
            },
        }
    }

    /// The attempt row of the request that decided it, for the event `row` as updated.
    pub(crate) fn attempt_row(&mut self, row: &event::Model) -> Option<NewAttempt> {
        let record = self.attempt.take()?;
        let of = AttemptOf {
            event_id: row.id,
            touchpoint_id: row.touchpoint_id,
            generation: self.generation,
            trigger: if row.resynced_at.is_some() {
                AttemptTrigger::Resync
            } else {
                AttemptTrigger::Auto
            },
        };
        Some(NewAttempt::new(of, record))
    }
}

/// What recording an outcome stored, once its event is updated: its attempt row and log
/// entry (if any) go to `deferred`.
pub(crate) fn recorded(
    event: Event,
    attempt: Option<NewAttempt>,
    log: Option<OutcomeLog>,
    now: DateTime<Utc>,
    deferred: &mut Deferred,
) -> Recorded {
    if let Some(attempt) = attempt {
        deferred.attempt(attempt);
    }
    let log = log.and_then(|log| logs::entries(vec![log.entry(&event)], now).pop());
    if let Some(entry) = &log {
        deferred.log(std::slice::from_ref(entry));
    }
    Recorded {
        event: Arc::new(event),
        log,
    }
}

/// Updates the event if it still carries `lease_id`; returns it and its attempt row, if any.
async fn apply_outcome(
    txn: &impl ConnectionTrait,
    id: Uuid,
    lease_id: Uuid,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<(Event, Option<NewAttempt>), StoreError> {
    let mut change = Update::of(outcome);
    let mut update = event::Entity::update_many()
        .filter(event::Column::Id.eq(id))
        .filter(event::Column::LeaseId.eq(lease_id))
        .col_expr(event::Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
        .col_expr(event::Column::LeaseId, Expr::val(None::<Uuid>))
        .col_expr(event::Column::UpdatedAt, Expr::val(now));
    if change.counts_attempt {
        update = update.col_expr(
            event::Column::Attempts,
            Expr::col(event::Column::Attempts).add(1),
        );
    }
    if let Some(next_attempt_at) = change.next_attempt_at {
        update = update.col_expr(event::Column::NextAttemptAt, Expr::val(next_attempt_at));
    }
    if let Some(park) = change.park {
        update = update.col_expr(event::Column::Parked, Expr::val(park));
    }
    if let Some(attempt) = &change.attempt {
        update = update.col_expr(
            event::Column::LastAttemptAt,
            Expr::val(time::stored(attempt.started_at)),
        );
    }
    let rows = update
        .col_expr(event::Column::Status, Expr::val(change.status.as_str()))
        .col_expr(event::Column::MappedOutput, Expr::val(change.mapped.take()))
        .col_expr(event::Column::LastError, Expr::val(change.error.take()))
        .col_expr(
            event::Column::ResponseStatus,
            Expr::val(change.response_status),
        )
        .col_expr(
            event::Column::PublishedGeneration,
            Expr::val(change.generation),
        )
        .exec_with_returning(txn)
        .await
        .map_err(StoreError::RecordOutcome)?;
    let Some(row) = rows.into_iter().next() else {
        return Err(lease_lost_or_missing(txn, id)
            .await
            .map_err(StoreError::RecordOutcome)?);
    };
    let attempt = change.attempt_row(&row);
    Ok((Event::try_from(row)?, attempt))
}

/// The columns of one outcome in [`apply_many`]'s `VALUES` list, with the type each is cast
/// to (a `NULL` in a `VALUES` list has no type of its own).
const MANY_COLUMNS: [(&str, &str); 11] = [
    ("id", "uuid"),
    ("lease_id", "uuid"),
    ("attempted", "integer"),
    ("next_attempt_at", "timestamptz"),
    ("parked", "boolean"),
    ("last_attempt_at", "timestamptz"),
    ("status", "text"),
    ("mapped_output", "jsonb"),
    ("last_error", "text"),
    ("response_status", "integer"),
    ("published_generation", "bigint"),
];

/// What [`apply_many`] returns when every outcome's caller holds its event: the columns no
/// statement changes after the insert (headers, raw body, payload) and the mapped output the
/// outcome sets come from the caller, not back over the wire (nor out of TOAST).
const HELD_RETURNING: &str = "e.id, e.touchpoint_id, e.received_at, 'null'::jsonb AS headers, \
     ''::bytea AS raw_body, 'null'::jsonb AS payload, e.dedupe_key, e.duplicates, e.status, \
     e.attempts, e.next_attempt_at, e.lease_until, NULL::jsonb AS mapped_output, e.last_error, \
     e.response_status, e.published_generation, e.updated_at, e.lease_id, e.ordering_key, \
     e.parked, e.retired_dedupe_key, e.last_attempt_at, e.resynced_at";

/// Outcomes applied in one statement on PostgreSQL, each as [`apply`] would: their events,
/// in `works`' order. `Ok(None)` when one of them no longer carries its lease, is gone or is
/// named twice (nothing is answered: the caller rolls back and applies them one by one,
/// which says which). Attempt rows and log entries go to `deferred`.
pub(crate) async fn apply_many(
    txn: &impl ConnectionTrait,
    works: Vec<Work>,
    now: DateTime<Utc>,
    deferred: &mut Deferred,
) -> Result<Option<Vec<Recorded>>, StoreError> {
    use sea_orm::{DbBackend, FromQueryResult, Statement, Value as SqlValue};

    let all_held = works.iter().all(|work| work.held.is_some());
    let mut values: Vec<SqlValue> = Vec::with_capacity(works.len() * MANY_COLUMNS.len());
    let mut rows = Vec::with_capacity(works.len());
    let mut changes = Vec::with_capacity(works.len());
    for (index, work) in works.into_iter().enumerate() {
        let mut change = Update::of(work.outcome);
        let first = index * MANY_COLUMNS.len();
        let placeholders: Vec<String> = MANY_COLUMNS
            .iter()
            .enumerate()
            .map(|(at, (_, cast))| format!("${}::{cast}", first + at + 1))
            .collect();
        rows.push(format!("({})", placeholders.join(", ")));
        values.extend([
            work.id.into(),
            work.lease_id.into(),
            i32::from(change.counts_attempt).into(),
            change.next_attempt_at.into(),
            change.park.into(),
            change
                .attempt
                .as_ref()
                .map(|attempt| time::stored(attempt.started_at))
                .into(),
            change.status.as_str().into(),
            // Kept for the held event's row when the statement returns none of it.
            if all_held {
                change.mapped.clone()
            } else {
                change.mapped.take()
            }
            .into(),
            change.error.take().into(),
            change.response_status.into(),
            change.generation.into(),
        ]);
        changes.push((work.id, change, work.log, work.held));
    }
    let names: Vec<&str> = MANY_COLUMNS.iter().map(|(name, _)| *name).collect();
    let now_at = values.len() + 1;
    values.push(now.into());
    let sql = format!(
        "UPDATE events AS e SET lease_until = NULL, lease_id = NULL, updated_at = ${now_at}, \
         attempts = e.attempts + v.attempted, \
         next_attempt_at = COALESCE(v.next_attempt_at, e.next_attempt_at), \
         parked = COALESCE(v.parked, e.parked), \
         last_attempt_at = COALESCE(v.last_attempt_at, e.last_attempt_at), \
         status = v.status, mapped_output = v.mapped_output, last_error = v.last_error, \
         response_status = v.response_status, published_generation = v.published_generation \
         FROM (VALUES {}) AS v({}) \
         WHERE e.id = v.id AND e.lease_id = v.lease_id RETURNING {}",
        rows.join(", "),
        names.join(", "),
        if all_held { HELD_RETURNING } else { "e.*" },
    );
    let updated = event::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .all(txn)
    .await
    .map_err(StoreError::RecordOutcome)?;
    let mut by_id: std::collections::HashMap<Uuid, event::Model> =
        updated.into_iter().map(|row| (row.id, row)).collect();
    let mut recorded_all = Vec::with_capacity(changes.len());
    for (id, mut change, log, held) in changes {
        let Some(mut row) = by_id.remove(&id) else {
            return Ok(None);
        };
        if all_held && let Some(held) = held {
            let held = Arc::unwrap_or_clone(held);
            row.headers = held.headers;
            row.raw_body = held.raw_body;
            row.payload = held.payload;
            row.mapped_output = change.mapped.take();
        }
        let attempt = change.attempt_row(&row);
        recorded_all.push(recorded(Event::try_from(row)?, attempt, log, now, deferred));
    }
    Ok(Some(recorded_all))
}
