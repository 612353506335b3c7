//! The resync bucket as a work queue: lease due events, record outcomes, hand leases back,
//! resync, and tell the worker when the next event is due.
//!
//! An event is due when it is UNPROCESSED, its `next_attempt_at` has passed, it is not leased
//! (or its lease expired), its touchpoint is published with auto-sync on, and its ordering key
//! (if any) does not hold it back (module `ordering`: one event per key at a time, in order),
//! and its connection is not paused. A claim leases
//! due events in one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING *`; on PostgreSQL
//! the inner select is `FOR UPDATE SKIP LOCKED`, so concurrent claimers skip each other's rows
//! instead of waiting, and SQLite runs one writing statement at a time. Either way no two
//! claimers lease the same event while a lease holds.
//!
//! Every claim writes a fresh `lease_id` on the events it leases. An outcome or a release
//! names the lease it holds and applies only while the event still carries it
//! ([`StoreError::LeaseLost`] otherwise, with nothing changed): a worker whose lease expired
//! and whose event was claimed again, or resynced, cannot overwrite the newer processing. An
//! expired lease that nobody replaced is still honoured: nothing newer happened.
//!
//! Outcomes are recorded in [`super::outcome`], through the group-commit writer; releases and
//! resyncs are rare and run directly.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, Func, LockBehavior, LockType, Order, Query, SelectStatement},
};
use uuid::Uuid;

use super::{
    Event, EventStatus,
    ordering::{self, Held},
};
use crate::{
    Backend, Change, ChangeKind, ChangedRow, Store, StoreError,
    entity::{connection, event, touchpoint},
    time,
};

/// Ids per statement when resyncing, well below every backend's parameter limit.
const RESYNC_CHUNK: usize = 500;

/// Which touchpoints a claim may take events of, beyond the rule that they are published,
/// have auto-sync on and their connection is not paused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimFilter {
    /// Only these touchpoints (a worker that runs one connection's touchpoints).
    pub only: Option<Vec<Uuid>>,
    /// Never these touchpoints (destinations that are saturated or holding off).
    pub exclude: Vec<Uuid>,
}

impl Store {
    /// Leases up to `limit` due events until `now + lease` and returns them oldest first,
    /// each with the claim's `lease_id`. Of the events sharing a touchpoint and ordering key,
    /// only the earliest unfinished one is ever leased, and only while no other one of them
    /// holds a lease.
    pub async fn claim_due_events(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        self.claim_due_events_where(now, lease, limit, &ClaimFilter::default())
            .await
    }

    /// [`Store::claim_due_events`], restricted by `filter`.
    pub async fn claim_due_events_where(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u64,
        filter: &ClaimFilter,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 || filter.only.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let now = time::stored(now);
        let due = due_events(now, limit, filter);
        let claim = event::Entity::update_many()
            .col_expr(
                event::Column::LeaseUntil,
                Expr::val(time::after(now, lease)),
            )
            .col_expr(event::Column::LeaseId, Expr::val(Uuid::now_v7()))
            .filter(event::Column::Id.in_subquery(due.clone()));
        if self.backend() == Backend::Sqlite {
            // Most wake-ups find nothing due; a read (no write lock) says so cheaply.
            let mut probe = due.clone();
            probe.limit(1);
            let any = self
                .db()
                .query_one(&probe)
                .await
                .map_err(StoreError::ClaimEvents)?;
            if any.is_none() {
                return Ok(Vec::new());
            }
            // SQLite runs one writing statement at a time: the claim takes its turn in the
            // group-commit writer's batch, sharing its commit with the intake and outcomes
            // around it.
            let claimed = self.inner.writer.claim(Claim { update: claim }).await?;
            return Ok(sorted(claimed));
        }
        // PostgreSQL: serialize claims (see `ordering`): the lock first, then the UPDATE,
        // whose snapshot sees every earlier claim's leases.
        //
        // A lease is not worth waiting for the disk: its commit does not wait for the WAL
        // flush, so the next claim gets the lock without waiting for this one's fsync. A crash
        // that loses the lease loses nothing else: the event is due again, as when a worker
        // dies holding it, and every outcome (a synchronous commit, later in the WAL) still
        // flushes the lease before it.
        let txn = self.db().begin().await.map_err(StoreError::ClaimEvents)?;
        txn.execute_unprepared(&format!(
            "SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({})",
            ordering::CLAIM_LOCK
        ))
        .await
        .map_err(StoreError::ClaimEvents)?;
        let claimed = Claim { update: claim }.lease(&txn).await?;
        txn.commit().await.map_err(StoreError::ClaimEvents)?;
        Ok(sorted(claimed))
    }

    /// Hands a leased event back without an outcome (the worker is shutting down, the
    /// touchpoint was unpublished meanwhile): it is claimable at once, and nothing else about
    /// it changes. [`StoreError::LeaseLost`] when the event no longer carries `lease_id`,
    /// [`StoreError::EventNotFound`] if it is gone.
    pub async fn release_lease(&self, id: Uuid, lease_id: Uuid) -> Result<(), StoreError> {
        let released = event::Entity::update_many()
            .col_expr(event::Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
            .col_expr(event::Column::LeaseId, Expr::val(None::<Uuid>))
            .filter(event::Column::Id.eq(id))
            .filter(event::Column::LeaseId.eq(lease_id))
            .exec(self.db())
            .await
            .map_err(StoreError::ReleaseLease)?;
        if released.rows_affected > 0 {
            return Ok(());
        }
        Err(lease_lost_or_missing(self.db(), id)
            .await
            .map_err(StoreError::ReleaseLease)?)
    }

    /// Puts events back to UNPROCESSED, due now, with attempts, last error and `parked`
    /// cleared (a resynced event takes its place in its key's order again); later
    /// attempts are marked [`crate::AttemptTrigger::Resync`]. Returns the events found, oldest
    /// first; unknown ids are left out.
    ///
    /// A resync takes an event away from a worker that is processing it (that worker's
    /// outcome gets [`StoreError::LeaseLost`]) but keeps its `lease_until`: the event is
    /// claimed again only when that lease runs out, so two deliveries of it never overlap.
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
                .col_expr(event::Column::LeaseId, Expr::val(None::<Uuid>))
                .col_expr(event::Column::LastError, Expr::val(None::<String>))
                .col_expr(event::Column::Parked, Expr::val(false))
                .col_expr(event::Column::ResyncedAt, Expr::val(now))
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
                    row: Some(ChangedRow::Event(Arc::new(event.clone()))),
                }));
            events.extend(chunk_events);
        }
        events.sort_by_key(|event| event.id);
        Ok(events)
    }

    /// When the next claim could return something: the earliest `max(next_attempt_at,
    /// lease_until)` among UNPROCESSED events of running touchpoints (published, auto-sync on,
    /// connection not paused) that their key does not hold back; for an event held back, its
    /// own lease's end, if it has one. `None` when there is nothing to wait for (a key blocked by a FAILED head waits for
    /// a resync, an event behind one in flight for that event's outcome: wake the worker then).
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_due_at_where(&ClaimFilter::default()).await
    }

    /// [`Store::next_due_at`] among the events `filter` lets a claim take.
    pub async fn next_due_at_where(
        &self,
        filter: &ClaimFilter,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if filter.only.as_ref().is_some_and(Vec::is_empty) {
            return Ok(None);
        }
        let e = ordering::candidate();
        let lease_until = || Expr::col((e.clone(), event::Column::LeaseUntil));
        let next_attempt_at = Expr::col((e.clone(), event::Column::NextAttemptAt));
        let due = Expr::case(ordering::held_back(Held::Set), lease_until())
            .case(lease_until().gt(next_attempt_at.clone()), lease_until())
            .finally(next_attempt_at);
        let query = Query::select()
            .expr(Func::min(due))
            .from_as(event::Entity, e.clone())
            .and_where(
                Expr::col((e.clone(), event::Column::Status)).eq(EventStatus::Unprocessed.as_str()),
            )
            .and_where(
                Expr::col((e, event::Column::TouchpointId))
                    .in_subquery(runnable_touchpoints(filter)),
            )
            .to_owned();
        let row = self
            .db()
            .query_one(&query)
            .await
            .map_err(StoreError::read("the next due time"))?;
        match row {
            Some(row) => row
                .try_get_by_index::<Option<DateTime<Utc>>>(0)
                .map_err(StoreError::read("the next due time")),
            None => Ok(None),
        }
    }
}

/// Claimed events oldest first.
fn sorted(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(|event| event.id);
    events
}

/// A claim: the lease update of the due events (on SQLite a request of the group-commit
/// writer's batch; on PostgreSQL run in its own transaction, after the claim lock).
#[derive(Clone)]
pub(crate) struct Claim {
    pub(crate) update: sea_orm::UpdateMany<event::Entity>,
}

impl Claim {
    /// Leases the due events on `txn`; returns them as updated.
    pub(crate) async fn lease(self, txn: &impl ConnectionTrait) -> Result<Vec<Event>, StoreError> {
        self.update
            .exec_with_returning(txn)
            .await
            .map_err(StoreError::ClaimEvents)?
            .into_iter()
            .map(Event::try_from)
            .collect()
    }
}

/// The ids of up to `limit` events due at `now` that `filter` lets a claim take, oldest first
/// (`idx_events_claim` hands UNPROCESSED events over in id order, so the scan stops at
/// `limit` instead of reading and sorting the whole backlog).
fn due_events(now: DateTime<Utc>, limit: u64, filter: &ClaimFilter) -> SelectStatement {
    let e = ordering::candidate();
    Query::select()
        .column((e.clone(), event::Column::Id))
        .from_as(event::Entity, e.clone())
        .and_where(
            Expr::col((e.clone(), event::Column::Status)).eq(EventStatus::Unprocessed.as_str()),
        )
        .and_where(Expr::col((e.clone(), event::Column::NextAttemptAt)).lte(now))
        .and_where(
            Expr::col((e.clone(), event::Column::LeaseUntil))
                .is_null()
                .or(Expr::col((e.clone(), event::Column::LeaseUntil)).lt(now)),
        )
        .and_where(
            Expr::col((e.clone(), event::Column::TouchpointId))
                .in_subquery(runnable_touchpoints(filter)),
        )
        .and_where(ordering::held_back(Held::At(now)).not())
        .order_by((e, event::Column::Id), Order::Asc)
        .limit(crate::page::clamp(limit))
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned()
}

/// Ids of the touchpoints the worker runs: published, auto-sync on, connection not paused,
/// and allowed by `filter`.
fn runnable_touchpoints(filter: &ClaimFilter) -> SelectStatement {
    let paused = Query::select()
        .column(connection::Column::Id)
        .from(connection::Entity)
        .and_where(connection::Column::Paused.eq(true))
        .to_owned();
    let mut query = Query::select()
        .column(touchpoint::Column::Id)
        .from(touchpoint::Entity)
        .and_where(touchpoint::Column::PublishedSpec.is_not_null())
        .and_where(touchpoint::Column::AutoSync.eq(true))
        .and_where(touchpoint::Column::ConnectionId.not_in_subquery(paused))
        .to_owned();
    if let Some(only) = &filter.only {
        query.and_where(touchpoint::Column::Id.is_in(only.iter().copied()));
    }
    if !filter.exclude.is_empty() {
        query.and_where(touchpoint::Column::Id.is_not_in(filter.exclude.iter().copied()));
    }
    query
}

/// Why a lease-checked update matched nothing: `LeaseLost` if the event exists,
/// `EventNotFound` otherwise.
pub(super) async fn lease_lost_or_missing(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<StoreError, sea_orm::DbErr> {
    let exists = event::Entity::find_by_id(id)
        .select_only()
        .column(event::Column::Id)
        .into_tuple::<Uuid>()
        .one(db)
        .await?
        .is_some();
    Ok(if exists {
        StoreError::LeaseLost
    } else {
        StoreError::EventNotFound
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::*;
    use crate::StoreOptions;

    /// The claim walks `idx_events_claim` in id order: no sort of every due event (what made
    /// each claim cost time in proportion to the backlog).
    #[tokio::test]
    async fn sqlite_claims_walk_the_claim_index_without_sorting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("store");
        store.migrate().await.expect("migrations");
        let (sql, values) = due_events(store.now(), 16, &ClaimFilter::default())
            .build(sea_orm::sea_query::SqliteQueryBuilder);
        let plan = store
            .db()
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {sql}"),
                values,
            ))
            .await
            .expect("plan");
        let plan: Vec<String> = plan
            .iter()
            .map(|row| row.try_get_by_index::<String>(3).expect("detail"))
            .collect();
        assert!(
            plan.iter().any(|line| line.contains("idx_events_claim")),
            "{plan:#?}"
        );
        assert!(
            !plan.iter().any(|line| line.contains("TEMP B-TREE")),
            "{plan:#?}"
        );
        store.close().await;
    }
}
