//! The statuses the operator writes, computed from plain values.
//!
//! A condition keeps its `lastTransitionTime` while its status stays the same, and every
//! field is a function of the inputs, so reconciling an unchanged world computes a status
//! equal to the one already stored, and nothing is written.

use hookplane_crds::{ConnectionStatus, TouchpointStatus, condition};
use k8s_openapi::{
    api::apps::v1::Deployment,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

use crate::{
    backlog::Backlog,
    settings::Settings,
    validate::{Problem, ValidTouchpoint, Validated},
};

/// How far a Deployment has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Replicas asked for.
    pub desired: i32,
    /// Replicas ready.
    pub ready: i32,
    /// The Deployment controller has rolled out the current template to every replica.
    pub current: bool,
}

impl Rollout {
    /// The rollout of `deployment`, as its status reports it.
    pub fn of(deployment: &Deployment) -> Self {
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let observed =
            status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(1);
        Self {
            desired,
            ready: status.ready_replicas.unwrap_or(0),
            current: observed && status.updated_replicas.unwrap_or(0) >= desired,
        }
    }

    fn serving(self) -> bool {
        self.current && (self.desired == 0 || self.ready >= 1)
    }
}

/// What a reconcile of a valid connection decided and observed.
pub struct Observed<'a> {
    pub connection: &'a Validated,
    pub config_hash: &'a str,
    /// Worker replicas asked for.
    pub workers: i32,
    pub receivers: Rollout,
    pub worker_rollout: Rollout,
    /// The backlog, when the API answered.
    pub backlog: Option<&'a Backlog>,
    /// For endpoint URLs.
    pub settings: &'a Settings,
}

impl Observed<'_> {
    fn total_backlog(&self) -> Option<i64> {
        let backlog = self.backlog?;
        Some(
            self.connection
                .touchpoints()
                .iter()
                .map(|t| backlog.get(&t.id).copied().unwrap_or(0))
                .sum(),
        )
    }

    /// `Degraded`: the reason it is, or `None`.
    fn degradation(&self) -> Option<(&'static str, String)> {
        let worker = &self.connection.spec().worker;
        let capacity = i64::from(worker.max_replicas) * worker.target_backlog_per_replica;
        match self.total_backlog() {
            None => Some((
                "BacklogUnavailable",
                "the database did not answer the backlog query; worker replicas are kept"
                    .to_owned(),
            )),
            Some(backlog) if backlog > capacity => Some((
                "BacklogAboveCapacity",
                format!(
                    "backlog {backlog} is above what {} workers handle ({capacity}); raise worker.maxReplicas",
                    worker.max_replicas
                ),
            )),
            Some(_) if self.receivers.ready < self.receivers.desired => Some((
                "ReceiversUnavailable",
                format!(
                    "{} of {} receivers are ready",
                    self.receivers.ready, self.receivers.desired
                ),
            )),
            Some(_) => None,
        }
    }
}

/// The status of a valid connection.
pub fn connection(
    current: Option<&ConnectionStatus>,
    generation: Option<i64>,
    observed: &Observed<'_>,
    now: Timestamp,
) -> ConnectionStatus {
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let ready = observed.receivers.serving() && observed.worker_rollout.serving();
    let ready_condition = if ready {
        (
            "Running",
            "receivers and workers run the current configuration".to_owned(),
        )
    } else {
        (
            "RollingOut",
            format!(
                "receivers {}/{} ready, workers {}/{} ready",
                observed.receivers.ready,
                observed.receivers.desired,
                observed.worker_rollout.ready,
                observed.workers
            ),
        )
    };
    let degraded = observed.degradation();
    ConnectionStatus {
        observed_generation: generation,
        touchpoints: Some(observed.connection.touchpoints().len() as i32),
        backlog: observed.total_backlog().or(current.and_then(|s| s.backlog)),
        ready_replicas: Some(observed.receivers.ready),
        worker_replicas: Some(observed.workers),
        ready_workers: Some(observed.worker_rollout.ready),
        config_hash: Some(observed.config_hash.to_owned()),
        conditions: vec![
            set(
                existing,
                condition::READY,
                ready,
                ready_condition,
                generation,
                now,
            ),
            degraded_condition(existing, degraded, generation, now),
        ],
    }
}

/// The status of a connection that cannot run: what runs keeps running and its fields stay.
pub fn invalid_connection(
    current: Option<&ConnectionStatus>,
    generation: Option<i64>,
    problem: &Problem,
    now: Timestamp,
) -> ConnectionStatus {
    let mut status = current.cloned().unwrap_or_default();
    let reason = (problem.reason, problem.message.clone());
    status.conditions = vec![set(
        &status.conditions,
        condition::READY,
        false,
        reason,
        generation,
        now,
    )];
    status.observed_generation = generation;
    status
}

/// The status of a touchpoint in the running configuration.
pub fn published_touchpoint(
    current: Option<&TouchpointStatus>,
    touchpoint: &ValidTouchpoint,
    observed: &Observed<'_>,
    now: Timestamp,
) -> TouchpointStatus {
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = Some(touchpoint.generation);
    let hash: String = observed.config_hash.chars().take(12).collect();
    let published = (
        "Published",
        format!(
            "generation {} is in the running configuration {hash}",
            touchpoint.published_generation
        ),
    );
    let serving = observed.receivers.ready >= 1;
    let ready = if serving {
        (
            "Serving",
            format!("{} receivers accept its webhooks", observed.receivers.ready),
        )
    } else {
        ("ReceiversNotReady", "no receiver is ready yet".to_owned())
    };
    TouchpointStatus {
        observed_generation: generation,
        endpoint_url: observed.settings.endpoint_url(
            observed.connection.namespace(),
            &touchpoint.touchpoint.spec().source.endpoint,
        ),
        backlog: match observed.backlog {
            Some(backlog) => Some(backlog.get(&touchpoint.id).copied().unwrap_or(0)),
            None => current.and_then(|s| s.backlog),
        },
        ready_replicas: Some(observed.receivers.ready),
        conditions: vec![
            set(existing, condition::READY, serving, ready, generation, now),
            set(
                existing,
                condition::PUBLISHED,
                true,
                published,
                generation,
                now,
            ),
            degraded_condition(existing, observed.degradation(), generation, now),
        ],
    }
}

/// The status of a touchpoint that is not in the running configuration.
pub fn rejected_touchpoint(
    current: Option<&TouchpointStatus>,
    generation: Option<i64>,
    problem: &Problem,
    now: Timestamp,
) -> TouchpointStatus {
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let reason = || (problem.reason, problem.message.clone());
    TouchpointStatus {
        observed_generation: generation,
        endpoint_url: None,
        backlog: current.and_then(|s| s.backlog),
        ready_replicas: None,
        conditions: vec![
            set(existing, condition::READY, false, reason(), generation, now),
            set(
                existing,
                condition::PUBLISHED,
                false,
                reason(),
                generation,
                now,
            ),
        ],
    }
}

fn degraded_condition(
    existing: &[Condition],
    degradation: Option<(&'static str, String)>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    match degradation {
        Some(reason) => set(existing, condition::DEGRADED, true, reason, generation, now),
        None => set(
            existing,
            condition::DEGRADED,
            false,
            ("AsExpected", "running as expected".to_owned()),
            generation,
            now,
        ),
    }
}

/// A condition; its transition time is kept from `existing` when its status did not change.
fn set(
    existing: &[Condition],
    type_: &str,
    status: bool,
    (reason, message): (&str, String),
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = existing
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        // Whole seconds: what the API server stores, so a re-read compares equal.
        .unwrap_or_else(|| {
            Time(Timestamp::from_second(now.as_second()).expect("a current time is in range"))
        });
    Condition {
        last_transition_time,
        message,
        observed_generation: generation,
        reason: reason.to_owned(),
        status: status.to_owned(),
        type_: type_.to_owned(),
    }
}

/// The condition of `type_` that changed status between `old` and `new`, if any.
pub fn transitioned<'a>(
    old: &[Condition],
    new: &'a [Condition],
    type_: &str,
) -> Option<&'a Condition> {
    let new = new.iter().find(|c| c.type_ == type_)?;
    let old = old.iter().find(|c| c.type_ == type_);
    (old.map(|c| (&c.status, &c.reason)) != Some((&new.status, &new.reason))).then_some(new)
}
