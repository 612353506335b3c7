//! Operating a touchpoint: pausing a connection, the dedupe window, the mapping preview,
//! metrics and health.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    flows::{self, order, order_mapping, post_webhook},
    on_both_backends,
    support::{
        Backend, Destination, Server, destination::Mode, eventually, gql_error_code, gql_ok,
    },
};

on_both_backends!(
    a_paused_connection_keeps_receiving_and_drains_when_resumed,
    the_dedupe_window_is_configurable,
    preview_maps_without_delivering,
    payloads_are_validated_against_the_source_schema,
    retention_purges_old_entries_but_never_unprocessed_ones,
    webhooks_without_auto_sync_leave_the_worker_idle,
);

const PAUSE: &str = "mutation($id: ID!, $paused: Boolean!) { setConnectionPaused(id: $id, paused: $paused) { id paused } }";

async fn a_paused_connection_keeps_receiving_and_drains_when_resumed(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders",
            "source": { "endpoint": "orders", "verification": { "scheme": "none" } },
            "destination": { "url": destination.url("/erp") },
            "autoSync": true,
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;
    let paused = gql_ok(&server, PAUSE, json!({ "id": connection, "paused": true })).await;
    assert_eq!(paused["setConnectionPaused"]["paused"], true);
    let client = reqwest::Client::new();
    for n in 0..5 {
        let (status, _) = post_webhook(&client, &server, "orders", &json!({ "n": n })).await;
        assert_eq!(status, 200, "intake continues while paused");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(flows::counts(&server, &touchpoint).await["unprocessed"], 5);
    assert!(
        destination.received().is_empty(),
        "nothing is delivered while paused"
    );

    gql_ok(&server, PAUSE, json!({ "id": connection, "paused": false })).await;
    eventually(Duration::from_secs(20), "the held events drain", || async {
        (flows::counts(&server, &touchpoint).await["success"] == 5).then_some(())
    })
    .await;
    assert_eq!(
        gql_error_code(
            &server,
            PAUSE,
            json!({ "id": "00000000-0000-7000-8000-000000000000", "paused": true })
        )
        .await,
        "CONNECTION_NOT_FOUND"
    );
    server.stop().await;
}

async fn the_dedupe_window_is_configurable(backend: Backend) {
    // With a zero-hour window a repeated delivery id is a new event; with the default it is
    // absorbed (see the per-app tests).
    let server = Server::start_with(&backend, &["--dedupe-window-hours", "0"]).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders",
            "source": { "endpoint": "orders", "verification": { "scheme": "none", "idHeader": "X-Delivery" } },
            "destination": { "url": "http://127.0.0.1:9/unused" },
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = client
            .post(server.url("/hooks/acme/orders"))
            .header("x-delivery", "same-id")
            .json(&json!({ "n": 1 }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(flows::counts(&server, &touchpoint).await["unprocessed"], 2);
    server.stop().await;

    let server = Server::start(&backend).await;
    let response = client
        .post(server.url("/hooks/acme/orders"))
        .header("x-delivery", "same-id")
        .json(&json!({ "n": 1 }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(
        flows::counts(&server, &touchpoint).await["unprocessed"],
        2,
        "within the default 72 h window the repeat is absorbed"
    );
    server.stop().await;
}

async fn preview_maps_without_delivering(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders",
            "source": { "endpoint": "orders", "verification": { "scheme": "none" } },
            "destination": { "url": destination.url("/erp") },
            "mapping": order_mapping(),
            "filter": ".test != true",
            "ordering": { "key": ".customer.id" },
        }),
    )
    .await;
    let preview = "mutation($id: ID!, $event: ID, $payload: JSON) {
        previewMapping(touchpointId: $id, eventId: $event, payload: $payload) { generation skipped output orderingKey error errorField } }";
    let data = gql_ok(
        &server,
        preview,
        json!({ "id": touchpoint, "payload": order(3, false) }),
    )
    .await;
    assert_eq!(data["previewMapping"]["output"], flows::mapped_order(3));
    assert_eq!(data["previewMapping"]["orderingKey"], 703);
    assert_eq!(data["previewMapping"]["generation"], 1);
    let data = gql_ok(
        &server,
        preview,
        json!({ "id": touchpoint, "payload": order(4, true) }),
    )
    .await;
    assert_eq!(data["previewMapping"]["skipped"], true);
    let data = gql_ok(
        &server,
        preview,
        json!({ "id": touchpoint, "payload": { "total_price": "abc" } }),
    )
    .await;
    let error = data["previewMapping"]["error"]
        .as_str()
        .expect("a mapping error");
    assert!(
        error.contains("tonumber") || error.contains("Total"),
        "{error}"
    );
    assert_eq!(
        data["previewMapping"]["errorField"], "mapping.rules[2].expr",
        "the error names the rule it came from, as validation errors name fields"
    );
    assert_eq!(data["previewMapping"]["output"], Value::Null);

    // A stored event can be previewed too; nothing is delivered either way.
    flows::publish(&server, &touchpoint).await;
    let (_, answer) =
        post_webhook(&reqwest::Client::new(), &server, "orders", &order(5, false)).await;
    let event = answer["eventIds"][0].clone();
    let data = gql_ok(
        &server,
        preview,
        json!({ "id": touchpoint, "event": event }),
    )
    .await;
    assert_eq!(data["previewMapping"]["output"], flows::mapped_order(5));
    assert!(
        destination.received().is_empty(),
        "auto-sync is off and previews never deliver"
    );
    assert_eq!(
        gql_error_code(&server, preview, json!({ "id": touchpoint })).await,
        "INVALID_INPUT"
    );

    // Health and metrics.
    let client = reqwest::Client::new();
    let health = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("hookplane_webhooks_received_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hookplane_http_request_duration_seconds_bucket"));
    // The writer's counts: the accepted webhook was committed, on the fast path.
    let writer = |kind: &str| -> u64 {
        let name = format!("hookplane_store_writer_total{{kind=\"{kind}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(writer("transactions") >= 1);
    assert!(writer("events") >= 1);
    assert_eq!(writer("careful_batches"), 0);
    server.stop().await;
}

async fn payloads_are_validated_against_the_source_schema(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders",
            "source": { "endpoint": "orders", "schema": "Order", "verification": { "scheme": "none" } },
            "destination": { "url": destination.url("/erp") },
            "mapping": order_mapping(),
            "autoSync": true,
        }),
    )
    .await;
    // Publishing needs the schema it names.
    assert_eq!(
        gql_error_code(&server, flows::PUBLISH, json!({ "id": touchpoint })).await,
        "SCHEMA_NOT_FOUND"
    );
    let import = "mutation($name: String!, $doc: JSON!) { importSchema(name: $name, document: $doc) { name } }";
    assert_eq!(
        gql_error_code(
            &server,
            import,
            json!({ "name": "Order", "doc": { "type": 12 } })
        )
        .await,
        "INVALID_SCHEMA"
    );
    let inferred = gql_ok(
        &server,
        "mutation($sample: JSON!) { inferSchema(name: \"Order\", sample: $sample) { name document } }",
        json!({ "sample": order(1, false) }),
    )
    .await;
    assert_eq!(
        inferred["inferSchema"]["document"]["properties"]["customer"]["type"],
        "object"
    );
    flows::publish(&server, &touchpoint).await;

    let client = reqwest::Client::new();
    post_webhook(&client, &server, "orders", &order(2, false)).await;
    let mut wrong = order(3, false);
    wrong["customer"]["id"] = json!("not a number");
    post_webhook(&client, &server, "orders", &wrong).await;
    eventually(Duration::from_secs(20), "both processed", || async {
        let counts = flows::counts(&server, &touchpoint).await;
        (counts["success"] == 1 && counts["failed"] == 1).then_some(())
    })
    .await;
    let failed = flows::bucket(&server, &touchpoint, Some("FAILED")).await;
    let error = failed[0]["lastError"].as_str().expect("error");
    assert!(
        error.contains("Order") && error.contains("/customer/id"),
        "{error}"
    );
    assert_eq!(
        destination.received().len(),
        1,
        "the invalid payload was not delivered"
    );
    assert_eq!(
        gql_error_code(
            &server,
            "mutation { deleteSchema(name: \"Order\") }",
            json!({})
        )
        .await,
        "SCHEMA_IN_USE"
    );
    server.stop().await;
}

async fn retention_purges_old_entries_but_never_unprocessed_ones(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    // Retention of zero days, every second: anything finished is old at once.
    let args = ["--retention-days", "0", "--retention-interval-seconds", "1"];
    let server = Server::start_with(&backend, &args).await;
    let connection = flows::connection(&server).await;
    let mut ids = Vec::new();
    for (endpoint, auto_sync) in [("delivered", true), ("waiting", false)] {
        let extra =
            json!({ "destination": { "url": destination.url("/erp") }, "autoSync": auto_sync });
        ids.push(flows::published_touchpoint(&server, &connection, endpoint, extra).await);
    }
    let client = reqwest::Client::new();
    for n in 0..5 {
        post_webhook(&client, &server, "delivered", &json!({ "n": n })).await;
        post_webhook(&client, &server, "waiting", &json!({ "n": n })).await;
    }
    eventually(
        Duration::from_secs(30),
        "delivered events purged",
        || async {
            let counts = flows::counts(&server, &ids[0]).await;
            (counts == json!({ "unprocessed": 0, "success": 0, "failed": 0, "skipped": 0 })
                && destination.received().len() == 5)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        flows::counts(&server, &ids[1]).await["unprocessed"],
        5,
        "UNPROCESSED events are never purged"
    );
    // The counter is bumped after the purge commits, so it may trail the bucket a little.
    let metrics = eventually(Duration::from_secs(10), "the purge counted", || {
        let client = client.clone();
        let url = server.url("/metrics");
        async move {
            let text = client.get(url).send().await.ok()?.text().await.ok()?;
            text.contains("hookplane_retention_purged_total{kind=\"events\"} 5")
                .then_some(text)
        }
    })
    .await;
    assert!(
        metrics.contains("hookplane_bucket_events{status=\"UNPROCESSED\"} 5"),
        "{metrics}"
    );
    server.stop().await;
}

/// A webhook for a touchpoint with Auto-sync off gives the worker nothing to do, so it must
/// not wake it: each wake costs a look at the store (a scan of the backlog), and a busy
/// endpoint would turn into a query per webhook. One with Auto-sync on does wake it.
async fn webhooks_without_auto_sync_leave_the_worker_idle(backend: Backend) {
    const IDLE_POLL_MS: i64 = 1000;
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start_with(
        &backend,
        &["--worker-idle-poll-ms", &IDLE_POLL_MS.to_string()],
    )
    .await;
    let connection = flows::connection(&server).await;
    for (endpoint, auto_sync) in [("collected", false), ("synced", true)] {
        let extra =
            json!({ "destination": { "url": destination.url("/erp") }, "autoSync": auto_sync });
        flows::published_touchpoint(&server, &connection, endpoint, extra).await;
    }
    let client = reqwest::Client::new();
    let due_lookups = || server.metric("hookplane_worker_due_lookups_total");

    let before = due_lookups().await;
    let started = std::time::Instant::now();
    const WEBHOOKS: u64 = 100;
    for n in 0..WEBHOOKS {
        let (status, _) = post_webhook(&client, &server, "collected", &json!({ "n": n })).await;
        assert_eq!(status, 200);
    }
    let looked = due_lookups().await - before;
    // Only its idle poll (and a look already under way) while they arrived.
    let polls = started.elapsed().as_millis() as i64 / IDLE_POLL_MS + 2;
    assert!(
        looked <= polls,
        "{looked} looks at the store for {WEBHOOKS} webhooks without Auto-sync in {:?}",
        started.elapsed()
    );

    let before = due_lookups().await;
    let (status, _) = post_webhook(&client, &server, "synced", &json!({ "n": 0 })).await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), "delivered", || async {
        (destination.received().len() == 1).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(5),
        "the worker looked again",
        || async { (due_lookups().await > before).then_some(()) },
    )
    .await;
    server.stop().await;
}
