//! Attempt history: one row per delivery attempt (an HTTP request made, whatever came of
//! it), written in the same transaction as the outcome that reports it.
//!
//! Rows are numbered 1, 2, ... per event for the event's whole life: a resync does not restart
//! the numbering (unlike [`super::Event::attempts`], which the retry policy counts and a resync
//! resets); [`AttemptTrigger`] tells which attempts a resync caused. The response snippet is
//! cut to [`SNIPPET_MAX_BYTES`] and the error to [`ERROR_MAX_BYTES`], on a character boundary,
//! so a destination cannot bloat the store with its answers.

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait, Func, Query},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Store, StoreError, entity::attempt, time};

/// Most bytes of a response body kept with an attempt.
pub const SNIPPET_MAX_BYTES: usize = 1024;
/// Most bytes of an attempt's error kept.
pub const ERROR_MAX_BYTES: usize = 4096;

/// What a worker reports about the HTTP request behind an outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When the request started.
    pub started_at: DateTime<Utc>,
    /// How long it took, until the response (or the failure).
    pub duration_ms: u64,
    /// The destination's HTTP status, if it answered.
    pub response_status: Option<i32>,
    /// What went wrong, if anything (a timeout, a refused connection, an error status).
    pub error: Option<String>,
    /// The start of the response body (cut to [`SNIPPET_MAX_BYTES`]).
    pub response_snippet: Option<String>,
}

/// Why an attempt was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptTrigger {
    /// The worker processed the event as it arrived (and retried it).
    Auto,
    /// The event had been resynced.
    Resync,
}

impl AttemptTrigger {
    /// The stored name: `auto` or `resync`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Resync => "resync",
        }
    }

    fn parse(stored: &str) -> Option<Self> {
        match stored {
            "auto" => Some(Self::Auto),
            "resync" => Some(Self::Resync),
            _ => None,
        }
    }
}

impl fmt::Display for AttemptTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivery attempt of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// UUIDv7.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The event's touchpoint.
    pub touchpoint_id: Uuid,
    /// 1 for the event's first attempt, counting on across resyncs.
    pub number: i32,
    /// When the request started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// The destination's HTTP status, if it answered.
    pub response_status: Option<i32>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The start of the response body.
    pub response_snippet: Option<String>,
    /// The published generation of the touchpoint that made it.
    pub generation: i64,
    /// Why it was made.
    pub trigger: AttemptTrigger,
}

impl TryFrom<attempt::Model> for Attempt {
    type Error = StoreError;

    fn try_from(row: attempt::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            event_id: row.event_id,
            touchpoint_id: row.touchpoint_id,
            number: row.number,
            started_at: row.started_at,
            duration_ms: u64::try_from(row.duration_ms)
                .map_err(|error| StoreError::invalid_row("attempts", error))?,
            response_status: row.response_status,
            error: row.error,
            response_snippet: row.response_snippet,
            generation: row.generation,
            trigger: AttemptTrigger::parse(&row.trigger).ok_or_else(|| {
                StoreError::invalid_row("attempts", format!("unknown trigger {:?}", row.trigger))
            })?,
        })
    }
}

impl Store {
    /// The attempts of an event, oldest first (empty for an unknown event).
    pub async fn attempts(&self, event_id: Uuid) -> Result<Vec<Attempt>, StoreError> {
        attempt::Entity::find()
            .filter(attempt::Column::EventId.eq(event_id))
            .order_by_asc(attempt::Column::Number)
            .all(self.db())
            .await
            .map_err(StoreError::read("attempts"))?
            .into_iter()
            .map(Attempt::try_from)
            .collect()
    }
}

/// The event an attempt belongs to, as the outcome left it.
#[derive(Clone, Debug)]
pub(crate) struct AttemptOf {
    pub(crate) event_id: Uuid,
    pub(crate) touchpoint_id: Uuid,
    pub(crate) generation: i64,
    pub(crate) trigger: AttemptTrigger,
}

/// An attempt waiting for its batch's insert; its number is the event's next.
#[derive(Clone, Debug)]
pub(crate) struct NewAttempt {
    of: AttemptOf,
    record: AttemptRecord,
}

impl NewAttempt {
    pub(crate) fn new(of: AttemptOf, record: AttemptRecord) -> Self {
        Self { of, record }
    }

    /// The values of its row, its id and number aside (on both of the writer's paths).
    pub(crate) fn row(&self) -> AttemptRow {
        let NewAttempt { of, record } = self.clone();
        AttemptRow {
            event_id: of.event_id,
            touchpoint_id: of.touchpoint_id,
            started_at: time::stored(record.started_at),
            duration_ms: i64::try_from(record.duration_ms).unwrap_or(i64::MAX),
            response_status: record.response_status,
            error: record.error.map(|error| bounded(error, ERROR_MAX_BYTES)),
            response_snippet: record
                .response_snippet
                .map(|snippet| bounded(snippet, SNIPPET_MAX_BYTES)),
            generation: of.generation,
            trigger: of.trigger.as_str(),
        }
    }
}

/// An attempt row as stored, its id and number aside.
pub(crate) struct AttemptRow {
    pub(crate) event_id: Uuid,
    pub(crate) touchpoint_id: Uuid,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) duration_ms: i64,
    pub(crate) response_status: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) response_snippet: Option<String>,
    pub(crate) generation: i64,
    pub(crate) trigger: &'static str,
}

/// Rows per `INSERT` (11 parameters each, far below every backend's parameter limit).
const INSERT_CHUNK: usize = 500;

/// Inserts `attempts` on `txn` (inside the outcomes' transaction), numbering each after the
/// last attempt of its event. Only the lease holder writes attempts of an event, and the
/// outcome's update holds the event's row, so the next number cannot race; a batch holds at
/// most one attempt per event (one outcome per lease).
pub(crate) async fn insert_all(
    txn: &impl ConnectionTrait,
    attempts: &[NewAttempt],
) -> Result<(), sea_orm::DbErr> {
    for chunk in attempts.chunks(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert.into_table(attempt::Entity).columns([
            attempt::Column::Id,
            attempt::Column::EventId,
            attempt::Column::TouchpointId,
            attempt::Column::Number,
            attempt::Column::StartedAt,
            attempt::Column::DurationMs,
            attempt::Column::ResponseStatus,
            attempt::Column::Error,
            attempt::Column::ResponseSnippet,
            attempt::Column::Generation,
            attempt::Column::Trigger,
        ]);
        for new in chunk {
            let row = new.row();
            let next_number = Query::select()
                .expr(
                    Expr::expr(Func::coalesce([
                        Expr::col(attempt::Column::Number).max(),
                        Expr::val(0),
                    ]))
                    .add(1),
                )
                .from(attempt::Entity)
                .and_where(attempt::Column::EventId.eq(row.event_id))
                .to_owned();
            insert
                .values([
                    Expr::val(Uuid::now_v7()),
                    Expr::val(row.event_id),
                    Expr::val(row.touchpoint_id),
                    Expr::SubQuery(None, Box::new(next_number.into())),
                    Expr::val(row.started_at),
                    Expr::val(row.duration_ms),
                    Expr::val(row.response_status),
                    Expr::val(row.error),
                    Expr::val(row.response_snippet),
                    Expr::val(row.generation),
                    Expr::val(row.trigger),
                ])
                .map_err(|error| sea_orm::DbErr::Custom(error.to_string()))?;
        }
        txn.execute(&insert).await?;
    }
    Ok(())
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn bounded(mut text: String, max: usize) -> String {
    text.truncate(text.floor_char_boundary(max));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_char_boundary() {
        assert_eq!(bounded("short".into(), 1024), "short");
        let long = "é".repeat(600); // 1200 bytes, two per char
        let cut = bounded(long, SNIPPET_MAX_BYTES);
        assert_eq!(cut.len(), 1024);
        let odd = bounded("aé".repeat(400), 1024); // 'a' + 2-byte 'é' = 3 bytes per pair
        assert!(odd.len() <= 1024 && odd.len() >= 1022, "{}", odd.len());
        assert!(odd.is_char_boundary(odd.len()));
        assert_eq!(bounded("€€".into(), 4), "€", "a 3-byte char never split");
    }

    #[test]
    fn triggers_round_trip() {
        for trigger in [AttemptTrigger::Auto, AttemptTrigger::Resync] {
            assert_eq!(AttemptTrigger::parse(trigger.as_str()), Some(trigger));
            assert_eq!(
                serde_json::to_value(trigger).ok(),
                Some(serde_json::Value::from(trigger.as_str()))
            );
        }
        assert_eq!(AttemptTrigger::parse("AUTO"), None);
    }
}
