//! The operator's tests, cheapest first: validate/build/status on plain values, rendering,
//! the reconcilers against a stateful in-memory Kubernetes API, the watch wiring against a
//! scripted API server, leader election, the HTTP endpoints, and the backlog read from
//! PostgreSQL with the scaling latency it gives.

mod build;
mod chart;
mod endpoints;
mod leader;
mod reconcile;
mod render;
mod scaling;
mod support;
mod watches;
