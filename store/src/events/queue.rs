//! The resync bucket as a work queue: lease due events, record outcomes, resync, and tell
//! the worker when the next event is due.
//!
//! An event is due when it is UNPROCESSED, its `next_attempt_at` has passed, it is not leased
//! (or its lease expired) and its touchpoint is published with auto-sync on. A claim leases
//! due events in one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING *`; on PostgreSQL
//! the inner select is `FOR UPDATE SKIP LOCKED`, so concurrent claimers skip each other's rows
//! instead of waiting, and SQLite runs one writing statement at a time. Either way no two
//! claimers lease the same event while a lease holds.
//!
//! Outcomes go through the group-commit writer (a busy worker pool records many outcomes at
//! once and they share a commit); resyncs are rare user actions and run directly.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LockBehavior, LockType, Order, Query, SelectStatement},
};
use uuid::Uuid;

use super::{Event, EventStatus, Outcome};
use crate::{
    Change, ChangeKind, Store, StoreError,
    entity::{event, touchpoint},
    time,
};

/// Ids per statement when resyncing, well below every backend's parameter limit.
const RESYNC_CHUNK: usize = 500;

impl Store {
    /// Leases up to `limit` due events until `now + lease` and returns them oldest first.
    pub async fn claim_due_events(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = time::stored(now);
        let due = Query::select()
            .column(event::Column::Id)
            .from(event::Entity)
            .and_where(event::Column::Status.eq(EventStatus::Unprocessed.as_str()))
            .and_where(event::Column::NextAttemptAt.lte(now))
            .and_where(
                event::Column::LeaseUntil
                    .is_null()
                    .or(event::Column::LeaseUntil.lt(now)),
            )
            .and_where(event::Column::TouchpointId.in_subquery(runnable_touchpoints()))
            .order_by(event::Column::Id, Order::Asc)
            .limit(crate::page::clamp(limit))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let rows = event::Entity::update_many()
            .col_expr(
                event::Column::LeaseUntil,
                Expr::val(time::after(now, lease)),
            )
            .filter(event::Column::Id.in_subquery(due))
            .exec_with_returning(self.db())
            .await
            .map_err(StoreError::ClaimEvents)?;
        let mut events = rows
            .into_iter()
            .map(Event::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|event| event.id);
        Ok(events)
    }

    /// Records what processing a leased event came to and clears its lease. Returns after
    /// the change is committed ([`StoreError::EventNotFound`] if the event is gone).
    pub async fn record_outcome(&self, id: Uuid, outcome: Outcome) -> Result<Event, StoreError> {
        self.inner.writer.record_outcome(id, outcome).await
    }

    /// Puts events back to UNPROCESSED, due now, with attempts, lease and last error
    /// cleared. Returns the events found, oldest first; unknown ids are left out.
    pub async fn resync_events(&self, ids: &[Uuid]) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(RESYNC_CHUNK) {
            let now = self.now();
            let rows = event::Entity::update_many()
                .col_expr(
                    event::Column::Status,
                    Expr::val(EventStatus::Unprocessed.as_str()),
                )
                .col_expr(event::Column::Attempts, Expr::val(0))
                .col_expr(event::Column::NextAttemptAt, Expr::val(now))
                .col_expr(event::Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
                .col_expr(event::Column::LastError, Expr::val(None::<String>))
                .col_expr(event::Column::UpdatedAt, Expr::val(now))
                .filter(event::Column::Id.is_in(chunk.iter().copied()))
                .exec_with_returning(self.db())
                .await
                .map_err(StoreError::ResyncEvents)?;
            let chunk_events = rows
                .into_iter()
                .map(Event::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            self.inner
                .feed
                .publish(chunk_events.iter().map(|event| Change {
                    kind: ChangeKind::EventUpdated,
                    touchpoint_id: event.touchpoint_id,
                    id: event.id,
                    status: Some(event.status),
                }));
            events.extend(chunk_events);
        }
        events.sort_by_key(|event| event.id);
        Ok(events)
    }

    /// When the next claim could return something: the earliest `max(next_attempt_at,
    /// lease_until)` among UNPROCESSED events of published touchpoints with auto-sync on.
    /// `None` when there is nothing to wait for.
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due = Expr::case(
            Expr::col(event::Column::LeaseUntil).gt(Expr::col(event::Column::NextAttemptAt)),
            Expr::col(event::Column::LeaseUntil),
        )
        .finally(Expr::col(event::Column::NextAttemptAt));
        let earliest: Option<Option<DateTime<Utc>>> = event::Entity::find()
            .select_only()
            .expr(Func::min(due))
            .filter(event::Column::Status.eq(EventStatus::Unprocessed.as_str()))
            .filter(event::Column::TouchpointId.in_subquery(runnable_touchpoints()))
            .into_tuple()
            .one(self.db())
            .await
            .map_err(StoreError::read("the next due time"))?;
        Ok(earliest.flatten())
    }
}

/// Ids of the touchpoints the worker runs: published, auto-sync on.
fn runnable_touchpoints() -> SelectStatement {
    Query::select()
        .column(touchpoint::Column::Id)
        .from(touchpoint::Entity)
        .and_where(touchpoint::Column::PublishedSpec.is_not_null())
        .and_where(touchpoint::Column::AutoSync.eq(true))
        .to_owned()
}

/// Applies an outcome on `txn` (inside the group-commit writer).
pub(crate) async fn apply_outcome(
    txn: &impl ConnectionTrait,
    id: Uuid,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<Event, StoreError> {
    let mut update = event::Entity::update_many()
        .filter(event::Column::Id.eq(id))
        .col_expr(event::Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
        .col_expr(event::Column::UpdatedAt, Expr::val(now));
    if outcome.is_attempt() {
        update = update.col_expr(
            event::Column::Attempts,
            Expr::col(event::Column::Attempts).add(1),
        );
    }
    let (status, mapped, error, response_status, generation) = match outcome {
        Outcome::Success {
            mapped,
            response_status,
            generation,
        } => (
            EventStatus::Success,
            Some(mapped),
            None,
            Some(response_status),
            generation,
        ),
        Outcome::Skipped { generation } => (EventStatus::Skipped, None, None, None, generation),
        Outcome::Retry {
            mapped,
            error,
            response_status,
            next_attempt_at,
            generation,
        } => {
            update = update.col_expr(
                event::Column::NextAttemptAt,
                Expr::val(time::stored(next_attempt_at)),
            );
            (
                EventStatus::Unprocessed,
                mapped,
                Some(error),
                response_status,
                generation,
            )
        }
        Outcome::Failed {
            mapped,
            error,
            response_status,
            generation,
        } => (
            EventStatus::Failed,
            mapped,
            Some(error),
            response_status,
            generation,
        ),
    };
    let rows = update
        .col_expr(event::Column::Status, Expr::val(status.as_str()))
        .col_expr(event::Column::MappedOutput, Expr::val(mapped))
        .col_expr(event::Column::LastError, Expr::val(error))
        .col_expr(event::Column::ResponseStatus, Expr::val(response_status))
        .col_expr(event::Column::PublishedGeneration, Expr::val(generation))
        .exec_with_returning(txn)
        .await
        .map_err(StoreError::RecordOutcome)?;
    let row = rows.into_iter().next().ok_or(StoreError::EventNotFound)?;
    Event::try_from(row)
}
