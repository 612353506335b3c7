//! Processing one admitted event: validate against the source schema -> filter -> map ->
//! render -> deliver -> record the outcome.
//!
//! The event can only reach `deliver` through a [`Mapped`] value, so an unmapped event is
//! never sent. Every step writes a log-bucket entry, every HTTP request (to the destination or,
//! when no token could be had, the OAuth2 token endpoint) an attempt record. The destination's
//! answer goes back to its limiter (success, or a `429`/`503` pushback) before the outcome is
//! recorded, so the next request to it already obeys. An event whose request has not started
//! when the worker shuts down is handed back, not left to its lease.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use hookplane_crds::{OrderingFailure, TouchpointSpec};
use hookplane_store::{AttemptRecord, Event, LogLevel, NewLog, Outcome, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{
    Deliverer, Delivery, DeliveryError,
    auth::AccessToken,
    deliver::Response,
    destinations::Destination,
    limiter::Permit,
    policy::{self, Pushback, Verdict},
    render::render,
};
use crate::{runtime::Running, telemetry::Metrics};

pub struct Processor {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub deliverer: Deliverer,
}

/// An event the worker leased and its destination admitted.
pub struct Job {
    pub event: Event,
    pub lease_id: Uuid,
    pub running: Arc<Running>,
    pub destination: Arc<Destination>,
    pub permit: Permit,
}

/// The destination payload of an event that passed the filter and mapped cleanly.
struct Mapped(Value);

/// The result of one processing step chain, before it is stored.
struct Decision {
    outcome: Outcome,
    level: LogLevel,
    message: String,
    fields: Value,
    metric: &'static str,
}

/// How one HTTP exchange went, for the attempt history.
struct Exchange {
    started_at: DateTime<Utc>,
    duration: Duration,
    result: Result<Response, String>,
}

impl Processor {
    pub async fn process(&self, job: Job, shutdown: &CancellationToken) {
        let Job {
            event,
            lease_id,
            running,
            destination,
            permit,
        } = job;
        self.metrics.events_in_flight.inc();
        let decision = self
            .decide(&running, &destination, &event, permit, shutdown)
            .await;
        self.metrics.events_in_flight.dec();
        let Some(decision) = decision else {
            debug!("shutting down before the request started; handing the event back");
            if let Err(error) = self.store.release_lease(event.id, lease_id).await {
                warn!(%error, "releasing the lease; it will expire instead");
            }
            return;
        };
        self.metrics
            .events_processed
            .with_label_values(&[decision.metric])
            .inc();
        if decision.metric == "RETRY" {
            self.metrics.delivery_retries.inc();
        }
        let log = NewLog {
            touchpoint_id: event.touchpoint_id,
            event_id: Some(event.id),
            level: decision.level,
            message: decision.message,
            fields: decision.fields,
        };
        let recorded = self
            .store
            .record_outcome(event.id, lease_id, decision.outcome)
            .await;
        if let Err(error) = recorded {
            // The lease expires and the event is processed again: at least once, never lost.
            warn!(%error, "recording the outcome; the event will be retried after its lease");
            return;
        }
        if let Err(error) = self.store.append_logs(vec![log]).await {
            warn!(%error, "writing the outcome log");
        }
    }

    /// `None` when shutdown came before the request started.
    async fn decide(
        &self,
        running: &Running,
        destination: &Destination,
        event: &Event,
        permit: Permit,
        shutdown: &CancellationToken,
    ) -> Option<Decision> {
        let generation = running.generation;
        let touchpoint = &running.touchpoint;
        let spec = touchpoint.spec();
        if let Some(schema) = &running.schema
            && let Err(errors) = schema.check(&event.payload)
        {
            permit.unused();
            let message = format!(
                "the payload does not match the source schema {}: {}",
                schema.name,
                errors.join("; ")
            );
            return Some(permanent_failure(spec, None, message, generation));
        }
        if let Some(filter) = touchpoint.filter() {
            match filter.matches(&event.payload) {
                Ok(true) => {}
                Ok(false) => {
                    permit.unused();
                    return Some(Decision {
                        outcome: Outcome::Skipped { generation },
                        level: LogLevel::Info,
                        message: "skipped: the filter returned false".into(),
                        fields: json!({ "generation": generation }),
                        metric: "SKIPPED",
                    });
                }
                Err(error) => {
                    permit.unused();
                    return Some(permanent_failure(spec, None, error.to_string(), generation));
                }
            }
        }
        let mapped = match touchpoint.mapping().apply(&event.payload) {
            Ok(output) => Mapped(output),
            Err(error) => {
                permit.unused();
                let message = format!("mapping failed: {error}");
                return Some(permanent_failure(spec, None, message, generation));
            }
        };
        self.deliver(running, destination, event, mapped, permit, shutdown)
            .await
    }

    async fn deliver(
        &self,
        running: &Running,
        destination: &Destination,
        event: &Event,
        mapped: Mapped,
        permit: Permit,
        shutdown: &CancellationToken,
    ) -> Option<Decision> {
        let generation = running.generation;
        let spec = running.touchpoint.spec();
        let Mapped(output) = mapped;
        let prepared = render(
            spec.destination.format,
            spec.destination.xml_root.as_deref(),
            &output,
        )
        .map_err(|error| error_chain(&error))
        .and_then(|body| {
            let url = running.touchpoint.destination_url().fill(&output);
            Ok((body, url.map_err(|error| error.to_string())?))
        });
        let (body, url) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                permit.unused();
                return Some(permanent_failure(spec, Some(output), error, generation));
            }
        };
        let attempt = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
        let auth = &destination.connection.auth;
        if !auth.problems.is_empty() {
            permit.unused();
            let error = format!(
                "the connection's credentials are incomplete: {}",
                auth.problems.join("; ")
            );
            return Some(self.retry_or_fail(spec, output, attempt, error, None, None, generation));
        }
        if shutdown.is_cancelled() {
            permit.unused();
            return None;
        }
        let timeout = Duration::from_secs(u64::from(spec.delivery.timeout_seconds));
        let client = self.deliverer.client();
        let mut refreshed = false;
        let exchange = loop {
            let started_at = Utc::now();
            let clock = std::time::Instant::now();
            let bearer: Option<AccessToken> = match &destination.tokens {
                None => None,
                // No request has gone to the destination yet: shutdown may hand it back.
                Some(tokens) => match tokio::select! {
                    token = tokens.token(client, timeout) => token,
                    () = shutdown.cancelled(), if !refreshed => return None,
                } {
                    Ok(token) => Some(token),
                    Err(error) => {
                        break Exchange {
                            started_at,
                            duration: clock.elapsed(),
                            result: Err(error.to_string()),
                        };
                    }
                },
            };
            let sent = self
                .deliverer
                .send(Delivery {
                    method: spec.destination.method,
                    url: &url,
                    headers: &spec.destination.headers,
                    body: &body,
                    idempotency_key: event.id,
                    timeout,
                    auth,
                    bearer: bearer.as_ref(),
                })
                .await;
            if let (Ok(response), Some(tokens), Some(token)) = (&sent, &destination.tokens, &bearer)
                && response.status == 401
                && !refreshed
            {
                // The token may have been revoked early: one fresh token, one more try.
                tokens.invalidate(token).await;
                refreshed = true;
                continue;
            }
            break Exchange {
                started_at,
                duration: clock.elapsed(),
                result: sent.map_err(|error: DeliveryError| error.to_string()),
            };
        };
        let now = std::time::Instant::now();
        let (status, headers) = match &exchange.result {
            Ok(response) => (Some(response.status), Some(&response.headers)),
            Err(_) => (None, None),
        };
        let verdict = status.map(|status| policy::classify(status, &spec.delivery));
        let retry_after = match (status, headers) {
            (Some(status), Some(headers)) => policy::retry_after(status, headers, Utc::now()),
            _ => None,
        };
        match status.and_then(Pushback::of) {
            Some(pushback) => {
                self.throttled(pushback.label());
                if permit.pushed_back(retry_after, now) {
                    self.throttled("retry_after_hold");
                }
            }
            None if verdict == Some(Verdict::Delivered) => permit.succeeded(now),
            None => {}
        }
        drop(permit);
        self.metrics
            .delivery_duration
            .with_label_values(&[if verdict == Some(Verdict::Delivered) {
                "success"
            } else {
                "failure"
            }])
            .observe(exchange.duration.as_secs_f64());
        let record = |error: Option<String>| AttemptRecord {
            started_at: exchange.started_at,
            duration_ms: u64::try_from(exchange.duration.as_millis()).unwrap_or(u64::MAX),
            response_status: status.map(i32::from),
            error,
            response_snippet: exchange
                .result
                .as_ref()
                .ok()
                .map(|response| response.snippet.clone())
                .filter(|snippet| !snippet.is_empty()),
        };
        let fields = |extra: Value| {
            let mut fields = json!({
                "attempt": attempt,
                "status": status,
                "durationMs": u64::try_from(exchange.duration.as_millis()).unwrap_or(u64::MAX),
                "generation": generation,
            });
            if let (Value::Object(fields), Value::Object(extra)) = (&mut fields, extra) {
                fields.extend(extra);
            }
            fields
        };
        let response = match &exchange.result {
            Ok(response) => response,
            Err(error) => {
                let error = error.clone();
                return Some(self.retry_or_fail(
                    spec,
                    output,
                    attempt,
                    error.clone(),
                    Some(record(Some(error))),
                    None,
                    generation,
                ));
            }
        };
        match verdict {
            Some(Verdict::Delivered) => Some(Decision {
                outcome: Outcome::Success {
                    mapped: output,
                    response_status: i32::from(response.status),
                    generation,
                    attempt: Some(record(None)),
                },
                level: LogLevel::Info,
                message: format!("delivered: the destination answered {}", response.status),
                fields: fields(json!({})),
                metric: "SUCCESS",
            }),
            Some(Verdict::Permanent) => {
                let error = answer_error(response);
                let mut decision = permanent_failure(spec, Some(output), error.clone(), generation);
                if let Outcome::Failed {
                    response_status,
                    attempt,
                    ..
                } = &mut decision.outcome
                {
                    *response_status = Some(i32::from(response.status));
                    *attempt = Some(record(Some(error)));
                }
                decision.fields = fields(json!({ "permanent": true }));
                Some(decision)
            }
            Some(Verdict::Retryable) | None => {
                let error = answer_error(response);
                Some(self.retry_or_fail(
                    spec,
                    output,
                    attempt,
                    error.clone(),
                    Some(record(Some(error))),
                    retry_after,
                    generation,
                ))
            }
        }
    }

    /// A retryable failure: try again after the backoff (and any `Retry-After`), or FAILED
    /// when the attempts are used up.
    #[allow(clippy::too_many_arguments)]
    fn retry_or_fail(
        &self,
        spec: &TouchpointSpec,
        output: Value,
        attempt: u32,
        error: String,
        record: Option<AttemptRecord>,
        retry_after: Option<Duration>,
        generation: i64,
    ) -> Decision {
        let response_status = record.as_ref().and_then(|record| record.response_status);
        let fields = json!({
            "attempt": attempt,
            "status": response_status,
            "durationMs": record.as_ref().map(|record| record.duration_ms),
            "generation": generation,
        });
        let Some(delay) =
            policy::next_attempt(&spec.delivery, attempt, retry_after, &mut rand::rng())
        else {
            return Decision {
                outcome: Outcome::Failed {
                    mapped: Some(output),
                    error: error.clone(),
                    response_status,
                    generation,
                    attempt: record,
                    park: parks(spec),
                },
                level: LogLevel::Error,
                message: format!("failed after {attempt} attempts: {error}"),
                fields,
                metric: "FAILED",
            };
        };
        let next_attempt_at = Utc::now()
            + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(1));
        Decision {
            outcome: Outcome::Retry {
                mapped: Some(output),
                error: error.clone(),
                response_status,
                next_attempt_at,
                generation,
                attempt: record,
            },
            level: LogLevel::Warn,
            message: format!(
                "attempt {attempt} failed, retrying in {} ms: {error}",
                delay.as_millis()
            ),
            fields,
            metric: "RETRY",
        }
    }

    fn throttled(&self, reason: &str) {
        self.metrics
            .delivery_throttled
            .with_label_values(&[reason])
            .inc();
    }
}

/// What a non-2xx answer says, for the event's error.
fn answer_error(response: &Response) -> String {
    let snippet = response.snippet.trim();
    let mut error = format!("the destination answered {}", response.status);
    if (300..400).contains(&response.status) {
        error.push_str(" (redirects are not followed");
        if let Some(location) = response
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
        {
            error.push_str(&format!("; it points to {location}"));
        }
        error.push(')');
    }
    if !snippet.is_empty() {
        error.push_str(": ");
        error.push_str(snippet);
    }
    error
}

/// An error and its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a FAILED event steps aside for the rest of its ordering key.
fn parks(spec: &TouchpointSpec) -> bool {
    spec.ordering
        .as_ref()
        .is_some_and(|ordering| ordering.on_failure == OrderingFailure::Park)
}

fn permanent_failure(
    spec: &TouchpointSpec,
    mapped: Option<Value>,
    error: String,
    generation: i64,
) -> Decision {
    Decision {
        message: format!("failed: {error}"),
        outcome: Outcome::Failed {
            mapped,
            error,
            response_status: None,
            generation,
            attempt: None,
            park: parks(spec),
        },
        level: LogLevel::Error,
        fields: json!({ "generation": generation }),
        metric: "FAILED",
    }
}
