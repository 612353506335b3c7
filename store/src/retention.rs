//! Retention: deleting old bucket entries, their attempts, and old log entries, in bounded
//! batches so intake and delivery keep going while it runs.
//!
//! Guarantees:
//! - Only finished events go: SUCCESS, FAILED or SKIPPED, last changed before the cutoff.
//!   UNPROCESSED events (acknowledged, not yet delivered) are never deleted, however old.
//! - A FAILED event that holds its ordering key back (not parked) while later events of the key
//!   wait is kept: deleting it would let them overtake it silently. Resync or park it first.
//! - Every statement touches at most `batch` rows. Events go a batch per transaction, their
//!   attempts first (in statements of at most `batch` rows) in the same transaction, so no
//!   event is left without the attempts it had, or the reverse. Logs go a batch per statement.
//!   On SQLite each transaction holds the write lock only for its batch; on PostgreSQL the
//!   batch's events are locked `FOR UPDATE SKIP LOCKED`, so a row being resynced is skipped.
//! - Counts per status are computed from the rows, so they are right after every batch.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, Order, Query},
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    EventStatus, Store, StoreError,
    entity::{attempt, event, log},
    time,
};

/// The largest batch [`Store::purge`] uses, whatever it is asked: it bounds the ids a
/// statement carries as parameters.
pub const MAX_PURGE_BATCH: u64 = 10_000;

/// What [`Store::purge`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeStats {
    /// Events.
    pub events: u64,
    /// Log entries.
    pub logs: u64,
    /// Attempts (of the deleted events).
    pub attempts: u64,
}

impl Store {
    /// Deletes finished events last changed before `older_than` (with their attempts) and
    /// log entries written before it, at most `batch` rows per statement (capped at
    /// [`MAX_PURGE_BATCH`]; 0 deletes nothing), looping until nothing old is left.
    pub async fn purge(
        &self,
        older_than: DateTime<Utc>,
        batch: u64,
    ) -> Result<PurgeStats, StoreError> {
        let batch = Ord::min(batch, MAX_PURGE_BATCH);
        let mut stats = PurgeStats::default();
        if batch == 0 {
            return Ok(stats);
        }
        let cutoff = time::stored(older_than);
        loop {
            let (events, attempts) = self
                .purge_event_batch(cutoff, batch)
                .await
                .map_err(StoreError::Purge)?;
            stats.events += events;
            stats.attempts += attempts;
            if events < batch {
                break;
            }
        }
        loop {
            let old = Query::select()
                .column(log::Column::Id)
                .from(log::Entity)
                .and_where(log::Column::Time.lt(cutoff))
                .limit(batch)
                .to_owned();
            let deleted = log::Entity::delete_many()
                .filter(log::Column::Id.in_subquery(old))
                .exec(self.db())
                .await
                .map_err(StoreError::Purge)?
                .rows_affected;
            stats.logs += deleted;
            if deleted < batch {
                break;
            }
        }
        tracing::debug!(?stats, %cutoff, "purged");
        Ok(stats)
    }

    /// One transaction: up to `batch` old finished events and their attempts. Returns the
    /// events and attempts deleted.
    async fn purge_event_batch(
        &self,
        cutoff: DateTime<Utc>,
        batch: u64,
    ) -> Result<(u64, u64), DbErr> {
        let txn = self.begin_write().await?;
        let ids: Vec<Uuid> = txn
            .query_all(&purgeable(cutoff, batch))
            .await?
            .iter()
            .map(|row| row.try_get_by_index::<Uuid>(0))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            txn.commit().await?;
            return Ok((0, 0));
        }
        let mut attempts = 0;
        loop {
            let of_batch = Query::select()
                .column(attempt::Column::Id)
                .from(attempt::Entity)
                .and_where(attempt::Column::EventId.is_in(ids.iter().copied()))
                .limit(batch)
                .to_owned();
            let deleted = attempt::Entity::delete_many()
                .filter(attempt::Column::Id.in_subquery(of_batch))
                .exec(&txn)
                .await?
                .rows_affected;
            attempts += deleted;
            if deleted < batch {
                break;
            }
        }
        let events = event::Entity::delete_many()
            .filter(event::Column::Id.is_in(ids))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok((events, attempts))
    }
}

/// Ids of up to `batch` events that may go: finished before `cutoff`, and not a FAILED head
/// holding back later events of its key.
fn purgeable(cutoff: DateTime<Utc>, batch: u64) -> sea_orm::sea_query::SelectStatement {
    let e = Alias::new("e");
    let q = Alias::new("q");
    let waiting_behind = Query::select()
        .expr(Expr::val(1))
        .from_as(event::Entity, q.clone())
        .and_where(
            Expr::col((q.clone(), event::Column::TouchpointId))
                .eq(Expr::col((e.clone(), event::Column::TouchpointId))),
        )
        .and_where(
            Expr::col((q.clone(), event::Column::OrderingKey))
                .eq(Expr::col((e.clone(), event::Column::OrderingKey))),
        )
        .and_where(
            Expr::col((q.clone(), event::Column::Id)).gt(Expr::col((e.clone(), event::Column::Id))),
        )
        .and_where(Expr::col((q, event::Column::Status)).eq(EventStatus::Unprocessed.as_str()))
        .to_owned();
    let holds_its_key = Expr::col((e.clone(), event::Column::Status))
        .eq(EventStatus::Failed.as_str())
        .and(Expr::col((e.clone(), event::Column::Parked)).eq(false))
        .and(Expr::col((e.clone(), event::Column::OrderingKey)).is_not_null())
        .and(Expr::exists(waiting_behind));
    let finished = [
        EventStatus::Success,
        EventStatus::Failed,
        EventStatus::Skipped,
    ]
    .map(EventStatus::as_str);
    Query::select()
        .column((e.clone(), event::Column::Id))
        .from_as(event::Entity, e.clone())
        .and_where(Expr::col((e.clone(), event::Column::Status)).is_in(finished))
        .and_where(Expr::col((e.clone(), event::Column::UpdatedAt)).lt(cutoff))
        .and_where(holds_its_key.not())
        .order_by((e, event::Column::Id), Order::Asc)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_orm::DbBackend;

    use super::*;

    #[test]
    fn only_postgres_locks_the_batch() {
        let select = purgeable(Utc::now(), 10);
        let postgres = select.to_string(sea_orm::sea_query::PostgresQueryBuilder);
        assert!(postgres.ends_with("FOR UPDATE SKIP LOCKED"), "{postgres}");
        let sqlite = DbBackend::Sqlite.build(&select).to_string();
        assert!(!sqlite.contains("FOR UPDATE"), "{sqlite}");
    }
}
