//! `POST /hooks/{org}/{*endpoint}`: the receiver's one handler.
//!
//! Order of checks: route (404) -> body size (413) -> the source app's classify, verify and
//! parse (`hookplane_sources::receive`: 401/415/400, or a ping) -> durable append -> the app's
//! acknowledgement. Only a committed append is acknowledged.

use std::time::{Instant, SystemTime};

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use hookplane_mapping::MapError;
use hookplane_sources::{
    Ack, Incoming, Limits, REDACTED, Received, Redactor, Rejection, Reply, Stage,
};
use hookplane_store::{IntakeLog, LogLevel, NewEvent, NewLog};
use serde_json::{Map, Value, json};
use tracing::{Span, field, instrument, warn};
use uuid::Uuid;

use super::IntakeState;
use crate::{
    http_error::HttpError,
    runtime::{Route, Running},
};

/// Intake limits.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Headers whose values are credentials: kept out of the bucket.
/// Headers whose values are credentials or proofs of one: stored and shown as `[redacted]`
/// (the header verification reads, named in the touchpoint's spec, is redacted too).
const REDACTED_HEADERS: [&str; 14] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-shopify-hmac-sha256",
    "x-wc-webhook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-signature",
    "webhook-signature",
    "svix-signature",
    "stripe-signature",
    "x-bc-webhook-signature",
    "x-hook-token",
    "x-api-key",
];

#[instrument(name = "webhook", skip_all, fields(org = %org, endpoint = %endpoint, touchpoint = field::Empty, event = field::Empty))]
pub async fn receive(
    State(state): State<IntakeState>,
    Path((org, endpoint)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = match read_body(&state, &headers, body).await {
        Ok(bytes) => {
            let request = Incoming {
                method: &method,
                headers: &headers,
                query: uri.query(),
                body: &bytes,
            };
            intake(&state, &org, &endpoint, request).await
        }
        Err(error) => {
            if let Some(id) = state.runtime.snapshot().touchpoint_at(&org, &endpoint) {
                reject(&state, id, error.code, error.status, &error.message).await;
            }
            Err((Outcome::TooLarge, error))
        }
    };
    let (outcome, response) = match result {
        Ok((outcome, response)) => (outcome, response),
        Err((outcome, error)) => (outcome, error.into_response()),
    };
    let outcome = outcome.label();
    state
        .metrics
        .webhooks_received
        .with_label_values(&[outcome])
        .inc();
    tracing::debug!(
        outcome,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "webhook answered"
    );
    response
}

/// What became of a webhook, as `hookplane_webhooks_received_total{outcome}` counts it: a
/// fixed set of labels, decided where the outcome is, never re-read from an error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Duplicate,
    Ping,
    NotFound,
    Unpublished,
    TooLarge,
    /// The source app could not verify it.
    Verification,
    /// The body's media type is not one the app sends.
    MediaType,
    /// The body could not become events.
    Parse,
    Storage,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ping => "ping",
            Self::NotFound => "rejected_not_found",
            Self::Unpublished => "rejected_unpublished",
            Self::TooLarge => "rejected_too_large",
            Self::Verification => "rejected_verification",
            Self::MediaType => "rejected_media_type",
            Self::Parse => "rejected_parse",
            Self::Storage => "error_storage",
        }
    }

    /// The outcome of a source app's rejection, from the step that rejected it.
    fn of(rejection: &Rejection) -> Self {
        match rejection.stage {
            Stage::Verify => Self::Verification,
            Stage::Parse if rejection.status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::MediaType
            }
            Stage::Parse => Self::Parse,
        }
    }
}

async fn read_body(
    state: &IntakeState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, HttpError> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

async fn intake(
    state: &IntakeState,
    org: &str,
    endpoint: &str,
    request: Incoming<'_>,
) -> Result<(Outcome, Response), (Outcome, HttpError)> {
    let snapshot = state.runtime.snapshot();
    let running = match snapshot.route(org, endpoint) {
        Route::Published(running) => running,
        Route::Unpublished(id) => {
            let error = HttpError::new(
                StatusCode::NOT_FOUND,
                "TOUCHPOINT_NOT_PUBLISHED",
                "this endpoint's touchpoint is not published",
            );
            reject(state, id, error.code, error.status, &error.message).await;
            return Err((Outcome::Unpublished, error));
        }
        Route::Unknown => {
            return Err((
                Outcome::NotFound,
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    "ENDPOINT_NOT_FOUND",
                    "no touchpoint is published at this endpoint",
                ),
            ));
        }
    };
    let touchpoint_id = running.id;
    Span::current().record("touchpoint", field::display(touchpoint_id));

    let limits = Limits {
        max_body_bytes: state.config.max_body_bytes,
        ..Limits::default()
    };
    let received = hookplane_sources::receive(
        running.app,
        request,
        &running.verifier,
        &limits,
        SystemTime::now(),
    );
    let events = match received {
        Ok(Received::Ping) => {
            log(
                state,
                touchpoint_id,
                LogLevel::Info,
                "ping acknowledged",
                json!({}),
            )
            .await;
            return Ok((Outcome::Ping, reply(running.app.acknowledge(&Ack::Ping))));
        }
        Ok(Received::Events(events)) => events,
        Err(rejection) => {
            let (code, status) = (rejection.code, rejection.status);
            reject(state, touchpoint_id, code, status, &rejection.message).await;
            // The app answers in its own format (Salesforce: a SOAP fault).
            let answer = reply(running.app.reject(&rejection));
            return Ok((Outcome::of(&rejection), answer));
        }
    };

    // What is stored keeps no secret the delivery carried: not in a header, the body or a
    // payload (redacted before the ordering key sees it).
    let redactor = &running.redactor;
    let headers = headers_json(
        request.headers,
        running.verifier.spec.header.as_deref(),
        redactor,
    );
    let raw_body = redactor.bytes(request.body).into_owned();
    let mut new_events = Vec::with_capacity(events.len());
    for mut event in events {
        event.redact(redactor);
        let key = ordering_key(state, running, event.payload()).await;
        let new = NewEvent::received(touchpoint_id, event, headers.clone(), raw_body.clone());
        new_events.push(match key {
            Key::Ordered(key) => new.with_ordering_key(Some(key)),
            Key::Unordered => new,
            Key::Exceeded(error) => new.failed_at_intake(error, true),
        });
    }
    // One commit holds the events and their intake log entries: the webhook is acknowledged
    // after it, and never has an event without its entry.
    let intake_log = IntakeLog {
        created: "webhook received".to_owned(),
        duplicate: "duplicate delivery absorbed".to_owned(),
        fields: Map::from_iter([
            ("bytes".to_owned(), json!(request.body.len())),
            ("generation".to_owned(), json!(running.generation)),
        ]),
    };
    let appended = state
        .store
        .receive_events(new_events, intake_log)
        .await
        .map_err(|error| {
            // With its causes: "could not append events" alone does not tell an operator why.
            warn!(error = &error as &dyn std::error::Error, "storing webhook");
            let error = HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "STORAGE_UNAVAILABLE",
                "the webhook could not be stored; retry later",
            );
            (Outcome::Storage, error)
        })?;
    // Only a touchpoint with Auto-sync on has work for the worker (the store's change feed
    // wakes it too; this saves the hop). Waking it for the others costs a look at the store
    // per webhook that finds nothing to do.
    if running.auto_sync {
        state.wake_worker.notify_one();
    }

    let event_ids: Vec<String> = appended
        .iter()
        .map(|appended| appended.event().id.to_string())
        .collect();
    let created = appended.iter().filter(|a| !a.is_duplicate()).count();
    if let Some(first) = event_ids.first() {
        Span::current().record("event", field::display(first));
    }
    let outcome = if created == 0 {
        Outcome::Duplicate
    } else {
        Outcome::Accepted
    };
    let ack = running.app.acknowledge(&Ack::Stored {
        event_ids: &event_ids,
    });
    Ok((outcome, reply(ack)))
}

/// What intake makes of an event's ordering key.
enum Key {
    Ordered(String),
    /// The touchpoint does not order, the key is `null`, or the expression failed.
    Unordered,
    /// The key expression exceeded its limits: the error the event is stored FAILED with.
    Exceeded(String),
}

/// The event's ordering key, when its touchpoint orders per key, computed in the sandbox
/// under the touchpoint's limits. A key that evaluates to `null` or fails leaves the event
/// unordered (and says so in the server log): refusing the webhook would lose it, and the
/// bucket still shows the payload to fix the expression on. A key over its limits makes the
/// event FAILED and parked as it is stored: without a key it cannot hold back a key's later
/// events whatever `onFailure` says, and a resync after fixing the expression processes it.
async fn ordering_key(state: &IntakeState, running: &Running, payload: &Value) -> Key {
    let Some(expression) = running.touchpoint.ordering_key() else {
        return Key::Unordered;
    };
    let sandbox = state.runtime.sandbox();
    match sandbox.map(expression, payload, &running.limits).await {
        Ok(Ok(Value::Null)) => Key::Unordered,
        Ok(Ok(Value::String(key))) => Key::Ordered(key),
        Ok(Ok(other)) => Key::Ordered(other.to_string()),
        Ok(Err(error @ MapError::LimitExceeded { .. })) => {
            let error = error.at("ordering key");
            warn!(%error, "the ordering key exceeded its limits; the event is stored FAILED");
            Key::Exceeded(format!("{}: {error}", error.code()))
        }
        Ok(Err(error)) => {
            warn!(%error, "the ordering key could not be computed; the event is not ordered");
            Key::Unordered
        }
        Err(error) => {
            warn!(%error, "no evaluator could compute the ordering key; the event is not ordered");
            Key::Unordered
        }
    }
}

fn reply(reply: Reply) -> Response {
    (
        reply.status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

async fn log(
    state: &IntakeState,
    touchpoint_id: Uuid,
    level: LogLevel,
    message: &str,
    fields: Value,
) {
    let entry = NewLog {
        touchpoint_id,
        event_id: None,
        level,
        message: message.to_owned(),
        fields,
    };
    if let Err(error) = state.store.append_logs(vec![entry]).await {
        warn!(%error, "writing an intake log");
    }
}

/// Record a rejection in the touchpoint's log bucket (never the body).
async fn reject(
    state: &IntakeState,
    touchpoint_id: Uuid,
    code: &'static str,
    status: StatusCode,
    message: &str,
) {
    let message = format!("webhook rejected: {message}");
    let fields = json!({ "code": code, "status": status.as_u16() });
    log(state, touchpoint_id, LogLevel::Warn, &message, fields).await;
}

/// The headers as stored: credentials and signatures (and `verification_header`, the one the
/// touchpoint's verification reads) replaced by `[redacted]`. Pure.
fn headers_json(
    headers: &HeaderMap,
    verification_header: Option<&str>,
    redactor: &Redactor,
) -> Value {
    let mut object = Map::new();
    for (name, value) in headers {
        let secret = REDACTED_HEADERS.contains(&name.as_str())
            || verification_header.is_some_and(|header| name.as_str().eq_ignore_ascii_case(header));
        let value = if secret {
            REDACTED.to_owned()
        } else {
            redactor
                .text(&String::from_utf8_lossy(value.as_bytes()))
                .into_owned()
        };
        match object.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                object.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(stage: Stage, status: StatusCode, code: &'static str) -> Rejection {
        Rejection {
            stage,
            status,
            code,
            message: String::new(),
        }
    }

    #[test]
    fn rejections_are_counted_by_the_step_that_rejected_them() {
        let verify = rejection(Stage::Verify, StatusCode::UNAUTHORIZED, "HMAC_INVALID");
        assert_eq!(Outcome::of(&verify).label(), "rejected_verification");
        let media = rejection(
            Stage::Parse,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        );
        assert_eq!(Outcome::of(&media).label(), "rejected_media_type");
        let parse = rejection(Stage::Parse, StatusCode::BAD_REQUEST, "INVALID_JSON");
        assert_eq!(Outcome::of(&parse).label(), "rejected_parse");
    }
}
