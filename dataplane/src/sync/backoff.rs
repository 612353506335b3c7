//! Exponential backoff with jitter between delivery attempts.

use std::time::Duration;

use hookplane_crds::DeliveryPolicy;
use rand::Rng;

/// Delay before the attempt after `attempts` failed ones: `initial * 2^(attempts-1)`, capped
/// at `max`, then drawn uniformly from its upper half so retries of many events spread out.
pub fn retry_delay(policy: &DeliveryPolicy, attempts: u32, rng: &mut impl Rng) -> Duration {
    let exponent = attempts.saturating_sub(1).min(32);
    let nominal = policy
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(policy.max_backoff_ms);
    let jittered = if nominal < 2 {
        nominal
    } else {
        rng.random_range(nominal / 2..=nominal)
    };
    Duration::from_millis(jittered)
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let policy = DeliveryPolicy {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            ..DeliveryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(7);
        for (attempts, nominal) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_000),
            (60, 1_000),
        ] {
            for _ in 0..100 {
                let delay = retry_delay(&policy, attempts, &mut rng).as_millis() as u64;
                assert!(
                    (nominal / 2..=nominal).contains(&delay),
                    "attempt {attempts}: {delay} not in {}..={nominal}",
                    nominal / 2
                );
            }
        }
    }

    #[test]
    fn zero_backoff_retries_at_once() {
        let policy = DeliveryPolicy {
            initial_backoff_ms: 0,
            max_backoff_ms: 0,
            ..DeliveryPolicy::default()
        };
        assert_eq!(retry_delay(&policy, 3, &mut rand::rng()), Duration::ZERO);
    }
}
