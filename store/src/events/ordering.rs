//! Per-key ordering: events of a touchpoint that share an `ordering_key` are processed one at
//! a time, in arrival (id) order. Events without a key are not affected.
//!
//! An event with a key is *held back* while another event of its touchpoint and key
//! - is earlier (lower id) and UNPROCESSED (waiting, retrying or in flight), or
//! - is earlier and FAILED without being parked (block mode: the failed head stops its key
//!   until it is resynced or deleted; in park mode it stepped aside), or
//! - is UNPROCESSED and holds a lease (even a later one: an earlier event that a resync made
//!   UNPROCESSED again waits until the later one in flight is done).
//!
//! Why no two events of a key are ever leased at once, on both backends:
//! - Leases are only created by claims, and claims are serialized: SQLite runs one writing
//!   statement at a time, and on PostgreSQL every claim first takes a transaction-scoped
//!   advisory lock ([`CLAIM_LOCK`]) and only then runs its `UPDATE`, whose snapshot (READ
//!   COMMITTED takes one per statement) therefore includes every earlier claim's leases. So a
//!   claim sees each lease that an earlier claim created and that was not since ended.
//! - Within one claim's snapshot at most one event per key is claimable: of two UNPROCESSED
//!   events of a key the later is held back by the earlier; and while one event of a key holds
//!   a lease it is not due itself and holds back every other event of its key.
//! - `FOR UPDATE SKIP LOCKED` still matters: it skips rows that an outcome, a release or a
//!   resync is writing right now instead of waiting for them.
//!
//! Without the claim lock, PostgreSQL could lease two events of a key when something makes an
//! earlier event UNPROCESSED between two claims' snapshots (a resync, or an append from another
//! replica whose UUIDv7 id is lower than one already leased): one claim leases the later event
//! while another, whose snapshot cannot see that uncommitted lease, leases the earlier one.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};

use super::EventStatus;
use crate::entity::event;

/// The PostgreSQL advisory lock key that serializes claims ("hookclaim" folded into 63 bits);
/// distinct from the migration lock.
pub(crate) const CLAIM_LOCK: i64 = 0x686f_6f6b_636c_6169 & i64::MAX;

/// The alias of the event being judged (`events AS e`) in claim and next-due queries.
pub(crate) fn candidate() -> Alias {
    Alias::new("e")
}

/// When another event's lease counts as held.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Held {
    /// Unexpired at this time (claims).
    At(DateTime<Utc>),
    /// Set at all, expired or not (the next due time: an expired lease makes its own event
    /// due, which wakes the worker anyway).
    Set,
}

/// `TRUE` when the candidate (`e`) is held back by another event of its key.
pub(crate) fn held_back(held: Held) -> Expr {
    let e = candidate();
    let p = Alias::new("p");
    let unprocessed = EventStatus::Unprocessed.as_str();
    let lease_held = match held {
        Held::At(now) => Expr::col((p.clone(), event::Column::LeaseUntil)).gte(now),
        Held::Set => Expr::col((p.clone(), event::Column::LeaseUntil)).is_not_null(),
    };
    let earlier_blocks = Expr::col((p.clone(), event::Column::Id))
        .lt(Expr::col((e.clone(), event::Column::Id)))
        .and(
            Expr::col((p.clone(), event::Column::Status))
                .eq(unprocessed)
                .or(Expr::col((p.clone(), event::Column::Status))
                    .eq(EventStatus::Failed.as_str())
                    .and(Expr::col((p.clone(), event::Column::Parked)).eq(false))),
        );
    let other_leased = Expr::col((p.clone(), event::Column::Status))
        .eq(unprocessed)
        .and(lease_held);
    let blockers = Query::select()
        .expr(Expr::val(1))
        .from_as(event::Entity, p.clone())
        .and_where(
            Expr::col((p.clone(), event::Column::TouchpointId))
                .eq(Expr::col((e.clone(), event::Column::TouchpointId))),
        )
        .and_where(
            Expr::col((p.clone(), event::Column::OrderingKey))
                .eq(Expr::col((e.clone(), event::Column::OrderingKey))),
        )
        .and_where(
            Expr::col((p.clone(), event::Column::Id)).ne(Expr::col((e.clone(), event::Column::Id))),
        )
        .and_where(earlier_blocks.or(other_leased))
        .to_owned();
    Expr::col((e, event::Column::OrderingKey))
        .is_not_null()
        .and(Expr::exists(blockers))
}
