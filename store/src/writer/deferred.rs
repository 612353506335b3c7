//! Rows a batch's requests write that nothing in the batch reads back: log entries and
//! attempt rows. Requests add them here instead of inserting them one statement each; the
//! batch inserts them all in a few multi-row statements before its commit (inside each
//! request's savepoint on the careful path, so a failing request takes only its own rows).

use sea_orm::ConnectionTrait;

use crate::{
    LogEntry, StoreError,
    events::attempts::{self, NewAttempt},
    logs,
};

/// Log entries and attempt rows waiting for their batch's insert.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    logs: Vec<LogEntry>,
    attempts: Vec<NewAttempt>,
}

impl Deferred {
    pub(crate) fn log(&mut self, entries: &[LogEntry]) {
        self.logs.extend_from_slice(entries);
    }

    pub(crate) fn attempt(&mut self, attempt: NewAttempt) {
        self.attempts.push(attempt);
    }

    /// Everything added so far (attempts, then log entries), leaving the lists empty.
    pub(super) fn take(&mut self) -> (Vec<NewAttempt>, Vec<LogEntry>) {
        (
            std::mem::take(&mut self.attempts),
            std::mem::take(&mut self.logs),
        )
    }

    /// Inserts everything added so far on `txn` (attempts first: an attempt's error names
    /// the outcome) and empties the lists.
    pub(crate) async fn flush(&mut self, txn: &impl ConnectionTrait) -> Result<(), StoreError> {
        if !self.attempts.is_empty() {
            attempts::insert_all(txn, &self.attempts)
                .await
                .map_err(StoreError::RecordOutcome)?;
            self.attempts.clear();
        }
        if !self.logs.is_empty() {
            logs::insert_entries(txn, &self.logs).await?;
            self.logs.clear();
        }
        Ok(())
    }
}
