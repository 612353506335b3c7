//! Processing one claimed event: filter -> map -> deliver -> record the outcome.
//!
//! The event can only reach `deliver` through a [`Mapped`] value, so an unmapped event is
//! never sent. Every step writes a log-bucket entry.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use hookplane_crds::{OrderingFailure, TouchpointSpec};
use hookplane_store::{AttemptRecord, Event, LogLevel, NewLog, Outcome, Store};
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::{Deliverer, Delivery, DeliveryError, retry_delay};
use crate::{
    runtime::{Running, Runtime},
    telemetry::Metrics,
};

pub struct Processor {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    pub deliverer: Deliverer,
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

impl Processor {
    pub async fn process(&self, event: Event) {
        let snapshot = self.runtime.snapshot();
        let Some(lease_id) = event.lease_id else {
            warn!("a claimed event without a lease; leaving it");
            return;
        };
        let runnable = snapshot
            .touchpoint(event.touchpoint_id)
            .filter(|running| running.auto_sync);
        let Some(running) = runnable else {
            // Unpublished or auto-sync turned off since it was claimed: hand it back.
            debug!("touchpoint no longer runs; releasing the event");
            if let Err(error) = self.store.release_lease(event.id, lease_id).await {
                warn!(%error, "releasing the lease; it will expire instead");
            }
            return;
        };
        self.metrics.events_in_flight.inc();
        let decision = self.decide(running, &event).await;
        self.metrics.events_in_flight.dec();
        self.metrics
            .events_processed
            .with_label_values(&[decision.metric])
            .inc();
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

    async fn decide(&self, running: &Running, event: &Event) -> Decision {
        let generation = running.generation;
        let touchpoint = &running.touchpoint;
        if let Some(schema) = &running.schema
            && let Err(errors) = schema.check(&event.payload)
        {
            let message = format!(
                "the payload does not match the source schema {}: {}",
                schema.name,
                errors.join("; ")
            );
            return permanent_failure(&touchpoint.spec, None, message, generation);
        }
        if let Some(filter) = &touchpoint.filter {
            match filter.matches(&event.payload) {
                Ok(true) => {}
                Ok(false) => {
                    return Decision {
                        outcome: Outcome::Skipped { generation },
                        level: LogLevel::Info,
                        message: "skipped: the filter returned false".into(),
                        fields: json!({ "generation": generation }),
                        metric: "SKIPPED",
                    };
                }
                Err(error) => {
                    return permanent_failure(
                        &touchpoint.spec,
                        None,
                        error.to_string(),
                        generation,
                    );
                }
            }
        }
        let mapped = match touchpoint.mapping.apply(&event.payload) {
            Ok(output) => Mapped(output),
            Err(error) => {
                let message = format!("mapping failed: {error}");
                return permanent_failure(&touchpoint.spec, None, message, generation);
            }
        };
        self.deliver(running, event, mapped).await
    }

    async fn deliver(&self, running: &Running, event: &Event, mapped: Mapped) -> Decision {
        let generation = running.generation;
        let spec = &running.touchpoint.spec;
        let Mapped(output) = mapped;
        let body = match serde_json::to_vec(&output) {
            Ok(body) => body,
            Err(error) => {
                return permanent_failure(spec, Some(output), error.to_string(), generation);
            }
        };
        let number = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
        let delivery = Delivery {
            method: spec.destination.method,
            url: &running.touchpoint.destination_url,
            headers: &spec.destination.headers,
            body,
            content_type: "application/json",
            idempotency_key: event.id,
            timeout: Duration::from_secs(u64::from(spec.delivery.timeout_seconds)),
        };
        let started_at = Utc::now();
        let result = self.deliverer.send(delivery).await;
        let attempt =
            |response_status: Option<u16>, error: Option<String>, snippet: Option<String>| {
                Some(AttemptRecord {
                    started_at,
                    duration_ms: u64::try_from((Utc::now() - started_at).num_milliseconds())
                        .unwrap_or(0),
                    response_status: response_status.map(i32::from),
                    error,
                    response_snippet: snippet.filter(|s| !s.is_empty()),
                })
            };
        let (error, response_status, elapsed, snippet) = match result {
            Ok(response) if (200..300).contains(&response.status) => {
                self.metrics
                    .delivery_duration
                    .with_label_values(&["success"])
                    .observe(response.elapsed.as_secs_f64());
                let record = attempt(Some(response.status), None, Some(response.snippet.clone()));
                return Decision {
                    outcome: Outcome::Success {
                        mapped: output,
                        response_status: i32::from(response.status),
                        generation,
                        attempt: record,
                    },
                    level: LogLevel::Info,
                    message: format!("delivered: the destination answered {}", response.status),
                    fields: json!({
                        "attempt": number,
                        "status": response.status,
                        "durationMs": response.elapsed.as_millis() as u64,
                        "generation": generation,
                    }),
                    metric: "SUCCESS",
                };
            }
            Ok(response) => (
                format!(
                    "the destination answered {}: {}",
                    response.status,
                    response.snippet.trim()
                ),
                Some(i32::from(response.status)),
                Some(response.elapsed),
                Some(response.snippet),
            ),
            Err(
                error @ (DeliveryError::Timeout(_)
                | DeliveryError::Connect(_)
                | DeliveryError::Request(_)),
            ) => (error.to_string(), None, None, None),
        };
        if let Some(elapsed) = elapsed {
            self.metrics
                .delivery_duration
                .with_label_values(&["failure"])
                .observe(elapsed.as_secs_f64());
        }
        let fields = json!({
            "attempt": number,
            "status": response_status,
            "generation": generation,
        });
        let record = attempt(
            response_status.and_then(|s| u16::try_from(s).ok()),
            Some(error.clone()),
            snippet,
        );
        if number >= spec.delivery.max_attempts {
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
                message: format!("failed after {number} attempts: {error}"),
                fields,
                metric: "FAILED",
            };
        }
        let delay = retry_delay(&spec.delivery, number, &mut rand::rng());
        let next_attempt_at = Utc::now()
            + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::seconds(1));
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
                "attempt {number} failed, retrying in {} ms: {error}",
                delay.as_millis()
            ),
            fields,
            metric: "RETRY",
        }
    }
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
