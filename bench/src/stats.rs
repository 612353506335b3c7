//! Latency summaries: exact percentiles over every sample of a run (runs are bounded, so the
//! samples fit in memory and need no histogram's approximation).

use std::time::Duration;

use serde_json::{Value, json};

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    /// Summarize samples given in nanoseconds.
    pub fn of_nanos(mut samples: Vec<u64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            // Nearest-rank percentile.
            let rank = (q * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        Self {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: ms(*samples.last().expect("not empty")),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "samples": self.count,
            "p50": round(self.p50),
            "p90": round(self.p90),
            "p99": round(self.p99),
            "p999": round(self.p999),
            "max": round(self.max),
        })
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// Three significant decimals are plenty for figures measured on a shared machine.
pub fn round(value: f64) -> f64 {
    if !value.is_finite() {
        return 0.0;
    }
    (value * 1000.0).round() / 1000.0
}

/// `part / whole`, or 0 when `whole` is 0.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        round(part / whole)
    }
}

pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let summary = Summary::of_nanos((1..=1000).map(|i| i * 1_000_000).collect());
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.p50, 500.0);
        assert_eq!(summary.p99, 990.0);
        assert_eq!(summary.p999, 999.0);
        assert_eq!(summary.max, 1000.0);
        assert_eq!(Summary::of_nanos(vec![]).count, 0);
    }
}
