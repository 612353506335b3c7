//! Whether API tokens still hold, as every open WebSocket asks each second: at most one read
//! of a token per [`FRESH`], however many sockets it has open. A thousand subscribers with one
//! token used to cost a thousand reads a second, idle or not.
//!
//! A revocation is therefore seen within [`FRESH`] of the store holding it, plus the socket's
//! own check interval. Failures to read are not remembered: the next check reads again.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use uuid::Uuid;

/// How long a token's answer is reused.
pub(super) const FRESH: Duration = Duration::from_millis(250);

/// Tokens remembered at most; the whole map is cleared when it is full (answers are only
/// reused for [`FRESH`] anyway).
const CAPACITY: usize = 10_000;

/// Recent answers, by token id.
#[derive(Default)]
pub(super) struct TokenChecks(Mutex<HashMap<Uuid, (Instant, bool)>>);

impl TokenChecks {
    /// The answer for `token` if one is younger than [`FRESH`].
    pub(super) fn recent(&self, token: Uuid) -> Option<bool> {
        let checked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        checked
            .get(&token)
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, valid)| *valid)
    }

    pub(super) fn remember(&self, token: Uuid, valid: bool) {
        let mut checked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.len() >= CAPACITY && !checked.contains_key(&token) {
            checked.clear();
        }
        checked.insert(token, (Instant::now(), valid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_reused_only_while_fresh_and_the_map_stays_bounded() {
        let checks = TokenChecks::default();
        let token = Uuid::now_v7();
        assert_eq!(checks.recent(token), None);
        checks.remember(token, true);
        assert_eq!(checks.recent(token), Some(true));
        std::thread::sleep(FRESH + Duration::from_millis(20));
        assert_eq!(checks.recent(token), None, "stale answers are read again");

        for _ in 0..CAPACITY + 5 {
            checks.remember(Uuid::now_v7(), false);
        }
        assert!(checks.0.lock().expect("lock").len() <= CAPACITY);
    }
}
