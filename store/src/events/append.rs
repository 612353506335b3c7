//! Appending events, inside a group-commit transaction.
//!
//! One `INSERT ... ON CONFLICT (touchpoint_id, dedupe_key) DO UPDATE SET duplicates =
//! duplicates + 1 ... RETURNING *` per event: a new key inserts, a known key bumps the existing
//! row and returns it, and the returned id tells which happened. NULL keys never conflict.

use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::{Appended, Event, EventStatus, NewEvent};
use crate::{Store, StoreError, entity::event, error::is_foreign_key_violation, writer::Context};

impl Store {
    /// Appends events to their touchpoints' buckets and returns only after the transaction
    /// holding them has committed (group commit: concurrent callers share one transaction).
    /// An event whose `dedupe_key` the touchpoint already has is not inserted: the existing
    /// event's `duplicates` is incremented and it comes back as [`Appended::Duplicate`].
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
        let row = event::ActiveModel {
            id: Set(id),
            touchpoint_id: Set(new.touchpoint_id),
            received_at: Set(now),
            headers: Set(new.headers),
            raw_body: Set(new.raw_body),
            payload: Set(new.payload),
            dedupe_key: Set(new.dedupe_key),
            duplicates: Set(0),
            status: Set(EventStatus::Unprocessed.as_str().to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            mapped_output: Set(None),
            last_error: Set(None),
            response_status: Set(None),
            published_generation: Set(None),
            updated_at: Set(now),
            lease_id: Set(None),
            ordering_key: Set(new.ordering_key),
            parked: Set(false),
            retired_dedupe_key: Set(None),
            last_attempt_at: Set(None),
            resynced_at: Set(None),
        };
        let stored = event::Entity::insert(row)
            .on_conflict(on_duplicate(now))
            .exec_with_returning(txn)
            .await
            .map_err(append_error)?;
        let stored = Event::try_from(stored)?;
        appended.push(if stored.id == id {
            Appended::Created(stored)
        } else {
            Appended::Duplicate(stored)
        });
    }
    Ok(appended)
}

fn on_duplicate(now: chrono::DateTime<chrono::Utc>) -> OnConflict {
    OnConflict::columns([event::Column::TouchpointId, event::Column::DedupeKey])
        .value(
            event::Column::Duplicates,
            Expr::col((event::Entity, event::Column::Duplicates)).add(1),
        )
        .value(event::Column::UpdatedAt, Expr::val(now))
        .to_owned()
}

fn append_error(error: DbErr) -> StoreError {
    if is_foreign_key_violation(&error) {
        StoreError::TouchpointNotFound
    } else {
        StoreError::AppendEvents(error)
    }
}
