//! Subscriptions that ask the same thing with the same rights share one execution on the
//! server (`hookplane_shared_subscription_executions`); each subscriber still gets every
//! change, in its own protocol, ends on its own, and is not held up by a slow one.

use std::time::Duration;

use futures::{SinkExt, StreamExt, future::join_all};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::{
    flows::{self, post_webhook},
    support::{Backend, Server, Subscription, eventually, gql_ok, new_token},
};

const ENTRIES: &str =
    "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind status entry { id } } }";
const KINDS: &str = "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind } }";
const PAYLOADS: &str = "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind status entry { id payload } } }";

/// `(subscribers, executions)` as `/metrics` shows them.
async fn shared(server: &Server) -> (i64, i64) {
    (
        server.metric("hookplane_shared_subscribers").await,
        server
            .metric("hookplane_shared_subscription_executions")
            .await,
    )
}

/// Waits until `/metrics` shows `subscribers` reading `executions` shared executions.
async fn sharing(server: &Server, subscribers: i64, executions: i64) {
    let what = format!("{subscribers} subscribers on {executions} executions");
    eventually(Duration::from_secs(10), &what, || async {
        (shared(server).await == (subscribers, executions)).then_some(())
    })
    .await;
}

/// An organization's touchpoint that stores webhooks without delivering them (Auto-sync
/// off), so each webhook is one change; returns the touchpoint and organization ids.
async fn quiet_touchpoint(server: &Server) -> (String, String) {
    let connection = flows::connection(server).await;
    let touchpoint = flows::published_touchpoint(
        server,
        &connection,
        "orders",
        json!({ "autoSync": false, "destination": { "url": "http://127.0.0.1:9/orders" } }),
    )
    .await;
    let organization = gql_ok(
        server,
        "query($id: ID!) { connection(id: $id) { organizationId } }",
        json!({ "id": connection }),
    )
    .await["connection"]["organizationId"]
        .as_str()
        .expect("an organization")
        .to_owned();
    (touchpoint, organization)
}

/// `count` new webhooks (each a new order, so none is a duplicate of another).
async fn webhooks(server: &Server, count: usize) {
    padded_webhooks(server, count, 0).await;
}

/// [`webhooks`], each with `padding` bytes besides its order id.
async fn padded_webhooks(server: &Server, count: usize, padding: usize) {
    let client = reqwest::Client::new();
    let posts = (0..count).map(|_| {
        let n = uuid::Uuid::now_v7().to_string();
        let client = &client;
        async move {
            let order = json!({ "order": n, "padding": "x".repeat(padding) });
            let (status, body) = post_webhook(client, server, "orders", &order).await;
            assert!((200..300).contains(&status), "accepted: {body}");
        }
    });
    join_all(posts).await;
}

/// The next `count` payloads of `subscription`.
async fn next(subscription: &mut Subscription, count: usize) -> Vec<Value> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        let item = tokio::time::timeout(Duration::from_secs(10), subscription.items.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} changes arrived", received.len()))
            .expect("the subscription is open");
        received.push(item);
    }
    received
}

fn entry_ids(payloads: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = payloads
        .iter()
        .map(|payload| {
            assert_eq!(payload["errors"], Value::Null);
            let change = &payload["data"]["resyncBucket"];
            assert_eq!(change["kind"], "CREATED", "entry {}", change["entry"]["id"]);
            change["entry"]["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_subscription_runs_once_for_every_subscriber_with_the_same_rights() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let (touchpoint, organization) = quiet_touchpoint(&server).await;
    let viewer = new_token(&server, &json!(organization), "viewer", "VIEWER").await;
    let variables = json!({ "id": touchpoint });
    let start = |protocol: &'static str, query: &'static str| {
        Subscription::start(&server, protocol, query, variables.clone())
    };
    let mut same = vec![
        start("graphql-transport-ws", ENTRIES).await,
        start("graphql-transport-ws", ENTRIES).await,
        start("graphql-transport-ws", ENTRIES).await,
        // The legacy protocol shares the execution too: only the framing differs.
        start("graphql-ws", ENTRIES).await,
    ];
    let mut kinds = start("graphql-transport-ws", KINDS).await;
    let mut as_viewer = Subscription::start_as(
        &server,
        &viewer,
        "graphql-transport-ws",
        ENTRIES,
        variables.clone(),
    )
    .await;
    sharing(&server, 6, 3).await;

    webhooks(&server, 3).await;
    let stored: Vec<String> = {
        let mut ids: Vec<String> = flows::bucket(&server, &touchpoint, None)
            .await
            .iter()
            .map(|entry| entry["id"].as_str().expect("an id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(stored.len(), 3);
    for subscription in same.iter_mut().chain([&mut as_viewer]) {
        assert_eq!(entry_ids(&next(subscription, 3).await), stored);
    }
    for payload in next(&mut kinds, 3).await {
        assert_eq!(
            payload,
            json!({ "data": { "resyncBucket": { "kind": "CREATED" } } })
        );
    }

    // Two leave (one of a shared execution, and the only one of another); the rest go on.
    drop(same.remove(0));
    drop(kinds);
    webhooks(&server, 1).await;
    for subscription in same.iter_mut().chain([&mut as_viewer]) {
        assert_eq!(next(subscription, 1).await.len(), 1);
    }
    sharing(&server, 4, 2).await;

    drop(same);
    drop(as_viewer);
    webhooks(&server, 1).await;
    sharing(&server, 0, 0).await;
    server.stop().await;
}

/// A subscriber that stops reading its socket (until the kernel's buffers are full and the
/// server's writes to it wait) holds up neither the execution it shares nor the other
/// subscribers of it, and does not keep the changes it has not read: when it reads again it
/// is told how many it missed, and gets the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_holds_no_one_up() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    let (touchpoint, _) = quiet_touchpoint(&server).await;
    let variables = json!({ "id": touchpoint });

    let mut request = server.ws_url().into_client_request().expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut stalled, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", server.token) } });
    stalled
        .send(Message::text(init.to_string()))
        .await
        .expect("init");
    stalled.next().await.expect("an ack").expect("a message");
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": PAYLOADS, "variables": variables } });
    stalled
        .send(Message::text(subscribe.to_string()))
        .await
        .expect("subscribe");
    let mut reader =
        Subscription::start(&server, "graphql-transport-ws", PAYLOADS, variables.clone()).await;
    sharing(&server, 2, 1).await;

    // `stalled` reads nothing from here on: 16 MiB of changes are far more than loopback
    // buffers hold.
    const WEBHOOKS: usize = 256;
    for _ in 0..WEBHOOKS / 16 {
        padded_webhooks(&server, 16, 64 * 1024).await;
    }
    let received = next(&mut reader, WEBHOOKS).await;
    assert_eq!(entry_ids(&received).len(), WEBHOOKS);

    // 16 MiB of changes is more than an execution keeps for its laggards (4 MiB).
    let (mut entries, mut missed) = (0, 0);
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(3), stalled.next()).await
    {
        let Ok(message) = serde_json::from_str::<Value>(message.to_text().unwrap_or_default())
        else {
            continue;
        };
        let payload = &message["payload"];
        if let Some(error) = payload["errors"].get(0) {
            assert_eq!(error["extensions"]["code"], "SUBSCRIPTION_LAGGED");
            let count = error["message"].as_str().unwrap_or_default();
            missed += count
                .split(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .expect("the message counts what was missed");
        } else if payload["data"]["resyncBucket"]["entry"]["id"].is_string() {
            entries += 1;
        }
    }
    assert!(missed > 0, "a stalled subscriber is told it lagged");
    assert_eq!(
        entries + missed,
        WEBHOOKS,
        "each change arrives or is counted as missed"
    );
    server.stop().await;
}

/// A refused subscription ends its execution at once; each subscriber is still told why (the
/// answer outlives the execution's task), never that it missed something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_told_why_however_fast_its_execution_ends() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend).await;
    quiet_touchpoint(&server).await;
    let variables = json!({ "id": uuid::Uuid::now_v7().to_string() });
    let mut subscriptions = Vec::new();
    for _ in 0..30 {
        subscriptions.push(
            Subscription::start(&server, "graphql-transport-ws", ENTRIES, variables.clone()).await,
        );
    }
    for subscription in &mut subscriptions {
        let answer = next(subscription, 1).await.remove(0);
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "TOUCHPOINT_NOT_FOUND",
            "{answer}"
        );
    }
    server.stop().await;
}
