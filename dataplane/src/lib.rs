//! Hookplane's data plane: what runs between a source app's POST and the destination's answer.
//!
//! ```text
//! runtime   the running snapshot: every published touchpoint, validated and compiled
//! ingest    POST /hooks/{org}/{endpoint}: route -> verify -> parse -> store -> 2xx
//! sync      the worker: claim -> filter -> map -> render -> deliver -> record the outcome
//! schemas   source JSON Schemas: compile, validate payloads, infer from a sample
//! retention purge old terminal events and logs
//! ```
//!
//! It knows HTTP (axum for intake, reqwest for delivery) and the store, and nothing of GraphQL
//! or the Kubernetes API: the `hookplane` binary wires it to the portal's API, and the
//! operator feeds it rendered configurations through files.

pub mod http_error;
pub mod ingest;
pub mod retention;
pub mod runtime;
pub mod schemas;
pub mod sync;
pub mod telemetry;
