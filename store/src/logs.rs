//! The log bucket: structured entries per touchpoint (and per event), appended through the
//! group-commit writer and read newest first.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{Page, Store, StoreError, entity::log, error::is_foreign_key_violation};

/// Severity, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogLevel {
    /// Step-by-step detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something to look at; processing continued.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The name: `DEBUG`, `INFO`, `WARN`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// The stored rank: more severe is greater.
    pub(crate) fn rank(self) -> i16 {
        match self {
            Self::Debug => 0,
            Self::Info => 1,
            Self::Warn => 2,
            Self::Error => 3,
        }
    }

    fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            0 => Some(Self::Debug),
            1 => Some(Self::Info),
            2 => Some(Self::Warn),
            3 => Some(Self::Error),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`LogLevel`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown log level {0:?}")]
pub struct ParseLevelError(pub String);

impl FromStr for LogLevel {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "DEBUG" => Ok(Self::Debug),
            "INFO" => Ok(Self::Info),
            "WARN" => Ok(Self::Warn),
            "ERROR" => Ok(Self::Error),
            other => Err(ParseLevelError(other.to_owned())),
        }
    }
}

/// A log entry to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewLog {
    /// The touchpoint it is about.
    pub touchpoint_id: Uuid,
    /// The event it is about, if any.
    pub event_id: Option<Uuid>,
    /// Severity.
    pub level: LogLevel,
    /// What happened.
    pub message: String,
    /// Structured details (an object).
    pub fields: Value,
}

/// One entry of a log bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// UUIDv7: later entries have greater ids.
    pub id: Uuid,
    /// The touchpoint it is about.
    pub touchpoint_id: Uuid,
    /// The event it is about, if any.
    pub event_id: Option<Uuid>,
    /// When it was written.
    pub time: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// What happened.
    pub message: String,
    /// Structured details.
    pub fields: Value,
}

impl TryFrom<log::Model> for LogEntry {
    type Error = StoreError;

    fn try_from(row: log::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            touchpoint_id: row.touchpoint_id,
            event_id: row.event_id,
            time: row.time,
            level: LogLevel::from_rank(row.level).ok_or_else(|| {
                StoreError::invalid_row("logs", format!("unknown level {}", row.level))
            })?,
            message: row.message,
            fields: row.fields,
        })
    }
}

/// A page of a log bucket, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogQuery {
    /// The touchpoint.
    pub touchpoint_id: Uuid,
    /// Only entries at this level or more severe.
    pub level: Option<LogLevel>,
    /// Only entries about this event.
    pub event_id: Option<Uuid>,
    /// Page size.
    pub first: u64,
    /// Cursor: only entries older than (id less than) this one.
    pub after: Option<Uuid>,
}

impl Store {
    /// Appends log entries; returns after they are committed. All or none are stored
    /// ([`StoreError::TouchpointNotFound`] if one names an unknown touchpoint).
    pub async fn append_logs(&self, logs: Vec<NewLog>) -> Result<Vec<LogEntry>, StoreError> {
        if logs.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.writer.append_logs(logs).await
    }

    /// A page of a touchpoint's log bucket, newest first.
    pub async fn logs(&self, q: LogQuery) -> Result<Page<LogEntry>, StoreError> {
        let mut query = log::Entity::find()
            .filter(log::Column::TouchpointId.eq(q.touchpoint_id))
            .order_by_desc(log::Column::Id)
            .limit(Page::<LogEntry>::limit(q.first));
        if let Some(level) = q.level {
            query = query.filter(log::Column::Level.gte(level.rank()));
        }
        if let Some(event_id) = q.event_id {
            query = query.filter(log::Column::EventId.eq(event_id));
        }
        if let Some(after) = q.after {
            query = query.filter(log::Column::Id.lt(after));
        }
        let rows = query
            .all(self.db())
            .await
            .map_err(StoreError::read("log entries"))?
            .into_iter()
            .map(LogEntry::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, q.first))
    }

    /// The log entry with this id.
    pub async fn log_entry(&self, id: Uuid) -> Result<Option<LogEntry>, StoreError> {
        log::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::read("a log entry"))?
            .map(LogEntry::try_from)
            .transpose()
    }
}

/// Rows per `INSERT`: 7 parameters each stays far below every backend's parameter limit.
const INSERT_CHUNK: usize = 1000;

/// The entries `logs` become when written at `now` (each with a fresh id).
pub(crate) fn entries(logs: Vec<NewLog>, now: DateTime<Utc>) -> Vec<LogEntry> {
    logs.into_iter()
        .map(|new| LogEntry {
            id: Uuid::now_v7(),
            touchpoint_id: new.touchpoint_id,
            event_id: new.event_id,
            time: now,
            level: new.level,
            message: new.message,
            fields: new.fields,
        })
        .collect()
}

/// Inserts `entries` on `txn` (inside the group-commit writer), a thousand rows per
/// statement. [`StoreError::TouchpointNotFound`] when one names an unknown touchpoint.
pub(crate) async fn insert_entries(
    txn: &impl ConnectionTrait,
    entries: &[LogEntry],
) -> Result<(), StoreError> {
    for chunk in entries.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().map(|entry| log::ActiveModel {
            id: Set(entry.id),
            touchpoint_id: Set(entry.touchpoint_id),
            event_id: Set(entry.event_id),
            time: Set(entry.time),
            level: Set(entry.level.rank()),
            message: Set(entry.message.clone()),
            fields: Set(entry.fields.clone()),
        });
        log::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(|error| {
                if is_foreign_key_violation(&error) {
                    StoreError::TouchpointNotFound
                } else {
                    StoreError::AppendLogs(error)
                }
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_and_order() {
        for level in [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ] {
            assert_eq!(level.as_str().parse(), Ok(level));
            assert_eq!(LogLevel::from_rank(level.rank()), Some(level));
        }
        assert!(LogLevel::Debug < LogLevel::Error);
        assert!(LogLevel::Warn.rank() < LogLevel::Error.rank());
    }
}
