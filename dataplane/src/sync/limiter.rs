//! Per-destination limits: how hard one connection's destination may be driven, shared by all
//! the connection's touchpoints.
//!
//! A [`Limiter`] admits a request only while (1) the connection has fewer than
//! `maxConcurrency` requests in flight, (2) its token bucket holds a token (when it has a rate,
//! see below) and (3) no `Retry-After` hold is running. Admission never waits: the worker asks
//! [`Limiter::room`] before claiming and [`Limiter::reserve`] after, and a destination without
//! room is simply not served this round, so nothing queues behind it.
//!
//! The worker reserves room when it starts an event (an [`Admission`]: the slot and the token
//! are the event's while its pure steps run), and the admission becomes a [`Permit`] right
//! before the request is sent. An admission dropped unsent (filtered out, failed to map or
//! render, shutting down) gives its token back and frees its slot by itself: no step before
//! the request has anything to hand back.
//!
//! The rate adapts (AIMD): a `429` or `503` halves the effective rate (floor 1 request per
//! second), once per round trip (answers to requests sent before the last decrease do not
//! decrease it again), and a `Retry-After` holds every send until then. Successes raise the
//! rate again linearly, by [`RECOVERY`] of the configured rate per second of successful
//! traffic, until it is back at the configured rate. A connection without a configured rate
//! starts limiting at half the rate it was sending at when it was pushed back, and drops the
//! limit again once it has recovered to that rate.
//!
//! Time is passed in (`now`) so the behaviour is tested without sleeping.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hookplane_crds::DestinationLimits;
use tokio::sync::Notify;

use super::policy::MAX_RETRY_AFTER;

/// Share of the configured rate regained per second of successful traffic.
pub const RECOVERY: f64 = 0.1;
/// The lowest rate a pushback can bring a destination to, in requests per second.
pub const MIN_RATE: f64 = 1.0;

/// Why a destination has no room right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// `maxConcurrency` requests are in flight.
    Concurrency,
    /// The token bucket is empty.
    Rate,
    /// A `Retry-After` hold is running.
    Held,
}

impl Closed {
    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Rate => "rate",
            Self::Held => "held",
        }
    }
}

/// The limits and adaptive state of one destination.
pub struct Limiter {
    state: Mutex<State>,
    /// Told whenever a request finishes, so a waiting dispatcher looks again.
    freed: Arc<Notify>,
}

struct State {
    max_concurrency: u32,
    /// The configured rate, `None` for no limit.
    configured: Option<f64>,
    in_flight: u32,
    /// The effective rate, while one applies.
    bucket: Option<Bucket>,
    /// The rate the adaptive bucket recovers to (the configured rate, or the rate that was
    /// pushed back when none is configured).
    ceiling: f64,
    hold_until: Option<Instant>,
    last_decrease: Option<Instant>,
    last_success: Option<Instant>,
    sent: StartCounter,
}

struct Bucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            updated: now,
        }
    }

    /// Burst size: one second's worth, at least one request.
    fn capacity(&self) -> f64 {
        self.rate.max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity());
        self.updated = now;
    }

    fn set_rate(&mut self, rate: f64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.tokens = self.tokens.min(self.capacity());
    }
}

/// Requests started per second, over the current and the previous whole second.
struct StartCounter {
    window_start: Option<Instant>,
    current: u32,
    previous: u32,
}

impl StartCounter {
    fn record(&mut self, now: Instant) {
        self.roll(now);
        self.current = self.current.saturating_add(1);
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_secs(2) {
            self.previous = 0;
            self.current = 0;
            self.window_start = Some(now);
        } else if elapsed >= Duration::from_secs(1) {
            self.previous = self.current;
            self.current = 0;
            self.window_start = Some(start + Duration::from_secs(1));
        }
    }

    fn per_second(&mut self, now: Instant) -> f64 {
        self.roll(now);
        f64::from(self.previous.max(self.current))
    }
}

impl Limiter {
    pub fn new(limits: &DestinationLimits, freed: Arc<Notify>, now: Instant) -> Self {
        let configured = limits.requests_per_second.map(f64::from);
        Self {
            state: Mutex::new(State {
                max_concurrency: limits.max_concurrency.max(1),
                configured,
                in_flight: 0,
                bucket: configured.map(|rate| Bucket::full(rate, now)),
                ceiling: configured.unwrap_or(0.0),
                hold_until: None,
                last_decrease: None,
                last_success: None,
                sent: StartCounter {
                    window_start: None,
                    current: 0,
                    previous: 0,
                },
            }),
            freed,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic: every update is a few assignments.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Apply changed limits (a connection was edited), keeping in-flight counts and holds.
    pub fn reconfigure(&self, limits: &DestinationLimits, now: Instant) {
        let mut state = self.state();
        state.max_concurrency = limits.max_concurrency.max(1);
        let configured = limits.requests_per_second.map(f64::from);
        if configured == state.configured {
            return;
        }
        state.configured = configured;
        match configured {
            Some(rate) => {
                state.ceiling = rate;
                match &mut state.bucket {
                    Some(bucket) => {
                        let effective = bucket.rate.min(rate);
                        bucket.set_rate(effective, now);
                    }
                    None => state.bucket = Some(Bucket::full(rate, now)),
                }
            }
            None => {
                state.bucket = None;
                state.ceiling = 0.0;
            }
        }
    }

    /// How many requests could start now, or why none can.
    pub fn room(&self, now: Instant) -> Result<usize, Closed> {
        let mut state = self.state();
        state.room(now)
    }

    /// Reserve room for one event now, or say why not: see [`Admission`].
    pub fn reserve(self: &Arc<Self>, now: Instant) -> Result<Admission, Closed> {
        self.try_admit(now).map(|permit| Admission(Some(permit)))
    }

    /// Admit one request now, or say why not. The permit holds a concurrency slot until it
    /// is dropped.
    pub(super) fn try_admit(self: &Arc<Self>, now: Instant) -> Result<Permit, Closed> {
        let mut state = self.state();
        state.room(now)?;
        if let Some(bucket) = &mut state.bucket {
            bucket.tokens -= 1.0;
        }
        state.in_flight += 1;
        state.sent.record(now);
        Ok(Permit {
            limiter: Arc::clone(self),
            started: now,
        })
    }

    /// When a destination closed by its rate or a hold opens again (`None` when it is open,
    /// or closed by concurrency, which opens when a request finishes).
    pub fn opens_at(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state();
        match state.room(now) {
            Ok(_) | Err(Closed::Concurrency) => None,
            Err(Closed::Held) => state.hold_until,
            Err(Closed::Rate) => state.bucket.as_ref().map(|bucket| {
                let missing = (1.0 - bucket.tokens).max(0.0);
                now + Duration::from_secs_f64(missing / bucket.rate.max(MIN_RATE))
            }),
        }
    }

    /// The effective rate limit, `None` when there is none.
    pub fn effective_rate(&self) -> Option<f64> {
        self.state().bucket.as_ref().map(|bucket| bucket.rate)
    }

    /// Most requests in flight at once.
    pub fn max_concurrency(&self) -> u32 {
        self.state().max_concurrency
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.state().in_flight
    }
}

impl State {
    fn room(&mut self, now: Instant) -> Result<usize, Closed> {
        if let Some(until) = self.hold_until {
            if now < until {
                return Err(Closed::Held);
            }
            self.hold_until = None;
        }
        let slots = self.max_concurrency.saturating_sub(self.in_flight);
        if slots == 0 {
            return Err(Closed::Concurrency);
        }
        let slots = slots as usize;
        match &mut self.bucket {
            None => Ok(slots),
            Some(bucket) => {
                bucket.refill(now);
                // Float tokens: 0.999 is not a request yet.
                let tokens = bucket.tokens.floor();
                if tokens < 1.0 {
                    Err(Closed::Rate)
                } else {
                    Ok(slots.min(tokens as usize))
                }
            }
        }
    }
}

/// A request admitted to a destination. Report how it went with [`Permit::pushed_back`] or
/// [`Permit::succeeded`]; dropping it frees the concurrency slot.
pub struct Permit {
    limiter: Arc<Limiter>,
    started: Instant,
}

impl Permit {
    /// The destination answered `429` or `503`: halve the rate (once per round trip) and
    /// hold sends for `retry_after`. Returns whether a hold started or grew.
    pub fn pushed_back(&self, retry_after: Option<Duration>, now: Instant) -> bool {
        let mut state = self.limiter.state();
        let newer_than_decrease = state.last_decrease.is_none_or(|last| self.started >= last);
        if newer_than_decrease {
            let current = match &state.bucket {
                Some(bucket) => bucket.rate,
                None => state.sent.per_second(now).max(MIN_RATE),
            };
            let halved = (current / 2.0).max(MIN_RATE);
            if state.configured.is_none() && state.bucket.is_none() {
                state.ceiling = current;
            }
            match &mut state.bucket {
                Some(bucket) => bucket.set_rate(halved, now),
                None => {
                    // Start with one token so the halved rate applies from now on.
                    state.bucket = Some(Bucket {
                        rate: halved,
                        tokens: 1.0,
                        updated: now,
                    });
                }
            }
            state.last_decrease = Some(now);
        }
        let Some(wait) = retry_after else {
            return false;
        };
        let until = now + wait.min(MAX_RETRY_AFTER);
        if state.hold_until.is_some_and(|held| held >= until) {
            return false;
        }
        state.hold_until = Some(until);
        true
    }

    /// The destination accepted the request: regain some rate.
    pub fn succeeded(&self, now: Instant) {
        let mut state = self.limiter.state();
        // Recovery counts time since the last success or decrease, whichever is later, and at
        // most a second of it, so a destination idle for an hour does not jump to full rate.
        let since = state
            .last_success
            .max(state.last_decrease)
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
            .min(Duration::from_secs(1));
        state.last_success = Some(now);
        let ceiling = state.ceiling;
        let unlimited = state.configured.is_none();
        let Some(bucket) = &mut state.bucket else {
            return;
        };
        if bucket.rate >= ceiling {
            return;
        }
        let raised = (bucket.rate + ceiling * RECOVERY * since.as_secs_f64()).min(ceiling);
        if unlimited && raised >= ceiling {
            state.bucket = None;
        } else {
            bucket.set_rate(raised, now);
        }
    }
}

impl Permit {
    /// The event did not need a request after all (filtered out, failed to map): give the
    /// rate token back. The concurrency slot is freed on drop as always.
    fn unused(self) {
        let mut state = self.limiter.state();
        if let Some(bucket) = &mut state.bucket {
            bucket.tokens = (bucket.tokens + 1.0).min(bucket.capacity());
        }
    }
}

/// Room a destination reserved for one event: a concurrency slot and, under a rate, a token.
/// [`Admission::send`] turns it into the request's [`Permit`] right before the request goes
/// out; dropped unsent, it gives the token back and frees the slot.
pub struct Admission(Option<Permit>);

impl Admission {
    /// The request is about to be sent: the token is spent, the slot held until the
    /// permit drops.
    pub fn send(mut self) -> Permit {
        self.0
            .take()
            .expect("an admission holds its permit until it is sent, and is sent once")
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(permit) = self.0.take() {
            permit.unused();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.limiter.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_concurrency: u32, rps: Option<u32>, now: Instant) -> Arc<Limiter> {
        Arc::new(Limiter::new(
            &DestinationLimits {
                max_concurrency,
                requests_per_second: rps,
            },
            Arc::new(Notify::new()),
            now,
        ))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn concurrency_is_capped_and_freed_on_drop() {
        let t0 = Instant::now();
        let limiter = limiter(2, None, t0);
        assert_eq!(limiter.room(t0), Ok(2));
        let a = limiter.try_admit(t0).expect("room");
        let _b = limiter.try_admit(t0).expect("room");
        assert_eq!(limiter.room(t0), Err(Closed::Concurrency));
        assert!(limiter.try_admit(t0).is_err());
        assert_eq!(limiter.opens_at(t0), None, "opens when a request finishes");
        drop(a);
        assert_eq!(limiter.room(t0), Ok(1));
        assert_eq!(limiter.in_flight(), 1);
    }

    #[test]
    fn the_rate_is_a_token_bucket_with_one_second_of_burst() {
        let t0 = Instant::now();
        let limiter = limiter(100, Some(4), t0);
        assert_eq!(limiter.room(t0), Ok(4));
        for _ in 0..4 {
            drop(limiter.try_admit(t0).expect("burst"));
        }
        assert_eq!(limiter.room(t0), Err(Closed::Rate));
        assert_eq!(limiter.opens_at(t0), Some(t0 + 250 * MS));
        assert_eq!(limiter.room(t0 + 249 * MS), Err(Closed::Rate));
        assert_eq!(limiter.room(t0 + 250 * MS), Ok(1));
        assert_eq!(limiter.room(t0 + 10 * 1000 * MS), Ok(4), "burst is capped");
    }

    #[test]
    fn pushback_halves_once_per_round_trip_and_floors_at_one() {
        let t0 = Instant::now();
        let limiter = limiter(100, Some(16), t0);
        let first = limiter.try_admit(t0).expect("room");
        let second = limiter.try_admit(t0).expect("room");
        first.pushed_back(None, t0 + 10 * MS);
        assert_eq!(limiter.effective_rate(), Some(8.0));
        // Sent before the decrease: the same congestion, not a new signal.
        second.pushed_back(None, t0 + 11 * MS);
        assert_eq!(limiter.effective_rate(), Some(8.0));
        let mut now = t0 + 20 * MS;
        for _ in 0..10 {
            now += 1000 * MS;
            let permit = limiter.try_admit(now).expect("refilled");
            permit.pushed_back(None, now + MS);
        }
        assert_eq!(limiter.effective_rate(), Some(MIN_RATE));
    }

    #[test]
    fn retry_after_holds_every_send() {
        let t0 = Instant::now();
        let limiter = limiter(10, None, t0);
        let permit = limiter.try_admit(t0).expect("room");
        assert!(permit.pushed_back(Some(Duration::from_secs(2)), t0));
        assert!(
            !permit.pushed_back(Some(Duration::from_secs(1)), t0),
            "a shorter hold changes nothing"
        );
        assert_eq!(limiter.room(t0 + 1999 * MS), Err(Closed::Held));
        assert_eq!(limiter.opens_at(t0), Some(t0 + 2000 * MS));
        assert!(limiter.room(t0 + 2000 * MS).is_ok());
        let long = limiter.try_admit(t0 + 2000 * MS).expect("room");
        long.pushed_back(Some(Duration::from_secs(86_400)), t0 + 2000 * MS);
        assert_eq!(
            limiter.opens_at(t0 + 2000 * MS),
            Some(t0 + 2000 * MS + MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn successes_recover_linearly_to_the_configured_rate() {
        let t0 = Instant::now();
        let limiter = limiter(100, Some(20), t0);
        limiter.try_admit(t0).expect("room").pushed_back(None, t0);
        assert_eq!(limiter.effective_rate(), Some(10.0));
        // 2 rps regained per second of successes: five seconds back to 20.
        let mut now = t0;
        for step in 1..=50 {
            now += 100 * MS;
            let permit = limiter
                .try_admit(now)
                .expect("10 rps allows one per 100 ms");
            permit.succeeded(now);
            if step == 25 {
                let rate = limiter.effective_rate().expect("limited");
                assert!((14.0..=16.0).contains(&rate), "half way: {rate}");
            }
        }
        let rate = limiter.effective_rate().expect("limited");
        assert!((19.99..=20.0).contains(&rate), "recovered: {rate}");
    }

    #[test]
    fn an_unlimited_destination_is_limited_after_pushback_and_freed_after_recovery() {
        let t0 = Instant::now();
        let limiter = limiter(100, None, t0);
        let mut now = t0;
        for _ in 0..40 {
            now += 25 * MS;
            limiter.try_admit(now).expect("unlimited").succeeded(now);
        }
        assert_eq!(limiter.effective_rate(), None);
        let permit = limiter.try_admit(now).expect("unlimited");
        permit.pushed_back(None, now);
        let rate = limiter.effective_rate().expect("limited now");
        assert!((19.0..=21.0).contains(&rate), "half of ~40 rps: {rate}");
        for _ in 0..200 {
            now += 100 * MS;
            if let Ok(permit) = limiter.try_admit(now) {
                permit.succeeded(now);
            }
        }
        assert_eq!(limiter.effective_rate(), None, "recovered: no limit again");
    }

    #[test]
    fn reconfigure_keeps_in_flight_and_clamps_the_rate() {
        let t0 = Instant::now();
        let limiter = limiter(4, Some(100), t0);
        let _permit = limiter.try_admit(t0).expect("room");
        limiter.reconfigure(
            &DestinationLimits {
                max_concurrency: 1,
                requests_per_second: Some(10),
            },
            t0,
        );
        assert_eq!(limiter.room(t0), Err(Closed::Concurrency));
        assert_eq!(limiter.effective_rate(), Some(10.0));
        limiter.reconfigure(
            &DestinationLimits {
                max_concurrency: 1,
                requests_per_second: None,
            },
            t0,
        );
        assert_eq!(limiter.effective_rate(), None);
    }

    #[test]
    fn an_unused_permit_gives_its_token_back() {
        let t0 = Instant::now();
        let limiter = limiter(10, Some(1), t0);
        limiter.try_admit(t0).expect("one token").unused();
        assert_eq!(limiter.room(t0), Ok(1));
        drop(limiter.try_admit(t0).expect("the token is back"));
        assert_eq!(limiter.room(t0), Err(Closed::Rate));
    }

    #[test]
    fn an_admission_dropped_unsent_gives_its_room_back() {
        let t0 = Instant::now();
        let limiter = limiter(1, Some(1), t0);
        drop(limiter.reserve(t0).expect("one slot, one token"));
        assert_eq!(limiter.room(t0), Ok(1), "slot and token are back");
        let permit = limiter.reserve(t0).expect("room again").send();
        assert_eq!(limiter.room(t0), Err(Closed::Concurrency));
        drop(permit);
        assert_eq!(
            limiter.room(t0),
            Err(Closed::Rate),
            "a sent request spent its token"
        );
    }

    #[test]
    fn finishing_a_request_notifies() {
        let t0 = Instant::now();
        let freed = Arc::new(Notify::new());
        let limiter = Arc::new(Limiter::new(
            &DestinationLimits::default(),
            Arc::clone(&freed),
            t0,
        ));
        let notified = freed.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        drop(limiter.try_admit(t0).expect("room"));
        assert!(futures::FutureExt::now_or_never(notified).is_some());
    }
}
