//! The reconcilers and what they share.
//!
//! [`connection`] turns a Connection and its Touchpoints into running objects and statuses;
//! [`touchpoint`] reports Touchpoints whose Connection does not exist (nobody else would);
//! `report` writes the statuses both compute and records Events on transitions.
//! Each is a pipeline: fetch -> validate -> build -> apply -> status, where only fetch, apply
//! and status touch the cluster. A spec the user must fix is not an error: it is a condition
//! and an Event, and the reconcile waits for a change. Errors are transient (the API server
//! failed) and are retried with backoff.

pub mod claim;
pub mod connection;
mod report;
pub mod touchpoint;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};

use crate::{backlog::BacklogSource, metrics::Metrics, scaling::Stabilizers, settings::Settings};

/// A reconcile failed for a reason that may pass: it is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {kind} {name}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {kind} {name}")]
    WriteStatus {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The metric label of this failure.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Apply { .. } => "apply",
            Self::Delete { .. } => "delete",
            Self::WriteStatus { .. } => "status",
        }
    }
}

/// Time, as the reconcilers see it.
pub trait Clock: Send + Sync {
    /// Monotonic time, for scaling windows.
    fn now(&self) -> Instant;
    /// Wall-clock time, for condition transition times.
    fn wall(&self) -> Timestamp;
}

/// The system's clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
pub struct ManualClock {
    start: Instant,
    wall: Timestamp,
    elapsed: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            wall: Timestamp::from_second(1_800_000_000).expect("a valid timestamp"),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().expect("not poisoned") += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().expect("not poisoned")
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn wall(&self) -> Timestamp {
        self.wall + self.elapsed()
    }
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub backlog: Arc<dyn BacklogSource>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub stabilizers: Stabilizers,
    /// The Lease this operator claims Connections with (see [`claim`]); `None` claims
    /// nothing (tests, or an operator that is alone by construction).
    pub claim: Option<claim::Claim>,
    /// What reconciles read instead of listing, once the controllers set it up; unset, they
    /// read the API server (tests, `render`).
    pub caches: std::sync::OnceLock<crate::cache::Caches>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        backlog: Arc<dyn BacklogSource>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::build::MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            backlog,
            metrics,
            clock,
            stabilizers: Stabilizers::default(),
            claim: None,
            caches: std::sync::OnceLock::new(),
            failures: Mutex::default(),
        }
    }

    /// Claim Connections for the operator of `claim`'s Lease.
    pub fn claiming(mut self, claim: claim::Claim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// Record a Kubernetes Event on `object`. Failing to record one is logged, not fatal.
    pub async fn event<K>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, reason, "recording an event");
        }
    }

    /// Forget the failures of `key` after a successful reconcile.
    fn succeeded(&self, key: &str) {
        self.failures.lock().expect("not poisoned").remove(key);
    }

    /// Count a failure of `key`; the delay before the next attempt (5 s doubling to 5 min).
    fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("not poisoned");
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        Duration::from_secs(5u64.saturating_mul(1 << (*count - 1).min(6)))
            .min(Duration::from_secs(300))
    }
}

/// Run `reconcile`, one reconcile of `object` by the `controller` (its metric label): time
/// and count it, forget `object`'s past failures when it succeeds, and record a
/// `ReconcileFailed` Event when it fails. The failure itself goes on to [`error_policy`].
async fn observed<K>(
    controller: &'static str,
    object: &K,
    ctx: &Context,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
{
    let started = Instant::now();
    let result = reconcile.await;
    let category = result.as_ref().err().map(Error::category);
    ctx.metrics.reconciled(controller, started, category);
    match &result {
        Ok(_) => ctx.succeeded(&backoff_key(object)),
        Err(error) => {
            let note = format!("{error}: {}", source_of(error));
            ctx.event(object, true, "ReconcileFailed", "Reconcile", note)
                .await;
        }
    }
    result
}

/// Retry a failed reconcile with backoff; log it (the reconciler recorded an Event).
pub fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = key(object.as_ref());
    let delay = ctx.failed(&backoff_key(object.as_ref()));
    tracing::warn!(object = %key, error = %error, cause = ?std::error::Error::source(error), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// What failures are counted by: `Kind/namespace/name`, so a Touchpoint and a Connection of
/// one name back off separately.
pub fn backoff_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!("{}/{}", K::kind(&()), key(object))
}

/// `namespace/name` of an object.
pub fn key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// The innermost cause of an error, for messages (the Display of each error names only its
/// own action).
fn source_of(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
