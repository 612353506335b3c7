//! Scaling that reacts in seconds: the database's change relay wakes the Connections whose
//! backlog moved, instead of waiting for their next poll.
//!
//! Every Hookplane process on PostgreSQL relays the events it commits with
//! `NOTIFY hookplane_changes` (see the store's `relay` module: a JSON payload
//! `{"o": origin, "c": [{"k": kind, "t": touchpoint, ...}]}`, sent after commit). The operator
//! listens on that channel, gathers the touchpoints of event changes for a short window (the
//! first change opens it, so a burst costs one wake, not thousands), marks the backlog count
//! stale and sends the touchpoints on; [`connections_to_wake`] turns them into the
//! Connections the controller reconciles. The poll every `backlogPollSeconds` stays as the
//! fallback: notifications are best effort (a listener that reconnects has missed some, and
//! wakes every Connection once it is back).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use hookplane_crds::{Connection, Touchpoint};
use kube::{ResourceExt, runtime::reflector::ObjectRef};
use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{backlog::DatabaseBacklog, metrics::Metrics};

/// The channel the data plane notifies on.
pub const CHANNEL: &str = "hookplane_changes";

/// What woke the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Events of these touchpoints (by id, the Touchpoint's `metadata.uid`) changed.
    Touchpoints(BTreeSet<String>),
    /// Notifications may have been missed (the listener reconnected): every Connection.
    All,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "c", default)]
    changes: Vec<WireChange>,
}

#[derive(Deserialize)]
struct WireChange {
    #[serde(rename = "k")]
    kind: String,
    #[serde(rename = "t")]
    touchpoint: String,
}

/// The touchpoints whose events a notification payload reports changed; log entries do not
/// move a backlog. A payload that is not a relay's yields none.
pub fn touchpoints_in(payload: &str) -> Vec<String> {
    match serde_json::from_str::<Payload>(payload) {
        Ok(payload) => payload
            .changes
            .into_iter()
            .filter(|change| change.kind.starts_with("EVENT_"))
            .map(|change| change.touchpoint)
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "ignoring a notification that is not a change relay's");
            Vec::new()
        }
    }
}

/// Listen on [`CHANNEL`] until `shutdown`, sending a [`Wake`] at most once per `window`
/// (the first change opens the window; what arrives within it rides along), after marking
/// `backlog` stale. Reconnects after a second when the connection drops, then sends
/// [`Wake::All`].
pub async fn listen(
    pool: PgPool,
    backlog: Arc<DatabaseBacklog>,
    window: Duration,
    wakes: mpsc::Sender<Wake>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut connected_before = false;
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "could not listen for backlog changes; retrying");
                metrics.wakeups.with_label_values(&["listen_error"]).inc();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        tracing::info!(channel = CHANNEL, "listening for backlog changes");
        if connected_before {
            backlog.invalidate();
            if wakes.send(Wake::All).await.is_err() {
                return;
            }
            metrics.wakeups.with_label_values(&["reconnected"]).inc();
        }
        connected_before = true;
        let ended = relay(&mut listener, &backlog, window, &wakes, &metrics, &shutdown).await;
        match ended {
            Ended::Shutdown => return,
            Ended::Lost(error) => {
                tracing::warn!(%error, "lost the backlog change notifications; reconnecting");
                metrics.wakeups.with_label_values(&["listen_error"]).inc();
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

enum Ended {
    Shutdown,
    Lost(sqlx::Error),
}

async fn relay(
    listener: &mut PgListener,
    backlog: &DatabaseBacklog,
    window: Duration,
    wakes: &mpsc::Sender<Wake>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Ended {
    loop {
        let first = tokio::select! {
            received = listener.recv() => received,
            () = shutdown.cancelled() => return Ended::Shutdown,
        };
        let mut touchpoints: BTreeSet<String> = match first {
            Ok(notification) => touchpoints_in(notification.payload()).into_iter().collect(),
            Err(error) => return Ended::Lost(error),
        };
        if touchpoints.is_empty() {
            continue;
        }
        let closes = tokio::time::Instant::now() + window;
        loop {
            tokio::select! {
                received = listener.recv() => match received {
                    Ok(notification) => touchpoints.extend(touchpoints_in(notification.payload())),
                    Err(error) => return Ended::Lost(error),
                },
                () = tokio::time::sleep_until(closes) => break,
                () = shutdown.cancelled() => return Ended::Shutdown,
            }
        }
        backlog.invalidate();
        metrics.wakeups.with_label_values(&["changes"]).inc();
        if wakes.send(Wake::Touchpoints(touchpoints)).await.is_err() {
            return Ended::Shutdown;
        }
    }
}

/// The Connections a [`Wake`] concerns: those of the named touchpoints (of `touchpoints`, the
/// controller's cache), or every one of `connections`. Sorted, without duplicates.
pub fn connections_to_wake(
    wake: &Wake,
    touchpoints: &[Arc<Touchpoint>],
    connections: &[Arc<Connection>],
) -> Vec<ObjectRef<Connection>> {
    let mut refs: Vec<ObjectRef<Connection>> = match wake {
        Wake::All => connections
            .iter()
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect(),
        Wake::Touchpoints(ids) => touchpoints
            .iter()
            .filter(|t| t.uid().is_some_and(|uid| ids.contains(&uid)))
            .filter_map(|t| crate::watches::connection_of_touchpoint(t))
            .collect(),
    };
    refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    refs.dedup();
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_changes_name_their_touchpoints_and_log_entries_do_not() {
        let payload = r#"{"o":"0190a0a0-0000-7000-8000-000000000000","c":[
            {"k":"EVENT_CREATED","t":"tp-1","i":"e-1"},
            {"k":"EVENT_UPDATED","t":"tp-2","i":"e-2","s":"SUCCESS"},
            {"k":"LOG_CREATED","t":"tp-3","i":"l-1"}]}"#;
        assert_eq!(touchpoints_in(payload), ["tp-1", "tp-2"]);
    }

    #[test]
    fn payloads_that_are_not_a_relay_s_wake_nothing() {
        for payload in [
            "",
            "null",
            "[]",
            "{\"c\": 5}",
            "{\"c\":[{\"k\":1}]}",
            "\u{0}",
        ] {
            assert!(touchpoints_in(payload).is_empty(), "{payload:?}");
        }
        assert!(touchpoints_in("{}").is_empty());
    }
}
