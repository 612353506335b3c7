//! The in-process change feed: what happened to which row, sent after commit.
//!
//! A change carries ids, for events the status the change set, and the committed row itself
//! (shared, so a thousand subscribers of one touchpoint cost one row, not a thousand loads). Sending never blocks a
//! writer: with no subscriber the change is dropped, and a slow subscriber lags (and is told
//! so by `broadcast`) instead of holding anyone up.

use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use std::sync::Arc;

use crate::{Event, EventStatus, LogEntry};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// An event was appended to a resync bucket.
    EventCreated,
    /// An event changed: an outcome was recorded, it was resynced, or a duplicate of it
    /// arrived.
    EventUpdated,
    /// A log entry was appended.
    LogCreated,
}

/// One committed change.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The touchpoint whose bucket changed.
    pub touchpoint_id: Uuid,
    /// The event or log entry.
    pub id: Uuid,
    /// For event changes, the status the change set.
    pub status: Option<EventStatus>,
    /// The row as this change committed it, shared by every subscriber so none has to load
    /// it again (a later change may already have replaced it in the database).
    #[serde(skip)]
    pub row: Option<ChangedRow>,
}

/// The committed row a change is about.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangedRow {
    Event(Arc<Event>),
    Log(Arc<LogEntry>),
}

const CAPACITY: usize = 4096;

/// The sending side of the feed.
#[derive(Clone)]
pub(crate) struct Feed(broadcast::Sender<Change>);

impl Feed {
    pub(crate) fn new() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }

    /// Publishes committed changes.
    pub(crate) fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            // An error only means nobody is subscribed.
            let _ = self.0.send(change);
        }
    }
}
