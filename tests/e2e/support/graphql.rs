//! GraphQL over HTTP, and subscriptions over a real WebSocket (graphql-transport-ws, or the
//! legacy graphql-ws protocol).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use super::Server;

/// POST a GraphQL request and return the whole response body.
pub async fn gql(server: &Server, query: &str, variables: Value) -> Value {
    gql_as(server, &server.token, query, variables).await
}

/// POST a GraphQL request with `token` (empty: none at all); the HTTP status and the body
/// (`null` when it is not JSON).
pub async fn post_as(server: &Server, token: &str, query: &str, variables: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(server.url("/graphql"));
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let response = request
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// [`gql`] with another token (empty: none at all).
pub async fn gql_as(server: &Server, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = post_as(server, token, query, &variables).await;
    assert_eq!(status, 200, "GraphQL answers 200: {body}");
    body
}

/// POST a GraphQL request that must succeed; returns `data`.
pub async fn gql_ok(server: &Server, query: &str, variables: Value) -> Value {
    let response = gql(server, query, variables).await;
    assert!(
        response.get("errors").is_none(),
        "unexpected GraphQL errors: {response:#}"
    );
    response["data"].clone()
}

/// The secret of a new token named `name` with `role` (`VIEWER`, `OPERATOR`, `ADMIN`) in
/// `organization` (its id), created with the server's owner token.
pub async fn new_token(server: &Server, organization: &Value, name: &str, role: &str) -> String {
    gql_ok(
        server,
        "mutation($org: ID, $name: String!, $role: TokenRole!) { createToken(input: { organizationId: $org, name: $name, role: $role }) { secret } }",
        json!({ "org": organization, "name": name, "role": role }),
    )
    .await["createToken"]["secret"]
        .as_str()
        .expect("a token secret")
        .to_owned()
}

/// POST a GraphQL request that must fail; returns the first error's `extensions.code`.
pub async fn gql_error_code(server: &Server, query: &str, variables: Value) -> String {
    let response = gql(server, query, variables).await;
    let code = response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with extensions.code: {response:#}"));
    code.to_owned()
}

/// A live subscription; payloads arrive on a channel.
pub struct Subscription {
    pub items: mpsc::UnboundedReceiver<Value>,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    /// Open a WebSocket, run the protocol handshake, subscribe, and forward every `data`.
    pub async fn start(server: &Server, protocol: &str, query: &str, variables: Value) -> Self {
        Self::start_as(server, &server.token, protocol, query, variables).await
    }

    /// [`Subscription::start`] authenticated with another token in `connection_init`.
    pub async fn start_as(
        server: &Server,
        token: &str,
        protocol: &str,
        query: &str,
        variables: Value,
    ) -> Self {
        let mut request = server.ws_url().into_client_request().expect("a ws request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).expect("a header value"),
        );
        let (mut socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connects");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol),
            "the server speaks {protocol}"
        );
        let send = |value: Value| Message::text(value.to_string());
        socket
            .send(send(json!({
                "type": "connection_init",
                "payload": { "Authorization": format!("Bearer {token}") },
            })))
            .await
            .expect("sending connection_init");
        let ack = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("connection_ack in time")
            .expect("an open socket")
            .expect("a message");
        let ack: Value = serde_json::from_str(ack.to_text().expect("text")).expect("JSON");
        assert_eq!(ack["type"], "connection_ack", "got {ack}");
        let start_type = if protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        socket
            .send(send(json!({
                "id": "1",
                "type": start_type,
                "payload": { "query": query, "variables": variables },
            })))
            .await
            .expect("sending subscribe");
        let (sender, items) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                match value["type"].as_str() {
                    Some("next" | "data") if sender.send(value["payload"].clone()).is_err() => {
                        break;
                    }
                    Some("next" | "data") => {}
                    Some("ping") => {
                        let _ = socket
                            .send(Message::text(json!({"type": "pong"}).to_string()))
                            .await;
                    }
                    Some("error") => {
                        let _ = sender.send(json!({ "errors": value["payload"] }));
                    }
                    Some("complete") => break,
                    _ => {}
                }
            }
        });
        Self { items, _task: task }
    }

    /// Everything received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut all = Vec::new();
        while let Ok(item) = self.items.try_recv() {
            all.push(item);
        }
        all
    }
}
