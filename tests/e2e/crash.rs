//! Crash safety: under a steady stream of webhooks the server is killed with SIGKILL at random
//! moments and restarted on the same database. Every webhook that got a 2xx must end in the
//! bucket exactly once and be delivered at least once; nothing may stay UNPROCESSED or leased.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use crate::{
    flows::{self, order, order_mapping},
    on_both_backends,
    support::{Backend, Destination, Server, destination::Mode, eventually},
};

on_both_backends!(kill_nine_loses_nothing_acknowledged);

const WEBHOOKS: u64 = 400;
const KILLS: usize = 4;
/// Short leases so events held by a killed process are claimed again quickly.
const SERVER_ARGS: [&str; 2] = ["--lease-seconds", "2"];

async fn kill_nine_loses_nothing_acknowledged(backend: Backend) {
    let destination = Destination::start(Mode::Ok).await;
    let server = Server::start_with(&backend, &SERVER_ARGS).await;
    let connection = flows::connection(&server).await;
    let touchpoint = flows::touchpoint(
        &server,
        &connection,
        json!({
            "name": "Orders",
            "source": { "endpoint": "orders", "verification": { "scheme": "none" } },
            "destination": { "url": destination.url("/erp") },
            "mapping": order_mapping(),
            "autoSync": true,
            "delivery": { "initialBackoffMs": 50, "maxBackoffMs": 500, "maxAttempts": 20 },
        }),
    )
    .await;
    flows::publish(&server, &touchpoint).await;

    // The sender always posts to whichever server is up; a refused or reset request is not
    // acknowledged and is simply not counted.
    let current = Arc::new(Mutex::new(server.url("/hooks/acme/orders")));
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let sender = {
        let current = Arc::clone(&current);
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let mut attempts = 0u64;
            for number in 1..=WEBHOOKS {
                attempts += 1;
                let url = current.lock().expect("url").clone();
                let response = client.post(url).json(&order(number, false)).send().await;
                if let Ok(response) = response
                    && response.status().is_success()
                    && let Ok(body) = response.json::<Value>().await
                    && let Some(id) = body["eventIds"][0].as_str()
                {
                    acked.lock().expect("acked").insert(id.to_owned(), number);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            attempts
        })
    };

    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut server = server;
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
        server.kill().await;
        server = Server::start_with(&backend, &SERVER_ARGS).await;
        *current.lock().expect("url") = server.url("/hooks/acme/orders");
    }
    let sent = sender.await.expect("sender");
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() > (WEBHOOKS as usize) / 2,
        "most webhooks were acknowledged"
    );

    let entries = eventually(
        Duration::from_secs(90),
        "every stored event processed",
        || async {
            let entries = flows::bucket(&server, &touchpoint, None).await;
            entries
                .iter()
                .all(|e| e["status"] == "SUCCESS")
                .then_some(entries)
        },
    )
    .await;

    let stored: Vec<&str> = entries
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    let unique: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "no event is stored twice");
    for id in acked.keys() {
        assert!(
            unique.contains(id.as_str()),
            "acknowledged event {id} is in the bucket"
        );
    }
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for request in destination.received() {
        *deliveries
            .entry(request.idempotency_key.expect("an Idempotency-Key"))
            .or_default() += 1;
    }
    for id in &unique {
        assert!(
            deliveries.contains_key(*id),
            "stored event {id} was delivered"
        );
    }
    let leased = gql_leased(&server, &touchpoint).await;
    assert_eq!(leased, 0, "no event is left leased");
    let duplicate_deliveries: usize = deliveries.values().map(|n| n - 1).sum();
    println!(
        "crash test ({kills} kills): sent {sent}, acked {acked}, stored {stored}, delivered {delivered}, duplicate deliveries {duplicate_deliveries}",
        kills = KILLS,
        acked = acked.len(),
        stored = stored.len(),
        delivered = deliveries.len(),
    );
    server.stop().await;
}

async fn gql_leased(server: &Server, touchpoint: &str) -> usize {
    let mut leased = 0;
    let mut after = Value::Null;
    loop {
        let data = crate::support::gql_ok(
            server,
            "query($id: ID!, $after: String) { resyncBucket(touchpointId: $id, first: 500, after: $after) { edges { node { leasedUntil } } pageInfo { hasNextPage endCursor } } }",
            json!({ "id": touchpoint, "after": after }),
        )
        .await;
        let page = &data["resyncBucket"];
        leased += page["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .filter(|edge| !edge["node"]["leasedUntil"].is_null())
            .count();
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return leased;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}
