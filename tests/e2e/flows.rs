//! GraphQL documents and the setup steps every scenario shares.

use serde_json::{Value, json};

use crate::support::{Server, gql_ok};

pub const REGISTER_URL: &str = r#"
mutation($org: String!, $url: String!) {
  registerUrl(input: { organization: $org, url: $url }) { id slug registeredUrl }
}"#;

pub const CREATE_CONNECTION: &str = r#"
mutation($name: String!, $organizationId: ID) {
  createConnection(input: {
    name: $name, sourceApp: "generic", destinationApp: "generic", organizationId: $organizationId
  }) { id name }
}"#;

pub const CREATE_TOUCHPOINT: &str = r#"
mutation($input: CreateTouchpointInput!) {
  createTouchpoint(input: $input) { id endpoint endpointUrl generation hasUnpublishedChanges }
}"#;

pub const PUBLISH: &str = r#"
mutation($id: ID!) { publishTouchpoint(id: $id) { id publishedGeneration hasUnpublishedChanges } }"#;

pub const SET_AUTO_SYNC: &str = r#"
mutation($id: ID!, $enabled: Boolean!) { setAutoSync(id: $id, enabled: $enabled) { id autoSync } }"#;

pub const COUNTS: &str = r#"
query($id: ID!) { touchpoint(id: $id) { bucketCounts { unprocessed success failed skipped } } }"#;

pub const BUCKET_PAGE: &str = r#"
query($id: ID!, $status: EventStatus, $after: String) {
  resyncBucket(touchpointId: $id, status: $status, first: 100, after: $after) {
    edges { cursor node { id status attempts payload mappedOutput lastError responseStatus } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

pub const LOG_PAGE: &str = r#"
query($id: ID!, $after: String) {
  logBucket(touchpointId: $id, first: 500, after: $after) {
    edges { node { id eventId level message } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

/// The five-field mapping the spine scenarios use.
pub fn order_mapping() -> Value {
    json!({
        "rules": [
            { "target": "CardCode", "expr": ".customer.id | tostring" },
            { "target": "DocNum", "expr": ".order_number" },
            { "target": "Total", "expr": ".total_price | tonumber" },
            { "target": "Address.City", "expr": ".shipping_address.city" },
            { "target": "Lines", "expr": "[.line_items[] | {ItemCode: .sku, Quantity: .quantity}]" }
        ]
    })
}

/// A source payload the mapping reads.
pub fn order(number: u64, test: bool) -> Value {
    json!({
        "id": 5_000_000 + number,
        "order_number": number,
        "test": test,
        "total_price": format!("{}.50", number),
        "customer": { "id": 700 + number, "email": format!("buyer{number}@example.com") },
        "shipping_address": { "city": "Kolkata", "zip": "700091" },
        "line_items": [
            { "sku": "SKU-1", "quantity": 1 },
            { "sku": "SKU-2", "quantity": number % 3 + 1 }
        ]
    })
}

/// What the mapping makes of [`order`].
pub fn mapped_order(number: u64) -> Value {
    json!({
        "CardCode": (700 + number).to_string(),
        "DocNum": number,
        "Total": number as f64 + 0.5,
        "Address": { "City": "Kolkata" },
        "Lines": [
            { "ItemCode": "SKU-1", "Quantity": 1 },
            { "ItemCode": "SKU-2", "Quantity": number % 3 + 1 }
        ]
    })
}

/// Register a URL and create a connection in that organization (named, since in cluster
/// mode a namespace's resources may have made others); returns the connection id.
pub async fn connection(server: &Server) -> String {
    let registered = gql_ok(
        server,
        REGISTER_URL,
        json!({ "org": "acme", "url": "https://hooks.acme.test" }),
    )
    .await;
    let data = gql_ok(
        server,
        CREATE_CONNECTION,
        json!({ "name": "Shop to ERP", "organizationId": registered["registerUrl"]["id"] }),
    )
    .await;
    data["createConnection"]["id"]
        .as_str()
        .expect("a connection id")
        .to_owned()
}

/// Create a touchpoint from `input` (connectionId filled in); returns its id.
pub async fn touchpoint(server: &Server, connection_id: &str, mut input: Value) -> String {
    input["connectionId"] = json!(connection_id);
    let data = gql_ok(server, CREATE_TOUCHPOINT, json!({ "input": input })).await;
    data["createTouchpoint"]["id"]
        .as_str()
        .expect("a touchpoint id")
        .to_owned()
}

/// Create and publish an unsigned, auto-syncing touchpoint at `endpoint`; `extra` (its
/// destination, mapping, policies...) is merged over those defaults. Returns its id.
pub async fn published_touchpoint(
    server: &Server,
    connection_id: &str,
    endpoint: &str,
    extra: Value,
) -> String {
    let mut input = json!({
        "name": endpoint,
        "source": { "endpoint": endpoint, "verification": { "scheme": "none" } },
        "autoSync": true,
    });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let id = touchpoint(server, connection_id, input).await;
    publish(server, &id).await;
    id
}

pub async fn publish(server: &Server, id: &str) {
    gql_ok(server, PUBLISH, json!({ "id": id })).await;
}

pub async fn counts(server: &Server, id: &str) -> Value {
    gql_ok(server, COUNTS, json!({ "id": id })).await["touchpoint"]["bucketCounts"].clone()
}

/// Every bucket entry of a touchpoint, following cursors.
pub async fn bucket(server: &Server, id: &str, status: Option<&str>) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = gql_ok(
            server,
            BUCKET_PAGE,
            json!({ "id": id, "status": status, "after": after }),
        )
        .await;
        let page = &data["resyncBucket"];
        for edge in page["edges"].as_array().expect("edges") {
            all.push(edge["node"].clone());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return all;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// Every log entry of a touchpoint, following cursors.
pub async fn logs(server: &Server, id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = gql_ok(server, LOG_PAGE, json!({ "id": id, "after": after })).await;
        let page = &data["logBucket"];
        for edge in page["edges"].as_array().expect("edges") {
            all.push(edge["node"].clone());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return all;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// POST a JSON webhook; returns the status and the JSON answer.
pub async fn post_webhook(
    client: &reqwest::Client,
    server: &Server,
    endpoint: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .post(server.url(&format!("/hooks/acme/{endpoint}")))
        .json(body)
        .send()
        .await
        .expect("POST webhook");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}
