//! The HTTP edges of a public port: CORS (off unless configured) and oversized request heads
//! (431 with a JSON code).

use serde_json::{Value, json};

use crate::support::{Backend, Server};

const PORTAL: &str = "https://portal.example.com";

async fn preflight(server: &Server, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("OPTIONS /graphql")
}

fn allowed_origin(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|value| value.to_str().expect("text").to_owned())
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_the_configured_origins() {
    let backend = Backend::sqlite();
    let closed = Server::start(&backend).await;
    assert_eq!(allowed_origin(&preflight(&closed, PORTAL).await), None);
    closed.stop().await;

    let server = Server::start_with(&backend, &["--cors-origins", PORTAL]).await;
    let allowed = preflight(&server, PORTAL).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed_origin(&allowed).as_deref(), Some(PORTAL));
    let headers = allowed
        .headers()
        .get("access-control-allow-headers")
        .expect("allowed headers")
        .to_str()
        .expect("text")
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(
        allowed_origin(&preflight(&server, "https://evil.example").await),
        None
    );

    // The real request from the portal's page carries the header too; the token still
    // decides what it may do.
    let answer = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("origin", PORTAL)
        .bearer_auth(&server.token)
        .json(&json!({ "query": "{ viewer }" }))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(allowed_origin(&answer).as_deref(), Some(PORTAL));
    let body: Value = answer.json().await.expect("JSON");
    assert!(body["data"]["viewer"].is_string(), "{body}");
    let anonymous = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("origin", PORTAL)
        .json(&json!({ "query": "{ viewer }" }))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(anonymous.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_a_json_code() {
    let backend = Backend::sqlite();
    let server = Server::start_with(&backend, &["--max-header-bytes", "8192"]).await;
    let client = reqwest::Client::new();
    for path in ["/healthz", "/graphql", "/hooks/acme/orders"] {
        let answer = client
            .post(server.url(path))
            .header("x-filler", "a".repeat(10_000))
            .body("{}")
            .send()
            .await
            .expect("a request");
        assert_eq!(answer.status(), 431, "{path}");
        let body: Value = answer.json().await.expect("a JSON body");
        assert_eq!(body["code"], "HEADERS_TOO_LARGE", "{path}: {body}");
    }
    // Under the limit, the same request is served.
    let answer = client
        .get(server.url("/healthz"))
        .header("x-filler", "a".repeat(7_000))
        .send()
        .await
        .expect("a request");
    assert_eq!(answer.status(), 200);
    server.stop().await;
}
