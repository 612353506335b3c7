//! A real destination HTTP server that records every request and answers as told.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    routing::any,
};
use serde_json::Value;

/// One request the destination received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

/// How the destination answers.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Ok,
    /// Answer 500 to everything.
    Fail,
    /// Answer 500 to the first `n` requests of each Idempotency-Key, then 200.
    FailFirst(usize),
    /// Answer this status to everything.
    Status(u16),
    /// Answer 400 to bodies whose `field` equals `value`, 200 to the rest.
    RejectWhere(&'static str, i64),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    per_key: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Destination {
    pub address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    mode: Arc<Mutex<Mode>>,
}

impl Destination {
    pub async fn start(mode: Mode) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let mode = Arc::new(Mutex::new(mode));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the destination");
        let address = listener.local_addr().expect("local address");
        let app = Router::new()
            .fallback(any(record))
            .with_state((Arc::clone(&inner), Arc::clone(&mode)));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            address,
            inner,
            mode,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode lock") = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("received lock").received.clone()
    }
}

type DestinationState = (Arc<Mutex<Inner>>, Arc<Mutex<Mode>>);

async fn record(
    State((inner, mode)): State<DestinationState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mode = *mode.lock().expect("mode lock");
    let mut inner = inner.lock().expect("received lock");
    let seen = {
        let key = idempotency_key.clone().unwrap_or_default();
        let count = inner.per_key.entry(key).or_insert(0);
        *count += 1;
        *count
    };
    let status = match mode {
        Mode::Ok => StatusCode::OK,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::FailFirst(n) if seen <= n => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::FailFirst(_) => StatusCode::OK,
        Mode::Status(status) => StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
        Mode::RejectWhere(field, value) if body[field] == value => StatusCode::BAD_REQUEST,
        Mode::RejectWhere(..) => StatusCode::OK,
    };
    inner.received.push(Received {
        method,
        path: uri.path().to_owned(),
        idempotency_key,
        headers,
        body,
    });
    status
}
