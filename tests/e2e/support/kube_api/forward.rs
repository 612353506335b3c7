//! The HTTP front: hands every request it does not answer itself to the fake with
//! `Client::send`; status, headers and body pass through. What it answers itself (a path that
//! addresses no collection, a method the API lacks, a body over 16 MiB, a request the fake
//! cannot parse) gets a `Status` body, as from a real API server.
//!
//! LIST: the fake always answers `resourceVersion: "1"`; the list gets the highest
//! resourceVersion recorded so far, so a watch from it follows on exactly. `limit` is dropped:
//! the whole list comes in one page (the fake would cut it without a `continue` token).

use std::sync::Arc;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{self, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use kube::client::Body as KubeBody;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{
    journal::{Journal, record_write, set_resource_version},
    request::{Collection, Query, Target},
};

const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub(super) struct Front {
    pub(super) fake: kube::Client,
    pub(super) journal: Arc<Mutex<Journal>>,
    pub(super) shutdown: CancellationToken,
}

/// A buffered answer of the fake.
struct Answer {
    parts: http::response::Parts,
    body: Bytes,
}

impl Answer {
    fn into_response(self) -> Response {
        Response::from_parts(self.parts, Body::from(self.body))
    }
}

/// The current objects of a collection, as the fake lists them.
pub(super) struct Listed {
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) items: Vec<Value>,
}

pub(super) async fn handle(State(front): State<Front>, request: Request) -> Response {
    let Some(target) = Target::parse(request.uri().path()) else {
        let message = format!(
            "the server could not find the requested resource ({})",
            request.uri().path()
        );
        return failure(StatusCode::NOT_FOUND, "NotFound", message);
    };
    let query = Query::parse(request.uri().query());
    match (request.method().clone(), target) {
        (Method::GET, Target::Collection(collection)) if query.flag("watch") => {
            front.watch(collection, &query).await
        }
        (Method::GET, Target::Collection(_)) => front.list(request, &query).await,
        (Method::GET, Target::Object(_)) => front.forward(request).await,
        (Method::POST | Method::PUT | Method::PATCH | Method::DELETE, target) => {
            front.mutate(target, request).await
        }
        (method, _) => failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("method {method} is not supported"),
        ),
    }
}

impl Front {
    /// Streams the fake's answer back as it is.
    async fn forward(&self, request: Request) -> Response {
        let request = match into_kube_request(request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        match self.fake.send(request).await {
            Ok(answer) => answer.map(Body::new),
            Err(error) => bad_request(&error),
        }
    }

    async fn send_buffered(&self, request: http::Request<KubeBody>) -> Result<Answer, Response> {
        let answer = self
            .fake
            .send(request)
            .await
            .map_err(|error| bad_request(&error))?;
        let (parts, body) = answer.into_parts();
        let body = body
            .collect_bytes()
            .await
            .map_err(|error| bad_request(&error))?;
        Ok(Answer { parts, body })
    }

    async fn list(&self, request: Request, query: &Query) -> Response {
        let (mut parts, body) = request.into_parts();
        let path_and_query = format!(
            "{}?{}",
            parts.uri.path(),
            query.without(&["limit", "continue"])
        );
        parts.uri = match path_and_query.parse() {
            Ok(uri) => uri,
            Err(_) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "invalid query string",
                );
            }
        };
        let request = match into_kube_request(Request::from_parts(parts, body)).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        let journal = self.journal.lock().await;
        let mut answer = match self.send_buffered(request).await {
            Ok(answer) => answer,
            Err(response) => return response,
        };
        if answer.parts.status.is_success()
            && let Ok(mut list) = serde_json::from_slice::<Value>(&answer.body)
        {
            set_resource_version(&mut list, journal.highest);
            answer.body = Bytes::from(list.to_string());
            answer.parts.headers.remove(header::CONTENT_LENGTH);
        }
        answer.into_response()
    }

    pub(super) async fn list_objects(&self, collection: &Collection) -> Result<Listed, Response> {
        let request = http::Request::get(collection.path())
            .body(KubeBody::empty())
            .expect("a GET of a collection path is a valid request");
        let answer = self.send_buffered(request).await?;
        if !answer.parts.status.is_success() {
            return Err(answer.into_response());
        }
        let mut list: Value = serde_json::from_slice(&answer.body).map_err(|error| {
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                error.to_string(),
            )
        })?;
        let text = |key: &str| {
            list.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let kind = kind.strip_suffix("List").unwrap_or(&kind).to_owned();
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok(Listed {
            api_version,
            kind,
            items,
        })
    }

    /// Forwards a POST, PUT, PATCH or DELETE and records what it changed.
    async fn mutate(&self, target: Target, request: Request) -> Response {
        let method = request.method().clone();
        let request = match into_kube_request(request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        let mut journal = self.journal.lock().await;
        let answer = match self.send_buffered(request).await {
            Ok(answer) => answer,
            Err(response) => return response,
        };
        if answer.parts.status.is_success() {
            if method == Method::DELETE {
                self.record_deletions(&mut journal).await;
            } else if let Ok(object) = serde_json::from_slice::<Value>(&answer.body) {
                record_write(&mut journal, &target, object);
            }
        }
        answer.into_response()
    }
}

pub(super) fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    })
}

pub(super) fn failure(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    (code, Json(status(code, reason, message))).into_response()
}

/// The fake fails requests it cannot parse (a bad path or a body that is not JSON) with an error
/// instead of an answer.
fn bad_request(error: &kube::Error) -> Response {
    failure(StatusCode::BAD_REQUEST, "BadRequest", error.to_string())
}

async fn into_kube_request(request: Request) -> Result<http::Request<KubeBody>, Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .map_err(|error| {
            failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                error.to_string(),
            )
        })?;
    Ok(http::Request::from_parts(parts, KubeBody::from(body)))
}
