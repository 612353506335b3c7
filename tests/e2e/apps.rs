//! Source apps through `hookplane serve`: each app's signed delivery becomes an event with the
//! expected payload and the app's expected acknowledgement; a repeat creates nothing; a bad
//! signature is rejected with 401 and stores nothing. Payloads are the apps' published
//! examples kept in `sources/tests/fixtures` (each cites its source).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::{Client, Response};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    flows, on_both_backends,
    support::{Backend, Server, gql_ok},
};

on_both_backends!(
    catalog_and_publish_checks,
    shopify_signed_orders_rotation_and_duplicates,
    woocommerce_ping_and_signed_delivery,
    bigcommerce_and_standard_webhooks,
    salesforce_outbound_messages_are_acknowledged_in_soap,
    token_apps_zoho_shift4shop_prestashop,
);

/// Request headers as name/value pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../sources/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Create and publish a touchpoint for `app` at `endpoint`; returns its id.
async fn source(server: &Server, app: &str, endpoint: &str, verification: Value) -> String {
    let connection = gql_ok(
        server,
        r#"mutation($app: String!) { createConnection(input: { name: "c", sourceApp: $app, destinationApp: "generic" }) { id } }"#,
        json!({ "app": app }),
    )
    .await["createConnection"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let id = flows::touchpoint(
        server,
        &connection,
        json!({
            "name": format!("{app} events"),
            "source": { "app": app, "endpoint": endpoint, "verification": verification },
            "destination": { "url": "http://127.0.0.1:9/unused" },
        }),
    )
    .await;
    flows::publish(server, &id).await;
    id
}

async fn post(
    client: &Client,
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Response {
    let mut request = client.post(server.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("POST")
}

/// The bucket's entries (id, payload, duplicates).
async fn entries(server: &Server, touchpoint: &str) -> Vec<Value> {
    let data = gql_ok(
        server,
        "query($id: ID!) { resyncBucket(touchpointId: $id, first: 500) { edges { node { id payload duplicates } } } }",
        json!({ "id": touchpoint }),
    )
    .await;
    data["resyncBucket"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

async fn rejection_logged(server: &Server, touchpoint: &str, code: &str) -> bool {
    let logs = gql_ok(
        server,
        "query($id: ID!) { logBucket(touchpointId: $id, level: WARN) { edges { node { message fields } } } }",
        json!({ "id": touchpoint }),
    )
    .await;
    logs["logBucket"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .any(|edge| edge["node"]["fields"]["code"] == code)
}

async fn catalog_and_publish_checks(backend: Backend) {
    let server = Server::start(&backend).await;
    // The catalog lists every app with the verification fields a portal must render.
    let data = gql_ok(
        &server,
        "{ apps { id displayName verification fields { name kind required } headers dedupe } }",
        json!({}),
    )
    .await;
    let apps = data["apps"].as_array().expect("apps");
    let ids: Vec<&str> = apps.iter().filter_map(|a| a["id"].as_str()).collect();
    for id in [
        "shopify",
        "woocommerce",
        "bigcommerce",
        "salesforce",
        "zohocrm",
        "shift4shop",
        "prestashop",
        "generic",
    ] {
        assert!(ids.contains(&id), "{id} is in the catalog: {ids:?}");
    }
    let shopify = apps.iter().find(|a| a["id"] == "shopify").expect("shopify");
    assert!(
        shopify["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["name"] == "secret" && f["kind"] == "SECRET" && f["required"] == true),
        "shopify needs a write-only secret: {shopify}"
    );
    let salesforce = apps
        .iter()
        .find(|a| a["id"] == "salesforce")
        .expect("salesforce");
    assert!(
        salesforce["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["name"] == "orgId")
    );

    // A source that needs a secret and has none is stored as a draft but not published.
    flows::connection(&server).await;
    let connection = gql_ok(
        &server,
        r#"mutation { createConnection(input: { name: "s", sourceApp: "shopify", destinationApp: "generic" }) { id } }"#,
        json!({}),
    )
    .await["createConnection"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let draft = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "unsigned shopify",
            "source": { "app": "shopify", "endpoint": "no-secret" },
            "destination": { "url": "http://127.0.0.1:9/unused" },
        }),
    )
    .await;
    let code =
        crate::support::gql_error_code(&server, flows::PUBLISH, json!({ "id": draft })).await;
    assert_eq!(code, "SECRET_REQUIRED");
    let generic = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "generic without scheme",
            "source": { "app": "generic", "endpoint": "no-scheme" },
            "destination": { "url": "http://127.0.0.1:9/unused" },
        }),
    )
    .await;
    let code =
        crate::support::gql_error_code(&server, flows::PUBLISH, json!({ "id": generic })).await;
    assert_eq!(
        code, "SCHEME_REQUIRED",
        "generic sources say explicitly that they are unsigned"
    );
    let response = reqwest::Client::new()
        .post(server.url("/hooks/acme/no-secret"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status(),
        404,
        "an unpublished endpoint receives nothing"
    );
    server.stop().await;
}

async fn shopify_signed_orders_rotation_and_duplicates(backend: Backend) {
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let touchpoint = source(
        &server,
        "shopify",
        "shopify/orders",
        json!({ "secret": "new-client-secret", "previousSecret": "old-client-secret" }),
    )
    .await;
    let client = Client::new();
    let body = br#"{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00","note":"a\/b"}"#.to_vec();
    let sign = |secret: &str| STANDARD.encode(hmac_sha256(secret.as_bytes(), &[&body]));
    let path = "/hooks/acme/shopify/orders";
    let signature = sign("new-client-secret");
    let headers = [
        ("content-type", "application/json"),
        ("x-shopify-hmac-sha256", signature.as_str()),
        ("x-shopify-topic", "orders/create"),
        (
            "x-shopify-webhook-id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
    ];
    let first = post(&client, &server, path, &headers, body.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("JSON ack");
    let event_id = first["eventIds"][0].clone();

    // Shopify retries the same delivery: same answer, no second event.
    let again: Value = post(&client, &server, path, &headers, body.clone())
        .await
        .json()
        .await
        .expect("JSON ack");
    assert_eq!(again["eventIds"][0], event_id);

    // During rotation the previous secret still verifies; the un-prefixed names work too.
    let old = sign("old-client-secret");
    let rotated = post(
        &client,
        &server,
        path,
        &[
            ("content-type", "application/json"),
            ("shopify-hmac-sha256", old.as_str()),
            ("shopify-webhook-id", "second-delivery"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(rotated.status(), 200);

    // Wrong secret, tampered body, missing header: 401, nothing stored, logged.
    let wrong = sign("someone-else");
    let cases: [(Headers, Vec<u8>); 3] = [
        (
            vec![
                ("content-type", "application/json"),
                ("x-shopify-hmac-sha256", wrong.as_str()),
            ],
            body.clone(),
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("x-shopify-hmac-sha256", signature.as_str()),
            ],
            br#"{"id":820982911946154508,"total_price":"0.01"}"#.to_vec(),
        ),
        (vec![("content-type", "application/json")], body.clone()),
    ];
    for (headers, body) in cases {
        let response = post(&client, &server, path, &headers, body).await;
        assert_eq!(response.status(), 401);
        let answer: Value = response.json().await.expect("JSON error");
        assert!(
            answer["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("SIGNATURE")),
            "{answer}"
        );
    }
    assert!(rejection_logged(&server, &touchpoint, "SIGNATURE_MISMATCH").await);

    let entries = entries(&server, &touchpoint).await;
    assert_eq!(entries.len(), 2, "one event per distinct delivery");
    let first_entry = entries
        .iter()
        .find(|e| e["id"] == event_id)
        .expect("the first event");
    assert_eq!(first_entry["duplicates"], 1);
    assert_eq!(first_entry["payload"]["note"], "a/b");
    assert_eq!(first_entry["payload"]["id"], json!(820982911946154508_u64));
    server.stop().await;
}

async fn woocommerce_ping_and_signed_delivery(backend: Backend) {
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let touchpoint = source(
        &server,
        "woocommerce",
        "woo",
        json!({ "secret": "wc-secret" }),
    )
    .await;
    let client = Client::new();
    let path = "/hooks/acme/woo";

    // The unsigned ping WooCommerce sends when a webhook is saved: exactly 200, no event.
    let ping = post(
        &client,
        &server,
        path,
        &[("content-type", "application/x-www-form-urlencoded")],
        b"webhook_id=15".to_vec(),
    )
    .await;
    assert_eq!(ping.status(), 200);
    assert!(entries(&server, &touchpoint).await.is_empty());

    let body = fixture("woocommerce_order_created.json");
    let signature = STANDARD.encode(hmac_sha256(b"wc-secret", &[&body]));
    let headers = [
        ("content-type", "application/json"),
        ("x-wc-webhook-signature", signature.as_str()),
        ("x-wc-webhook-topic", "order.created"),
        ("x-wc-webhook-delivery-id", "4f1c8b2e"),
    ];
    assert_eq!(
        post(&client, &server, path, &headers, body.clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&client, &server, path, &headers, body.clone())
            .await
            .status(),
        200
    );
    let entries = entries(&server, &touchpoint).await;
    assert_eq!(entries.len(), 1);
    let expected: Value = serde_json::from_slice(&body).expect("fixture JSON");
    assert_eq!(
        entries[0]["payload"], expected,
        "escaped slashes decode as JSON does"
    );

    let bad = post(
        &client,
        &server,
        path,
        &[
            ("content-type", "application/json"),
            ("x-wc-webhook-signature", "AAAA"),
        ],
        body,
    )
    .await;
    assert_eq!(bad.status(), 401);
    server.stop().await;
}

async fn bigcommerce_and_standard_webhooks(backend: Backend) {
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let key = b"bigcommerce-client-secret-bytes!";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let big = source(&server, "bigcommerce", "bc", json!({ "secret": secret })).await;
    let generic = source(
        &server,
        "generic",
        "std",
        json!({ "scheme": "standardWebhooks", "secret": secret }),
    )
    .await;
    let client = Client::new();
    let body = fixture("bigcommerce_order_created.json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let sign = |id: &str, timestamp: u64| {
        let timestamp = timestamp.to_string();
        let signed = hmac_sha256(
            key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", &body],
        );
        (timestamp, format!("v1,{}", STANDARD.encode(signed)))
    };
    for (touchpoint, path, prefix) in [
        (&big, "/hooks/acme/bc", "webhook"),
        (&generic, "/hooks/acme/std", "svix"),
    ] {
        let (timestamp, signature) = sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now);
        let headers = [
            ("content-type", "application/json".to_owned()),
            (
                if prefix == "svix" {
                    "svix-id"
                } else {
                    "webhook-id"
                },
                "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".to_owned(),
            ),
            (
                if prefix == "svix" {
                    "svix-timestamp"
                } else {
                    "webhook-timestamp"
                },
                timestamp,
            ),
            (
                if prefix == "svix" {
                    "svix-signature"
                } else {
                    "webhook-signature"
                },
                format!("v1,bm90LXRoaXM= {signature}"),
            ),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            post(&client, &server, path, &headers, body.clone())
                .await
                .status(),
            200,
            "{path}"
        );
        assert_eq!(
            post(&client, &server, path, &headers, body.clone())
                .await
                .status(),
            200
        );

        // A signature from ten minutes ago is stale, even though it is valid.
        let (old_timestamp, old_signature) = sign("msg_old", now - 600);
        let stale = [
            ("content-type", "application/json"),
            ("webhook-id", "msg_old"),
            ("webhook-timestamp", old_timestamp.as_str()),
            ("webhook-signature", old_signature.as_str()),
        ];
        let response = post(&client, &server, path, &stale, body.clone()).await;
        assert_eq!(response.status(), 401);
        assert!(rejection_logged(&server, touchpoint, "TIMESTAMP_OUT_OF_TOLERANCE").await);
        let stored = entries(&server, touchpoint).await;
        assert_eq!(stored.len(), 1, "{path}: one event");
        assert_eq!(stored[0]["payload"]["scope"], "store/order/created");
    }
    server.stop().await;
}

async fn salesforce_outbound_messages_are_acknowledged_in_soap(backend: Backend) {
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let touchpoint = source(
        &server,
        "salesforce",
        "sfdc",
        json!({ "orgId": "00De0000000pmu1EAA" }),
    )
    .await;
    let client = Client::new();
    let body = fixture("salesforce_three.xml");
    let headers = [
        ("content-type", "text/xml; charset=utf-8"),
        ("soapaction", "\"\""),
    ];
    let response = post(&client, &server, "/hooks/acme/sfdc", &headers, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/xml")
    );
    let ack = response.text().await.expect("text");
    assert!(ack.contains("<Ack>true</Ack>"), "{ack}");
    assert!(ack.contains("notificationsResponse"), "{ack}");
    assert_eq!(
        entries(&server, &touchpoint).await.len(),
        3,
        "one event per Notification"
    );

    // Salesforce redelivers the same message: acknowledged, nothing new.
    let again = post(&client, &server, "/hooks/acme/sfdc", &headers, body.clone()).await;
    assert_eq!(again.status(), 200);
    assert_eq!(entries(&server, &touchpoint).await.len(), 3);

    // Another organization's message is refused (non-200 so Salesforce does not think it
    // was taken) and stores nothing.
    let other = String::from_utf8(body)
        .expect("UTF-8 fixture")
        .replace("00De0000000pmu1EAA", "00Dx0000000XXXXEAA");
    let refused = post(
        &client,
        &server,
        "/hooks/acme/sfdc",
        &headers,
        other.into_bytes(),
    )
    .await;
    assert_ne!(refused.status(), 200);
    assert!(refused.text().await.expect("text").contains("Fault"));
    assert_eq!(entries(&server, &touchpoint).await.len(), 3);
    server.stop().await;
}

async fn token_apps_zoho_shift4shop_prestashop(backend: Backend) {
    let server = Server::start(&backend).await;
    flows::connection(&server).await;
    let zoho = source(
        &server,
        "zohocrm",
        "zoho",
        json!({ "secret": "contacts_and_deals7828" }),
    )
    .await;
    let shift4shop = source(
        &server,
        "shift4shop",
        "s4s",
        json!({ "secret": "s4s-token" }),
    )
    .await;
    let prestashop = source(
        &server,
        "prestashop",
        "ps",
        json!({ "secret": "ps-token", "header": "X-Hookplane-Token" }),
    )
    .await;
    let client = Client::new();
    let json_type = [("content-type", "application/json")];

    // Zoho's Notifications API carries the token in the body.
    let body = fixture("zohocrm_notification.json");
    assert_eq!(
        post(
            &client,
            &server,
            "/hooks/acme/zoho",
            &json_type,
            body.clone()
        )
        .await
        .status(),
        200
    );
    let forged = String::from_utf8(body)
        .expect("UTF-8")
        .replace("contacts_and_deals7828", "guess");
    assert_eq!(
        post(
            &client,
            &server,
            "/hooks/acme/zoho",
            &json_type,
            forged.into_bytes()
        )
        .await
        .status(),
        401
    );
    assert_eq!(entries(&server, &zoho).await.len(), 1);

    // Shift4Shop: the token in the endpoint URL.
    let body = fixture("shift4shop_new_order.json");
    assert_eq!(
        post(
            &client,
            &server,
            "/hooks/acme/s4s?token=s4s-token",
            &json_type,
            body.clone()
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        post(
            &client,
            &server,
            "/hooks/acme/s4s",
            &json_type,
            body.clone()
        )
        .await
        .status(),
        401
    );
    assert_eq!(entries(&server, &shift4shop).await.len(), 1);

    // PrestaShop: the token in a configured header.
    let body = fixture("prestashop_product_update.json");
    let headers = [
        ("content-type", "application/json"),
        ("x-hookplane-token", "ps-token"),
    ];
    assert_eq!(
        post(&client, &server, "/hooks/acme/ps", &headers, body.clone())
            .await
            .status(),
        200
    );
    let stored = entries(&server, &prestashop).await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0]["payload"].get("action").is_some(),
        "{}",
        stored[0]["payload"]
    );
    server.stop().await;
}
