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
    response::{IntoResponse, Response},
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
    /// The body as JSON (`null` when it is not JSON).
    pub body: Value,
    /// The body as text.
    pub raw: String,
    /// The query string, if any.
    pub query: Option<String>,
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
    /// Answer 401 unless `Authorization: Bearer <token>`.
    RequireBearer(&'static str),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    tokens_issued: usize,
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

    /// Tokens issued at [`TOKEN_PATH`].
    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().expect("received lock").tokens_issued
    }
}

type DestinationState = (Arc<Mutex<Inner>>, Arc<Mutex<Mode>>);

async fn record(
    State((inner, mode)): State<DestinationState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == TOKEN_PATH {
        return issue_token(&inner);
    }
    let raw = String::from_utf8_lossy(&body).into_owned();
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
        Mode::RequireBearer(token) => {
            let expected = format!("Bearer {token}");
            if headers
                .get("authorization")
                .is_some_and(|v| v == expected.as_str())
            {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }
    };
    inner.received.push(Received {
        method,
        path: uri.path().to_owned(),
        idempotency_key,
        headers,
        body,
        raw,
        query: uri.query().map(str::to_owned),
    });
    status.into_response()
}

/// Where the destination plays an OAuth2 token endpoint (client credentials).
pub const TOKEN_PATH: &str = "/oauth/token";

/// Issue `tok-<n>` for the n-th token request; the request is recorded like any other.
fn issue_token(inner: &Mutex<Inner>) -> Response {
    let mut inner = inner.lock().expect("received lock");
    inner.tokens_issued += 1;
    let token = format!("tok-{}", inner.tokens_issued);
    axum::Json(serde_json::json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 3600,
    }))
    .into_response()
}
