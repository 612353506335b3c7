//! Paused connections: intake continues, claims and the next due time skip their events.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hookplane_store::{EventStatus, StoreError};
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, touchpoint_spec};

backend_tests!(a_paused_connection_holds_delivery_not_intake);

async fn a_paused_connection_holds_delivery_not_intake(h: &Harness) {
    let paused = h.running_touchpoint("orders").await;
    let other = h.running_touchpoint("customers").await;
    // A second touchpoint of the paused connection is held too.
    let sibling = h
        .store
        .create_touchpoint(touchpoint_spec(paused.connection_id, "refunds"))
        .await
        .expect("create");
    h.store
        .publish_touchpoint(sibling.id)
        .await
        .expect("publish");
    h.store
        .set_auto_sync(sibling.id, true)
        .await
        .expect("auto-sync");

    let connection = h
        .store
        .set_connection_paused(paused.connection_id, true)
        .await
        .expect("pause");
    assert!(connection.paused);
    assert!(connection.updated_at >= connection.created_at);
    assert_eq!(
        h.store
            .connection(paused.connection_id)
            .await
            .expect("read")
            .map(|c| c.paused),
        Some(true)
    );

    let held = append(&h.store, paused.id, 3).await;
    let held_sibling = append(&h.store, sibling.id, 1).await;
    assert_eq!(h.store.next_due_at().await.expect("next"), None, "paused");
    let running = append(&h.store, other.id, 1).await;
    let now = Utc::now() + TimeDelta::seconds(1);
    let claimed = h
        .store
        .claim_due_events(now, Duration::from_secs(30), 100)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
        running,
        "only the other connection's events"
    );
    assert_eq!(
        h.store
            .count_events(paused.id)
            .await
            .expect("count")
            .unprocessed,
        3,
        "intake continued"
    );
    assert_eq!(
        h.store.next_due_at().await.expect("next"),
        claimed[0].lease_until
    );

    let resumed = h
        .store
        .set_connection_paused(paused.connection_id, false)
        .await
        .expect("resume");
    assert!(!resumed.paused);
    let drained = h
        .store
        .claim_due_events(now, Duration::from_secs(30), 100)
        .await
        .expect("claim");
    let mut expected = held.clone();
    expected.extend(&held_sibling);
    assert_eq!(drained.iter().map(|e| e.id).collect::<Vec<_>>(), expected);
    assert!(drained.iter().all(|e| e.status == EventStatus::Unprocessed));

    let missing = h.store.set_connection_paused(Uuid::now_v7(), true).await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound)),
        "{missing:?}"
    );
}
