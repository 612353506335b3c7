//! The backlog as the operator reads it from PostgreSQL, and how fast a burst gets workers:
//! a real store commits events, its change relay notifies, the operator's listener wakes the
//! connection and the reconcile patches the worker Deployment in the in-memory API.
//!
//! Needs `HOOKPLANE_TEST_POSTGRES_URL` (skips with a printed reason when unset).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hookplane_crds::{Connection, Touchpoint};
use hookplane_operator::{
    backlog::{BacklogSource, DatabaseBacklog},
    metrics::Metrics,
    wakeups,
};
use hookplane_store::{ExternalTouchpoint, NewEvent, Outcome, Store, StoreOptions, testing};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{CONNECTION, Cluster, Harness, connection, shopify_orders};

const WORKER: &str = "hookplane-shop-to-erp-worker";

/// A store on a fresh database holding the example connection and its `shopify-orders`
/// touchpoint under the id `uid` (the Touchpoint's), as the data plane would after loading
/// its configuration.
async fn store_with_shopify_orders(url: &str, uid: &str) -> (Store, Uuid) {
    let store = Store::open(url, StoreOptions::default())
        .await
        .expect("the store opens");
    store.migrate().await.expect("the schema is created");
    let touchpoint = shopify_orders();
    let id: Uuid = uid.parse().unwrap();
    let connection = connection();
    store
        .apply_external(
            Uuid::now_v7(),
            &connection.spec,
            "acme",
            &[ExternalTouchpoint {
                id,
                generation: 1,
                spec: touchpoint.spec.clone(),
            }],
        )
        .await
        .expect("the configuration applies");
    (store, id)
}

/// An event as intake makes one (the generic app, no verification), its own delivery.
fn event(touchpoint_id: Uuid, n: usize) -> NewEvent {
    testing::received_event(
        touchpoint_id,
        &json!({ "n": n }),
        &Uuid::now_v7().to_string(),
    )
}

async fn append(store: &Store, touchpoint_id: Uuid, count: usize) {
    for n in 0..count {
        store
            .append_events(vec![event(touchpoint_id, n)])
            .await
            .expect("append");
    }
}

#[tokio::test]
async fn the_database_backlog_counts_unprocessed_events_and_recounts_after_a_change() {
    let Some(url) = testing::postgres_url().await else {
        return;
    };
    let uid = shopify_orders().uid().unwrap();
    let (store, id) = store_with_shopify_orders(&url, &uid).await;
    let pool = DatabaseBacklog::connect(&url, Duration::from_secs(5)).unwrap();
    let backlog = DatabaseBacklog::new(pool.clone(), Duration::from_secs(3600));
    assert!(backlog.backlog().await.unwrap().is_empty(), "no events yet");

    append(&store, id, 3).await;
    assert!(
        backlog.backlog().await.unwrap().is_empty(),
        "a fresh answer is reused"
    );
    backlog.invalidate();
    let counted = backlog.backlog().await.unwrap();
    assert_eq!(counted.get(&id.to_string()), Some(&3));
    assert_eq!(counted.len(), 1);

    // Delivered events leave the backlog.
    let claimed = store
        .claim_due_events(
            chrono::Utc::now() + chrono::TimeDelta::days(1),
            Duration::from_secs(60),
            1,
        )
        .await
        .unwrap();
    store
        .record_outcome(
            claimed[0].id,
            claimed[0].lease_id.unwrap(),
            Outcome::Skipped { generation: 1 },
        )
        .await
        .unwrap();
    backlog.invalidate();
    assert_eq!(backlog.backlog().await.unwrap()[&id.to_string()], 2);

    pool.close().await;
    store.close().await;
    testing::drop_postgres_database(&url).await;
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_not_an_empty_backlog() {
    let pool =
        DatabaseBacklog::connect("postgres://nobody@127.0.0.1:9/none", Duration::from_secs(2))
            .unwrap();
    let backlog = DatabaseBacklog::new(pool, Duration::ZERO);
    assert!(backlog.backlog().await.is_err());
}

/// The target: a burst that needs more workers gets its first new replica requested
/// within 5 s of its first commit, with the poll (30 s) out of the picture. Prints the figure
/// for bench/RESULTS.md.
#[tokio::test]
async fn a_burst_gets_its_first_new_worker_within_seconds_of_its_first_commit() {
    let Some(url) = testing::postgres_url().await else {
        return;
    };
    let pool = DatabaseBacklog::connect(&url, Duration::from_secs(5)).unwrap();
    let backlog = Arc::new(DatabaseBacklog::new(pool.clone(), Duration::from_secs(5)));
    let harness = Harness::with_backlog(Cluster::examples().await, backlog.clone());
    // The in-memory API gave the Touchpoint its uid; the data plane stores it under that id.
    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    let (store, id) = store_with_shopify_orders(&url, &touchpoint.uid().unwrap()).await;
    harness.reconcile_connection(CONNECTION).await.unwrap();
    let replicas = |d: &Deployment| d.spec.as_ref().unwrap().replicas.unwrap();
    let workers: kube::Api<Deployment> = harness.cluster.api();
    assert_eq!(replicas(&workers.get(WORKER).await.unwrap()), 1);

    // The operator's wiring, without the watches the in-memory API cannot serve: the
    // listener's wakes, mapped to connections through the touchpoints, reconciled as they come.
    let shutdown = CancellationToken::new();
    let (wake, mut wakes) = mpsc::channel(16);
    tokio::spawn(wakeups::listen(
        pool.clone(),
        backlog.clone(),
        Duration::from_millis(500),
        wake,
        Arc::new(Metrics::new()),
        shutdown.clone(),
    ));
    let touchpoints: Vec<Arc<Touchpoint>> = harness
        .cluster
        .api::<Touchpoint>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    let connections: Vec<Arc<Connection>> = vec![Arc::new(connection())];
    let (patched, mut first_patch) = mpsc::channel::<Instant>(1);
    let reconciler = {
        let harness = Arc::new(harness);
        let workers = workers.clone();
        tokio::spawn(async move {
            while let Some(wake) = wakes.recv().await {
                for connection in wakeups::connections_to_wake(&wake, &touchpoints, &connections) {
                    harness
                        .reconcile_connection(&connection.name)
                        .await
                        .unwrap();
                }
                if replicas(&workers.get(WORKER).await.unwrap()) > 1 {
                    let _ = patched.try_send(Instant::now());
                }
            }
        })
    };
    // The listener is up once a lone event wakes it (one event needs no second worker).
    append(&store, id, 1).await;
    let mut listening = false;
    for _ in 0..100 {
        if backlog.backlog().await.unwrap().get(&id.to_string()) == Some(&1) {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listening, "the backlog was never counted");
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    // The burst: 1,000 events (5 workers' worth at 200 each), committed one by one by 4
    // concurrent clients.
    let first = store.append_events(vec![event(id, 0)]).await.unwrap();
    assert_eq!(first.len(), 1);
    let first_commit = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        clients.push(tokio::spawn(async move { append(&store, id, 250).await }));
    }
    let patched_at = tokio::time::timeout(Duration::from_secs(30), first_patch.recv())
        .await
        .expect("a second worker within 30 s")
        .unwrap();
    let latency = patched_at - first_commit;
    eprintln!(
        "scaling: first new worker requested {} ms after the burst's first commit",
        latency.as_millis()
    );
    assert!(
        latency < Duration::from_secs(5),
        "the first new worker took {latency:?}"
    );
    for client in clients {
        client.await.unwrap();
    }

    shutdown.cancel();
    reconciler.abort();
    pool.close().await;
    store.close().await;
    testing::drop_postgres_database(&url).await;
}
