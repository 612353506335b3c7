//! The operator's HTTP endpoints.

use std::sync::Arc;

use axum::{Router, body::Body, http::Request};
use hookplane_operator::{metrics::Metrics, server};
use tokio::sync::watch;
use tower::ServiceExt;

async fn get(router: &Router, path: &str) -> (u16, String) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    let metrics = Arc::new(Metrics::new());
    metrics.wrote("Deployment", "apply");
    let (reachable, reachable_rx) = watch::channel(false);
    let router = server::router(metrics, reachable_rx);
    assert_eq!(get(&router, "/healthz").await.0, 200);
    assert_eq!(get(&router, "/readyz").await.0, 503);
    reachable.send_replace(true);
    assert_eq!(get(&router, "/readyz").await.0, 200);
    let (status, text) = get(&router, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("hookplane_operator_writes_total{action=\"apply\",kind=\"Deployment\"} 1"),
        "{text}"
    );
    assert!(text.contains("hookplane_operator_leader 0"));
}
