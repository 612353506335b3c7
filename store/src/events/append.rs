//! Appending events, inside a group-commit transaction.
//!
//! One `INSERT ... ON CONFLICT (touchpoint_id, dedupe_key) DO UPDATE SET duplicates =
//! duplicates + 1 ... WHERE received_at >= now - window RETURNING *` per event: a new key
//! inserts, a key seen within the dedupe window bumps the existing row and returns it, and the
//! returned id tells which happened. NULL keys never conflict.
//!
//! A key last seen before the window returns no row: that event's key is retired (moved to
//! `retired_dedupe_key`, out of the unique index) and the insert runs again, in the same
//! savepoint, so the new event takes the key atomically. The common path stays one statement.
//!
//! The group-commit writer first tries the whole batch's events in a few multi-row statements
//! ([`insert_batch`]), telling new from duplicate rows by the id each was given; the rare
//! cases (an unknown touchpoint, a key to retire, one key twice in a batch) run event by
//! event as above.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::{Appended, Event, EventStatus, NewEvent};
use crate::{
    LogLevel, NewLog, Store, StoreError, entity::event, error::is_foreign_key_violation, time,
    writer::Context,
};

/// The log entry intake writes beside each event it appends (see [`Store::receive_events`]).
#[derive(Clone, Debug, PartialEq)]
pub struct IntakeLog {
    /// The message for a new event.
    pub created: String,
    /// The message for a delivery absorbed as a duplicate of an existing event.
    pub duplicate: String,
    /// Fields of every entry; the event's `duplicates` count is added.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl IntakeLog {
    /// The Info entry for one appended event.
    pub(crate) fn entry(&self, appended: &Appended) -> NewLog {
        let event = appended.event();
        let mut fields = self.fields.clone();
        fields.insert("duplicates".to_owned(), event.duplicates.into());
        NewLog {
            touchpoint_id: event.touchpoint_id,
            event_id: Some(event.id),
            level: LogLevel::Info,
            message: if appended.is_duplicate() {
                self.duplicate.clone()
            } else {
                self.created.clone()
            },
            fields: fields.into(),
        }
    }
}

impl Store {
    /// Intake: [`Store::append_events`], with one Info log entry per event (from `log`)
    /// written in the same savepoint of the same group commit, so a webhook is acknowledged
    /// after one commit rather than two, and its log entry exists whenever its event does.
    pub async fn receive_events(
        &self,
        events: Vec<NewEvent>,
        log: IntakeLog,
    ) -> Result<Vec<Appended>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.writer.receive_events(events, log).await
    }

    /// Appends events to their touchpoints' buckets and returns only after the transaction
    /// holding them has committed (group commit: concurrent callers share one transaction).
    /// An event whose `dedupe_key` the touchpoint already has is not inserted: the existing
    /// event's `duplicates` is incremented and it comes back as [`Appended::Duplicate`] —
    /// unless the existing event was received longer ago than
    /// [`crate::StoreOptions::dedupe_window`]: then it is a new event, and the old one keeps
    /// its key only for display.
    /// All of `events` are stored or none ([`StoreError::TouchpointNotFound`] if one names an
    /// unknown touchpoint).
    pub async fn append_events(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.writer.append_events(events).await
    }
}

/// Inserts `events` on `txn` in order. Fails as a whole (the caller rolls back) with
/// `TouchpointNotFound` when one of them names an unknown touchpoint.
pub(crate) async fn insert(
    txn: &impl ConnectionTrait,
    events: Vec<NewEvent>,
    context: &Context,
) -> Result<Vec<Appended>, StoreError> {
    let mut appended = Vec::with_capacity(events.len());
    for new in events {
        let id = Uuid::now_v7();
        let now = context.clock.now();
        let cutoff = time::before(now, context.dedupe_window);
        let touchpoint_id = new.touchpoint_id;
        let dedupe_key = new.dedupe_key.clone();
        let row = row(id, new, now);
        // `insert_many` of one row: its RETURNING yields no row (rather than an error) when
        // the conflict's update did not apply.
        let insert = || {
            event::Entity::insert_many([row.clone()])
                .on_conflict(on_duplicate(now, cutoff))
                .exec_with_returning(txn)
        };
        let stored = match insert().await.map_err(append_error)?.pop() {
            Some(stored) => stored,
            None => {
                // The key's holder was received before the window: retire its key, then the
                // new event takes it.
                let key = dedupe_key.ok_or(StoreError::AppendEvents(DbErr::RecordNotInserted))?;
                retire_key(txn, touchpoint_id, &key, cutoff).await?;
                insert()
                    .await
                    .map_err(append_error)?
                    .pop()
                    .ok_or(StoreError::AppendEvents(DbErr::RecordNotInserted))?
            }
        };
        appended.push(judged(id, Event::try_from(stored)?));
    }
    Ok(appended)
}

/// Rows per multi-row `INSERT` (23 parameters each, far below every backend's limit).
const INSERT_CHUNK: usize = 500;

/// Whether [`insert_batch`] can take `events`: no two share a touchpoint and dedupe key (one
/// statement cannot both insert a key and absorb its duplicate).
pub(crate) fn batchable<'a>(events: impl IntoIterator<Item = &'a NewEvent>) -> bool {
    let mut keys = std::collections::HashSet::new();
    events.into_iter().all(|new| match &new.dedupe_key {
        Some(key) => keys.insert((new.touchpoint_id, key.as_str())),
        None => true,
    })
}

/// The fast path of [`insert`] for a whole write batch: the events of every request in a few
/// multi-row statements (one per [`INSERT_CHUNK`]). Only for [`batchable`] events. Fails
/// (and the caller rolls back and runs the requests one by one, through [`insert`]) when an
/// event names an unknown touchpoint or its key's holder was received before the dedupe window
/// (the rare case that needs the key retired first).
pub(crate) async fn insert_batch(
    txn: &impl ConnectionTrait,
    events: Vec<NewEvent>,
    context: &Context,
) -> Result<Vec<Appended>, StoreError> {
    let now = context.clock.now();
    let cutoff = time::before(now, context.dedupe_window);
    let mut appended = Vec::with_capacity(events.len());
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        // What each row was: its touchpoint, its key and the id it was given.
        let mut chunk: Vec<(Uuid, Option<String>, Uuid)> = Vec::new();
        let mut rows = Vec::new();
        for new in events.by_ref().take(INSERT_CHUNK) {
            let id = Uuid::now_v7();
            chunk.push((new.touchpoint_id, new.dedupe_key.clone(), id));
            rows.push(row(id, new, now));
        }
        let stored = event::Entity::insert_many(rows)
            .on_conflict(on_duplicate(now, cutoff))
            .exec_with_returning(txn)
            .await
            .map_err(append_error)?;
        let mut by_id = std::collections::HashMap::with_capacity(stored.len());
        let mut by_key = std::collections::HashMap::new();
        for row in stored {
            let event = Event::try_from(row)?;
            if let Some(key) = event.dedupe_key.clone() {
                by_key.insert((event.touchpoint_id, key), event.id);
            }
            by_id.insert(event.id, event);
        }
        for (touchpoint_id, dedupe_key, id) in chunk {
            let stored_id = match by_id.contains_key(&id) {
                true => Some(id),
                false => dedupe_key.and_then(|key| by_key.get(&(touchpoint_id, key)).copied()),
            };
            let event = stored_id
                .and_then(|stored_id| by_id.remove(&stored_id))
                .ok_or(StoreError::AppendEvents(DbErr::RecordNotInserted))?;
            appended.push(judged(id, event));
        }
    }
    Ok(appended)
}

/// The row a new event is inserted as, with `id`, received at `now`.
fn row(id: Uuid, new: NewEvent, now: DateTime<Utc>) -> event::ActiveModel {
    event::ActiveModel::from(model(id, new, now)).reset_all()
}

/// A new event's row as it is stored, with `id`, received at `now` (both of the writer's
/// paths insert exactly this).
impl NewEvent {
    /// The status, error and parking it is stored with: UNPROCESSED, or FAILED as it
    /// arrives (see [`NewEvent::failed_at_intake`]).
    pub(crate) fn intake_status(&self) -> (EventStatus, Option<&str>, bool) {
        match &self.intake_failure {
            None => (EventStatus::Unprocessed, None, false),
            Some(failure) => (
                EventStatus::Failed,
                Some(failure.error.as_str()),
                failure.parked,
            ),
        }
    }
}

pub(crate) fn model(id: Uuid, new: NewEvent, now: DateTime<Utc>) -> event::Model {
    let (status, last_error, parked) = new.intake_status();
    let last_error = last_error.map(str::to_owned);
    event::Model {
        id,
        touchpoint_id: new.touchpoint_id,
        received_at: now,
        headers: new.headers,
        raw_body: new.raw_body,
        payload: new.payload,
        dedupe_key: new.dedupe_key,
        duplicates: 0,
        status: status.as_str().to_owned(),
        attempts: 0,
        next_attempt_at: now,
        lease_until: None,
        mapped_output: None,
        last_error,
        response_status: None,
        published_generation: None,
        updated_at: now,
        lease_id: None,
        ordering_key: new.ordering_key,
        parked,
        retired_dedupe_key: None,
        last_attempt_at: None,
        resynced_at: None,
    }
}

/// Created when the stored event carries the id the insert gave it, else a duplicate.
pub(crate) fn judged(id: Uuid, stored: Event) -> Appended {
    let stored = Arc::new(stored);
    if stored.id == id {
        Appended::Created(stored)
    } else {
        Appended::Duplicate(stored)
    }
}

/// A duplicate within the window bumps the holder; one past it updates (and returns) nothing.
fn on_duplicate(now: DateTime<Utc>, cutoff: DateTime<Utc>) -> OnConflict {
    OnConflict::columns([event::Column::TouchpointId, event::Column::DedupeKey])
        .value(
            event::Column::Duplicates,
            Expr::col((event::Entity, event::Column::Duplicates)).add(1),
        )
        .value(event::Column::UpdatedAt, Expr::val(now))
        .action_and_where(Expr::col((event::Entity, event::Column::ReceivedAt)).gte(cutoff))
        .to_owned()
}

/// Moves `key` of the touchpoint's event received before `cutoff` out of the unique index.
async fn retire_key(
    txn: &impl ConnectionTrait,
    touchpoint_id: Uuid,
    key: &str,
    cutoff: DateTime<Utc>,
) -> Result<(), StoreError> {
    event::Entity::update_many()
        .col_expr(event::Column::RetiredDedupeKey, Expr::val(key))
        .col_expr(event::Column::DedupeKey, Expr::val(None::<String>))
        .filter(event::Column::TouchpointId.eq(touchpoint_id))
        .filter(event::Column::DedupeKey.eq(key))
        .filter(event::Column::ReceivedAt.lt(cutoff))
        .exec(txn)
        .await
        .map_err(StoreError::AppendEvents)?;
    Ok(())
}

fn append_error(error: DbErr) -> StoreError {
    if is_foreign_key_violation(&error) {
        StoreError::TouchpointNotFound
    } else {
        StoreError::AppendEvents(error)
    }
}
