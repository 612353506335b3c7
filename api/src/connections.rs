//! Accepting HTTP connections on a public port: at most `max_connections` at once (more wait
//! in the kernel's backlog, costing this process nothing), and a connection that has not sent
//! a request's headers within `header_timeout` is closed, whether it is new, trickling
//! headers (slowloris) or idle between keep-alive requests. A request head larger than
//! `max_header_bytes` answers 431 with a JSON body (`HEADERS_TOO_LARGE`); the HTTP parser's
//! buffer is [`HEAD_SLACK`] larger so that it is this check, not the parser's bare 431, that
//! refuses all but the most oversized heads. On shutdown, no new connection is accepted and
//! open ones finish their requests. Each request carries its connection's
//! [`coalescing::Coalescing`] switch (a WebSocket upgrade turns `TCP_NODELAY` off with it).

pub mod coalescing;

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How much larger than `max_header_bytes` a head may be and still be read whole (and
/// refused with a JSON body); beyond it the parser answers a bare 431.
pub const HEAD_SLACK: usize = 16 * 1024;

/// Limits on connections, with their flags' defaults.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest wait for a request's headers, on a new or an idle connection.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; more answers 431.
    pub max_header_bytes: usize,
    /// Longest wait, at shutdown, for open connections to finish.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serve `app` on `listener` until `shutdown`, then let open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper's minimum is 8 KiB.
        .max_buf_size(limits.max_header_bytes.saturating_add(HEAD_SLACK).max(8192));
    let max_head = limits.max_header_bytes;
    let app = app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let size = head_size(&request);
            if size > max_head {
                let error = hookplane_dataplane::http_error::HttpError::new(
                    axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "HEADERS_TOO_LARGE",
                    format!("the request line and headers are {size} bytes; at most {max_head} are read (--max-header-bytes)"),
                );
                return axum::response::IntoResponse::into_response(error);
            }
            next.run(request).await
        },
    ));
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // moment rather than spin.
                    warn!(%error, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (stream, coalescing) = coalescing::CoalescingStream::new(stream);
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            app.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(coalescing.clone());
                request
            },
        ));
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = shutdown.cancelled() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                debug!(%error, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Every connection gives its slot back when it has finished.
    let drained = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(drained))
        .await
        .is_err()
    {
        warn!(
            seconds = limits.drain_timeout.as_secs(),
            "connections still open after the drain timeout; closing them"
        );
    }
}

/// The size of a request's head as sent: request line and header lines. Pure.
fn head_size(request: &axum::extract::Request) -> usize {
    let line = request.method().as_str().len()
        + request
            .uri()
            .path_and_query()
            .map_or(1, |path| path.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}
