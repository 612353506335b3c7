//! The kinds of write the group-commit writer runs: what each applies inside the batch's
//! transaction, which changes it publishes after the commit, and which error its caller gets
//! when the batch fails as a whole.

use std::sync::{Arc, atomic::Ordering};

use sea_orm::{DatabaseTransaction, DbErr};

use super::{Counters, deferred::Deferred};
use crate::{
    Change, ChangeKind, ChangedRow, Clock, StoreError,
    events::{self, Appended, Event, IntakeLog, NewEvent, outcome::Recorded},
    logs::{self, LogEntry, NewLog},
};

/// What every write reads besides its request: the store's settings.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// The store's clock.
    pub(crate) clock: Clock,
    /// [`crate::StoreOptions::dedupe_window`].
    pub(crate) dedupe_window: std::time::Duration,
}

/// One kind of write the task runs.
pub(super) trait Work: Send + Sized + Clone {
    type Output: Send;
    /// Writes the request on `txn`; rows nothing reads back go to `deferred`, which the
    /// batch inserts before its commit.
    async fn apply(
        self,
        txn: &DatabaseTransaction,
        context: &Context,
        deferred: &mut Deferred,
    ) -> Result<Self::Output, StoreError>;
    /// The changes to publish once the output is committed.
    fn changes(output: &Self::Output) -> Vec<Change>;
    /// The error a caller gets when the batch's transaction fails.
    fn batch_failed(error: DbErr) -> StoreError;
    /// Adds what a committed output wrote to the stats.
    fn count(counters: &Counters, output: &Self::Output);
}

impl Work for Vec<NewEvent> {
    type Output = Vec<Appended>;

    async fn apply(
        self,
        txn: &DatabaseTransaction,
        context: &Context,
        _deferred: &mut Deferred,
    ) -> Result<Vec<Appended>, StoreError> {
        events::append::insert(txn, self, context).await
    }

    fn changes(output: &Vec<Appended>) -> Vec<Change> {
        output
            .iter()
            .map(|appended| {
                let event = appended.event();
                Change {
                    kind: if appended.is_duplicate() {
                        ChangeKind::EventUpdated
                    } else {
                        ChangeKind::EventCreated
                    },
                    touchpoint_id: event.touchpoint_id,
                    id: event.id,
                    status: Some(event.status),
                    row: Some(ChangedRow::Event(Arc::clone(appended.shared_event()))),
                }
            })
            .collect()
    }

    fn batch_failed(error: DbErr) -> StoreError {
        StoreError::AppendEvents(error)
    }

    fn count(counters: &Counters, appended: &Vec<Appended>) {
        counters
            .events
            .fetch_add(appended.len() as u64, Ordering::Relaxed);
    }
}

impl Work for Vec<NewLog> {
    type Output = Vec<LogEntry>;

    async fn apply(
        self,
        _txn: &DatabaseTransaction,
        context: &Context,
        deferred: &mut Deferred,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let entries = logs::entries(self, context.clock.now());
        deferred.log(&entries);
        Ok(entries)
    }

    fn changes(output: &Vec<LogEntry>) -> Vec<Change> {
        output
            .iter()
            .map(|entry| Change {
                kind: ChangeKind::LogCreated,
                touchpoint_id: entry.touchpoint_id,
                id: entry.id,
                status: None,
                row: Some(ChangedRow::Log(Arc::new(entry.clone()))),
            })
            .collect()
    }

    fn batch_failed(error: DbErr) -> StoreError {
        StoreError::AppendLogs(error)
    }

    fn count(counters: &Counters, entries: &Vec<LogEntry>) {
        counters
            .logs
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
    }
}

/// Intake: events and their log entries, together.
#[derive(Clone)]
pub(super) struct IntakeWork {
    pub(super) events: Vec<NewEvent>,
    pub(super) log: IntakeLog,
}

impl IntakeWork {
    /// What intake stored once its events are `appended`: their log entries go to `deferred`.
    pub(super) fn received(
        &self,
        appended: Vec<Appended>,
        context: &Context,
        deferred: &mut Deferred,
    ) -> Received {
        let entries = appended.iter().map(|a| self.log.entry(a)).collect();
        let logs = logs::entries(entries, context.clock.now());
        deferred.log(&logs);
        Received { appended, logs }
    }
}

/// What intake committed.
pub(super) struct Received {
    pub(super) appended: Vec<Appended>,
    logs: Vec<LogEntry>,
}

impl Work for IntakeWork {
    type Output = Received;

    async fn apply(
        mut self,
        txn: &DatabaseTransaction,
        context: &Context,
        deferred: &mut Deferred,
    ) -> Result<Received, StoreError> {
        let events = std::mem::take(&mut self.events);
        let appended = events::append::insert(txn, events, context).await?;
        Ok(self.received(appended, context, deferred))
    }

    fn changes(output: &Received) -> Vec<Change> {
        let mut changes = <Vec<NewEvent> as Work>::changes(&output.appended);
        changes.extend(<Vec<NewLog> as Work>::changes(&output.logs));
        changes
    }

    fn batch_failed(error: DbErr) -> StoreError {
        StoreError::AppendEvents(error)
    }

    fn count(counters: &Counters, received: &Received) {
        <Vec<NewEvent> as Work>::count(counters, &received.appended);
        <Vec<NewLog> as Work>::count(counters, &received.logs);
    }
}

/// An outcome, with its log entry when the caller gives one, together.
pub(super) use crate::events::outcome::Work as OutcomeWork;

impl Work for OutcomeWork {
    type Output = Recorded;

    async fn apply(
        self,
        txn: &DatabaseTransaction,
        context: &Context,
        deferred: &mut Deferred,
    ) -> Result<Recorded, StoreError> {
        events::outcome::apply(txn, self, context.clock.now(), deferred).await
    }

    fn changes(recorded: &Recorded) -> Vec<Change> {
        let event = &recorded.event;
        let mut changes = vec![Change {
            kind: ChangeKind::EventUpdated,
            touchpoint_id: event.touchpoint_id,
            id: event.id,
            status: Some(event.status),
            row: Some(ChangedRow::Event(Arc::clone(event))),
        }];
        if let Some(entry) = &recorded.log {
            changes.extend(<Vec<NewLog> as Work>::changes(&vec![entry.clone()]));
        }
        changes
    }

    fn batch_failed(error: DbErr) -> StoreError {
        StoreError::RecordOutcome(error)
    }

    fn count(counters: &Counters, recorded: &Recorded) {
        counters.outcomes.fetch_add(1, Ordering::Relaxed);
        if recorded.log.is_some() {
            counters.logs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A claim (SQLite): the due events leased, in the batch's transaction.
pub(super) use crate::events::queue::Claim;

impl Work for Claim {
    type Output = Vec<Event>;

    async fn apply(
        self,
        txn: &DatabaseTransaction,
        _context: &Context,
        _deferred: &mut Deferred,
    ) -> Result<Vec<Event>, StoreError> {
        self.lease(txn).await
    }

    /// A lease is not a change of the bucket.
    fn changes(_claimed: &Vec<Event>) -> Vec<Change> {
        Vec::new()
    }

    fn batch_failed(error: DbErr) -> StoreError {
        StoreError::ClaimEvents(error)
    }

    fn count(counters: &Counters, claimed: &Vec<Event>) {
        counters.claims.fetch_add(1, Ordering::Relaxed);
        counters
            .claimed
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
    }
}
