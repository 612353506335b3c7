//! Where the backlog comes from: the UNPROCESSED events of each touchpoint, by touchpoint id
//! (the Touchpoint's `metadata.uid`).
//!
//! The operator asks the Hookplane API, so it needs no database credentials:
//! [`HttpBacklog`] POSTs `{ touchpoints { id bucketCounts { unprocessed } } }` to
//! `<api>/graphql`. One answer covers every touchpoint, so it is cached for a few seconds and
//! a poll of many connections costs one request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde::Deserialize;

/// UNPROCESSED events by touchpoint id.
pub type Backlog = HashMap<String, i64>;

/// Reading the backlog failed; the operator keeps the current worker count.
#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    #[error("requesting the backlog from {url}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the API answered the backlog query with errors: {0}")]
    GraphQl(String),
}

/// A source of backlog counts.
#[async_trait]
pub trait BacklogSource: Send + Sync {
    /// The backlog of every touchpoint the source knows; touchpoints it does not know have
    /// none.
    async fn backlog(&self) -> Result<Arc<Backlog>, BacklogError>;
}

/// The Hookplane API's GraphQL endpoint.
pub struct HttpBacklog {
    client: reqwest::Client,
    url: String,
    max_age: Duration,
    cached: Mutex<Option<(Instant, Arc<Backlog>)>>,
}

const QUERY: &str = "{ touchpoints { id bucketCounts { unprocessed } } }";

#[derive(Deserialize)]
struct Response {
    data: Option<Data>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
struct Data {
    touchpoints: Vec<TouchpointCounts>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TouchpointCounts {
    id: String,
    bucket_counts: BucketCounts,
}

#[derive(Deserialize)]
struct BucketCounts {
    unprocessed: i64,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: String,
}

impl HttpBacklog {
    /// Ask the API at `api_url` (e.g. `http://hookplane-api.hookplane:8080`), reusing an answer
    /// for `max_age`.
    pub fn new(api_url: &str, timeout: Duration, max_age: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a reqwest client with a timeout builds");
        Self {
            client,
            url: format!("{}/graphql", api_url.trim_end_matches('/')),
            max_age,
            cached: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<Backlog, BacklogError> {
        let request_error = |source| BacklogError::Request {
            url: self.url.clone(),
            source,
        };
        let response: Response = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "query": QUERY }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(request_error)?
            .json()
            .await
            .map_err(request_error)?;
        match response.data {
            Some(data) if response.errors.is_empty() => Ok(data
                .touchpoints
                .into_iter()
                .map(|t| (t.id, t.bucket_counts.unprocessed))
                .collect()),
            _ => {
                let messages: Vec<_> = response.errors.into_iter().map(|e| e.message).collect();
                Err(BacklogError::GraphQl(messages.join("; ")))
            }
        }
    }
}

#[async_trait]
impl BacklogSource for HttpBacklog {
    async fn backlog(&self) -> Result<Arc<Backlog>, BacklogError> {
        let fresh = |(at, backlog): &(Instant, Arc<Backlog>)| {
            (at.elapsed() < self.max_age).then(|| backlog.clone())
        };
        if let Some(backlog) = self
            .cached
            .lock()
            .expect("not poisoned")
            .as_ref()
            .and_then(fresh)
        {
            return Ok(backlog);
        }
        let backlog = Arc::new(self.fetch().await?);
        *self.cached.lock().expect("not poisoned") = Some((Instant::now(), backlog.clone()));
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
            .map_err(BacklogError::GraphQl)
    }
}
