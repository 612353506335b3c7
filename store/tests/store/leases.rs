//! Lease tokens: outcomes and releases apply only while the event carries the caller's lease.

use std::time::Duration;

use chrono::{SubsecRound, TimeDelta, Utc};
use hookplane_store::{AttemptRecord, EventStatus, Outcome, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests};

backend_tests!(
    a_stale_lease_cannot_overwrite_newer_processing,
    an_expired_lease_nobody_took_still_counts,
    released_events_are_claimable_at_once,
    a_resync_takes_the_event_from_its_worker,
);

const LEASE: Duration = Duration::from_secs(30);

fn success(generation: i64) -> Outcome {
    Outcome::Success {
        mapped: json!({"ok": true}),
        response_status: 200,
        generation,
        attempt: Some(AttemptRecord {
            started_at: Utc::now(),
            duration_ms: 12,
            response_status: Some(200),
            error: None,
            response_snippet: Some("ok".to_owned()),
        }),
    }
}

async fn a_stale_lease_cannot_overwrite_newer_processing(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let id = append(&h.store, touchpoint.id, 1).await[0];
    let now = Utc::now().trunc_subsecs(6) + TimeDelta::seconds(1);
    let slow = h
        .store
        .claim_due_events(now, LEASE, 1)
        .await
        .expect("claim");
    let slow_lease = slow[0].lease_id.expect("leased");

    // The slow worker's lease expires and another worker claims the event.
    let later = now + TimeDelta::seconds(31);
    let fast = h
        .store
        .claim_due_events(later, LEASE, 1)
        .await
        .expect("claim");
    assert_eq!(fast[0].id, id);
    let fast_lease = fast[0].lease_id.expect("leased");
    assert_ne!(fast_lease, slow_lease);
    h.store
        .record_outcome(
            id,
            fast_lease,
            Outcome::Retry {
                mapped: None,
                error: "503".to_owned(),
                response_status: Some(503),
                next_attempt_at: later + TimeDelta::seconds(60),
                generation: 2,
                attempt: None,
            },
        )
        .await
        .expect("the current holder records");
    let before = h.store.event(id).await.expect("read").expect("stored");

    let stale = h.store.record_outcome(id, slow_lease, success(1)).await;
    assert!(matches!(stale, Err(StoreError::LeaseLost)), "{stale:?}");
    assert_eq!(stale.err().map(|e| e.code()), Some("LEASE_LOST"));
    assert_eq!(
        h.store.event(id).await.expect("read"),
        Some(before),
        "nothing changed"
    );
    assert!(
        h.store.attempts(id).await.expect("attempts").is_empty(),
        "no attempt row from a lost lease"
    );
    // The same lease twice: the first outcome cleared it.
    let twice = h.store.record_outcome(id, fast_lease, success(2)).await;
    assert!(matches!(twice, Err(StoreError::LeaseLost)), "{twice:?}");
}

async fn an_expired_lease_nobody_took_still_counts(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let id = append(&h.store, touchpoint.id, 1).await[0];
    let now = Utc::now() + TimeDelta::seconds(1);
    let claimed = h
        .store
        .claim_due_events(now, Duration::from_millis(1), 1)
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let event = h
        .store
        .record_outcome(id, claimed[0].lease_id.expect("leased"), success(1))
        .await
        .expect("nothing newer happened, so the outcome stands");
    assert_eq!(event.status, EventStatus::Success);
}

async fn released_events_are_claimable_at_once(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let id = append(&h.store, touchpoint.id, 1).await[0];
    let now = Utc::now().trunc_subsecs(6) + TimeDelta::seconds(1);
    let claimed = h
        .store
        .claim_due_events(now, LEASE, 1)
        .await
        .expect("claim");
    let lease_id = claimed[0].lease_id.expect("leased");
    assert!(
        h.store
            .claim_due_events(now, LEASE, 1)
            .await
            .expect("claim")
            .is_empty()
    );

    let wrong = h.store.release_lease(id, Uuid::now_v7()).await;
    assert!(matches!(wrong, Err(StoreError::LeaseLost)), "{wrong:?}");
    let unknown = h.store.release_lease(Uuid::now_v7(), lease_id).await;
    assert!(
        matches!(unknown, Err(StoreError::EventNotFound)),
        "{unknown:?}"
    );

    h.store.release_lease(id, lease_id).await.expect("release");
    let event = h.store.event(id).await.expect("read").expect("stored");
    assert_eq!(
        (
            event.status,
            event.attempts,
            event.lease_id,
            event.lease_until
        ),
        (EventStatus::Unprocessed, 0, None, None),
        "released, not attempted"
    );
    assert_eq!(
        h.store.next_due_at().await.expect("next"),
        Some(event.next_attempt_at)
    );
    let again = h
        .store
        .claim_due_events(now, LEASE, 1)
        .await
        .expect("claim");
    assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    let gone = h.store.release_lease(id, lease_id).await;
    assert!(matches!(gone, Err(StoreError::LeaseLost)), "{gone:?}");
}

async fn a_resync_takes_the_event_from_its_worker(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let id = append(&h.store, touchpoint.id, 1).await[0];
    let now = Utc::now().trunc_subsecs(6) + TimeDelta::seconds(1);
    let claimed = h
        .store
        .claim_due_events(now, LEASE, 1)
        .await
        .expect("claim");
    let lease_id = claimed[0].lease_id.expect("leased");

    let resynced = h.store.resync_events(&[id]).await.expect("resync");
    assert_eq!(resynced[0].lease_id, None);
    assert_eq!(
        resynced[0].lease_until, claimed[0].lease_until,
        "the running delivery keeps the event until its lease ends"
    );
    assert!(
        h.store
            .claim_due_events(now + TimeDelta::seconds(29), LEASE, 1)
            .await
            .expect("claim")
            .is_empty(),
        "no overlapping delivery"
    );
    let stale = h.store.record_outcome(id, lease_id, success(1)).await;
    assert!(matches!(stale, Err(StoreError::LeaseLost)), "{stale:?}");
    let after = h
        .store
        .claim_due_events(now + TimeDelta::seconds(31), LEASE, 1)
        .await
        .expect("claim");
    assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
}
