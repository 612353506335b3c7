//! Attempt history: a row per HTTP request, written with the outcome that reports it.

use chrono::{SubsecRound, TimeDelta, Utc};
use hookplane_store::{AttemptRecord, AttemptTrigger, EventStatus, Outcome, SNIPPET_MAX_BYTES};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, lease, settle};

backend_tests!(
    attempts_are_recorded_with_outcomes,
    attempts_cascade_with_their_touchpoint,
);

fn record(
    started_at: chrono::DateTime<Utc>,
    status: Option<i32>,
    error: Option<&str>,
) -> AttemptRecord {
    AttemptRecord {
        started_at,
        duration_ms: 250,
        response_status: status,
        error: error.map(str::to_owned),
        response_snippet: status.map(|status| format!("status {status}")),
    }
}

async fn attempts_are_recorded_with_outcomes(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let [id, mapping_failure] = append(&h.store, touchpoint.id, 2)
        .await
        .try_into()
        .expect("two ids");
    assert!(h.store.attempts(id).await.expect("none yet").is_empty());
    let t0 = Utc::now().trunc_subsecs(6);

    // Attempt 1: the destination answers 503 with a long body in two-byte characters.
    let long_body = "é".repeat(SNIPPET_MAX_BYTES);
    let event = settle(
        &h.store,
        id,
        Outcome::Retry {
            mapped: Some(json!({"n": 0})),
            error: "the destination answered 503".to_owned(),
            response_status: Some(503),
            next_attempt_at: t0,
            generation: 4,
            attempt: Some(AttemptRecord {
                response_snippet: Some(long_body),
                ..record(t0, Some(503), Some("the destination answered 503"))
            }),
        },
    )
    .await;
    assert_eq!(event.last_attempt_at, Some(t0));
    // Attempt 2: a timeout, no response.
    let t1 = t0 + TimeDelta::seconds(2);
    settle(
        &h.store,
        id,
        Outcome::Failed {
            park: false,
            mapped: Some(json!({"n": 0})),
            error: "timed out".to_owned(),
            response_status: None,
            generation: 5,
            attempt: Some(AttemptRecord {
                response_snippet: None,
                ..record(t1, None, Some("timed out"))
            }),
        },
    )
    .await;
    // A resync, then attempt 3 succeeds.
    h.store.resync_events(&[id]).await.expect("resync");
    let t2 = t0 + TimeDelta::seconds(10);
    let event = settle(
        &h.store,
        id,
        Outcome::Success {
            mapped: json!({"n": 0}),
            response_status: 201,
            generation: 6,
            attempt: Some(record(t2, Some(201), None)),
        },
    )
    .await;
    assert_eq!(event.status, EventStatus::Success);
    assert_eq!(
        event.attempts, 1,
        "the retry counter restarted with the resync"
    );
    assert_eq!(event.last_attempt_at, Some(t2));

    let attempts = h.store.attempts(id).await.expect("attempts");
    assert_eq!(
        attempts
            .iter()
            .map(|a| (
                a.number,
                a.started_at,
                a.response_status,
                a.generation,
                a.trigger
            ))
            .collect::<Vec<_>>(),
        [
            (1, t0, Some(503), 4, AttemptTrigger::Auto),
            (2, t1, None, 5, AttemptTrigger::Auto),
            (3, t2, Some(201), 6, AttemptTrigger::Resync),
        ],
        "oldest first, numbered on across the resync"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.event_id == id && a.touchpoint_id == touchpoint.id)
    );
    assert!(attempts.iter().all(|a| a.duration_ms == 250));
    assert!(attempts.windows(2).all(|pair| pair[0].id < pair[1].id));
    let snippet = attempts[0].response_snippet.as_deref().expect("a snippet");
    assert_eq!(snippet.len(), SNIPPET_MAX_BYTES, "bounded");
    assert!(snippet.chars().all(|c| c == 'é'), "cut on a char boundary");
    assert_eq!(attempts[1].error.as_deref(), Some("timed out"));
    assert_eq!(attempts[1].response_snippet, None);
    assert_eq!(attempts[2].error, None);

    // Failed before delivery (the mapping failed): no attempt spent, no row.
    let event = settle(
        &h.store,
        mapping_failure,
        Outcome::Failed {
            park: false,
            mapped: None,
            error: "mapping failed: .customer.id is null".to_owned(),
            response_status: None,
            generation: 4,
            attempt: None,
        },
    )
    .await;
    assert_eq!(event.attempts, 0);
    assert_eq!(event.last_attempt_at, None);
    assert!(
        h.store
            .attempts(mapping_failure)
            .await
            .expect("attempts")
            .is_empty()
    );
    assert!(
        h.store
            .attempts(Uuid::now_v7())
            .await
            .expect("unknown")
            .is_empty()
    );
}

async fn attempts_cascade_with_their_touchpoint(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let id = append(&h.store, touchpoint.id, 1).await[0];
    let lease_id = lease(&h.store, id).await;
    h.store
        .record_outcome(
            id,
            lease_id,
            Outcome::Success {
                mapped: json!({}),
                response_status: 200,
                generation: 1,
                attempt: Some(record(Utc::now(), Some(200), None)),
            },
        )
        .await
        .expect("success");
    assert_eq!(h.store.attempts(id).await.expect("attempts").len(), 1);
    assert!(
        h.store
            .delete_touchpoint(touchpoint.id)
            .await
            .expect("delete")
    );
    assert!(h.store.attempts(id).await.expect("attempts").is_empty());
}
