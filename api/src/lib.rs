//! Hookplane: receive webhooks, store them durably, map and deliver them, and show it all live
//! over GraphQL.
//!
//! This library is what the `hookplane` binary wires together: the receiver ([`ingest`]), the
//! sync worker ([`sync`]), the GraphQL API ([`graphql`]) and the running configuration
//! ([`runtime`]) over the durable store (`hookplane-store`).

pub mod cluster;
pub mod graphql;
pub mod http_error;
pub mod ingest;
pub mod runtime;
pub mod schemas;
pub mod server;
pub mod sink;
pub mod sync;
pub mod telemetry;
