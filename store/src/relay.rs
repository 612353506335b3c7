//! The change feed across processes, on PostgreSQL.
//!
//! On Kubernetes the API, the receivers and the workers are separate processes on one
//! database, so an in-process feed alone would leave the API's subscriptions blind to what
//! receivers store and workers deliver, and workers blind to events another process received
//! or resynced. Every store on PostgreSQL therefore relays its committed changes with
//! `NOTIFY hookplane_changes` and listens on that channel, republishing what other stores
//! committed into its own feed.
//!
//! What a listener may rely on:
//! - **After commit.** A change is notified only after the transaction that made it
//!   committed (the relay is fed by the feed, which is fed after commit).
//! - **Ids, not rows.** A relayed change carries its kind, touchpoint, id and status;
//!   `row` is `None`, so a subscriber loads the row (the current one, which may be newer).
//! - **Best effort.** A process that dies between its commit and its `NOTIFY`, a listener
//!   that is reconnecting, or a relay queue that is full (more than [`QUEUE`] batches waiting)
//!   loses notifications, never data: subscriptions are live views of the database, and
//!   workers still poll at their idle interval.
//! - **Own changes are not repeated.** Each store has an origin id; a listener skips its own.

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, sqlx::postgres::PgListener,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::{Change, ChangeKind, EventStatus};

/// The notification channel.
pub(crate) const CHANNEL: &str = "hookplane_changes";
/// Batches of changes waiting to be notified before new ones are dropped.
pub(crate) const QUEUE: usize = 1024;
/// Largest payload sent in one `NOTIFY` (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7_000;

/// A change as notified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireChange {
    #[serde(rename = "k")]
    kind: ChangeKind,
    #[serde(rename = "t")]
    touchpoint_id: Uuid,
    #[serde(rename = "i")]
    id: Uuid,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    status: Option<EventStatus>,
}

impl From<&Change> for WireChange {
    fn from(change: &Change) -> Self {
        Self {
            kind: change.kind,
            touchpoint_id: change.touchpoint_id,
            id: change.id,
            status: change.status,
        }
    }
}

impl From<WireChange> for Change {
    fn from(wire: WireChange) -> Self {
        Change {
            kind: wire.kind,
            touchpoint_id: wire.touchpoint_id,
            id: wire.id,
            status: wire.status,
            row: None,
        }
    }
}

/// One `NOTIFY` payload.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Payload {
    /// The store that committed the changes.
    #[serde(rename = "o")]
    origin: Uuid,
    #[serde(rename = "c")]
    changes: Vec<WireChange>,
}

/// Payloads of at most [`MAX_PAYLOAD`] bytes for `changes`.
fn payloads(origin: Uuid, changes: Vec<WireChange>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<WireChange> = Vec::new();
    let mut size = 64;
    for change in changes {
        // About 120 bytes each; measure rather than guess.
        let len = serde_json::to_string(&change).map_or(0, |s| s.len()) + 1;
        if size + len > MAX_PAYLOAD && !current.is_empty() {
            out.push(encode(origin, std::mem::take(&mut current)));
            size = 64;
        }
        size += len;
        current.push(change);
    }
    if !current.is_empty() {
        out.push(encode(origin, current));
    }
    out
}

fn encode(origin: Uuid, changes: Vec<WireChange>) -> String {
    serde_json::to_string(&Payload { origin, changes }).expect("a payload serializes")
}

/// Sends queued changes with `pg_notify` until `stop`, then sends what is still queued.
pub(crate) async fn notify(
    db: DatabaseConnection,
    origin: Uuid,
    mut queue: mpsc::Receiver<Vec<WireChange>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let first = tokio::select! {
            batch = queue.recv() => batch,
            _ = &mut stop => None,
        };
        let Some(mut changes) = first else { break };
        while let Ok(more) = queue.try_recv() {
            changes.extend(more);
        }
        send(&db, origin, changes).await;
    }
    let mut rest = Vec::new();
    while let Ok(more) = queue.try_recv() {
        rest.extend(more);
    }
    if !rest.is_empty() {
        send(&db, origin, rest).await;
    }
}

async fn send(db: &DatabaseConnection, origin: Uuid, changes: Vec<WireChange>) {
    for payload in payloads(origin, changes) {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        );
        if let Err(error) = db.execute_raw(statement).await {
            tracing::warn!(%error, "could not relay changes to other processes");
        }
    }
}

/// Republishes other stores' changes into `local` until the task is aborted.
pub(crate) async fn listen(
    db: DatabaseConnection,
    origin: Uuid,
    local: broadcast::Sender<Change>,
    listening: oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    loop {
        let pool = db.get_postgres_connection_pool();
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "could not listen for other processes' changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "could not listen for other processes' changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if let Some(listening) = listening.take() {
            let _ = listening.send(());
        }
        loop {
            match listener.recv().await {
                Ok(notification) => republish(notification.payload(), origin, &local),
                Err(error) => {
                    tracing::warn!(%error, "lost the change notifications connection; reconnecting");
                    break;
                }
            }
        }
    }
}

fn republish(payload: &str, origin: Uuid, local: &broadcast::Sender<Change>) {
    match serde_json::from_str::<Payload>(payload) {
        Ok(payload) if payload.origin == origin => {}
        Ok(payload) => {
            for change in payload.changes {
                // An error only means nobody is subscribed.
                let _ = local.send(change.into());
            }
        }
        Err(error) => tracing::warn!(%error, "ignoring a malformed change notification"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u128) -> WireChange {
        WireChange {
            kind: ChangeKind::EventUpdated,
            touchpoint_id: Uuid::from_u128(n),
            id: Uuid::from_u128(n + 1),
            status: Some(EventStatus::Unprocessed),
        }
    }

    #[test]
    fn payloads_stay_under_the_notify_limit_and_lose_nothing() {
        let origin = Uuid::from_u128(7);
        let changes: Vec<_> = (0..500).map(change).collect();
        let sent = payloads(origin, changes.clone());
        assert!(sent.len() > 1);
        let mut back = Vec::new();
        for payload in &sent {
            assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
            let decoded: Payload = serde_json::from_str(payload).unwrap();
            assert_eq!(decoded.origin, origin);
            back.extend(decoded.changes);
        }
        assert_eq!(back, changes);
        assert!(payloads(origin, Vec::new()).is_empty());
    }

    #[test]
    fn own_and_malformed_notifications_are_not_republished() {
        let (local, mut seen) = broadcast::channel(16);
        let origin = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        republish(&encode(origin, vec![change(10)]), origin, &local);
        republish("{not json", origin, &local);
        republish(&encode(other, vec![change(20)]), origin, &local);
        let received = seen.try_recv().unwrap();
        assert_eq!(received.touchpoint_id, Uuid::from_u128(20));
        assert_eq!(received.row, None);
        assert!(seen.try_recv().is_err());
    }
}
