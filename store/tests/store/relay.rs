//! The change feed across stores on one database: relayed on PostgreSQL (what lets the API's
//! subscriptions and the workers see what receivers in other processes commit), in-process
//! only on SQLite.

use std::time::Duration;

use hookplane_store::{Backend, Change, ChangeKind, EventStatus, Store, StoreOptions};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests};

backend_tests!(changes_reach_other_stores_on_the_same_database);

async fn next(feed: &mut broadcast::Receiver<Change>, within: Duration) -> Option<Change> {
    tokio::time::timeout(within, feed.recv())
        .await
        .ok()
        .map(|received| received.expect("the feed is open and keeping up"))
}

async fn changes_reach_other_stores_on_the_same_database(h: &Harness) {
    let other = Store::open(&h.url, StoreOptions::default())
        .await
        .expect("a second store on the same database");
    let touchpoint = h.running_touchpoint("relay").await;
    let mut here = h.store.subscribe();
    let mut there = other.subscribe();
    let ids = append(&h.store, touchpoint.id, 3).await;

    let mut created_here: Vec<Uuid> = Vec::new();
    while created_here.len() < 3 {
        let change = next(&mut here, Duration::from_secs(5))
            .await
            .expect("a local change");
        assert!(change.row.is_some(), "local changes carry their row");
        created_here.push(change.id);
    }
    assert_eq!(created_here, ids);

    match h.backend {
        Backend::Postgres => {
            let mut relayed = Vec::new();
            while relayed.len() < 3 {
                let change = next(&mut there, Duration::from_secs(10))
                    .await
                    .expect("a relayed change");
                assert_eq!(change.kind, ChangeKind::EventCreated);
                assert_eq!(change.touchpoint_id, touchpoint.id);
                assert_eq!(change.status, Some(EventStatus::Unprocessed));
                assert_eq!(change.row, None, "relayed changes carry ids only");
                relayed.push(change.id);
            }
            relayed.sort();
            assert_eq!(relayed, ids);

            // The other way: a resync committed by the other store reaches this one, once.
            other.resync_events(&ids[..1]).await.expect("resync");
            let change = next(&mut here, Duration::from_secs(10))
                .await
                .expect("the resync, relayed");
            assert_eq!(
                (change.kind, change.id, change.status),
                (
                    ChangeKind::EventUpdated,
                    ids[0],
                    Some(EventStatus::Unprocessed)
                )
            );
        }
        Backend::Sqlite => {
            assert!(
                next(&mut there, Duration::from_millis(300)).await.is_none(),
                "SQLite has no relay: its feed is in-process"
            );
        }
    }
    // Nothing is echoed back: a store does not republish its own changes.
    assert!(next(&mut here, Duration::from_millis(500)).await.is_none());
    other.close().await;
}
