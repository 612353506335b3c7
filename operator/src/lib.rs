//! The Hookplane operator: reconciles `Connection` and `Touchpoint` resources
//! (`hookplane.io/v1alpha1`) into running webhook receivers and sync workers, scales the
//! workers on the backlog and reports on both resources.
//!
//! Reading order: [`validate`] (the only way to a buildable connection), [`build`] (the
//! objects, no I/O), [`scaling`], [`status`], [`apply`] (writes only what differs), then the
//! reconcilers in [`reconcile`] and their wiring in [`controller`], [`watches`] and [`wakeups`]. The binary
//! (`main.rs`) adds leader election ([`leader`]) and the HTTP endpoints ([`server`]).

pub mod apply;
pub mod backlog;
pub mod build;
pub mod cache;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod scaling;
pub mod server;
pub mod settings;
pub mod status;
pub mod validate;
pub mod wakeups;
pub mod watches;
