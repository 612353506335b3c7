//! Where the backlog comes from: the UNPROCESSED events of each touchpoint, by touchpoint id
//! (the Touchpoint's `metadata.uid`).
//!
//! [`DatabaseBacklog`] counts them in PostgreSQL, the database the data plane shares. One
//! answer covers every touchpoint, so a poll of many connections costs one query.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use sqlx::{PgPool, postgres::PgPoolOptions};

/// UNPROCESSED events by touchpoint id.
pub type Backlog = HashMap<String, i64>;

/// Reading the backlog failed; the operator keeps the current worker count.
#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    #[error("counting the backlog in the database")]
    Database {
        #[source]
        source: sqlx::Error,
    },
    #[error("{0}")]
    Unavailable(String),
}

/// A source of backlog counts.
#[async_trait]
pub trait BacklogSource: Send + Sync {
    /// The backlog of every touchpoint the source knows; touchpoints it does not know have
    /// none.
    async fn backlog(&self) -> Result<Arc<Backlog>, BacklogError>;
}

/// The database's own count: `UNPROCESSED` events grouped by touchpoint, one query for every
/// touchpoint, reused for `max_age` unless [`DatabaseBacklog::invalidate`] says the events
/// changed since (the change relay does, see [`crate::wakeups`]).
///
/// The operator reads PostgreSQL with the data plane's URL rather than asking the API: the
/// API answers only authenticated callers, and a token the operator would have to be given
/// per organization buys nothing over the Secret the chart already mounts.
pub struct DatabaseBacklog {
    pool: PgPool,
    max_age: Duration,
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    answer: Option<(Instant, Arc<Backlog>)>,
    /// An answer read before this is stale whatever its age.
    stale_before: Option<Instant>,
}

const QUERY: &str = "SELECT touchpoint_id::text, count(*) FROM events \
                     WHERE status = 'UNPROCESSED' GROUP BY touchpoint_id";

impl DatabaseBacklog {
    /// Count on `pool`, reusing an answer for `max_age`.
    pub fn new(pool: PgPool, max_age: Duration) -> Self {
        Self {
            pool,
            max_age,
            cached: Mutex::new(Cached::default()),
        }
    }

    /// A small pool on `url` (connections are opened when first used): the operator counts
    /// and listens, nothing more.
    pub fn connect(url: &str, timeout: Duration) -> Result<PgPool, BacklogError> {
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(timeout)
            .connect_lazy(url)
            .map_err(|source| BacklogError::Database { source })
    }

    /// The events changed: the next [`BacklogSource::backlog`] counts again.
    pub fn invalidate(&self) {
        self.cached.lock().expect("not poisoned").stale_before = Some(Instant::now());
    }

    async fn count(&self) -> Result<Backlog, BacklogError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(QUERY)
            .fetch_all(&self.pool)
            .await
            .map_err(|source| BacklogError::Database { source })?;
        Ok(rows.into_iter().collect())
    }
}

#[async_trait]
impl BacklogSource for DatabaseBacklog {
    async fn backlog(&self) -> Result<Arc<Backlog>, BacklogError> {
        let started = Instant::now();
        {
            let cached = self.cached.lock().expect("not poisoned");
            if let Some((at, backlog)) = &cached.answer
                && at.elapsed() < self.max_age
                && cached.stale_before.is_none_or(|stale| *at > stale)
            {
                return Ok(backlog.clone());
            }
        }
        let backlog = Arc::new(self.count().await?);
        let mut cached = self.cached.lock().expect("not poisoned");
        // Stamped with the time the count started: a change during it makes it stale.
        cached.answer = Some((started, backlog.clone()));
        Ok(backlog)
    }
}

/// A backlog set by hand: for tests and for rendering objects without an API.
pub struct StaticBacklog(Mutex<Result<Arc<Backlog>, String>>);

impl StaticBacklog {
    /// A source answering `backlog`.
    pub fn new(backlog: Backlog) -> Self {
        Self(Mutex::new(Ok(Arc::new(backlog))))
    }

    /// Answer `backlog` from now on.
    pub fn set(&self, backlog: Backlog) {
        *self.0.lock().expect("not poisoned") = Ok(Arc::new(backlog));
    }

    /// Fail with `message` from now on.
    pub fn fail(&self, message: &str) {
        *self.0.lock().expect("not poisoned") = Err(message.to_owned());
    }
}

impl Default for StaticBacklog {
    fn default() -> Self {
        Self::new(Backlog::new())
    }
}

#[async_trait]
impl BacklogSource for StaticBacklog {
    async fn backlog(&self) -> Result<Arc<Backlog>, BacklogError> {
        self.0
            .lock()
            .expect("not poisoned")
            .clone()
            .map_err(BacklogError::Unavailable)
    }
}
