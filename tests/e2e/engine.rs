//! The sync engine under faults: retry policy, attempt histories that match what the
//! destination saw, per-key ordering (block and park), concurrency without ordering.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    flows::{self, post_webhook},
    on_both_backends,
    support::{
        Backend, Destination, Server,
        chaos::{Chaos, Odds},
        destination::Mode,
        eventually, gql_ok,
    },
};

on_both_backends!(
    faults_end_as_the_policy_says,
    client_errors_are_permanent_unless_configured,
    ordering_keeps_each_key_in_sequence,
    a_failed_head_blocks_or_parks_its_key,
    mapping_errors_fail_readably_and_the_worker_goes_on,
);

const HISTORY: &str = r#"
query($id: ID!, $after: String) {
  resyncBucket(touchpointId: $id, first: 200, after: $after) {
    edges { node { id status attempts payload attemptHistory { number startedAt durationMs responseStatus error } } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

/// Every entry with its attempt history.
async fn histories(server: &Server, touchpoint: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = gql_ok(server, HISTORY, json!({ "id": touchpoint, "after": after })).await;
        let page = &data["resyncBucket"];
        all.extend(
            page["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"].clone()),
        );
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return all;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

async fn touchpoint_to(
    server: &Server,
    connection: &str,
    endpoint: &str,
    url: String,
    mut extra: Value,
) -> String {
    extra["destination"] = json!({ "url": url });
    flows::published_touchpoint(server, connection, endpoint, extra).await
}

async fn all_terminal(server: &Server, touchpoint: &str, expected: usize) {
    eventually(
        Duration::from_secs(90),
        "every event SUCCESS or FAILED",
        || async {
            let counts = flows::counts(server, touchpoint).await;
            let done = counts["success"].as_i64()? + counts["failed"].as_i64()?;
            (done == expected as i64).then_some(())
        },
    )
    .await;
}

async fn faults_end_as_the_policy_says(backend: Backend) {
    let odds = Odds {
        server_error: 20,
        too_many: 10,
        hang: 5,
        reset: 5,
    };
    let chaos = Chaos::start(7, odds, Duration::from_millis(5), Duration::from_secs(3)).await;
    let healthy = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let other_connection = flows::connection(&server).await;
    let flaky = touchpoint_to(
        &server,
        &connection,
        "flaky",
        chaos.url("/erp"),
        json!({ "delivery": { "maxAttempts": 6, "initialBackoffMs": 20, "maxBackoffMs": 200, "timeoutSeconds": 1 } }),
    )
    .await;
    let steady = touchpoint_to(
        &server,
        &other_connection,
        "steady",
        healthy.url("/crm"),
        json!({}),
    )
    .await;
    let client = reqwest::Client::new();
    let posts = (1..=40).map(|n| {
        let client = client.clone();
        let server = &server;
        async move {
            let (status, _) = post_webhook(&client, server, "flaky", &json!({ "n": n })).await;
            assert_eq!(status, 200);
            let (status, _) = post_webhook(&client, server, "steady", &json!({ "n": n })).await;
            assert_eq!(status, 200);
        }
    });
    join_all(posts).await;

    // The healthy touchpoint is not held up by its neighbour's troubles.
    all_terminal(&server, &steady, 40).await;
    for entry in histories(&server, &steady).await {
        assert_eq!(entry["status"], "SUCCESS");
        assert_eq!(entry["attempts"], 1);
    }

    all_terminal(&server, &flaky, 40).await;
    let seen = chaos.by_key();
    for entry in histories(&server, &flaky).await {
        let id = entry["id"].as_str().expect("id");
        let history = entry["attemptHistory"].as_array().expect("history");
        let requests = seen.get(id).cloned().unwrap_or_default();
        assert_eq!(
            history.len(),
            requests.len(),
            "{id}: one attempt recorded per request the destination saw"
        );
        for (attempt, request) in history.iter().zip(&requests) {
            assert_eq!(
                attempt["responseStatus"].as_i64(),
                request.fate.status(),
                "{id}: attempt {} recorded what the destination did ({:?})",
                attempt["number"],
                request.fate
            );
            if request.fate.status().is_none() {
                assert!(attempt["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
        match entry["status"].as_str() {
            Some("SUCCESS") => {
                assert_eq!(requests.last().map(|r| r.fate.status()), Some(Some(200)))
            }
            Some("FAILED") => {
                assert_eq!(history.len(), 6, "{id}: FAILED only after maxAttempts");
                assert!(requests.iter().all(|r| r.fate.status() != Some(200)));
            }
            other => panic!("{id}: unexpected status {other:?}"),
        }
        // After a 429 with Retry-After: 1, the next attempt waits at least that second.
        for pair in history.windows(2) {
            if pair[0]["responseStatus"] == 429 {
                let start = |a: &Value| {
                    a["startedAt"]
                        .as_str()
                        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                        .expect("time")
                };
                let gap = start(&pair[1]) - start(&pair[0]);
                assert!(
                    gap >= chrono::Duration::milliseconds(950),
                    "{id}: Retry-After honoured ({gap})"
                );
            }
        }
    }
    server.stop().await;
}

async fn client_errors_are_permanent_unless_configured(backend: Backend) {
    let destination = Destination::start(Mode::Status(422)).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let policy = |retry: bool| json!({ "delivery": { "maxAttempts": 3, "initialBackoffMs": 10, "maxBackoffMs": 20, "retryClientErrors": retry } });
    let permanent = touchpoint_to(
        &server,
        &connection,
        "strict",
        destination.url("/a"),
        policy(false),
    )
    .await;
    let retried = touchpoint_to(
        &server,
        &connection,
        "lenient",
        destination.url("/b"),
        policy(true),
    )
    .await;
    let client = reqwest::Client::new();
    post_webhook(&client, &server, "strict", &json!({ "n": 1 })).await;
    post_webhook(&client, &server, "lenient", &json!({ "n": 1 })).await;
    all_terminal(&server, &permanent, 1).await;
    all_terminal(&server, &retried, 1).await;
    let strict = histories(&server, &permanent).await;
    assert_eq!(strict[0]["status"], "FAILED");
    assert_eq!(strict[0]["attempts"], 1, "422 is permanent: FAILED at once");
    let lenient = histories(&server, &retried).await;
    assert_eq!(lenient[0]["status"], "FAILED");
    assert_eq!(lenient[0]["attempts"], 3, "retryClientErrors retries 4xx");

    // A redirect is a failed attempt, never followed.
    destination.set_mode(Mode::Status(302));
    let redirect = touchpoint_to(
        &server,
        &connection,
        "moved",
        destination.url("/c"),
        policy(false),
    )
    .await;
    post_webhook(&client, &server, "moved", &json!({ "n": 1 })).await;
    all_terminal(&server, &redirect, 1).await;
    let moved = histories(&server, &redirect).await;
    assert_eq!(moved[0]["status"], "FAILED");
    assert_eq!(moved[0]["attemptHistory"][0]["responseStatus"], 302);
    server.stop().await;
}

async fn ordering_keeps_each_key_in_sequence(backend: Backend) {
    let odds = Odds {
        server_error: 25,
        ..Odds::default()
    };
    let chaos = Chaos::start(11, odds, Duration::from_millis(10), Duration::from_secs(1)).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let ordered = touchpoint_to(
        &server,
        &connection,
        "ordered",
        chaos.url("/erp"),
        json!({
            "ordering": { "key": ".order_id" },
            "delivery": { "maxAttempts": 20, "initialBackoffMs": 10, "maxBackoffMs": 50 },
        }),
    )
    .await;
    let client = reqwest::Client::new();
    // Each key's events are sent in sequence; the keys are sent in parallel.
    let keys = ["A", "B", "C", "D"];
    join_all(keys.iter().map(|key| {
        let client = client.clone();
        let server = &server;
        async move {
            for seq in 1..=15 {
                let (status, _) = post_webhook(
                    &client,
                    server,
                    "ordered",
                    &json!({ "order_id": key, "seq": seq }),
                )
                .await;
                assert_eq!(status, 200);
            }
        }
    }))
    .await;
    all_terminal(&server, &ordered, 60).await;
    let mut sequences: HashMap<String, Vec<i64>> = HashMap::new();
    for seen in chaos.seen() {
        let key = seen.body["order_id"].as_str().expect("key").to_owned();
        sequences
            .entry(key)
            .or_default()
            .push(seen.body["seq"].as_i64().expect("seq"));
    }
    for (key, sequence) in &sequences {
        assert!(
            sequence.windows(2).all(|w| w[0] <= w[1]),
            "key {key} was delivered out of order: {sequence:?}"
        );
        assert_eq!(sequence.last(), Some(&15));
    }
    assert_eq!(flows::counts(&server, &ordered).await["success"], 60);

    // Without an ordering key the worker uses its concurrency.
    let unordered_chaos = Chaos::start(
        3,
        Odds::default(),
        Duration::from_millis(150),
        Duration::from_secs(1),
    )
    .await;
    let unordered = touchpoint_to(
        &server,
        &connection,
        "unordered",
        unordered_chaos.url("/erp"),
        json!({}),
    )
    .await;
    join_all((1..=30).map(|n| {
        let client = client.clone();
        let server = &server;
        async move { post_webhook(&client, server, "unordered", &json!({ "n": n })).await }
    }))
    .await;
    all_terminal(&server, &unordered, 30).await;
    assert!(
        unordered_chaos.max_in_flight() >= 8,
        "deliveries ran in parallel (max in flight {})",
        unordered_chaos.max_in_flight()
    );
    server.stop().await;
}

async fn a_failed_head_blocks_or_parks_its_key(backend: Backend) {
    let destination = Destination::start(Mode::RejectWhere("seq", 1)).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let ordering = |on_failure: &str| json!({ "ordering": { "key": ".key", "onFailure": on_failure }, "delivery": { "maxAttempts": 1 } });
    let blocking = touchpoint_to(
        &server,
        &connection,
        "blocking",
        destination.url("/block"),
        ordering("BLOCK"),
    )
    .await;
    let parking = touchpoint_to(
        &server,
        &connection,
        "parking",
        destination.url("/park"),
        ordering("PARK"),
    )
    .await;
    let client = reqwest::Client::new();
    for endpoint in ["blocking", "parking"] {
        for (key, seq) in [("A", 1), ("A", 2), ("A", 3), ("B", 2), ("B", 3)] {
            let (status, _) = post_webhook(
                &client,
                &server,
                endpoint,
                &json!({ "key": key, "seq": seq }),
            )
            .await;
            assert_eq!(status, 200);
        }
    }
    // Park: A1 fails and steps aside; everything else is delivered.
    eventually(
        Duration::from_secs(30),
        "parking touchpoint drained",
        || async {
            let counts = flows::counts(&server, &parking).await;
            (counts["success"] == 4 && counts["failed"] == 1).then_some(())
        },
    )
    .await;
    // Block: A1 fails and A2, A3 wait behind it; key B is not held up.
    eventually(
        Duration::from_secs(30),
        "blocking touchpoint settled",
        || async {
            let counts = flows::counts(&server, &blocking).await;
            (counts["success"] == 2 && counts["failed"] == 1 && counts["unprocessed"] == 2)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        flows::counts(&server, &blocking).await["unprocessed"],
        2,
        "nothing overtakes A1"
    );

    // Resyncing the head after the destination recovers drains the key in order.
    destination.set_mode(Mode::Ok);
    let failed = flows::bucket(&server, &blocking, Some("FAILED")).await;
    gql_ok(
        &server,
        "mutation($ids: [ID!]!) { resyncEvents(ids: $ids) { id } }",
        json!({ "ids": [failed[0]["id"]] }),
    )
    .await;
    eventually(Duration::from_secs(30), "blocked key drained", || async {
        (flows::counts(&server, &blocking).await["success"] == 5).then_some(())
    })
    .await;
    let a_sequence: Vec<i64> = destination
        .received()
        .iter()
        .filter(|r| r.path == "/block" && r.body["key"] == "A")
        .map(|r| r.body["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        a_sequence,
        vec![1, 1, 2, 3],
        "A1 failed, was resynced, then A2 and A3 followed"
    );
    let logs = flows::logs(&server, &blocking).await;
    assert!(logs.iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("requested by token:owner"))
    }));
    server.stop().await;
}

async fn mapping_errors_fail_readably_and_the_worker_goes_on(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start(&backend).await;
    let connection = flows::connection(&server).await;
    let touchpoint = touchpoint_to(
        &server,
        &connection,
        "mapped",
        destination.url("/erp"),
        json!({ "mapping": flows::order_mapping() }),
    )
    .await;
    let client = reqwest::Client::new();
    let mut broken = flows::order(1, false);
    broken["total_price"] = json!("forty-two");
    let (status, answer) = post_webhook(&client, &server, "mapped", &broken).await;
    assert_eq!(status, 200);
    let broken_id = answer["eventIds"][0].clone();
    let mut missing = flows::order(2, false);
    missing
        .as_object_mut()
        .expect("object")
        .remove("line_items");
    post_webhook(&client, &server, "mapped", &missing).await;
    post_webhook(&client, &server, "mapped", &flows::order(3, false)).await;
    all_terminal(&server, &touchpoint, 3).await;
    let entries = histories(&server, &touchpoint).await;
    let broken_entry = entries
        .iter()
        .find(|e| e["id"] == broken_id)
        .expect("entry");
    assert_eq!(broken_entry["status"], "FAILED");
    assert_eq!(
        broken_entry["attemptHistory"],
        json!([]),
        "nothing was sent"
    );
    let failed = flows::bucket(&server, &touchpoint, Some("FAILED")).await;
    assert_eq!(
        failed.len(),
        2,
        "the runtime error and the missing field both fail"
    );
    for entry in &failed {
        let error = entry["lastError"].as_str().expect("error");
        assert!(error.starts_with("mapping failed: rule"), "{error}");
    }
    let by_id = |id: &Value| failed.iter().find(|e| &e["id"] == id).cloned();
    let message = by_id(&broken_id).expect("broken")["lastError"]
        .as_str()
        .map(str::to_owned);
    let message = message.expect("message");
    assert!(
        message.contains("Total") && message.contains("tonumber"),
        "{message}"
    );
    assert_eq!(
        flows::counts(&server, &touchpoint).await["success"],
        1,
        "the worker went on"
    );
    assert_eq!(destination.received().len(), 1);
    server.stop().await;
}
