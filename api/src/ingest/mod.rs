//! Webhook intake: route by endpoint path, check, parse, append to the resync bucket, answer.
//!
//! Guarantee to the next step: every event in the bucket was received on a published
//! touchpoint's endpoint and parsed; a webhook is answered 2xx only after its event committed.

mod receiver;

pub use receiver::{IngestConfig, receive};
