//! Every rejection answers a stable code and changes nothing else.

use serde_json::{Value, json};

use crate::{
    flows::{self, post_webhook},
    on_both_backends,
    support::{Backend, Server, gql_error_code, gql_ok},
};

on_both_backends!(webhook_rejections, graphql_rejections);

const TOUCHPOINT_COUNT: &str = "{ touchpoints { id } }";

async fn webhook_rejections(backend: Backend) {
    let server = Server::start_with(&backend, &["--max-body-bytes", "2048"]).await;
    let connection = flows::connection(&server).await;
    let published = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "published",
            "source": { "endpoint": "live", "verification": { "scheme": "none" } },
            "destination": { "url": "http://127.0.0.1:9/unused" },
        }),
    )
    .await;
    flows::publish(&server, &published).await;
    let draft = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "draft",
            "source": { "endpoint": "draft", "verification": { "scheme": "none" } },
            "destination": { "url": "http://127.0.0.1:9/unused" },
        }),
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        client
            .post(server.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let expect = |response: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    let ok_body = br#"{"id": 1}"#.to_vec();

    let unknown = post("/hooks/acme/nowhere", "application/json", ok_body.clone())
        .await
        .expect("post");
    expect(unknown, 404, "ENDPOINT_NOT_FOUND").await;
    let wrong_org = post("/hooks/other/live", "application/json", ok_body.clone())
        .await
        .expect("post");
    expect(wrong_org, 404, "ENDPOINT_NOT_FOUND").await;
    let unpublished = post("/hooks/acme/draft", "application/json", ok_body.clone())
        .await
        .expect("post");
    expect(unpublished, 404, "TOUCHPOINT_NOT_PUBLISHED").await;
    let too_large = post("/hooks/acme/live", "application/json", vec![b' '; 4096])
        .await
        .expect("post");
    expect(too_large, 413, "PAYLOAD_TOO_LARGE").await;
    let invalid = post(
        "/hooks/acme/live",
        "application/json",
        b"{not json".to_vec(),
    )
    .await
    .expect("post");
    expect(invalid, 400, "MALFORMED_JSON").await;
    let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<lolz>&lol3;</lolz>"#;
    let bomb = post("/hooks/acme/live", "application/xml", bomb.to_vec())
        .await
        .expect("post");
    expect(bomb, 400, "XML_DOCTYPE_FORBIDDEN").await;
    let missing_type = client
        .post(server.url("/hooks/acme/live"))
        .body(ok_body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(missing_type.status(), 415);
    let body: Value = missing_type.json().await.expect("JSON");
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");
    let listed = body["message"].as_str().unwrap_or_default();
    assert!(
        listed.contains("application/json") && listed.contains("application/xml"),
        "the accepted types are listed: {listed}"
    );
    let media = post("/hooks/acme/live", "text/plain", ok_body.clone())
        .await
        .expect("post");
    expect(media, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    // Nothing was stored, and the known touchpoints logged their rejections.
    for id in [&published, &draft] {
        assert_eq!(
            flows::counts(&server, id).await,
            json!({ "unprocessed": 0, "success": 0, "failed": 0, "skipped": 0 })
        );
    }
    let published_logs = flows::logs(&server, &published).await;
    let rejected: Vec<&str> = published_logs
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("webhook rejected"))
        .collect();
    assert_eq!(
        rejected.len(),
        5,
        "413, 400 (twice) and 415 (twice) were logged: {published_logs:#?}"
    );
    let draft_logs = flows::logs(&server, &draft).await;
    assert!(
        draft_logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("webhook rejected"))),
        "the unpublished touchpoint logged its rejection"
    );

    // The endpoint still works after all that.
    let (status, _) = post_webhook(&client, &server, "live", &json!({ "id": 2 })).await;
    assert_eq!(status, 200);
    server.stop().await;
}

async fn graphql_rejections(backend: Backend) {
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let base = json!({
        "connectionId": connection,
        "name": "orders",
        "source": { "endpoint": "orders", "verification": { "scheme": "none" } },
        "destination": { "url": "http://127.0.0.1:9/erp" },
    });
    let existing = flows::touchpoint(&server, &connection, base.clone()).await;
    let before = gql_ok(&server, TOUCHPOINT_COUNT, json!({})).await;

    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut unknown_connection = base.clone();
    unknown_connection["connectionId"] = json!("00000000-0000-7000-8000-000000000000");
    cases.push(("CONNECTION_NOT_FOUND", unknown_connection));
    let mut bad_mapping = base.clone();
    bad_mapping["source"]["endpoint"] = json!("other");
    bad_mapping["mapping"] = json!({ "rules": [{ "target": "X", "expr": ".a | | .b" }] });
    cases.push(("INVALID_MAPPING", bad_mapping));
    let mut bad_filter = base.clone();
    bad_filter["source"]["endpoint"] = json!("other");
    bad_filter["filter"] = json!("no_such_function(1)");
    cases.push(("INVALID_FILTER", bad_filter));
    let mut empty_endpoint = base.clone();
    empty_endpoint["source"]["endpoint"] = json!("");
    cases.push(("INVALID_ENDPOINT", empty_endpoint));
    let duplicate_endpoint = base.clone();
    cases.push(("ENDPOINT_TAKEN", duplicate_endpoint));
    let mut bad_url = base.clone();
    bad_url["source"]["endpoint"] = json!("other");
    bad_url["destination"]["url"] = json!("relative/without/base");
    cases.push(("INVALID_URL", bad_url));
    let mut bad_app = base.clone();
    bad_app["source"]["endpoint"] = json!("other");
    bad_app["source"]["app"] = json!("no-such-app");
    cases.push(("UNKNOWN_APP", bad_app));
    let mut bad_id = base.clone();
    bad_id["connectionId"] = json!("not-a-uuid");
    cases.push(("INVALID_ID", bad_id));

    for (code, input) in cases {
        assert_eq!(
            gql_error_code(&server, flows::CREATE_TOUCHPOINT, json!({ "input": input })).await,
            code
        );
    }
    assert_eq!(
        gql_ok(&server, TOUCHPOINT_COUNT, json!({})).await,
        before,
        "nothing stored"
    );

    // Updates are checked the same way and leave the draft as it was.
    let update =
        "mutation($input: UpdateTouchpointInput!) { updateTouchpoint(input: $input) { id } }";
    let code = gql_error_code(
        &server,
        update,
        json!({ "input": { "id": existing, "filter": ".a |" } }),
    )
    .await;
    assert_eq!(code, "INVALID_FILTER");
    let draft = gql_ok(
        &server,
        "query($id: ID!) { touchpoint(id: $id) { generation spec { filter } } }",
        json!({ "id": existing }),
    )
    .await;
    assert_eq!(
        draft["touchpoint"],
        json!({ "generation": 1, "spec": { "filter": null } })
    );

    let unknown = json!({ "id": "00000000-0000-7000-8000-000000000000" });
    assert_eq!(
        gql_error_code(&server, flows::PUBLISH, unknown.clone()).await,
        "TOUCHPOINT_NOT_FOUND"
    );
    assert_eq!(
        gql_error_code(
            &server,
            "mutation($ids: [ID!]!) { resyncEvents(ids: $ids) { id } }",
            json!({ "ids": ["00000000-0000-7000-8000-000000000000"] })
        )
        .await,
        "EVENT_NOT_FOUND"
    );
    assert_eq!(
        gql_error_code(
            &server,
            flows::REGISTER_URL,
            json!({ "org": "Not A Slug", "url": "https://x.test" })
        )
        .await,
        "INVALID_ORGANIZATION"
    );
    assert_eq!(
        gql_error_code(
            &server,
            flows::REGISTER_URL,
            json!({ "org": "acme", "url": "ftp://x" })
        )
        .await,
        "INVALID_URL"
    );
    let organization = gql_ok(
        &server,
        "{ organization { slug registeredUrl } }",
        json!({}),
    )
    .await;
    assert_eq!(
        organization["organization"],
        json!({ "slug": "acme", "registeredUrl": "https://hooks.acme.test" }),
        "a rejected registerUrl changed nothing"
    );
    server.stop().await;
}
