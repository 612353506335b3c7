//! `hookplane sink`: a destination for trying Hookplane out. It prints every request it
//! receives (method, path, `Idempotency-Key`, body) as one JSON line and answers 200.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    routing::any,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serve until `shutdown`; `on_listening` learns the bound address.
pub async fn run(
    listen: SocketAddr,
    shutdown: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    on_listening(listener.local_addr()?);
    let app = Router::new().fallback(any(print_request));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn print_request(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let line = json!({
        "method": method.as_str(),
        "path": uri.path(),
        "idempotencyKey": headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
        "body": body,
    });
    println!("{line}");
    StatusCode::OK
}
