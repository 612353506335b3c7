//! WATCH (`?watch=true` or `?watch=1`): newline-delimited JSON events of the journal, live from
//! a broadcast channel, for `resourceVersion`s above the one asked for; without one (or `0`,
//! or with `sendInitialEvents=true`) first an ADDED per current object, then a BOOKMARK
//! annotated `k8s.io/initial-events-end` when `sendInitialEvents` and `allowWatchBookmarks`
//! ask for it. `timeoutSeconds` (default 290) ends the stream, and so does the server's
//! shutdown; a subscriber that falls more than 1024 events behind gets a 410 `Expired` ERROR
//! event and relists. `labelSelector` and `fieldSelector` (`=`, `==`, `!=` on any field path)
//! filter events; an object that stops matching arrives as DELETED and one that starts matching
//! as ADDED.
//!
//! kube-rs's `watcher` with the default `watcher::Config` sends a LIST with `limit=500` and no
//! `resourceVersion`, then a WATCH with `resourceVersion=<the list's>`, `timeoutSeconds=290` and
//! `allowWatchBookmarks=true`; with `streaming_lists()` it sends one WATCH with
//! `sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0` and waits for
//! the initial-events-end bookmark. Both work.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::stream::{self, StreamExt};
use kube_fake_client::label_selector;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::{
    sync::{broadcast, broadcast::error::RecvError},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    forward::{Front, Listed, failure, status},
    journal::{Change, Journal, Recorded},
    request::{Collection, Query},
};

const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(290);

impl Front {
    pub(super) async fn watch(&self, collection: Collection, query: &Query) -> Response {
        let watch = match Watch::parse(collection, query) {
            Ok(watch) => watch,
            Err(message) => return failure(StatusCode::BAD_REQUEST, "BadRequest", message),
        };
        let journal = self.journal.lock().await;
        // Listing also answers 404 for a resource the fake does not know.
        let listed = match self.list_objects(&watch.collection).await {
            Ok(listed) => listed,
            Err(response) => return response,
        };
        let receiver = journal.subscribe();
        let (lines, after) = match watch.resource_version {
            Some(version) if !watch.send_initial_events => {
                (watch.replay(&journal, version), version)
            }
            _ => (
                watch.initial_events(&listed, journal.highest),
                journal.highest,
            ),
        };
        drop(journal);
        let live = Live {
            receiver,
            deadline: Instant::now() + watch.timeout,
            shutdown: self.shutdown.clone(),
            watch,
            after,
            ended: false,
        };
        let live = stream::unfold(live, |mut live| async move {
            live.next_line().await.map(|line| (line, live))
        });
        let body = stream::iter(lines).chain(live).map(Ok::<_, Infallible>);
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response()
    }
}

/// One WATCH request's parameters.
struct Watch {
    collection: Collection,
    /// `None` when absent, empty or `0`: start with the current objects.
    resource_version: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
    send_initial_events: bool,
    labels: Option<String>,
    fields: Vec<FieldRequirement>,
}

impl Watch {
    /// The parameters, or why they are invalid.
    fn parse(collection: Collection, query: &Query) -> Result<Watch, String> {
        let resource_version = match query.get("resourceVersion") {
            None | Some("" | "0") => None,
            Some(version) => Some(
                version
                    .parse()
                    .map_err(|_| format!("invalid resourceVersion {version:?}"))?,
            ),
        };
        let timeout = match query.get("timeoutSeconds") {
            None => DEFAULT_WATCH_TIMEOUT,
            Some(seconds) => Duration::from_secs(
                seconds
                    .parse()
                    .map_err(|_| format!("invalid timeoutSeconds {seconds:?}"))?,
            ),
        };
        let labels = query
            .get("labelSelector")
            .filter(|selector| !selector.is_empty());
        if let Some(selector) = labels {
            label_selector::parse_label_selector(selector)?;
        }
        let fields = FieldRequirement::parse_all(query.get("fieldSelector").unwrap_or_default())?;
        Ok(Watch {
            collection,
            resource_version,
            timeout,
            bookmarks: query.flag("allowWatchBookmarks"),
            send_initial_events: query.flag("sendInitialEvents"),
            labels: labels.map(str::to_owned),
            fields,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let labels_match = self.labels.as_deref().is_none_or(|selector| {
            let labels = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect();
            label_selector::matches_label_selector(&labels, selector).unwrap_or(false)
        });
        labels_match && self.fields.iter().all(|field| field.matches(object))
    }

    /// An ADDED event per current object, then the initial-events-end bookmark if asked for.
    fn initial_events(&self, listed: &Listed, resource_version: u64) -> Vec<Bytes> {
        let mut lines: Vec<Bytes> = listed
            .items
            .iter()
            .filter(|object| self.matches(object))
            .map(|object| watch_line("ADDED", object))
            .collect();
        if self.send_initial_events && self.bookmarks {
            let bookmark = json!({
                "apiVersion": listed.api_version,
                "kind": listed.kind,
                "metadata": {
                    "resourceVersion": resource_version.to_string(),
                    "annotations": { "k8s.io/initial-events-end": "true" },
                },
            });
            lines.push(watch_line("BOOKMARK", &bookmark));
        }
        lines
    }

    fn replay(&self, journal: &Journal, resource_version: u64) -> Vec<Bytes> {
        journal
            .since(resource_version)
            .filter_map(|event| self.line(event))
            .collect()
    }

    /// The line a watcher with this scope and these selectors gets for `event`, if any.
    fn line(&self, event: &Recorded) -> Option<Bytes> {
        if !self.collection.contains(&event.collection) {
            return None;
        }
        let now = self.matches(&event.object);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|previous| self.matches(previous));
        let kind = match (event.change, before, now) {
            (Change::Added, _, true) | (Change::Modified, false, true) => "ADDED",
            (Change::Modified, true, true) => "MODIFIED",
            (Change::Deleted, _, true) | (Change::Modified, true, false) => "DELETED",
            (_, _, false) => return None,
        };
        Some(watch_line(kind, &event.object))
    }
}

/// The live part of a watch: journal events as they are recorded, until the timeout.
struct Live {
    receiver: broadcast::Receiver<Arc<Recorded>>,
    deadline: Instant,
    shutdown: CancellationToken,
    watch: Watch,
    /// Events at or below this resourceVersion were sent already or not asked for.
    after: u64,
    ended: bool,
}

impl Live {
    async fn next_line(&mut self) -> Option<Bytes> {
        while !self.ended {
            let received = tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = self.shutdown.cancelled() => return None,
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(event) if event.resource_version > self.after => {
                    if let Some(line) = self.watch.line(&event) {
                        return Some(line);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    self.ended = true;
                    return Some(watch_line("ERROR", &expired()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
        None
    }
}

/// One `fieldSelector` requirement: `path=value`, `path==value` or `path!=value`.
struct FieldRequirement {
    path: Vec<String>,
    value: String,
    equal: bool,
}

impl FieldRequirement {
    fn parse_all(selector: &str) -> Result<Vec<FieldRequirement>, String> {
        selector
            .split(',')
            .filter(|requirement| !requirement.trim().is_empty())
            .map(FieldRequirement::parse)
            .collect()
    }

    fn parse(requirement: &str) -> Result<FieldRequirement, String> {
        let (field, value, equal) = if let Some((field, value)) = requirement.split_once("!=") {
            (field, value, false)
        } else if let Some((field, value)) = requirement
            .split_once("==")
            .or_else(|| requirement.split_once('='))
        {
            (field, value, true)
        } else {
            return Err(format!(
                "invalid field selector requirement {requirement:?}"
            ));
        };
        Ok(FieldRequirement {
            path: field.trim().split('.').map(str::to_owned).collect(),
            value: value.trim().to_owned(),
            equal,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let actual = match self
            .path
            .iter()
            .try_fold(object, |value, key| value.get(key))
        {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        (actual == self.value) == self.equal
    }
}

#[derive(Serialize)]
struct WatchLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&WatchLine { kind, object }).expect("a JSON value serializes");
    line.push(b'\n');
    Bytes::from(line)
}

fn expired() -> Value {
    status(
        StatusCode::GONE,
        "Expired",
        "the watch fell too far behind; list again",
    )
}
