//! The fan-out client: a `graphql-transport-ws` subscription to a touchpoint's resync bucket
//! that records, for each change received, the time since the entry's `receivedAt`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};
use tokio_util::sync::CancellationToken;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SUBSCRIPTION: &str = "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind status entry { id receivedAt } } }";

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct Received {
    /// Microseconds from each change's `receivedAt` to its receipt.
    pub latencies_us: Vec<u64>,
    /// `error` messages, or `next` messages carrying errors (a lagged subscription).
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Connect, handshake (with `token` in `connection_init`) and subscribe to `touchpoint_id`'s
/// resync bucket.
pub async fn subscribe(url: &str, token: Option<&str>, touchpoint_id: &str) -> Result<Socket> {
    let mut request = url.into_client_request().context("a WebSocket request")?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("WebSocket connect")?;
    socket
        .send(Message::text(
            json!({
                "type": "connection_init",
                "payload": token.map_or(json!({}), |token| json!({ "Authorization": format!("Bearer {token}") })),
            })
            .to_string(),
        ))
        .await
        .context("sending connection_init")?;
    let ack = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .context("no connection_ack within 30 s")?
        .context("the socket closed before connection_ack")?
        .context("reading connection_ack")?;
    if !ack.to_text().unwrap_or_default().contains("connection_ack") {
        bail!("expected connection_ack, got {ack}");
    }
    socket
        .send(Message::text(
            json!({
                "id": "1",
                "type": "subscribe",
                "payload": { "query": SUBSCRIPTION, "variables": { "id": touchpoint_id } },
            })
            .to_string(),
        ))
        .await
        .context("sending subscribe")?;
    Ok(socket)
}

/// Record every change until `stop` fires, then close the socket; `counter` counts changes
/// received by every subscriber.
pub async fn receive(
    mut socket: Socket,
    stop: CancellationToken,
    counter: Arc<AtomicU64>,
) -> Received {
    let mut received = Received::default();
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = stop.cancelled() => break,
        };
        let Some(Ok(message)) = message else {
            received
                .first_error
                .get_or_insert_with(|| "the server closed the socket".to_owned());
            received.errors += 1;
            return received;
        };
        let Ok(text) = message.to_text() else {
            continue;
        };
        let now = unix_micros(SystemTime::now());
        // A cheap look instead of a full parse: the client shares two cores with the server.
        if text.contains("\"type\":\"ping\"") {
            let _ = socket
                .send(Message::text(r#"{"type":"pong"}"#.to_owned()))
                .await;
        } else if text.contains("\"errors\"") || text.contains("\"type\":\"error\"") {
            received.errors += 1;
            received.first_error.get_or_insert_with(|| text.to_owned());
        } else if let Some(at) = received_at(text) {
            received.latencies_us.push(now.saturating_sub(at));
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = socket.close(None).await;
    received
}

/// `receivedAt` of a change, in microseconds since the epoch.
fn received_at(text: &str) -> Option<u64> {
    const KEY: &str = "\"receivedAt\":\"";
    let start = text.find(KEY)? + KEY.len();
    let end = start + text[start..].find('"')?;
    let at = chrono::DateTime::parse_from_rfc3339(&text[start..end]).ok()?;
    u64::try_from(at.timestamp_micros()).ok()
}

fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_received_at() {
        let text = r#"{"type":"next","id":"1","payload":{"data":{"resyncBucket":{"kind":"CREATED","entry":{"id":"x","receivedAt":"2024-01-01T00:00:01.000002Z"}}}}}"#;
        assert_eq!(received_at(text), Some(1_704_067_201_000_002));
    }
}
