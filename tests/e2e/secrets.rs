//! Verification secrets sent with a webhook are write-only: the proof a source app sends in
//! a header is checked, then stored and served as `[redacted]`, never in clear.

use serde_json::json;

use crate::{
    flows, on_both_backends,
    support::{Backend, Server, gql_ok},
};

on_both_backends!(a_verification_token_header_is_never_stored_or_served);

async fn a_verification_token_header_is_never_stored_or_served(backend: Backend) {
    let server = Server::start(&backend).await;
    let token = format!("tok-{}", uuid::Uuid::now_v7().simple());
    // Credentials only the webhook carries (the token is also the configured secret, which
    // the store must keep to verify with).
    let bearer = format!("bearer-{}", uuid::Uuid::now_v7().simple());
    let signature = format!("sig-{}", uuid::Uuid::now_v7().simple());
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Token-verified",
            "source": {
                "endpoint": "tokened",
                "verification": { "scheme": "token", "secret": token, "header": "X-Proof-Of-Origin" },
            },
            "destination": { "url": "http://127.0.0.1:9/orders" },
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;
    let client = reqwest::Client::new();
    let send = |proof: &str| {
        client
            .post(server.url("/hooks/acme/tokened"))
            .header("content-type", "application/json")
            .header("x-proof-of-origin", proof)
            .header("x-shopify-hmac-sha256", &signature)
            .header("authorization", format!("Bearer {bearer}"))
            .body(r#"{"id": 1}"#)
            .send()
    };
    assert_eq!(send("wrong").await.expect("POST").status(), 401);
    assert_eq!(send(&token).await.expect("POST").status(), 200);

    let data = gql_ok(
        &server,
        "query($id: ID!) { resyncBucket(touchpointId: $id) { edges { node { headers rawBody payload } } } \
         logBucket(touchpointId: $id) { edges { node { message fields } } } \
         touchpoint(id: $id) { spec { source { verification { header } } } } }",
        json!({ "id": touchpoint }),
    )
    .await;
    let answer = data.to_string();
    for secret in [&token, &bearer, &signature] {
        assert!(
            !answer.contains(secret.as_str()),
            "{secret} is served: {answer}"
        );
    }
    let headers = &data["resyncBucket"]["edges"][0]["node"]["headers"];
    for name in [
        "x-proof-of-origin",
        "x-shopify-hmac-sha256",
        "authorization",
    ] {
        assert_eq!(headers[name], "[redacted]", "{name}: {headers}");
    }
    assert_eq!(
        headers["content-type"], "application/json",
        "others are kept"
    );

    // What only the webhook carried is not in the database itself (SQLite: the file and its
    // write-ahead log). The configured secret is, in clear: see the README.
    if let Some(path) = backend.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                for secret in [&bearer, &signature] {
                    let found = bytes
                        .windows(secret.len())
                        .any(|window| window == secret.as_bytes());
                    assert!(!found, "{secret} is in {file}");
                }
            }
        }
    }
    server.stop().await;
}
