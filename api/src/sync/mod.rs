//! The sync worker ("Agent" with Auto-sync): claims due events, filters, maps, delivers.
//!
//! Guarantee: every claimed event ends in a recorded outcome (SUCCESS, SKIPPED, FAILED, or a
//! scheduled retry), or, if the process dies first, its lease expires and it is claimed again.
//! Delivery is therefore at least once; the `Idempotency-Key` header (the event id) lets a
//! destination drop repeats.

mod backoff;
mod deliver;
mod process;
mod worker;

pub use backoff::retry_delay;
pub use deliver::{Deliverer, Delivery, DeliveryError};
pub use worker::{Worker, WorkerConfig};
