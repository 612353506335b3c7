//! How many workers a connection runs.
//!
//! The recommendation is `clamp(ceil(backlog / targetBacklogPerReplica), min, max)`. Scaling
//! up follows it at once; scaling down follows the highest recommendation of the last
//! `scaleDownStabilizationSeconds`, so a backlog that dips for a moment does not remove
//! workers that are needed again a minute later (the HorizontalPodAutoscaler's rule).

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use hookplane_crds::WorkerSpec;

/// The workers `backlog` events call for under `worker`.
pub fn recommend(backlog: i64, worker: &WorkerSpec) -> i32 {
    let per_replica = worker.target_backlog_per_replica.max(1);
    let backlog = backlog.max(0);
    let wanted = backlog / per_replica + i64::from(backlog % per_replica != 0);
    let min = worker.min_replicas.max(0);
    let max = worker.max_replicas.max(min);
    wanted.clamp(i64::from(min), i64::from(max)) as i32
}

/// Recent recommendations of one connection.
#[derive(Clone, Debug, Default)]
pub struct Stabilizer {
    history: VecDeque<(Instant, i32)>,
}

impl Stabilizer {
    /// A stabilizer that remembers `current` replicas as recommended at `now`: after an
    /// operator restart, workers are not removed before a full window has passed.
    pub fn starting_at(now: Instant, current: i32) -> Self {
        Self {
            history: VecDeque::from([(now, current)]),
        }
    }

    /// Record `recommendation` and return the replicas to run: the highest recommendation
    /// within `window` of `now`.
    pub fn stabilize(&mut self, now: Instant, window: Duration, recommendation: i32) -> i32 {
        self.history
            .retain(|(at, _)| now.saturating_duration_since(*at) < window);
        self.history.push_back((now, recommendation));
        self.history
            .iter()
            .map(|(_, replicas)| *replicas)
            .max()
            .unwrap_or(recommendation)
    }
}

/// The stabilizers of every connection, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Stabilizers(Mutex<HashMap<String, Stabilizer>>);

impl Stabilizers {
    /// The replicas to run for the connection `key`: see [`Stabilizer::stabilize`]. `current`
    /// (the worker Deployment's replicas, if it exists) seeds a connection seen first.
    pub fn replicas(
        &self,
        key: &str,
        now: Instant,
        window: Duration,
        current: Option<i32>,
        recommendation: i32,
    ) -> i32 {
        let mut stabilizers = self.0.lock().expect("stabilizers lock is never poisoned");
        let stabilizer = stabilizers.entry(key.to_owned()).or_insert_with(|| {
            current
                .map(|replicas| Stabilizer::starting_at(now, replicas))
                .unwrap_or_default()
        });
        stabilizer.stabilize(now, window, recommendation)
    }

    /// Forget a deleted connection.
    pub fn forget(&self, key: &str) {
        self.0
            .lock()
            .expect("stabilizers lock is never poisoned")
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(min: i32, max: i32, per_replica: i64) -> WorkerSpec {
        WorkerSpec {
            min_replicas: min,
            max_replicas: max,
            target_backlog_per_replica: per_replica,
            ..WorkerSpec::default()
        }
    }

    #[test]
    fn recommendation_is_ceil_of_backlog_per_replica_clamped() {
        let spec = worker(1, 6, 100);
        assert_eq!(recommend(0, &spec), 1);
        assert_eq!(recommend(1, &spec), 1);
        assert_eq!(recommend(100, &spec), 1);
        assert_eq!(recommend(101, &spec), 2);
        assert_eq!(recommend(350, &spec), 4);
        assert_eq!(recommend(600, &spec), 6);
        assert_eq!(recommend(10_000_000, &spec), 6);
        assert_eq!(recommend(-5, &spec), 1, "a negative backlog counts as none");
    }

    #[test]
    fn zero_min_scales_to_zero_only_without_backlog() {
        let spec = worker(0, 3, 50);
        assert_eq!(recommend(0, &spec), 0);
        assert_eq!(recommend(1, &spec), 1);
    }

    #[test]
    fn inconsistent_bounds_never_panic() {
        // Validation rejects min > max before scaling runs; the arithmetic still must not panic.
        assert_eq!(recommend(1_000, &worker(5, 2, 1)), 5);
        assert_eq!(recommend(i64::MAX, &worker(0, 100, 1)), 100);
        assert_eq!(
            recommend(10, &worker(0, 4, 0)),
            4,
            "a zero target counts as one"
        );
    }

    #[test]
    fn scale_up_is_immediate_and_scale_down_waits_for_the_window() {
        let window = Duration::from_secs(300);
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let mut stabilizer = Stabilizer::default();
        assert_eq!(stabilizer.stabilize(at(0), window, 1), 1);
        assert_eq!(stabilizer.stabilize(at(30), window, 5), 5, "up at once");
        assert_eq!(stabilizer.stabilize(at(60), window, 1), 5, "down waits");
        assert_eq!(stabilizer.stabilize(at(329), window, 1), 5);
        assert_eq!(
            stabilizer.stabilize(at(330), window, 2),
            2,
            "the 5 left the window"
        );
        assert_eq!(stabilizer.stabilize(at(700), window, 1), 1);
    }

    #[test]
    fn a_zero_window_follows_the_recommendation() {
        let now = Instant::now();
        let mut stabilizer = Stabilizer::starting_at(now, 4);
        assert_eq!(stabilizer.stabilize(now, Duration::ZERO, 1), 1);
    }

    #[test]
    fn a_restarted_operator_keeps_the_current_workers_for_a_window() {
        let stabilizers = Stabilizers::default();
        let now = Instant::now();
        let window = Duration::from_secs(60);
        assert_eq!(stabilizers.replicas("ns/c", now, window, Some(3), 1), 3);
        let later = now + Duration::from_secs(61);
        assert_eq!(stabilizers.replicas("ns/c", later, window, Some(3), 1), 1);
        stabilizers.forget("ns/c");
        assert_eq!(stabilizers.replicas("ns/c", later, window, None, 2), 2);
    }
}
