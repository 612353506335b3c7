//! What the server and an evaluator process say to each other: one JSON object per line.
//!
//! The server writes a [`Request`] to the evaluator's standard input and reads one
//! [`Response`] line from its standard output. Anything else the evaluator prints (a Rust
//! runtime's last words on a stack overflow or a failed allocation) goes to standard error,
//! which the server reads to name the limit that ended it.

use hookplane_crds::MappingSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Limits, MapError};

/// One evaluation.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) job: Job,
    pub(crate) payload: Value,
    pub(crate) limits: Limits,
}

/// What to evaluate. The evaluator compiles each distinct job once and keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Job {
    /// A mapping (rules and/or program); its value.
    Map(MappingSpec),
    /// A filter: whether the event is delivered.
    Filter(String),
}

/// The outcome of one evaluation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Response {
    /// The evaluator has started and reads requests (its first line).
    Ready,
    /// The job was compiled (sent before the evaluation when it was not cached): compiling
    /// does not count against the evaluation's time.
    Compiled,
    /// The mapping's value.
    Value(Value),
    /// The filter's decision.
    Keep(bool),
    /// The expression failed (a jq error, or a limit the evaluator measured itself).
    Failed(MapError),
}
