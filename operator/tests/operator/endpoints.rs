//! The operator's HTTP endpoints and the HTTP backlog source, through real sockets where the
//! code talks HTTP.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, body::Body, http::Request, routing::post};
use hookplane_operator::{
    backlog::{BacklogSource, HttpBacklog},
    metrics::Metrics,
    server,
};
use serde_json::{Value, json};
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

/// A stand-in for the Hookplane API's GraphQL endpoint.
async fn graphql_api(answer: Value) -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let router = Router::new().route(
        "/graphql",
        post(move |Json(request): Json<Value>| {
            let answer = answer.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(
                    request["query"],
                    "{ touchpoints { id bucketCounts { unprocessed } } }"
                );
                Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}/"), requests)
}

#[tokio::test]
async fn the_http_backlog_asks_graphql_once_per_max_age() {
    let (url, requests) = graphql_api(json!({"data": {"touchpoints": [
        {"id": "0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b", "bucketCounts": {"unprocessed": 42}},
        {"id": "7d1e3f9a-2b4c-4d6e-8f0a-1b2c3d4e5f60", "bucketCounts": {"unprocessed": 0}}
    ]}}))
    .await;
    let source = HttpBacklog::new(&url, Duration::from_secs(5), Duration::from_secs(60));
    let backlog = source.backlog().await.unwrap();
    assert_eq!(backlog["0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b"], 42);
    assert_eq!(backlog.len(), 2);
    source.backlog().await.unwrap();
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );

    let fresh = HttpBacklog::new(&url, Duration::from_secs(5), Duration::ZERO);
    fresh.backlog().await.unwrap();
    fresh.backlog().await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn graphql_errors_and_unreachable_apis_are_errors() {
    let (url, _) =
        graphql_api(json!({"data": null, "errors": [{"message": "database unavailable"}]})).await;
    let error = HttpBacklog::new(&url, Duration::from_secs(5), Duration::ZERO)
        .backlog()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("database unavailable"),
        "{error}"
    );

    let unreachable =
        HttpBacklog::new("http://127.0.0.1:9", Duration::from_secs(2), Duration::ZERO);
    assert!(unreachable.backlog().await.is_err());
}
