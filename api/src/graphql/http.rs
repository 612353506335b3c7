//! `POST /graphql` over HTTP, with the limits a public port needs. In order: the content type
//! (JSON only, so no browser can send a request cross-site without a preflight, and no
//! multipart), the credentials (nothing of a stranger's body is read), the caller's request
//! rate, then the body, read only up to its size limit and within its time limit, parsed as
//! one GraphQL request (batches are refused), executed under the schema's depth and
//! complexity limits, and answered only if the answer is within its size limit.
//!
//! Every refusal is a JSON GraphQL error body with `extensions.code` and the HTTP status that
//! says why. [`HttpLimits`] holds the limits; `hookplane serve --help` lists their flags.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use super::HookplaneSchema;
use crate::auth::{AuthError, Authenticator};

/// The limits on one GraphQL request over HTTP.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Largest request body, in bytes (413 `REQUEST_TOO_LARGE`).
    pub max_body_bytes: usize,
    /// Longest the body may take to arrive (408 `REQUEST_TIMEOUT`).
    pub body_timeout: Duration,
    /// Largest answer, in bytes (`RESPONSE_TOO_LARGE`).
    pub max_response_bytes: usize,
    /// Requests per second per token, with bursts up to `rate_burst` (429 `RATE_LIMITED`).
    pub rate_per_second: NonZeroU32,
    pub rate_burst: NonZeroU32,
    /// GraphQL operations running at once, over all callers (503 `BUSY` after waiting the
    /// body timeout for a turn).
    pub max_concurrent: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
            rate_per_second: NonZeroU32::new(50).expect("not zero"),
            rate_burst: NonZeroU32::new(100).expect("not zero"),
            max_concurrent: 2,
        }
    }
}

/// Everything the handler shares across requests.
#[derive(Clone)]
pub struct GraphqlHttp {
    schema: HookplaneSchema,
    authenticator: Authenticator,
    limits: HttpLimits,
    rates: Arc<DefaultKeyedRateLimiter<String>>,
    running: Arc<tokio::sync::Semaphore>,
}

impl GraphqlHttp {
    pub fn new(schema: HookplaneSchema, authenticator: Authenticator, limits: HttpLimits) -> Self {
        let quota = Quota::per_second(limits.rate_per_second).allow_burst(limits.rate_burst);
        let rates = Arc::new(RateLimiter::keyed(quota));
        // Forget callers idle long enough to have a full bucket again, so the table cannot
        // grow without bound.
        let forget = Arc::downgrade(&rates);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(rates) = forget.upgrade() else {
                    return;
                };
                rates.retain_recent();
                rates.shrink_to_fit();
            }
        });
        let running = Arc::new(tokio::sync::Semaphore::new(
            limits
                .max_concurrent
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        ));
        Self {
            schema,
            authenticator,
            limits,
            rates,
            running,
        }
    }

    /// Handle one `POST /graphql`.
    pub async fn handle(&self, headers: HeaderMap, body: Body) -> Response {
        if !json_content_type(&headers) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send GraphQL requests as content-type: application/json",
            );
        }
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let principal = match self.authenticator.authenticate(authorization).await {
            Ok(principal) => principal,
            Err(error) => return unauthenticated(&error),
        };
        let key = principal
            .token_id
            .map_or_else(|| principal.actor.clone(), |id| id.to_string());
        if let Err(not_until) = self.rates.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                &format!(
                    "more than {} requests per second with this token: retry in {seconds} s",
                    self.limits.rate_per_second
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            return response;
        }
        let bytes = match tokio::time::timeout(
            self.limits.body_timeout,
            axum::body::to_bytes(body, self.limits.max_body_bytes),
        )
        .await
        {
            Err(_) => {
                return refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "REQUEST_TIMEOUT",
                    &format!(
                        "the request body did not arrive within {} s",
                        self.limits.body_timeout.as_secs()
                    ),
                );
            }
            Ok(Err(_)) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "REQUEST_TOO_LARGE",
                    &format!(
                        "the request body is larger than {} bytes",
                        self.limits.max_body_bytes
                    ),
                );
            }
            Ok(Ok(bytes)) => bytes,
        };
        let request = match parse(&bytes) {
            Ok(request) => request,
            Err((code, message)) => return refuse(StatusCode::BAD_REQUEST, code, &message),
        };
        // At most `max_concurrent` operations run at once; the rest wait their turn, up to
        // the body timeout, so heavy queries cannot take every core from intake and health.
        let Ok(Ok(_turn)) = tokio::time::timeout(
            self.limits.body_timeout,
            Arc::clone(&self.running).acquire_owned(),
        )
        .await
        else {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "too many GraphQL operations are running: try again shortly",
            );
        };
        let mut response = self.schema.execute(request.data(principal)).await;
        code_uncoded_errors(&mut response.errors);
        // Serializing a large answer is CPU work: off the async workers.
        let serialized = tokio::task::spawn_blocking(move || serde_json::to_vec(&response)).await;
        let body = match serialized {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => {
                tracing::error!(%error, "serializing a GraphQL answer");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the answer could not be serialized",
                );
            }
            Err(error) => {
                tracing::error!(%error, "serializing a GraphQL answer");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the answer could not be serialized",
                );
            }
        };
        if body.len() > self.limits.max_response_bytes {
            return refuse(
                StatusCode::OK,
                "RESPONSE_TOO_LARGE",
                &format!(
                    "the answer is larger than {} bytes: ask for fewer entries (first) or fields",
                    self.limits.max_response_bytes
                ),
            );
        }
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body),
        )
            .into_response()
    }
}

/// async-graphql refuses some requests with a message and no code: a query over the depth or
/// complexity limit gets `QUERY_TOO_COMPLEX`; every other error without a code (an unknown
/// field, a missing or out-of-range argument) is the request's fault: `INVALID_INPUT`.
fn code_uncoded_errors(errors: &mut [async_graphql::ServerError]) {
    for error in errors {
        let coded = error
            .extensions
            .as_ref()
            .is_some_and(|extensions| extensions.get("code").is_some());
        if coded {
            continue;
        }
        let message = error.message.to_ascii_lowercase();
        let over = message.contains("too complex") || message.contains("nested too deep");
        error.extensions.get_or_insert_with(Default::default).set(
            "code",
            if over {
                "QUERY_TOO_COMPLEX"
            } else {
                "INVALID_INPUT"
            },
        );
    }
}

/// Whether the request says it is JSON (`application/json` or
/// `application/graphql-response+json`, parameters such as `charset` allowed).
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/graphql-response+json")
}

/// One GraphQL request from a body, or the code and message of why not. Pure.
pub fn parse(bytes: &[u8]) -> Result<async_graphql::Request, (&'static str, String)> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        (
            "INVALID_JSON",
            format!(
                "the body is not UTF-8 (invalid byte at offset {})",
                error.valid_up_to()
            ),
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| ("INVALID_JSON", format!("the body is not JSON: {error}")))?;
    if value.is_array() {
        return Err((
            "BATCH_NOT_ALLOWED",
            "send one operation per request: batches are not accepted".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|error| {
        (
            "INVALID_REQUEST",
            format!("not a GraphQL request ({{\"query\": ..., \"variables\": ...}}): {error}"),
        )
    })
}

/// A GraphQL error body with its code, at `status`.
pub fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }],
    });
    (status, axum::Json(body)).into_response()
}

/// `401` with a GraphQL error body carrying the code (`503` when the check itself failed).
pub fn unauthenticated(error: &AuthError) -> Response {
    let status = match error {
        AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    if let AuthError::Unavailable(source) = error {
        tracing::error!(error = %source, "checking credentials");
    }
    let mut response = refuse(status, error.code(), &error.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_one_request_are_named() {
        assert!(parse(br#"{"query": "{ viewer }"}"#).is_ok());
        let code = |body: &[u8]| parse(body).err().map(|(code, _)| code);
        assert_eq!(code(b"{\"query\": \"\xff\"}"), Some("INVALID_JSON"));
        assert_eq!(code(br#"{"query": "x" "y"}"#), Some("INVALID_JSON"));
        assert_eq!(
            code(br#"[{"query": "{ viewer }"}]"#),
            Some("BATCH_NOT_ALLOWED")
        );
        assert_eq!(code(br#"{"variables": 3}"#), Some("INVALID_REQUEST"));
    }

    #[test]
    fn only_json_content_types_pass() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/graphql-response+json"));
        assert!(!with("text/plain"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
