//! Processing one admitted event, as named steps:
//!
//! ```text
//! map        source schema -> filter -> mapping (pure)          -> Mapped   | SKIPPED, FAILED
//! render     body and URL from the mapped output (pure)         -> Request  | FAILED
//! authorize  complete credentials (pure), the OAuth2 token                  | retry
//! send       the destination's permit, the request, one retry on a 401 -> Exchange
//! classify   limiter feedback, metrics, the decision (pure)     -> Decision
//! record     outcome, attempt row, retry schedule and log entry, one commit
//! ```
//!
//! Guarantees: only a [`Mapped`] output is rendered and only a rendered [`Request`] is sent,
//! so an unmapped event never reaches a destination. The destination's [`Permit`] is taken
//! only as the request goes out: a step before it that ends the event just drops the worker's
//! [`Admission`], which gives the room back. The answer goes back to the limiter before the
//! outcome is recorded, so the next request already obeys. Every HTTP request (to the
//! destination or, when no token could be had, the OAuth2 token endpoint) becomes an attempt
//! record. The outcome and its log entry are one commit
//! ([`Store::record_outcome_of`]), never one without the other. An event whose request
//! has not started when the worker shuts down is handed back, not left to its lease.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use hookplane_mapping::{Sandbox, SandboxError};
use hookplane_store::{Event, Store};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{
    Deliverer, Delivery, authorize,
    classify::{Answer, Exchange, NoAnswer, classify},
    decision::{Attempt, Decision},
    destinations::Destination,
    limiter::{Admission, Permit},
    render::{self, Request},
};
use crate::{runtime::Running, telemetry::Metrics};

pub struct Processor {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub deliverer: Deliverer,
    /// Where the filter and mapping run under the touchpoint's limits.
    pub sandbox: Sandbox,
}

/// An event the worker leased and its destination admitted.
pub struct Job {
    pub event: Event,
    pub lease_id: Uuid,
    pub running: Arc<Running>,
    pub destination: Arc<Destination>,
    /// The room the destination reserved for it; a permit once the request goes out.
    pub admission: Admission,
}

/// A worker slot held while an event is mapped and delivered. Recording the outcome waits for
/// the store's next group commit, which is no reason to keep another event from starting:
/// once delivered, the slot is traded for one of the (more) recording places, so the worker's
/// concurrency counts deliveries, and outcomes waiting for their commit stay bounded too.
pub struct Slot {
    pub delivering: OwnedSemaphorePermit,
    pub recording: Arc<Semaphore>,
}

impl Slot {
    /// Trades the delivering slot for a recording place (waiting for one if all are taken).
    async fn delivered(self) -> Option<OwnedSemaphorePermit> {
        let recording = self.recording.acquire_owned().await.ok();
        drop(self.delivering);
        recording
    }
}

/// The destination payload of an event that passed the filter and mapped cleanly.
struct Mapped(Value);

impl Processor {
    /// Maps, delivers and records `job`. `slot` is the worker's: it is given back once the
    /// request is done, before the outcome is recorded (see [`Slot`]).
    pub async fn process(&self, job: Job, slot: Slot, shutdown: &CancellationToken) {
        let Job {
            event,
            lease_id,
            running,
            destination,
            admission,
        } = job;
        self.metrics.events_in_flight.inc();
        let decision = match map(&running, &event.payload, &self.sandbox).await {
            Ok(mapped) => {
                self.deliver(&running, &destination, &event, mapped, admission, shutdown)
                    .await
            }
            Err(decision) => Some(*decision),
        };
        self.metrics.events_in_flight.dec();
        let _recording = slot.delivered().await;
        match decision {
            Some(decision) => self.record(event, lease_id, decision).await,
            None => {
                debug!("shutting down before the request started; handing the event back");
                if let Err(error) = self.store.release_lease(event.id, lease_id).await {
                    warn!(
                        error = &error as &dyn std::error::Error,
                        "releasing the lease; it will expire instead"
                    );
                }
            }
        }
    }

    /// render -> authorize -> send -> classify. `None` when shutdown came before the request
    /// started. Every return drops `admission` or the permit it became: the destination's
    /// room is free before the outcome is recorded.
    async fn deliver(
        &self,
        running: &Running,
        destination: &Destination,
        event: &Event,
        Mapped(output): Mapped,
        admission: Admission,
        shutdown: &CancellationToken,
    ) -> Option<Decision> {
        let spec = running.touchpoint.spec();
        let attempt = Attempt {
            spec,
            generation: running.generation,
            number: u32::try_from(event.attempts).unwrap_or(0).saturating_add(1),
        };
        let destination_url = running.touchpoint.destination_url();
        let request = match render::request(&spec.destination, destination_url, &output) {
            Ok(request) => request,
            Err(error) => {
                return Some(Decision::permanent(
                    spec,
                    attempt.generation,
                    Some(output),
                    error,
                ));
            }
        };
        if let Err(error) = authorize::credentials(&destination.connection.auth) {
            let now = Utc::now();
            let rng = &mut rand::rng();
            return Some(Decision::retry_or_fail(
                &attempt, output, error, None, None, now, rng,
            ));
        }
        if shutdown.is_cancelled() {
            return None;
        }
        let (exchange, permit) = self
            .send(
                running,
                destination,
                event.id,
                &request,
                admission,
                shutdown,
            )
            .await?;
        let answer = Answer::of(&exchange, &spec.delivery, Utc::now());
        self.feedback(permit, &answer, exchange.duration);
        let now = Utc::now();
        let rng = &mut rand::rng();
        Some(classify(&attempt, output, exchange, &answer, now, rng))
    }

    /// The send step: the OAuth2 token (while only its first fetch runs, shutdown may still
    /// hand the event back: `None`), then the destination's permit and the request, and after
    /// a `401` on a token one fresh token and one more request under the same permit, as part
    /// of the same attempt. No permit when no request was sent (no token could be had): the
    /// admission gave the room back.
    async fn send(
        &self,
        running: &Running,
        destination: &Destination,
        event_id: Uuid,
        request: &Request,
        admission: Admission,
        shutdown: &CancellationToken,
    ) -> Option<(Exchange, Option<Permit>)> {
        let spec = running.touchpoint.spec();
        let timeout = Duration::from_secs(u64::from(spec.delivery.timeout_seconds));
        let deliverer = &self.deliverer;
        let tokens = destination.tokens.as_deref();
        let mut started_at = Utc::now();
        let mut clock = Instant::now();
        let bearer = tokio::select! {
            biased;
            bearer = authorize::bearer(tokens, deliverer, timeout) => bearer,
            () = shutdown.cancelled() => return None,
        };
        let bearer = match bearer {
            Ok(bearer) => bearer,
            Err(error) => {
                let exchange = Exchange {
                    started_at,
                    duration: clock.elapsed(),
                    result: Err(error),
                };
                return Some((exchange, None));
            }
        };
        let permit = admission.send();
        let delivery = |bearer| Delivery {
            method: spec.destination.method,
            url: &request.url,
            headers: &running.destination_headers,
            body: &request.body,
            idempotency_key: event_id,
            timeout,
            auth: &destination.connection.auth,
            bearer,
        };
        let sent = self.deliverer.send(delivery(bearer.as_ref())).await;
        let mut result = sent.map_err(NoAnswer::from);
        if let (Ok(response), Some(tokens), Some(used)) = (&result, tokens, &bearer)
            && response.status == 401
        {
            // The token may have been revoked early: one fresh token, one more try.
            started_at = Utc::now();
            clock = Instant::now();
            result = match authorize::refresh(tokens, used, deliverer, timeout).await {
                Ok(fresh) => {
                    let sent = self.deliverer.send(delivery(fresh.as_ref())).await;
                    sent.map_err(NoAnswer::from)
                }
                Err(error) => Err(error),
            };
        }
        let exchange = Exchange {
            started_at,
            duration: clock.elapsed(),
            result,
        };
        Some((exchange, Some(permit)))
    }

    /// The destination's answer goes back to its limiter (a `429`/`503` slows it down and a
    /// `Retry-After` holds it, a success lets it recover) and to the delivery metrics.
    /// Dropping the permit frees the destination's slot.
    fn feedback(&self, permit: Option<Permit>, answer: &Answer, took: Duration) {
        let now = Instant::now();
        if let Some(permit) = permit {
            match answer.pushback {
                Some(pushback) => {
                    self.throttled(pushback.label());
                    if permit.pushed_back(answer.retry_after, now) {
                        self.throttled("retry_after_hold");
                    }
                }
                None if answer.delivered() => permit.succeeded(now),
                None => {}
            }
        }
        let label = if answer.delivered() {
            "success"
        } else {
            "failure"
        };
        self.metrics
            .delivery_duration
            .with_label_values(&[label])
            .observe(took.as_secs_f64());
    }

    /// The record step: the outcome and its log entry in one commit. The event goes with
    /// them, so the store need not read it back.
    async fn record(&self, event: Event, lease_id: Uuid, decision: Decision) {
        self.metrics
            .events_processed
            .with_label_values(&[decision.metric])
            .inc();
        if decision.metric == "RETRY" {
            self.metrics.delivery_retries.inc();
        }
        if decision.metric == "FAILED" {
            // One line per failed event at the default level; the bucket has the details.
            warn!(
                event = %event.id,
                touchpoint = %event.touchpoint_id,
                "event failed: {}",
                decision.log.message
            );
        }
        let recorded = self
            .store
            .record_outcome_of(event, lease_id, decision.outcome, decision.log)
            .await;
        if let Err(error) = recorded {
            // The lease expires and the event is processed again: at least once, never lost.
            warn!(
                error = &error as &dyn std::error::Error,
                "recording the outcome; the event will be retried after its lease"
            );
        }
    }

    fn throttled(&self, reason: &str) {
        self.metrics
            .delivery_throttled
            .with_label_values(&[reason])
            .inc();
    }
}

/// The map step: the payload against the source schema, then the filter, then the mapping,
/// both under the touchpoint's limits in the sandbox. `Err` is the event's decision (SKIPPED
/// by the filter, FAILED when retrying cannot change the outcome: a schema mismatch, a jq
/// error, a limit exceeded; a retry when no evaluator could run), boxed as the rare path.
async fn map(
    running: &Running,
    payload: &Value,
    sandbox: &Sandbox,
) -> Result<Mapped, Box<Decision>> {
    let generation = running.generation;
    let touchpoint = &running.touchpoint;
    let spec = touchpoint.spec();
    let failed = |error: String| Box::new(Decision::permanent(spec, generation, None, error));
    let unavailable = |error: SandboxError| {
        warn!(%error, "no evaluator could run the touchpoint's jq; retrying the event later");
        Box::new(Decision::evaluator_unavailable(
            generation,
            error.to_string(),
            Utc::now(),
        ))
    };
    if let Some(schema) = &running.schema
        && let Err(errors) = schema.check(payload)
    {
        return Err(failed(format!(
            "the payload does not match the source schema {}: {}",
            schema.name,
            errors.join("; ")
        )));
    }
    if let Some(filter) = touchpoint.filter() {
        match sandbox.filter(filter, payload, &running.limits).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err(Box::new(Decision::skipped(generation))),
            Ok(Err(error)) => return Err(Box::new(Decision::map_failed(spec, generation, &error))),
            Err(error) => return Err(unavailable(error)),
        }
    }
    match sandbox
        .map(touchpoint.mapping(), payload, &running.limits)
        .await
    {
        Ok(Ok(output)) => Ok(Mapped(output)),
        Ok(Err(error)) => Err(Box::new(Decision::map_failed(spec, generation, &error))),
        Err(error) => Err(unavailable(error)),
    }
}
