//! The operator's own HTTP endpoints: `/metrics` (Prometheus), `/healthz` (the process
//! serves) and `/readyz` (its last round trip to the API server worked).

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::sync::watch;

use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    reachable: watch::Receiver<bool>,
}

/// The router; `reachable` is what the leader election last saw of the API server.
pub fn router(metrics: Arc<Metrics>, reachable: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(AppState { metrics, reachable })
}

async fn metrics_text(State(state): State<AppState>) -> String {
    state.metrics.render()
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if *state.reachable.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Kubernetes API server is not reachable",
        )
    }
}
