//! The baseline: a bare axum server, run as a child process of this binary so it has a
//! process and a runtime of its own, as `hookplane serve` does. It does the least each
//! scenario's work needs, with nothing durable:
//!
//! - `POST /ingest` reads the body and answers 200 (the HTTP ceiling for intake);
//! - `POST /relay` parses the body, applies the same 20-field mapping and POSTs the result to
//!   the sink before answering (webhook-to-HTTP without durability);
//! - `POST /broadcast` stamps the body's arrival and broadcasts it to every `/ws` client;
//! - `/ws` speaks just enough `graphql-transport-ws` for the fan-out client, with axum's
//!   default WebSocket buffers (128 KiB to read, as `hookplane serve` has them); `/ws-small`
//!   the same with 4 KiB buffers, to show what the buffers cost per subscriber.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, Result};
use axum::{
    Router,
    body::Bytes,
    extract::{
        State, WebSocketUpgrade,
        ws::{Message, Utf8Bytes, WebSocket},
    },
    http::StatusCode,
    response::Response,
    routing::{any, post},
};
use hookplane_mapping::Mapping;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::broadcast};

use crate::{child::BARE_LISTENING, workload::twenty_rules};

/// Buffer size of `/ws-small`.
pub const SMALL_BUFFER: usize = 4096;

#[derive(Clone)]
struct Bare {
    sink: Arc<str>,
    client: reqwest::Client,
    mapping: Mapping,
    changes: broadcast::Sender<Utf8Bytes>,
}

/// Serve on `127.0.0.1:0` until killed, on a runtime of its own.
pub fn run(sink: String) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(sink))
}

async fn serve(sink: String) -> Result<()> {
    let mapping = Mapping::compile(&twenty_rules()).context("compiling the mapping")?;
    let state = Bare {
        sink: sink.into(),
        client: reqwest::Client::new(),
        mapping,
        changes: broadcast::channel(4096).0,
    };
    let app = Router::new()
        .route("/ingest", post(ingest))
        .route("/relay", post(relay))
        .route("/broadcast", post(broadcast))
        .route("/ws", any(subscribe))
        .route("/ws-small", any(subscribe_small))
        .with_state(state);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("binding")?;
    println!(
        "{BARE_LISTENING}{}",
        listener.local_addr().context("local address")?
    );
    axum::serve(listener, app).await.context("serving")
}

async fn ingest(_body: Bytes) -> StatusCode {
    StatusCode::OK
}

async fn relay(State(bare): State<Bare>, body: Bytes) -> StatusCode {
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(mapped) = bare.mapping.apply(&payload) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    match bare.client.post(&*bare.sink).json(&mapped).send().await {
        Ok(response) if response.status().is_success() => StatusCode::OK,
        _ => StatusCode::BAD_GATEWAY,
    }
}

async fn broadcast(State(bare): State<Bare>, body: Bytes) -> StatusCode {
    let id = serde_json::from_slice::<Value>(&body)
        .map(|payload| payload["id"].clone())
        .unwrap_or(Value::Null);
    let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let message = json!({
        "type": "next",
        "id": "1",
        "payload": { "data": { "resyncBucket": {
            "kind": "CREATED",
            "status": "UNPROCESSED",
            "entry": { "id": id.to_string(), "receivedAt": received_at },
        }}},
    });
    // No subscribers is not an error for the sender.
    let _ = bare.changes.send(message.to_string().into());
    StatusCode::OK
}

async fn subscribe(State(bare): State<Bare>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["graphql-transport-ws"])
        .on_upgrade(move |socket| forward(socket, bare.changes.subscribe()))
}

async fn subscribe_small(State(bare): State<Bare>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["graphql-transport-ws"])
        .read_buffer_size(SMALL_BUFFER)
        .write_buffer_size(SMALL_BUFFER)
        .on_upgrade(move |socket| forward(socket, bare.changes.subscribe()))
}

/// `connection_init` -> `connection_ack`; after `subscribe`, every change as `next`.
async fn forward(mut socket: WebSocket, mut changes: broadcast::Receiver<Utf8Bytes>) {
    loop {
        let Some(Ok(message)) = socket.recv().await else {
            return;
        };
        let Message::Text(text) = message else {
            continue;
        };
        if text.contains("connection_init") {
            let ack = Message::Text(r#"{"type":"connection_ack"}"#.into());
            if socket.send(ack).await.is_err() {
                return;
            }
        } else if text.contains("subscribe") {
            break;
        }
    }
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(text) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
