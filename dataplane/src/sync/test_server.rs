//! A real HTTP server on `127.0.0.1:0` for the sync module's tests.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

/// Serve `app` until the test's runtime ends; returns `http://127.0.0.1:<port>`.
pub async fn serve(app: Router) -> String {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind a local port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the test server runs");
    });
    format!("http://{address}")
}
