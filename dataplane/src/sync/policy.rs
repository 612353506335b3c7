//! The retry policy: what an HTTP answer (or its absence) means for an event.
//!
//! - `2xx`: delivered.
//! - `3xx`: failed at once; redirects are not followed, so the destination URL needs fixing.
//! - `408`, `409`, `425`, `429`, `5xx`, other statuses outside `2xx`-`4xx`, network errors and
//!   timeouts: retried with exponential backoff and jitter ([`retry_delay`]) until the
//!   touchpoint's `maxAttempts`, then failed.
//! - any other `4xx`: failed at once, unless the touchpoint sets `retryClientErrors`.
//! - `Retry-After` (delta-seconds or an HTTP-date) on `429` or `503` pushes the next attempt to
//!   at least that time. It is capped at [`MAX_RETRY_AFTER`] (one hour), not at the
//!   touchpoint's `maxBackoffMs`: honouring what the destination asked for is the point, and
//!   the cap only protects against a destination that asks for days.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookplane_crds::DeliveryPolicy;
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::retry_delay;

/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a destination's answer means, before counting attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth trying again later.
    Retryable,
    /// Trying again will not help.
    Permanent,
}

/// The destination asked us to slow down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushback {
    /// `429 Too Many Requests`.
    TooManyRequests,
    /// `503 Service Unavailable`.
    Unavailable,
}

impl Pushback {
    pub fn of(status: u16) -> Option<Self> {
        match status {
            429 => Some(Self::TooManyRequests),
            503 => Some(Self::Unavailable),
            _ => None,
        }
    }

    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooManyRequests => "destination_429",
            Self::Unavailable => "destination_503",
        }
    }
}

/// Classify an HTTP status under `policy`.
pub fn classify(status: u16, policy: &DeliveryPolicy) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        300..=399 => Verdict::Permanent,
        408 | 409 | 425 | 429 => Verdict::Retryable,
        400..=499 if policy.retry_client_errors => Verdict::Retryable,
        400..=499 => Verdict::Permanent,
        _ => Verdict::Retryable,
    }
}

/// The `Retry-After` of a `429` or `503` answer, from `now`, capped at [`MAX_RETRY_AFTER`].
/// Other statuses, a missing or unreadable header, or a date in the past give `None`.
pub fn retry_after(status: u16, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    Pushback::of(status)?;
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => (parse_http_date(value)? - now).to_std().ok()?,
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate that every current server sends, plus the
/// obsolete RFC 850 and asctime forms recipients must still accept.
fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = DateTime::parse_from_rfc2822(value) {
        return Some(date.with_timezone(&Utc));
    }
    for format in ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
        if let Ok(date) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Some(date.and_utc());
        }
    }
    None
}

/// When to try a failed attempt again, or `None` when the attempts are used up.
/// `attempt` is the number of the attempt that just failed (1 for the first).
pub fn next_attempt(
    policy: &DeliveryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let backoff = retry_delay(policy, attempt, rng);
    Some(retry_after.map_or(backoff, |asked| backoff.max(asked)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rand::{SeedableRng, rngs::StdRng};
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn statuses_are_classified_as_documented() {
        let policy = DeliveryPolicy::default();
        for (status, verdict) in [
            (200, Verdict::Delivered),
            (204, Verdict::Delivered),
            (301, Verdict::Permanent),
            (307, Verdict::Permanent),
            (400, Verdict::Permanent),
            (401, Verdict::Permanent),
            (404, Verdict::Permanent),
            (422, Verdict::Permanent),
            (408, Verdict::Retryable),
            (409, Verdict::Retryable),
            (425, Verdict::Retryable),
            (429, Verdict::Retryable),
            (500, Verdict::Retryable),
            (503, Verdict::Retryable),
            (599, Verdict::Retryable),
        ] {
            assert_eq!(classify(status, &policy), verdict, "{status}");
        }
        let lenient = DeliveryPolicy {
            retry_client_errors: true,
            ..DeliveryPolicy::default()
        };
        assert_eq!(classify(422, &lenient), Verdict::Retryable);
        assert_eq!(classify(302, &lenient), Verdict::Permanent);
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("valid"));
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_on_429_and_503_only() {
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 0).unwrap();
        let thirty_seven = Some(Duration::from_secs(37));
        assert_eq!(
            retry_after(429, &headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(503, &headers(" 5 "), now),
            Some(Duration::from_secs(5))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(429, &headers(date), now),
                thirty_seven,
                "{date}"
            );
        }
        assert_eq!(retry_after(500, &headers("120"), now), None);
        assert_eq!(retry_after(429, &HeaderMap::new(), now), None);
        assert_eq!(retry_after(429, &headers("soon"), now), None);
        assert_eq!(retry_after(429, &headers("-3"), now), None);
        assert_eq!(
            retry_after(429, &headers("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            None,
            "a date in the past asks for nothing"
        );
        assert_eq!(
            retry_after(429, &headers("86400"), now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retries_stop_at_max_attempts_and_honour_retry_after() {
        let policy = DeliveryPolicy {
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            ..DeliveryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        let first = next_attempt(&policy, 1, None, &mut rng).expect("attempt 2 follows");
        assert!((50..=100).contains(&first.as_millis()), "{first:?}");
        assert_eq!(
            next_attempt(&policy, 2, Some(Duration::from_secs(30)), &mut rng),
            Some(Duration::from_secs(30)),
            "Retry-After beyond maxBackoffMs is honoured"
        );
        let short = next_attempt(&policy, 2, Some(Duration::from_millis(1)), &mut rng)
            .expect("attempt 3 follows");
        assert!(short >= Duration::from_millis(100), "backoff still applies");
        assert_eq!(next_attempt(&policy, 3, None, &mut rng), None);
    }
}
