//! The resync bucket: every event a touchpoint received, with its processing state.
//!
//! Submodules: [`append`] (inserts, run inside the group-commit writer), [`query`] (reads),
//! [`queue`] (the work-queue side: claim, release, resync, next due time), [`outcome`]
//! (recording outcomes, with their log entries, inside the group-commit writer),
//! [`attempts`] (the delivery attempts behind outcomes), [`ordering`] (the per-key rule claims
//! follow).

use std::{fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Utc};
use hookplane_sources::ParsedEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use self::{
    append::IntakeLog,
    attempts::{Attempt, AttemptRecord, AttemptTrigger},
    outcome::OutcomeLog,
};
use crate::{StoreError, entity::event};

pub(crate) mod append;
pub(crate) mod attempts;
mod ordering;
pub(crate) mod outcome;
mod query;
pub(crate) mod queue;

/// Where an event is in its processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    /// Waiting to be processed (new, retrying, resynced, or auto-sync is off).
    Unprocessed,
    /// Delivered.
    Success,
    /// Gave up: attempts exhausted or a permanent error.
    Failed,
    /// The touchpoint's filter excluded it.
    Skipped,
}

impl EventStatus {
    /// The stored (and GraphQL) name: `UNPROCESSED`, `SUCCESS`, `FAILED`, `SKIPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unprocessed => "UNPROCESSED",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an [`EventStatus`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown event status {0:?}")]
pub struct ParseStatusError(pub String);

impl FromStr for EventStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "UNPROCESSED" => Ok(Self::Unprocessed),
            "SUCCESS" => Ok(Self::Success),
            "FAILED" => Ok(Self::Failed),
            "SKIPPED" => Ok(Self::Skipped),
            other => Err(ParseStatusError(other.to_owned())),
        }
    }
}

/// A verified webhook to append to a touchpoint's bucket.
///
/// Only a [`ParsedEvent`] becomes one ([`NewEvent::received`]), and a `ParsedEvent` only comes
/// out of `hookplane_sources`' verify-then-parse chain: the store never takes an event nobody
/// verified. Its fields are private, so a struct literal does not compile:
///
/// ```compile_fail,E0451
/// # use hookplane_store::NewEvent;
/// let forged = NewEvent {
///     touchpoint_id: uuid::Uuid::nil(),
///     headers: serde_json::json!({}),
///     raw_body: Vec::new(),
///     payload: serde_json::json!({"forged": true}),
///     dedupe_key: None,
///     ordering_key: None,
/// };
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The touchpoint it arrived at.
    pub(crate) touchpoint_id: Uuid,
    /// Request headers: an object of name -> string.
    pub(crate) headers: Value,
    /// The body exactly as received.
    pub(crate) raw_body: Vec<u8>,
    /// The body parsed to JSON.
    pub(crate) payload: Value,
    /// The source's delivery id; a second event with the same key for the same touchpoint is
    /// absorbed as a duplicate.
    pub(crate) dedupe_key: Option<String>,
    /// Events of the touchpoint with the same key are processed one at a time, in arrival
    /// order (see [`crate::Store::claim_due_events`]). `None`: no ordering.
    pub(crate) ordering_key: Option<String>,
    /// Stored FAILED at once, with this error, instead of UNPROCESSED (see
    /// [`NewEvent::failed_at_intake`]).
    pub(crate) intake_failure: Option<IntakeFailure>,
}

/// Why an event is stored FAILED as it arrives.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IntakeFailure {
    pub(crate) error: String,
    pub(crate) parked: bool,
}

impl NewEvent {
    /// The event `parsed` (one of the events of a delivery that passed its app's verifier) as
    /// it arrived at `touchpoint_id`, with the delivery's `headers` (an object of name ->
    /// string, credentials already left out) and `raw_body`. Its dedupe key is the app's.
    pub fn received(
        touchpoint_id: Uuid,
        parsed: ParsedEvent,
        headers: Value,
        raw_body: Vec<u8>,
    ) -> Self {
        let dedupe_key = Some(parsed.dedupe_key().to_owned());
        Self {
            touchpoint_id,
            headers,
            raw_body,
            payload: parsed.into_payload(),
            dedupe_key,
            ordering_key: None,
            intake_failure: None,
        }
    }

    /// The same event, stored FAILED with `error` as it arrives (still acknowledged: nothing
    /// received is lost, and a resync processes it again), parked when `parked`. Intake uses it
    /// when what it must compute for the event (its ordering key) exceeded its limits.
    pub fn failed_at_intake(self, error: String, parked: bool) -> Self {
        Self {
            intake_failure: Some(IntakeFailure { error, parked }),
            ..self
        }
    }

    /// The same event, processed one at a time, in arrival order, with the touchpoint's
    /// other events of `key` (`None`: unordered).
    pub fn with_ordering_key(self, key: Option<String>) -> Self {
        Self {
            ordering_key: key,
            ..self
        }
    }

    /// The touchpoint it arrived at.
    pub fn touchpoint_id(&self) -> Uuid {
        self.touchpoint_id
    }

    /// The body parsed to JSON.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// The source's de-duplication key.
    pub fn dedupe_key(&self) -> Option<&str> {
        self.dedupe_key.as_deref()
    }

    /// Its ordering key, if the touchpoint orders events.
    pub fn ordering_key(&self) -> Option<&str> {
        self.ordering_key.as_deref()
    }
}

/// What appending one event did. The event is shared with the change it published, so
/// that every subscriber and the caller hold one copy of its payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Appended {
    /// A new event.
    Created(Arc<Event>),
    /// An event with the same dedupe key already existed; its `duplicates` was incremented
    /// and this is it.
    Duplicate(Arc<Event>),
}

impl Appended {
    /// The stored event, new or existing.
    pub fn event(&self) -> &Event {
        match self {
            Self::Created(event) | Self::Duplicate(event) => event,
        }
    }

    /// The stored event, new or existing (a copy if the change feed still holds it).
    pub fn into_event(self) -> Event {
        match self {
            Self::Created(event) | Self::Duplicate(event) => Arc::unwrap_or_clone(event),
        }
    }

    /// The stored event, shared.
    pub fn shared_event(&self) -> &Arc<Event> {
        match self {
            Self::Created(event) | Self::Duplicate(event) => event,
        }
    }

    /// Whether the event already existed.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate(_))
    }
}

/// One entry of a resync bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// UUIDv7: later events have greater ids. Also the delivery's `Idempotency-Key`.
    pub id: Uuid,
    /// The touchpoint it belongs to.
    pub touchpoint_id: Uuid,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// Request headers: an object of name -> string.
    pub headers: Value,
    /// The body exactly as received.
    pub raw_body: Vec<u8>,
    /// The body parsed to JSON.
    pub payload: Value,
    /// The source's delivery id, if it sends one (also once a later event with the same key
    /// took it over after the dedupe window).
    pub dedupe_key: Option<String>,
    /// How many duplicates of it arrived later.
    pub duplicates: i32,
    /// Its ordering key, if the touchpoint orders events.
    pub ordering_key: Option<String>,
    /// Processing status.
    pub status: EventStatus,
    /// FAILED and stepped aside so later events of its key go ahead (park mode); a FAILED
    /// event with a key that is not parked holds its key back until resynced.
    pub parked: bool,
    /// Delivery attempts so far (reset by a resync).
    pub attempts: i32,
    /// When it is (next) due.
    pub next_attempt_at: DateTime<Utc>,
    /// Set while a worker has leased it.
    pub lease_until: Option<DateTime<Utc>>,
    /// The token of the claim that leased it: pass it to [`crate::Store::record_outcome`] and
    /// [`crate::Store::release_lease`]. A later claim (after the lease expired) or a resync
    /// replaces it, and the old holder's outcome is refused.
    pub lease_id: Option<Uuid>,
    /// The mapped output of the last attempt.
    pub mapped_output: Option<Value>,
    /// The error of the last attempt.
    pub last_error: Option<String>,
    /// The destination's HTTP status in the last attempt.
    pub response_status: Option<i32>,
    /// The published generation of the touchpoint that last processed it.
    pub published_generation: Option<i64>,
    /// When its last delivery attempt started (see [`crate::Store::attempts`]).
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<event::Model> for Event {
    type Error = StoreError;

    fn try_from(row: event::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            touchpoint_id: row.touchpoint_id,
            received_at: row.received_at,
            headers: row.headers,
            raw_body: row.raw_body,
            payload: row.payload,
            dedupe_key: row.dedupe_key.or(row.retired_dedupe_key),
            duplicates: row.duplicates,
            ordering_key: row.ordering_key,
            status: row
                .status
                .parse()
                .map_err(|error| StoreError::invalid_row("events", error))?,
            parked: row.parked,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            lease_until: row.lease_until,
            lease_id: row.lease_id,
            mapped_output: row.mapped_output,
            last_error: row.last_error,
            response_status: row.response_status,
            published_generation: row.published_generation,
            last_attempt_at: row.last_attempt_at,
            updated_at: row.updated_at,
        })
    }
}

/// The result of processing a leased event. `Success`, `Retry` and `Failed` count as a
/// delivery attempt; `Skipped` does not. `generation` is the published generation that ran.
/// `attempt` describes the HTTP request, if one was made (`None` when, say, the mapping
/// failed): it becomes a row of the event's attempt history, in the same transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Delivered: status SUCCESS.
    Success {
        /// The mapped output that was delivered.
        mapped: Value,
        /// The destination's HTTP status.
        response_status: i32,
        /// The published generation that ran.
        generation: i64,
        /// The request that delivered it.
        attempt: Option<AttemptRecord>,
    },
    /// The filter excluded it: status SKIPPED.
    Skipped {
        /// The published generation that ran.
        generation: i64,
    },
    /// Try again later: stays UNPROCESSED, due at `next_attempt_at`.
    Retry {
        /// The mapped output, if mapping got that far.
        mapped: Option<Value>,
        /// What went wrong.
        error: String,
        /// The destination's HTTP status, if it answered.
        response_status: Option<i32>,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
        /// The published generation that ran.
        generation: i64,
        /// The request that failed, if one was made.
        attempt: Option<AttemptRecord>,
    },
    /// Give up: status FAILED (until resynced).
    Failed {
        /// For an event with an ordering key: step aside so later events of the key go ahead
        /// (park mode); `false` holds the key back until this event is resynced (block mode).
        park: bool,
        /// The mapped output, if mapping got that far.
        mapped: Option<Value>,
        /// What went wrong.
        error: String,
        /// The destination's HTTP status, if it answered.
        response_status: Option<i32>,
        /// The published generation that ran.
        generation: i64,
        /// The request that failed, if one was made.
        attempt: Option<AttemptRecord>,
    },
}

impl Outcome {
    /// Whether this outcome counts as a delivery attempt. Skipping does not, and neither does
    /// failing before delivery: FAILED without a mapped output or a request (a schema
    /// mismatch, a filter or mapping error, an expression over its limits) spends none.
    pub fn is_attempt(&self) -> bool {
        !matches!(
            self,
            Self::Skipped { .. }
                | Self::Failed {
                    mapped: None,
                    attempt: None,
                    ..
                }
        )
    }
}

/// A page of a resync bucket, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    /// The touchpoint.
    pub touchpoint_id: Uuid,
    /// Only events with this status.
    pub status: Option<EventStatus>,
    /// Only events received at or after this time.
    pub received_from: Option<DateTime<Utc>>,
    /// Only events received at or before this time (inclusive, like `received_from`).
    pub received_to: Option<DateTime<Utc>>,
    /// Only the event with this id, or events whose de-duplication key or ordering key is
    /// exactly this (a portal's "search by id or key").
    pub search: Option<String>,
    /// Page size.
    pub first: u64,
    /// Cursor: only events older than (id less than) this one.
    pub after: Option<Uuid>,
}

/// Events per status (of a touchpoint, or of all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    /// UNPROCESSED events.
    pub unprocessed: i64,
    /// SUCCESS events.
    pub success: i64,
    /// FAILED events.
    pub failed: i64,
    /// SKIPPED events.
    pub skipped: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for status in [
            EventStatus::Unprocessed,
            EventStatus::Success,
            EventStatus::Failed,
            EventStatus::Skipped,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(Value::from(status.as_str()))
            );
        }
        assert!("unprocessed".parse::<EventStatus>().is_err());
    }
}
