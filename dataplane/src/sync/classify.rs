//! The classify step: what one HTTP exchange with a destination means.
//!
//! Pure: time and randomness are passed in. [`Answer::of`] reads the exchange once (status,
//! [`policy`] verdict, `Retry-After`, pushback), for the destination's limiter and for
//! [`classify`], which turns it into the event's [`Decision`]: delivered on `2xx`, FAILED at
//! once on a permanent answer, otherwise retried or FAILED by [`Decision::retry_or_fail`].
//! Every exchange becomes one attempt record, with the error, the status and the start of
//! the answer's body, so the attempt history shows what the destination said.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookplane_store::AttemptRecord;
use rand::Rng;
use serde_json::Value;

use super::{
    decision::{Attempt, Decision},
    deliver::Response,
    egress::Forbidden,
    policy::{self, Pushback, Verdict},
};

/// How one HTTP exchange went: the destination's answer, or why there is none.
#[derive(Debug)]
pub struct Exchange {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub result: Result<Response, NoAnswer>,
}

/// Why an exchange has no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// The destination policy refused the address (of the destination or its OAuth2 token
    /// endpoint): nothing was sent, and nothing will be until the policy or the destination
    /// changes.
    Forbidden(Forbidden),
    /// The request failed, or no OAuth2 token could be had.
    Failed(String),
}

impl From<super::DeliveryError> for NoAnswer {
    fn from(error: super::DeliveryError) -> Self {
        match error {
            super::DeliveryError::Forbidden(forbidden) => Self::Forbidden(forbidden),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// What an exchange says, before counting attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The destination's status, if it answered.
    pub status: Option<u16>,
    /// What the status means under the touchpoint's policy.
    pub verdict: Option<Verdict>,
    /// How long a `429`/`503` asked us to wait.
    pub retry_after: Option<Duration>,
    /// The destination asked us to slow down.
    pub pushback: Option<Pushback>,
}

impl Answer {
    /// Reads `exchange` under `delivery`; `now` dates a `Retry-After` given as an HTTP-date.
    pub fn of(
        exchange: &Exchange,
        delivery: &hookplane_crds::DeliveryPolicy,
        now: DateTime<Utc>,
    ) -> Self {
        let Ok(response) = &exchange.result else {
            return Self {
                status: None,
                verdict: None,
                retry_after: None,
                pushback: None,
            };
        };
        let status = response.status;
        Self {
            status: Some(status),
            verdict: Some(policy::classify(status, delivery)),
            retry_after: policy::retry_after(status, &response.headers, now),
            pushback: Pushback::of(status),
        }
    }

    pub fn delivered(&self) -> bool {
        self.verdict == Some(Verdict::Delivered)
    }
}

/// The decision an exchange comes to for an event whose mapped output was `mapped`.
pub fn classify(
    attempt: &Attempt<'_>,
    mapped: Value,
    exchange: Exchange,
    answer: &Answer,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Decision {
    let Exchange {
        started_at,
        duration,
        result,
    } = exchange;
    let record = |error: Option<String>, snippet: Option<String>| AttemptRecord {
        started_at,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        response_status: answer.status.map(i32::from),
        error,
        response_snippet: snippet.filter(|snippet| !snippet.is_empty()),
    };
    let response = match result {
        Ok(response) => response,
        Err(NoAnswer::Forbidden(forbidden)) => {
            let record = record(Some(forbidden.to_string()), None);
            return Decision::forbidden(attempt, mapped, &forbidden, record);
        }
        Err(NoAnswer::Failed(error)) => {
            let record = record(Some(error.clone()), None);
            return Decision::retry_or_fail(attempt, mapped, error, Some(record), None, now, rng);
        }
    };
    let snippet = Some(response.snippet.clone());
    match answer.verdict {
        Some(Verdict::Delivered) => {
            Decision::delivered(attempt, mapped, record(None, snippet), response.status)
        }
        Some(Verdict::Permanent) => {
            let error = answer_error(&response);
            let record = record(Some(error.clone()), snippet);
            Decision::refused(attempt, mapped, error, record)
        }
        Some(Verdict::Retryable) | None => {
            let error = answer_error(&response);
            let record = record(Some(error.clone()), snippet);
            let retry_after = answer.retry_after;
            Decision::retry_or_fail(attempt, mapped, error, Some(record), retry_after, now, rng)
        }
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

#[cfg(test)]
mod tests {
    use hookplane_crds::{DeliveryPolicy, TouchpointSpec};
    use hookplane_store::Outcome;
    use rand::{SeedableRng, rngs::StdRng};
    use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
    use serde_json::json;

    use super::*;

    fn exchange(
        status: u16,
        headers: &[(reqwest::header::HeaderName, &str)],
        body: &str,
    ) -> Exchange {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                name.clone(),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        Exchange {
            started_at: DateTime::UNIX_EPOCH,
            duration: Duration::from_millis(15),
            result: Ok(Response {
                status,
                headers: map,
                snippet: body.to_owned(),
                elapsed: Duration::from_millis(15),
            }),
        }
    }

    fn decide(spec: &TouchpointSpec, exchange: Exchange) -> (Answer, super::Decision) {
        let answer = Answer::of(&exchange, &spec.delivery, DateTime::UNIX_EPOCH);
        let attempt = Attempt {
            spec,
            generation: 2,
            number: 1,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let decision = classify(
            &attempt,
            json!({"id": 1}),
            exchange,
            &answer,
            DateTime::UNIX_EPOCH,
            &mut rng,
        );
        (answer, decision)
    }

    #[test]
    fn answers_become_decisions_with_their_attempt_record() {
        let spec = TouchpointSpec {
            delivery: DeliveryPolicy {
                max_attempts: 3,
                ..DeliveryPolicy::default()
            },
            ..TouchpointSpec::default()
        };

        let (answer, ok) = decide(&spec, exchange(201, &[], "created"));
        assert!(answer.delivered());
        let Outcome::Success {
            response_status,
            attempt: Some(record),
            ..
        } = &ok.outcome
        else {
            panic!("delivered: {ok:?}");
        };
        assert_eq!(*response_status, 201);
        assert_eq!(record.response_snippet.as_deref(), Some("created"));
        assert_eq!(record.error, None);

        let (answer, throttled) = decide(&spec, exchange(429, &[(RETRY_AFTER, "30")], ""));
        assert_eq!(answer.pushback, Some(Pushback::TooManyRequests));
        assert_eq!(answer.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(throttled.metric, "RETRY");

        let (_, moved) = decide(&spec, exchange(302, &[(LOCATION, "/new")], ""));
        let Outcome::Failed { error, .. } = &moved.outcome else {
            panic!("a redirect fails at once: {moved:?}");
        };
        assert_eq!(
            error,
            "the destination answered 302 (redirects are not followed; it points to /new)"
        );

        let unreachable = Exchange {
            started_at: DateTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            result: Err(NoAnswer::Failed(
                "could not reach the destination".to_owned(),
            )),
        };
        let (answer, retry) = decide(&spec, unreachable);
        assert_eq!(answer.status, None);
        let Outcome::Retry {
            attempt: Some(record),
            response_status: None,
            ..
        } = &retry.outcome
        else {
            panic!("no answer is retried: {retry:?}");
        };
        assert_eq!(
            record.error.as_deref(),
            Some("could not reach the destination")
        );
    }
}
