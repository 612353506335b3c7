//! What processing an event came to, before it is stored: the outcome, the log entry that
//! tells it, and the metric label that counts it.
//!
//! Pure: time and randomness are passed in. Guarantees to the record step: every decision
//! carries exactly one log entry for its outcome; a FAILED outcome parks its ordering key
//! exactly when the touchpoint says `onFailure: Park`; a retryable failure is retried after
//! the backoff (and any `Retry-After`) until `maxAttempts`, then FAILED.
//!
//! | decision            | status      | level | metric    |
//! | ------------------- | ----------- | ----- | --------- |
//! | [`Decision::skipped`]   | SKIPPED     | Info  | `SKIPPED` |
//! | [`Decision::permanent`] | FAILED      | Error | `FAILED`  |
//! | [`Decision::retry_or_fail`], attempts left | UNPROCESSED, due later | Warn | `RETRY` |
//! | [`Decision::retry_or_fail`], none left     | FAILED      | Error | `FAILED`  |
//! | [`Decision::forbidden`] | FAILED      | Error | `FAILED`  |
//! | [`Decision::delivered`] | SUCCESS     | Info  | `SUCCESS` |

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookplane_crds::{OrderingFailure, TouchpointSpec};
use hookplane_store::{AttemptRecord, LogLevel, Outcome, OutcomeLog};
use rand::Rng;
use serde_json::{Value, json};

use hookplane_mapping::MapError;

use super::{
    egress::{FORBIDDEN_CODE, Forbidden},
    policy,
};

/// How long an event waits when no evaluator could run its jq.
pub const EVALUATOR_RETRY: Duration = Duration::from_secs(5);

/// The delivery attempt being decided: plain values.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The published spec that runs it.
    pub spec: &'a TouchpointSpec,
    /// Its published generation.
    pub generation: i64,
    /// 1 for the event's first attempt.
    pub number: u32,
}

/// The result of processing one event, ready to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    pub log: OutcomeLog,
    /// The `events_processed` label: `SUCCESS`, `SKIPPED`, `RETRY` or `FAILED`.
    pub metric: &'static str,
}

impl Decision {
    /// The filter returned false.
    pub fn skipped(generation: i64) -> Self {
        Self {
            outcome: Outcome::Skipped { generation },
            log: OutcomeLog {
                level: LogLevel::Info,
                message: "skipped: the filter returned false".into(),
                fields: json!({ "generation": generation }),
            },
            metric: "SKIPPED",
        }
    }

    /// Trying again will not help (a schema mismatch, a mapping or render error, a permanent
    /// answer): FAILED at once.
    pub fn permanent(
        spec: &TouchpointSpec,
        generation: i64,
        mapped: Option<Value>,
        error: String,
    ) -> Self {
        Self {
            log: OutcomeLog {
                level: LogLevel::Error,
                message: format!("failed: {error}"),
                fields: json!({ "generation": generation }),
            },
            outcome: Outcome::Failed {
                mapped,
                error,
                response_status: None,
                generation,
                attempt: None,
                park: parks(spec),
            },
            metric: "FAILED",
        }
    }

    /// The filter or the mapping failed: FAILED at once, without spending a delivery attempt.
    /// A limit exceeded says so with its code, the limit and where (`MAPPING_LIMIT_EXCEEDED`:
    /// retrying cannot help until the expression or its limits change); the log entry carries
    /// them as fields.
    pub fn map_failed(spec: &TouchpointSpec, generation: i64, error: &MapError) -> Self {
        let (message, fields) = match error {
            MapError::LimitExceeded {
                limit, location, ..
            } => (
                format!("{}: {error}", error.code()),
                json!({
                    "generation": generation,
                    "code": error.code(),
                    "limit": limit.as_str(),
                    "location": location,
                }),
            ),
            MapError::Filter { .. } => (
                error.to_string(),
                json!({ "generation": generation, "code": error.code() }),
            ),
            _ => (
                format!("mapping failed: {error}"),
                json!({ "generation": generation, "code": error.code() }),
            ),
        };
        let mut decision = Self::permanent(spec, generation, None, message);
        decision.log.fields = fields;
        decision
    }

    /// No evaluator could run the event's jq (the evaluator program cannot start): a fault of
    /// the installation, not of the event, so it is tried again after [`EVALUATOR_RETRY`]
    /// however many attempts it has had.
    pub fn evaluator_unavailable(generation: i64, error: String, now: DateTime<Utc>) -> Self {
        let retry = chrono::Duration::from_std(EVALUATOR_RETRY)
            .unwrap_or_else(|_| chrono::Duration::seconds(5));
        Self {
            log: OutcomeLog {
                level: LogLevel::Error,
                message: format!("no evaluator could run the mapping, retrying: {error}"),
                fields: json!({ "generation": generation, "code": "EVALUATOR_UNAVAILABLE" }),
            },
            outcome: Outcome::Retry {
                mapped: None,
                error,
                response_status: None,
                next_attempt_at: now + retry,
                generation,
                attempt: None,
            },
            metric: "RETRY",
        }
    }

    /// The destination took it.
    pub fn delivered(
        attempt: &Attempt<'_>,
        mapped: Value,
        record: AttemptRecord,
        status: u16,
    ) -> Self {
        Self {
            log: OutcomeLog {
                level: LogLevel::Info,
                message: format!("delivered: the destination answered {status}"),
                fields: fields(attempt, Some(&record), json!({})),
            },
            outcome: Outcome::Success {
                mapped,
                response_status: i32::from(status),
                generation: attempt.generation,
                attempt: Some(record),
            },
            metric: "SUCCESS",
        }
    }

    /// A retryable failure: try again after the backoff (and any `Retry-After`), or FAILED
    /// when the attempts are used up. `record` is the request that failed, if one was made.
    pub fn retry_or_fail(
        attempt: &Attempt<'_>,
        mapped: Value,
        error: String,
        record: Option<AttemptRecord>,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> Self {
        let Attempt {
            spec,
            generation,
            number,
        } = *attempt;
        let response_status = record.as_ref().and_then(|record| record.response_status);
        let fields = json!({
            "attempt": number,
            "status": response_status,
            "durationMs": record.as_ref().map(|record| record.duration_ms),
            "generation": generation,
        });
        let Some(delay) = policy::next_attempt(&spec.delivery, number, retry_after, rng) else {
            return Self {
                log: OutcomeLog {
                    level: LogLevel::Error,
                    message: format!("failed after {number} attempts: {error}"),
                    fields,
                },
                outcome: Outcome::Failed {
                    mapped: Some(mapped),
                    error,
                    response_status,
                    generation,
                    attempt: record,
                    park: parks(spec),
                },
                metric: "FAILED",
            };
        };
        let next_attempt_at =
            now + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(1));
        Self {
            log: OutcomeLog {
                level: LogLevel::Warn,
                message: format!(
                    "attempt {number} failed, retrying in {} ms: {error}",
                    delay.as_millis()
                ),
                fields,
            },
            outcome: Outcome::Retry {
                mapped: Some(mapped),
                error,
                response_status,
                next_attempt_at,
                generation,
                attempt: record,
            },
            metric: "RETRY",
        }
    }

    /// An answer trying again will not help with: FAILED, with the request that got it.
    pub fn refused(
        attempt: &Attempt<'_>,
        mapped: Value,
        error: String,
        record: AttemptRecord,
    ) -> Self {
        let fields = fields(attempt, Some(&record), json!({ "permanent": true }));
        let mut decision = Self::permanent(attempt.spec, attempt.generation, Some(mapped), error);
        if let Outcome::Failed {
            response_status,
            attempt,
            ..
        } = &mut decision.outcome
        {
            *response_status = record.response_status;
            *attempt = Some(record);
        }
        decision.log.fields = fields;
        decision
    }
}

impl Decision {
    /// The destination policy refused the address connected to: FAILED at once, without
    /// retries, since none can succeed until the policy or the destination changes (a resync
    /// after that delivers it). `record` is the attempt that was refused.
    pub fn forbidden(
        attempt: &Attempt<'_>,
        mapped: Value,
        forbidden: &Forbidden,
        record: AttemptRecord,
    ) -> Self {
        let mut decision = Self::refused(attempt, mapped, forbidden.to_string(), record);
        if let Value::Object(fields) = &mut decision.log.fields {
            fields.insert("code".into(), json!(FORBIDDEN_CODE));
            fields.insert("address".into(), json!(forbidden.address.to_string()));
            fields.insert("rule".into(), json!(forbidden.rule.name()));
        }
        decision
    }
}

/// The log fields of an attempt that made a request, plus `extra`.
fn fields(attempt: &Attempt<'_>, record: Option<&AttemptRecord>, extra: Value) -> Value {
    let mut fields = json!({
        "attempt": attempt.number,
        "status": record.and_then(|record| record.response_status),
        "durationMs": record.map(|record| record.duration_ms),
        "generation": attempt.generation,
    });
    if let (Value::Object(fields), Value::Object(extra)) = (&mut fields, extra) {
        fields.extend(extra);
    }
    fields
}

/// Whether a FAILED event steps aside for the rest of its ordering key.
fn parks(spec: &TouchpointSpec) -> bool {
    spec.ordering
        .as_ref()
        .is_some_and(|ordering| ordering.on_failure == OrderingFailure::Park)
}

#[cfg(test)]
mod tests {
    use hookplane_crds::{DeliveryPolicy, OrderingSpec};
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn spec(max_attempts: u32, park: bool) -> TouchpointSpec {
        TouchpointSpec {
            delivery: DeliveryPolicy {
                max_attempts,
                initial_backoff_ms: 1000,
                max_backoff_ms: 1000,
                ..DeliveryPolicy::default()
            },
            ordering: park.then(|| OrderingSpec {
                on_failure: OrderingFailure::Park,
                ..OrderingSpec::default()
            }),
            ..TouchpointSpec::default()
        }
    }

    fn record(status: Option<i32>) -> AttemptRecord {
        AttemptRecord {
            started_at: DateTime::UNIX_EPOCH,
            duration_ms: 40,
            response_status: status,
            error: Some("boom".into()),
            response_snippet: None,
        }
    }

    #[test]
    fn a_retry_is_scheduled_until_the_attempts_run_out() {
        let spec = spec(2, true);
        let now = DateTime::UNIX_EPOCH;
        let mut rng = StdRng::seed_from_u64(7);
        let first = Attempt {
            spec: &spec,
            generation: 3,
            number: 1,
        };
        let asked = Some(Duration::from_secs(60));
        let retry = Decision::retry_or_fail(
            &first,
            json!({}),
            "boom".into(),
            Some(record(Some(429))),
            asked,
            now,
            &mut rng,
        );
        assert_eq!(retry.metric, "RETRY");
        assert_eq!(retry.log.level, LogLevel::Warn);
        assert_eq!(
            retry.log.fields,
            json!({"attempt": 1, "status": 429, "durationMs": 40, "generation": 3})
        );
        let Outcome::Retry {
            next_attempt_at, ..
        } = retry.outcome
        else {
            panic!("a retry: {retry:?}");
        };
        assert!(
            next_attempt_at >= now + chrono::Duration::seconds(60),
            "Retry-After wins"
        );

        let last = Attempt { number: 2, ..first };
        let failed =
            Decision::retry_or_fail(&last, json!({}), "boom".into(), None, None, now, &mut rng);
        assert_eq!(failed.metric, "FAILED");
        assert_eq!(failed.log.message, "failed after 2 attempts: boom");
        assert!(matches!(failed.outcome, Outcome::Failed { park: true, .. }));
    }

    #[test]
    fn a_refused_answer_fails_with_its_request() {
        let spec = spec(5, false);
        let attempt = Attempt {
            spec: &spec,
            generation: 1,
            number: 1,
        };
        let refused = Decision::refused(&attempt, json!({"a": 1}), "no".into(), record(Some(422)));
        assert_eq!(refused.log.message, "failed: no");
        assert_eq!(
            refused.log.fields,
            json!({"attempt": 1, "status": 422, "durationMs": 40, "generation": 1, "permanent": true})
        );
        assert!(matches!(
            refused.outcome,
            Outcome::Failed {
                response_status: Some(422),
                attempt: Some(_),
                park: false,
                ..
            }
        ));
    }
}
