//! The sync worker ("Agent" with Auto-sync): claims due events, filters, maps, renders and
//! delivers them within each destination's limits.
//!
//! Guarantee: every claimed event ends in a recorded outcome (SUCCESS, SKIPPED, FAILED, or a
//! scheduled retry), is handed back at once (its destination had no room, the worker is
//! shutting down before its request started), or, if the process dies first, its lease
//! expires and it is claimed again. Delivery is therefore at least once; the
//! `Idempotency-Key` header (the event id) lets a destination drop repeats.
//!
//! Modules: [`worker`] (the claim loop), [`dispatch`] (which claims a round makes),
//! [`destinations`] and [`limiter`] (per-connection limits), [`process`] (one event, as named
//! steps: map -> [`render`] -> [`authorize`] -> send -> [`classify`] -> record, deciding with
//! [`decision`]), [`auth`] (credentials, OAuth2 tokens), [`deliver`] (the HTTP request),
//! [`policy`] and [`backoff`] (what an answer means, when to retry), [`egress`] (which
//! addresses a delivery may connect to). URL templates are `hookplane_validation::template`.

pub mod auth;
mod authorize;
mod backoff;
mod classify;
mod decision;
mod deliver;
mod destinations;
mod dispatch;
pub mod egress;
pub mod limiter;
pub mod policy;
mod process;
pub mod render;

#[cfg(test)]
mod test_server;
mod worker;
#[cfg(test)]
mod worker_tests;

pub use backoff::retry_delay;
pub use deliver::{Deliverer, Delivery, DeliveryError};
pub use egress::{Cidr, DestinationPolicy, PolicyMode};
pub use worker::{Worker, WorkerConfig, wake_on_new_work};
