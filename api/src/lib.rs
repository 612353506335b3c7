//! Hookplane's control surface: the GraphQL API ([`graphql`]), cluster mode ([`cluster`]) and
//! the process wiring ([`server`]) around the data plane (`hookplane-dataplane`: the running
//! configuration, intake and the sync worker) over the durable store (`hookplane-store`).

pub mod auth;
pub mod cluster;
pub mod connections;
pub mod graphql;
pub mod listen;
pub mod portal;
pub mod server;
pub mod sink;
pub mod telemetry;
pub mod web;
