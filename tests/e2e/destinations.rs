//! What a destination receives: JSON, XML and form bodies, URL templates filled from the
//! mapped output, and the connection's credentials (header, basic, OAuth2 client
//! credentials with a refresh on 401). Credentials are write-only through the API.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use crate::{
    flows::{self, order, order_mapping, post_webhook},
    on_both_backends,
    support::{
        Backend, Destination, Server,
        destination::{Mode, TOKEN_PATH},
        eventually, gql_ok,
    },
};

on_both_backends!(
    formats_templates_and_header_credentials,
    oauth2_client_credentials_refresh_on_401,
);

const CREATE_CONNECTION: &str = r#"
mutation($input: CreateConnectionInput!) {
  createConnection(input: $input) { id credentialNames hasBasicAuth oauth2TokenUrl maxConcurrency }
}"#;

async fn connection(server: &Server, input: Value) -> Value {
    gql_ok(server, CREATE_CONNECTION, json!({ "input": input })).await["createConnection"].clone()
}

async fn published(
    server: &Server,
    connection: &str,
    endpoint: &str,
    destination: Value,
) -> String {
    let extra = json!({ "destination": destination, "mapping": order_mapping() });
    flows::published_touchpoint(server, connection, endpoint, extra).await
}

async fn formats_templates_and_header_credentials(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let created = connection(
        &server,
        json!({
            "name": "ERP",
            "sourceApp": "generic",
            "destinationApp": "generic",
            "destinationBaseUrl": destination.url("/api/"),
            "credentials": [{ "name": "api-key", "header": "X-Api-Key", "value": "k-very-secret" }],
            "basicAuth": { "username": "erp", "password": "pw-very-secret" },
        }),
    )
    .await;
    assert_eq!(created["credentialNames"], json!(["api-key"]));
    assert_eq!(created["hasBasicAuth"], true);
    let connection_id = created["id"].as_str().expect("id").to_owned();
    let everything = gql_ok(
        &server,
        "{ connections { id name credentialNames hasBasicAuth } }",
        json!({}),
    )
    .await;
    assert!(
        !everything.to_string().contains("very-secret"),
        "secrets are write-only"
    );

    let xml = published(
        &server,
        &connection_id,
        "xml",
        json!({ "url": "orders/{.DocNum}?customer={.CardCode}", "format": "XML", "xmlRoot": "Order" }),
    )
    .await;
    let form = published(
        &server,
        &connection_id,
        "form",
        json!({ "url": "forms", "format": "FORM", "method": "PUT" }),
    )
    .await;
    let client = reqwest::Client::new();
    post_webhook(&client, &server, "xml", &order(3, false)).await;
    post_webhook(&client, &server, "form", &order(4, false)).await;
    for touchpoint in [&xml, &form] {
        eventually(Duration::from_secs(20), "delivered", || async {
            (flows::counts(&server, touchpoint).await["success"] == 1).then_some(())
        })
        .await;
    }
    let received = destination.received();
    let xml_request = received
        .iter()
        .find(|r| r.path.starts_with("/api/orders"))
        .expect("xml");
    assert_eq!(xml_request.path, "/api/orders/3");
    assert_eq!(xml_request.query.as_deref(), Some("customer=703"));
    assert!(
        xml_request.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .contains("xml")
    );
    assert!(
        xml_request.raw.contains("<Order>") && xml_request.raw.contains("<DocNum>3</DocNum>"),
        "{}",
        xml_request.raw
    );
    assert_eq!(xml_request.headers["x-api-key"], "k-very-secret");
    let basic = format!("Basic {}", STANDARD.encode("erp:pw-very-secret"));
    assert_eq!(xml_request.headers["authorization"], basic.as_str());

    let form_request = received
        .iter()
        .find(|r| r.path == "/api/forms")
        .expect("form");
    assert_eq!(form_request.method, "PUT");
    assert_eq!(
        form_request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(
        form_request.raw.contains("DocNum=4"),
        "{}",
        form_request.raw
    );
    server.stop().await;
}

async fn oauth2_client_credentials_refresh_on_401(backend: Backend) {
    // The destination accepts only the second token: the worker must refresh on the 401.
    let destination = Destination::start(Mode::RequireBearer("tok-2")).await;
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let created = connection(
        &server,
        json!({
            "name": "OAuth ERP",
            "sourceApp": "generic",
            "destinationApp": "generic",
            "oauth2": {
                "tokenUrl": destination.url(TOKEN_PATH),
                "clientId": "hookplane",
                "clientSecret": "cs-very-secret",
                "scopes": ["orders.write"],
            },
        }),
    )
    .await;
    assert_eq!(created["oauth2TokenUrl"], destination.url(TOKEN_PATH));
    let connection_id = created["id"].as_str().expect("id").to_owned();
    let touchpoint = published(
        &server,
        &connection_id,
        "oauth",
        json!({ "url": destination.url("/erp") }),
    )
    .await;
    let client = reqwest::Client::new();
    post_webhook(&client, &server, "oauth", &order(1, false)).await;
    eventually(
        Duration::from_secs(20),
        "delivered with a refreshed token",
        || async { (flows::counts(&server, &touchpoint).await["success"] == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        destination.tokens_issued(),
        2,
        "one token, refreshed once after the 401"
    );
    let deliveries: Vec<_> = destination
        .received()
        .into_iter()
        .filter(|r| r.path == "/erp")
        .collect();
    assert_eq!(
        deliveries
            .last()
            .map(|r| r.headers["authorization"].clone()),
        Some("Bearer tok-2".parse().expect("header"))
    );
    // A second event reuses the cached token.
    post_webhook(&client, &server, "oauth", &order(2, false)).await;
    eventually(Duration::from_secs(20), "second delivered", || async {
        (flows::counts(&server, &touchpoint).await["success"] == 2).then_some(())
    })
    .await;
    assert_eq!(destination.tokens_issued(), 2, "the token is cached");
    server.stop().await;
}
