//! The operator's tests, cheapest first: validate/build/status on plain values, rendering,
//! the reconcilers against a stateful in-memory Kubernetes API, the watch wiring against a
//! scripted API server, leader election, and the HTTP endpoints.

mod build;
mod chart;
mod endpoints;
mod leader;
mod reconcile;
mod render;
mod support;
mod watches;
