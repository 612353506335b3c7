//! The in-process change feed: what happened to which row, sent after commit.
//!
//! A change carries ids, for events the status the change set, and the committed row itself
//! (shared, so a thousand subscribers of one touchpoint cost one row, not a thousand loads). Sending never blocks a
//! writer: with no subscriber the change is dropped, and a slow subscriber lags (and is told
//! so by `broadcast`) instead of holding anyone up.

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use std::sync::Arc;

use crate::{Event, EventStatus, LogEntry, relay::WireChange};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// The sending side of the feed; on PostgreSQL it also queues changes for the relay to
/// other processes (`crate::relay`).
#[derive(Clone)]
pub(crate) struct Feed {
    local: broadcast::Sender<Change>,
    relay: Option<mpsc::Sender<Vec<WireChange>>>,
}

impl Feed {
    pub(crate) fn new(relay: Option<mpsc::Sender<Vec<WireChange>>>) -> Self {
        Self {
            local: broadcast::channel(CAPACITY).0,
            relay,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }

    /// Where changes from other processes are republished.
    pub(crate) fn local(&self) -> broadcast::Sender<Change> {
        self.local.clone()
    }

    /// Publishes committed changes, here and (on PostgreSQL) to other processes.
    pub(crate) fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        let mut wire = Vec::new();
        for change in changes {
            if self.relay.is_some() {
                wire.push(WireChange::from(&change));
            }
            // An error only means nobody is subscribed.
            let _ = self.local.send(change);
        }
        if let Some(relay) = &self.relay
            && !wire.is_empty()
            && relay.try_send(wire).is_err()
        {
            tracing::debug!(
                "the change relay is full or closed; other processes miss a notification"
            );
        }
    }
}
