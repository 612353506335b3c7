//! Timestamps as the store keeps them: UTC, microsecond precision, years 1970..=9999.
//!
//! PostgreSQL stores `timestamptz` (microseconds). SQLite stores the text sqlx writes for a
//! `DateTime<Utc>`: RFC 3339 with a `+00:00` offset and 0, 3, 6 or 9 fraction digits. That text
//! sorts like the time it denotes as long as the offset is always the same, the year has four
//! digits and every value has at most six fraction digits: a shorter fraction ends in `+`,
//! which sorts before `.` and before every digit. Every timestamp that reaches the database
//! passes through [`stored`] (or [`now`]) so both backends hold exactly the same values and
//! compare them the same way; `SQL now()` is never used.
//!
//! The store reads "now" from its [`Clock`]: the system clock, or a [`ManualClock`] that tests
//! set and advance (received times, update times, the dedupe window).

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// Where the store reads the current time ([`crate::StoreOptions::clock`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that only moves when told to (tests).
    Manual(ManualClock),
}

impl Clock {
    /// The current time, as stored.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => now(),
            Self::Manual(clock) => clock.now(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Self {
        Self::Manual(clock)
    }
}

/// A shared clock that stands still until set or advanced; clones share the time.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(stored(start))))
    }

    /// The time it shows, as stored.
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shows `time` from now on.
    pub fn set(&self, time: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = stored(time);
    }

    /// Moves the clock by `delta` (which may be negative).
    pub fn advance(&self, delta: TimeDelta) {
        let mut time = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *time = stored(time.checked_add_signed(delta).unwrap_or_else(latest));
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

/// Two manual clocks are equal when they are clones of each other.
impl PartialEq for ManualClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ManualClock {}

/// The system time, as stored.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `time - duration`, saturating at the earliest storable time.
pub(crate) fn before(time: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    let earlier = TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| time.checked_sub_signed(delta))
        .unwrap_or_else(earliest);
    stored(earlier)
}

/// `time` as stored: truncated to microseconds and clamped to years 1970..=9999.
pub(crate) fn stored(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6).clamp(earliest(), latest())
}

/// `time + duration`, saturating at the latest storable time.
pub(crate) fn after(time: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    let later = TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| time.checked_add_signed(delta))
        .unwrap_or_else(latest);
    stored(later)
}

fn earliest() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

fn latest() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999Z")
        .expect("a valid RFC 3339 literal")
        .to_utc()
}

#[cfg(test)]
mod tests {
    use chrono::SecondsFormat;

    use super::*;

    /// The encoding sqlx-sqlite uses for `DateTime<Utc>` parameters.
    fn sqlite_text(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    #[test]
    fn sqlite_text_sorts_like_time() {
        let base = stored(Utc::now()).trunc_subsecs(0);
        let offsets_us = [
            0,
            1,
            10,
            999,
            1_000,
            1_001,
            100_000,
            120_000,
            120_001,
            123_456,
            500_000,
            999_999,
            1_000_000,
            1_000_001,
            86_400_000_000,
        ];
        let mut times: Vec<_> = offsets_us
            .iter()
            .map(|us| stored(base + TimeDelta::microseconds(*us)))
            .collect();
        times.sort();
        let texts: Vec<_> = times.iter().map(|t| sqlite_text(*t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        assert!(texts.iter().all(|t| t.ends_with("+00:00")));
    }

    #[test]
    fn after_and_before_saturate() {
        let time = now();
        assert_eq!(after(time, std::time::Duration::MAX), latest());
        assert!(after(time, std::time::Duration::from_millis(1)) > time);
        assert_eq!(before(time, std::time::Duration::MAX), earliest());
        assert!(before(time, std::time::Duration::from_millis(1)) < time);
    }

    #[test]
    fn manual_clocks_move_only_when_told() {
        let start = stored(Utc::now());
        let clock = ManualClock::new(start);
        let shared = Clock::from(clock.clone());
        assert_eq!(shared.now(), start);
        clock.advance(TimeDelta::hours(73));
        assert_eq!(shared.now(), start + TimeDelta::hours(73));
        clock.set(start);
        assert_eq!(shared.now(), start);
        assert_eq!(shared, Clock::Manual(clock));
        assert_ne!(shared, Clock::Manual(ManualClock::new(start)));
        assert_ne!(shared, Clock::System);
    }

    #[test]
    fn stored_truncates_to_microseconds() {
        let time = DateTime::parse_from_rfc3339("2025-01-01T00:00:00.123456789Z")
            .expect("valid")
            .to_utc();
        assert_eq!(
            sqlite_text(stored(time)),
            "2025-01-01T00:00:00.123456+00:00"
        );
    }
}
