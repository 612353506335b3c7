//! Verification secrets sent with a webhook are write-only: the proof a source app sends in
//! a header is checked, then stored and served as `[redacted]`, never in clear.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    flows, on_both_backends,
    support::{
        Backend, Server,
        destination::{Destination, Mode},
        eventually, gql_error_code, gql_ok,
    },
};

on_both_backends!(a_verification_token_header_is_never_stored_or_served);
on_both_backends!(every_planted_secret_stays_out_of_answers_the_database_and_the_logs);

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

    // None of it is in the database itself (SQLite: the file and its write-ahead log): what
    // only the webhook carried was redacted, the configured secret is stored encrypted.
    if let Some(path) = backend.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                for secret in [&token, &bearer, &signature] {
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

/// A unique value per place a secret can enter: the configured verification token sent as a
/// URL parameter and echoed in the body, Zoho CRM's notification token in the body, an
/// `Authorization` and a signature header of the webhook, two secret destination headers and
/// a connection credential. The destination still receives the destination secrets (also
/// after a portal sends the spec back as it read it); none of them is in any API answer, in
/// the log (default level) or in the SQLite database file.
async fn every_planted_secret_stays_out_of_answers_the_database_and_the_logs(backend: Backend) {
    let unique = |what: &str| format!("{what}-{}", uuid::Uuid::now_v7().simple());
    let query_token = unique("querytok");
    let zoho_token = unique("zohotok");
    let bearer = unique("bearer");
    let signature = unique("sig");
    let destination_bearer = unique("destbearer");
    let partner_key = unique("partnerkey");
    let credential = unique("credential");
    let secrets = [
        &query_token,
        &zoho_token,
        &bearer,
        &signature,
        &destination_bearer,
        &partner_key,
        &credential,
    ];

    let dir = std::env::temp_dir().join(unique("hookplane-secrets"));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let log = dir.join("serve.log");
    let server = Server::start_logging_to(&backend, &[], &log).await;
    let destination = Destination::start(Mode::Ok).await;

    let registered = gql_ok(
        &server,
        flows::REGISTER_URL,
        json!({ "org": "acme", "url": "https://hooks.acme.test" }),
    )
    .await;
    let connection = gql_ok(
        &server,
        "mutation($org: ID, $value: String!) { createConnection(input: { name: \"ERP\", \
         sourceApp: \"generic\", destinationApp: \"generic\", organizationId: $org, \
         credentials: [{ name: \"erp\", header: \"X-Erp-Key\", value: $value }] }) { id } }",
        json!({ "org": registered["registerUrl"]["id"], "value": credential }),
    )
    .await["createConnection"]["id"]
        .as_str()
        .expect("a connection id")
        .to_owned();
    let by_query = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "By query",
            "autoSync": true,
            "source": {
                "endpoint": "by-query",
                "verification": { "scheme": "token", "secret": query_token, "queryParameter": "auth" },
            },
            "destination": {
                "url": destination.url("/by-query"),
                "headers": [
                    { "name": "Authorization", "value": format!("Bearer {destination_bearer}") },
                    { "name": "X-Partner", "value": partner_key, "secret": true },
                    { "name": "X-Static", "value": "visible" },
                ],
            },
        }),
    )
    .await;
    let zoho = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Zoho",
            "autoSync": true,
            "source": { "app": "zohocrm", "endpoint": "zoho", "verification": { "secret": zoho_token } },
            "destination": { "url": destination.url("/zoho") },
        }),
    )
    .await;
    flows::publish(&server, &by_query).await;
    flows::publish(&server, &zoho).await;

    let client = reqwest::Client::new();
    let send_by_query = |id: u64| {
        client
            .post(server.url(&format!("/hooks/acme/by-query?auth={query_token}")))
            .header("authorization", format!("Bearer {bearer}"))
            .header("x-hub-signature-256", &signature)
            .json(&json!({ "id": id, "note": format!("sent with {query_token}") }))
            .send()
    };
    assert_eq!(send_by_query(1).await.expect("POST").status(), 200);
    let zoho_answer = client
        .post(server.url("/hooks/acme/zoho"))
        .json(&json!({
            "token": zoho_token, "channel_id": "100", "module": "Leads",
            "operation": "insert", "ids": ["7"], "server_time": 1,
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(zoho_answer.status(), 200);

    // The destination gets the real values.
    let delivered = |path: &'static str, count: usize| {
        let destination = destination.clone();
        async move {
            eventually(Duration::from_secs(20), path, || {
                let received: Vec<_> = destination
                    .received()
                    .into_iter()
                    .filter(|request| request.path == path)
                    .collect();
                async move { (received.len() >= count).then_some(received) }
            })
            .await
        }
    };
    let first = delivered("/by-query", 1).await;
    let header = |request: &crate::support::destination::Received, name: &str| {
        request.headers[name].to_str().expect("text").to_owned()
    };
    assert_eq!(
        header(&first[0], "authorization"),
        format!("Bearer {destination_bearer}")
    );
    assert_eq!(header(&first[0], "x-partner"), partner_key);
    assert_eq!(header(&first[0], "x-static"), "visible");
    assert_eq!(header(&first[0], "x-erp-key"), credential);
    assert!(
        !first[0].raw.contains(query_token.as_str()),
        "the body sent on holds the redacted note: {}",
        first[0].raw
    );
    let zoho_delivered = delivered("/zoho", 1).await;
    assert_eq!(zoho_delivered[0].body["token"], "[redacted]");

    // The spec shows names and that a value is set; a portal sending it back as it read it
    // keeps the values.
    let spec = gql_ok(
        &server,
        "query($id: ID!) { touchpoint(id: $id) { spec { destination { url headers { name value secret hasValue } } } } }",
        json!({ "id": by_query }),
    )
    .await;
    let read_back = spec["touchpoint"]["spec"]["destination"].clone();
    let headers = read_back["headers"].as_array().expect("headers");
    assert_eq!(
        headers[0],
        json!({ "name": "Authorization", "value": "[redacted]", "secret": true, "hasValue": true })
    );
    assert_eq!(
        headers[1],
        json!({ "name": "X-Partner", "value": "[redacted]", "secret": true, "hasValue": true })
    );
    assert_eq!(
        headers[2],
        json!({ "name": "X-Static", "value": "visible", "secret": false, "hasValue": true })
    );
    let round_trip: Vec<Value> = headers
        .iter()
        .map(|header| json!({ "name": header["name"], "value": header["value"] }))
        .collect();
    gql_ok(
        &server,
        "mutation($id: ID!, $url: String!, $headers: [HeaderInput!]!) { updateTouchpoint(input: \
         { id: $id, destination: { url: $url, headers: $headers } }) { id } }",
        json!({ "id": by_query, "url": read_back["url"], "headers": round_trip }),
    )
    .await;
    flows::publish(&server, &by_query).await;
    assert_eq!(send_by_query(2).await.expect("POST").status(), 200);
    let both = delivered("/by-query", 2).await;
    assert_eq!(
        header(&both[1], "authorization"),
        format!("Bearer {destination_bearer}")
    );
    assert_eq!(header(&both[1], "x-partner"), partner_key);

    // A new secret header needs a value: there is none to keep.
    let refused = gql_error_code(
        &server,
        "mutation($id: ID!) { updateTouchpoint(input: { id: $id, destination: { url: \"/x\", \
         headers: [{ name: \"X-Api-Key\" }] } }) { id } }",
        json!({ "id": by_query }),
    )
    .await;
    assert_eq!(refused, "INVALID_INPUT");

    // Every answer a client can get about these touchpoints.
    let mut answers = String::new();
    for id in [&by_query, &zoho] {
        let data = gql_ok(
            &server,
            "query($id: ID!) { touchpoint(id: $id) { spec { source { verification { header queryParameter } } \
             destination { url headers { name value } } } publishedSpec { destination { headers { name value } } } } \
             resyncBucket(touchpointId: $id) { edges { node { headers rawBody payload mappedOutput lastError \
             attemptHistory { error responseSnippet } logs { message fields } } } } \
             logBucket(touchpointId: $id) { edges { node { message fields } } } }",
            json!({ "id": id }),
        )
        .await;
        answers.push_str(&data.to_string());
    }
    let data = gql_ok(
        &server,
        "{ connections { name credentialNames touchpoints { id } } auditLog { edges { node { action detail } } } }",
        json!({}),
    )
    .await;
    answers.push_str(&data.to_string());
    assert!(
        answers.contains("[redacted]"),
        "the answers were read: {answers}"
    );
    for secret in secrets {
        assert!(
            !answers.contains(secret.as_str()),
            "{secret} is served: {answers}"
        );
    }

    server.stop().await;
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(
        logged.contains("action=\"updateTouchpoint\""),
        "the log was written, in plain text: {logged}"
    );
    for secret in secrets {
        assert!(!logged.contains(secret.as_str()), "{secret} is logged");
    }
    if let Some(path) = backend.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        let mut files = 0;
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                files += 1;
                for secret in secrets {
                    let found = bytes
                        .windows(secret.len())
                        .any(|window| window == secret.as_bytes());
                    assert!(!found, "{secret} is in {file}");
                }
            }
        }
        assert!(files > 0, "the database file was read");
    }
    std::fs::remove_dir_all(&dir).ok();
}
