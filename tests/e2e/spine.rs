//! The spine: webhooks in, mapped deliveries out, everything visible live over GraphQL.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    flows::{self, mapped_order, order, order_mapping, post_webhook},
    on_both_backends,
    support::{Backend, Destination, Server, Subscription, destination::Mode, eventually, gql_ok},
};

const BUCKET_SUBSCRIPTION: &str = r#"
subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind status entry { id status } } }"#;

const LOG_SUBSCRIPTION: &str = r#"
subscription($id: ID!) { logBucket(touchpointId: $id) { id eventId level message } }"#;

on_both_backends!(
    two_hundred_concurrent_webhooks_are_mapped_delivered_and_streamed,
    failing_destination_retries_fails_and_resyncs,
);

async fn two_hundred_concurrent_webhooks_are_mapped_delivered_and_streamed(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders to ERP",
            "source": { "endpoint": "shop/orders", "verification": { "scheme": "none" } },
            "destination": {
                "url": destination.url("/erp/orders"),
                "method": "PUT",
                "headers": [{ "name": "X-Api-Key", "value": "k-123" }]
            },
            "mapping": order_mapping(),
            "filter": ".test != true",
            "autoSync": true,
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;

    // graphql-transport-ws for the bucket, the legacy graphql-ws for the log.
    let mut bucket_stream = Subscription::start(
        &server,
        "graphql-transport-ws",
        BUCKET_SUBSCRIPTION,
        json!({ "id": touchpoint }),
    )
    .await;
    let mut log_stream = Subscription::start(
        &server,
        "graphql-ws",
        LOG_SUBSCRIPTION,
        json!({ "id": touchpoint }),
    )
    .await;
    // A subscription is live once the server has polled it; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let client = reqwest::Client::new();
    let posts = (1..=200u64).map(|number| {
        let client = client.clone();
        let server = &server;
        async move {
            let test = number % 5 == 0;
            let (status, answer) =
                post_webhook(&client, server, "shop/orders", &order(number, test)).await;
            (number, test, status, answer)
        }
    });
    let results = join_all(posts).await;
    let mut acked: HashMap<String, (u64, bool)> = HashMap::new();
    for (number, test, status, answer) in results {
        assert_eq!(status, 200, "webhook {number}: {answer}");
        let id = answer["eventIds"][0]
            .as_str()
            .expect("an event id")
            .to_owned();
        assert!(
            acked.insert(id, (number, test)).is_none(),
            "event ids are unique"
        );
    }
    assert_eq!(acked.len(), 200);

    let final_counts = eventually(Duration::from_secs(60), "every event processed", || async {
        let counts = flows::counts(&server, &touchpoint).await;
        (counts["success"].as_i64()? + counts["skipped"].as_i64()? == 200).then_some(counts)
    })
    .await;
    assert_eq!(
        final_counts,
        json!({ "unprocessed": 0, "success": 160, "failed": 0, "skipped": 40 })
    );

    // Every acknowledged webhook is in the bucket exactly once, with the right status.
    let entries = flows::bucket(&server, &touchpoint, None).await;
    assert_eq!(entries.len(), 200);
    let mut seen = HashSet::new();
    for entry in &entries {
        let id = entry["id"].as_str().expect("id");
        assert!(seen.insert(id.to_owned()), "{id} appears once");
        let (number, test) = acked[id];
        let expected = if test { "SKIPPED" } else { "SUCCESS" };
        assert_eq!(entry["status"], expected, "event for order {number}");
        if !test {
            assert_eq!(entry["mappedOutput"], mapped_order(number));
            assert_eq!(entry["attempts"], 1);
            assert_eq!(entry["responseStatus"], 200);
        }
    }

    // The destination received exactly the mapped bodies of the unfiltered ones.
    let received = destination.received();
    assert_eq!(received.len(), 160, "one delivery per unfiltered webhook");
    let mut delivered = HashSet::new();
    for request in &received {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.path, "/erp/orders");
        assert_eq!(request.headers["x-api-key"], "k-123");
        assert_eq!(request.headers["content-type"], "application/json");
        let key = request.idempotency_key.clone().expect("an Idempotency-Key");
        let (number, test) = acked[&key];
        assert!(!test, "filtered order {number} was delivered");
        assert_eq!(request.body, mapped_order(number));
        assert!(delivered.insert(key), "delivered once");
    }

    // The subscriptions saw every entry and every status change.
    let mut changes: Vec<Value> = bucket_stream.drain();
    let mut created = HashSet::new();
    let mut finished = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        for change in changes.drain(..) {
            assert!(
                change.get("errors").is_none(),
                "subscription error: {change}"
            );
            let change = &change["data"]["resyncBucket"];
            let id = change["entry"]["id"].as_str().expect("entry id").to_owned();
            match change["kind"].as_str() {
                Some("CREATED") => {
                    assert_eq!(change["status"], "UNPROCESSED");
                    created.insert(id);
                }
                Some("UPDATED") => {
                    finished.insert(id, change["status"].as_str().expect("status").to_owned());
                }
                other => panic!("unexpected change kind {other:?}"),
            }
        }
        if created.len() == 200 && finished.len() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bucket subscription saw {} created and {} updated of 200",
            created.len(),
            finished.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        changes = bucket_stream.drain();
    }
    for (id, status) in &finished {
        let (_, test) = acked[id];
        assert_eq!(status, if test { "SKIPPED" } else { "SUCCESS" });
    }

    // Log entries exist for each event, in the bucket and on the live stream.
    let logs = flows::logs(&server, &touchpoint).await;
    let logged: HashSet<&str> = logs.iter().filter_map(|l| l["eventId"].as_str()).collect();
    for id in acked.keys() {
        assert!(logged.contains(id.as_str()), "log entries for {id}");
    }
    let mut streamed_events = HashSet::new();
    eventually(
        Duration::from_secs(10),
        "the log stream to cover every event",
        || {
            for entry in log_stream.drain() {
                assert!(entry.get("errors").is_none(), "subscription error: {entry}");
                if let Some(id) = entry["data"]["logBucket"]["eventId"].as_str() {
                    streamed_events.insert(id.to_owned());
                }
            }
            let done = acked.keys().all(|id| streamed_events.contains(id));
            async move { done.then_some(()) }
        },
    )
    .await;

    server.stop().await;
}

async fn failing_destination_retries_fails_and_resyncs(backend: Backend) {
    let destination = Destination::start(Mode::FailFirst(2)).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Flaky ERP",
            "source": { "endpoint": "flaky", "verification": { "scheme": "none" } },
            "destination": { "url": destination.url("/erp") },
            "mapping": order_mapping(),
            "autoSync": true,
            "delivery": { "maxAttempts": 3, "initialBackoffMs": 20, "maxBackoffMs": 100 },
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;
    let client = reqwest::Client::new();

    // Two failures per event, three attempts allowed: every event retries, then succeeds.
    for number in 1..=10 {
        let (status, _) = post_webhook(&client, &server, "flaky", &order(number, false)).await;
        assert_eq!(status, 200);
    }
    eventually(
        Duration::from_secs(30),
        "retried events succeed",
        || async {
            let counts = flows::counts(&server, &touchpoint).await;
            (counts["success"] == 10).then_some(())
        },
    )
    .await;
    for entry in flows::bucket(&server, &touchpoint, None).await {
        assert_eq!(entry["status"], "SUCCESS");
        assert_eq!(entry["attempts"], 3, "two failures, then success");
    }
    assert_eq!(destination.received().len(), 30);

    // The destination is down: events end FAILED with the error and status recorded.
    destination.set_mode(Mode::Fail);
    for number in 11..=15 {
        let (status, _) = post_webhook(&client, &server, "flaky", &order(number, false)).await;
        assert_eq!(status, 200);
    }
    eventually(Duration::from_secs(30), "events end FAILED", || async {
        let counts = flows::counts(&server, &touchpoint).await;
        (counts["failed"] == 5).then_some(())
    })
    .await;
    let failed = flows::bucket(&server, &touchpoint, Some("FAILED")).await;
    assert_eq!(failed.len(), 5);
    for entry in &failed {
        assert_eq!(entry["attempts"], 3);
        assert_eq!(entry["responseStatus"], 500);
        let error = entry["lastError"].as_str().expect("an error");
        assert!(error.contains("500"), "error names the status: {error}");
    }

    // The destination recovers; resyncing the FAILED events makes them SUCCESS.
    destination.set_mode(Mode::Ok);
    let ids: Vec<&str> = failed
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    let data = gql_ok(
        &server,
        "mutation($ids: [ID!]!) { resyncEvents(ids: $ids) { id status attempts } }",
        json!({ "ids": ids }),
    )
    .await;
    for entry in data["resyncEvents"].as_array().expect("entries") {
        assert_eq!(entry["status"], "UNPROCESSED");
        assert_eq!(entry["attempts"], 0);
    }
    eventually(
        Duration::from_secs(30),
        "resynced events succeed",
        || async {
            let counts = flows::counts(&server, &touchpoint).await;
            (counts["success"] == 15 && counts["failed"] == 0).then_some(())
        },
    )
    .await;
    server.stop().await;
}
