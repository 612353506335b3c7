//! Limits on evaluating the jq a user writes, fed with payloads from the internet.
//!
//! A mapping, filter or ordering key may loop for ever (`last(range(1e18))`), allocate without
//! bound (`"x" * 1e12`, `[range(.n)]`), or build values so deep that dropping them overflows
//! the stack (`reduce range(1e6) as $i (0; [.])`). jaq offers no hook to meter evaluation, and
//! an allocation failure or a stack overflow aborts a process, so expressions that need jaq run
//! in evaluator processes ([`crate::sandbox`]) where these limits hold and a crash ends only
//! the evaluator. Expressions the shortcut covers run in the caller under a step budget derived
//! from the same limits and go to an evaluator when they outgrow it.
//!
//! | limit | default | why |
//! | --- | --- | --- |
//! | `time` | 50 ms of CPU per evaluation | an endless or huge loop must fail its event, not hold a core; measured as the evaluator's CPU time, so a busy machine does not fail slow but honest mappings (wall time is capped at 40 times the limit, at least 2 s) |
//! | `memory` | 64 MiB per evaluation | allocations beyond it fail inside the evaluator (its address space is capped), not in the server, whose kernel OOM killer would end everything |
//! | `output` | 1 MiB of JSON | what a mapping produces is stored and sent; a result larger than any destination takes is an error |
//! | `depth` | 256 levels | deeper values overflow recursive serializers and comparisons |
//! | stack | 64 MiB per evaluator | jaq recurses per level of values it drops or compares; an overflow ends only the evaluator and is reported as `stack` |
//!
//! Each default is a flag of `hookplane serve` (`--expression-time-ms`, `--expression-memory-mib`,
//! `--expression-output-kib`); a touchpoint may lower them in its spec (`expressionLimits`) and
//! raise them only up to the instance maximum (`--expression-max-*`).
//! Exceeding a limit is [`MapError::LimitExceeded`](crate::MapError::LimitExceeded), code
//! `MAPPING_LIMIT_EXCEEDED`: the event is FAILED without spending delivery attempts.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::value::MAX_DEPTH;

/// The limits one evaluation runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU time of one evaluation.
    #[serde(with = "millis")]
    pub time: Duration,
    /// Memory one evaluation may allocate, in bytes.
    pub memory: u64,
    /// Size of the result as JSON text, in bytes.
    pub output: usize,
    /// Nesting of arrays and objects in the result (at most 256).
    pub depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_millis(50),
            memory: 64 * 1024 * 1024,
            output: 1024 * 1024,
            depth: MAX_DEPTH,
        }
    }
}

impl Limits {
    /// These limits, none above `max`'s.
    pub fn capped(&self, max: &Self) -> Self {
        Self {
            time: self.time.min(max.time),
            memory: self.memory.min(max.memory),
            output: self.output.min(max.output),
            depth: self.depth.min(max.depth).min(MAX_DEPTH),
        }
    }

    /// The value of `limit`, for messages.
    pub fn describe(&self, limit: Limit) -> String {
        match limit {
            Limit::Time => format!("{} ms of CPU time", self.time.as_millis()),
            Limit::Memory => format!("{} MiB of memory", self.memory / (1024 * 1024)),
            Limit::Output => format!("{} bytes of output", self.output),
            Limit::Depth => format!("{} levels of nesting", self.depth),
            Limit::Stack => "the evaluator's stack".to_owned(),
            Limit::Evaluator => "the evaluator process".to_owned(),
        }
    }
}

/// How deeply `value`'s arrays and objects nest, counted without recursion up to `cap`: for
/// checking user input that other code walks recursively.
pub fn nesting(value: &serde_json::Value, cap: usize) -> usize {
    crate::shortcut::fuel::depth(value, cap)
}

/// Which limit an evaluation exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Time,
    Memory,
    Output,
    Depth,
    Stack,
    /// The evaluator ended without saying why (killed from outside, or a crash the limits do
    /// not name); the event fails the same way.
    Evaluator,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Memory => "memory",
            Self::Output => "output",
            Self::Depth => "depth",
            Self::Stack => "stack",
            Self::Evaluator => "evaluator",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
