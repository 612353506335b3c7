//! The worker's outcomes (`record_outcome_of`): recorded for the event as its claim returned
//! it, so the store does not read the large columns back. What they store and what the
//! change feed publishes must still be the row as it is, also when a duplicate changed the
//! row during the lease and when several outcomes share one commit (one statement on
//! PostgreSQL).

use std::{collections::HashMap, time::Duration};

use chrono::{SubsecRound, TimeDelta, Utc};
use futures::future::join_all;
use hookplane_store::{AttemptRecord, ChangeKind, ChangedRow, LogLevel, Outcome, OutcomeLog};
use serde_json::json;

use crate::common::{Harness, append, backend_tests, received};

backend_tests!(outcomes_of_held_events_store_and_publish_the_rows_as_they_are);

async fn outcomes_of_held_events_store_and_publish_the_rows_as_they_are(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let ids = append(&h.store, touchpoint.id, 8).await;
    let now = Utc::now().trunc_subsecs(6) + TimeDelta::seconds(1);
    let claimed = h
        .store
        .claim_due_events(now, Duration::from_secs(30), 8)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 8);

    // A duplicate of one of them arrives while it is leased: its row now differs from the
    // event the worker holds.
    let first = h.store.event(ids[0]).await.expect("read").expect("stored");
    let delivery = first.headers["webhook-id"].as_str().expect("a delivery id");
    h.store
        .append_events(vec![received(
            touchpoint.id,
            first.payload.clone(),
            delivery,
        )])
        .await
        .expect("a duplicate");

    let mut feed = h.store.subscribe();
    let outcomes = claimed.into_iter().enumerate().map(|(n, event)| {
        let lease_id = event.lease_id.expect("leased");
        let outcome = if n % 2 == 0 {
            Outcome::Success {
                mapped: json!({ "order": n, "lines": [1, 2.5, "three"] }),
                response_status: 201,
                generation: 1,
                attempt: Some(AttemptRecord {
                    started_at: Utc::now(),
                    duration_ms: 3,
                    response_status: Some(201),
                    error: None,
                    response_snippet: None,
                }),
            }
        } else {
            Outcome::Retry {
                mapped: None,
                error: "HTTP 503".to_owned(),
                response_status: Some(503),
                next_attempt_at: Utc::now() + TimeDelta::seconds(60),
                generation: 1,
                attempt: None,
            }
        };
        let log = OutcomeLog {
            level: LogLevel::Info,
            message: format!("outcome {n}"),
            fields: json!({}),
        };
        h.store.record_outcome_of(event, lease_id, outcome, log)
    });
    for recorded in join_all(outcomes).await {
        recorded.expect("recorded");
    }

    let mut published = HashMap::new();
    while published.len() < ids.len() {
        let change = tokio::time::timeout(Duration::from_secs(10), feed.recv())
            .await
            .expect("every outcome is published")
            .expect("the feed is open");
        if change.kind == ChangeKind::EventUpdated
            && let Some(ChangedRow::Event(event)) = change.row
        {
            published.insert(event.id, event);
        }
    }
    for id in &ids {
        let stored = h.store.event(*id).await.expect("read").expect("stored");
        assert_eq!(
            *published[id], stored,
            "what the feed published is what is stored"
        );
        assert_eq!(stored.lease_id, None);
    }
    assert_eq!(
        published[&ids[0]].duplicates, 1,
        "the duplicate's count, not the claim's"
    );
}
