//! The resync bucket as a work queue: claims, leases, outcomes, resync, next due time.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use hookplane_store::{
    AttemptRecord, Backend, ClaimFilter, EventStatus, LogLevel, Outcome, OutcomeLog, StoreError,
};
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, settle, touchpoint_spec};

backend_tests!(
    claims_take_only_due_events_of_running_touchpoints,
    concurrent_claimers_never_share_an_event,
    outcomes_are_recorded,
    concurrent_outcomes_are_recorded_together,
    failed_events_are_resynced,
    next_due_time_and_subsecond_order,
    claim_filters_include_and_exclude_touchpoints,
);

const LEASE: Duration = Duration::from_secs(30);

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn retry_at(at: DateTime<Utc>) -> Outcome {
    Outcome::Retry {
        mapped: None,
        error: "destination unavailable".to_owned(),
        response_status: Some(503),
        next_attempt_at: at,
        generation: 1,
        attempt: None,
    }
}

fn ids(events: &[hookplane_store::Event]) -> Vec<Uuid> {
    events.iter().map(|event| event.id).collect()
}

async fn claims_take_only_due_events_of_running_touchpoints(h: &Harness) {
    let running = h.running_touchpoint("orders").await;
    let connection = h.connection().await;
    let mut spec = touchpoint_spec(connection.id, "draft-only");
    spec.auto_sync = true;
    let unpublished = h.store.create_touchpoint(spec).await.expect("create");
    let paused = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "paused"))
        .await
        .expect("create");
    h.store
        .publish_touchpoint(paused.id)
        .await
        .expect("publish");

    let due = append(&h.store, running.id, 1).await[0];
    let done = append(&h.store, running.id, 1).await[0];
    let later = append(&h.store, running.id, 1).await[0];
    let unpublished_event = append(&h.store, unpublished.id, 1).await[0];
    let paused_event = append(&h.store, paused.id, 1).await[0];
    let now = Utc::now().trunc_subsecs(6) + secs(1);
    settle(
        &h.store,
        done,
        Outcome::Success {
            mapped: json!({}),
            response_status: 200,
            generation: 1,
            attempt: None,
        },
    )
    .await;
    settle(&h.store, later, retry_at(now + secs(3600))).await;

    assert!(
        h.store
            .claim_due_events(now, LEASE, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
    let claimed = h
        .store
        .claim_due_events(now, LEASE, 100)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [due]);
    assert_eq!(claimed[0].lease_until, Some(now + secs(30)));
    assert!(claimed[0].lease_id.is_some());
    assert_eq!(claimed[0].status, EventStatus::Unprocessed);
    assert!(
        h.store
            .claim_due_events(now + secs(29), LEASE, 100)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    let reclaimed = h
        .store
        .claim_due_events(now + secs(31), LEASE, 100)
        .await
        .expect("claim");
    assert_eq!(ids(&reclaimed), [due], "an expired lease can be taken over");
    assert_ne!(
        reclaimed[0].lease_id, claimed[0].lease_id,
        "with a new lease"
    );

    let both = h
        .store
        .claim_due_events(now + secs(7200), LEASE, 100)
        .await
        .expect("claim");
    assert_eq!(ids(&both), [due, later], "oldest first");

    h.store
        .set_auto_sync(paused.id, true)
        .await
        .expect("resume");
    h.store
        .publish_touchpoint(unpublished.id)
        .await
        .expect("publish");
    let resumed = h
        .store
        .claim_due_events(now + secs(7200), LEASE, 100)
        .await
        .expect("claim");
    assert_eq!(ids(&resumed), [unpublished_event, paused_event]);
    assert_eq!(
        h.store
            .claim_due_events(now + secs(9000), LEASE, 1)
            .await
            .expect("claim")
            .len(),
        1,
        "limit"
    );
}

async fn concurrent_claimers_never_share_an_event(h: &Harness) {
    const EVENTS: usize = 120;
    const CLAIMERS: usize = 4;
    let touchpoint = h.running_touchpoint("orders").await;
    let batch: Vec<_> = (0..EVENTS)
        .map(|n| crate::common::new_event(touchpoint.id, n))
        .collect();
    h.store.append_events(batch).await.expect("append");
    let before = h.store.writer_stats();
    let now = Utc::now() + secs(1);
    let start = Arc::new(Barrier::new(CLAIMERS));
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|_| {
            let store = h.store.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim_due_events(now, Duration::from_secs(600), 7)
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|event| event.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.expect("claimer") {
            assert!(seen.insert(id), "event {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), EVENTS);
    let after = h.store.writer_stats();
    if h.backend == Backend::Sqlite {
        // SQLite claims take their turn in the writer's batches, on its fast path.
        assert_eq!(after.claimed - before.claimed, EVENTS as u64);
        assert!(after.claims > before.claims);
    }
    assert_eq!(after.careful_batches, before.careful_batches);
}

async fn outcomes_are_recorded(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let [delivered, skipped, retried] = append(&h.store, touchpoint.id, 3)
        .await
        .try_into()
        .expect("three ids");
    let now = Utc::now() + secs(1);
    let claimed = h
        .store
        .claim_due_events(now, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let lease_id = claimed[0].lease_id.expect("leased");
    assert!(
        claimed.iter().all(|event| event.lease_id == Some(lease_id)),
        "one lease per claim"
    );

    let event = h
        .store
        .record_outcome(
            delivered,
            lease_id,
            Outcome::Success {
                mapped: json!({"CardCode": "C1"}),
                response_status: 201,
                generation: 3,
                attempt: None,
            },
        )
        .await
        .expect("success");
    assert_eq!(event.status, EventStatus::Success);
    assert_eq!(event.attempts, 1);
    assert_eq!(event.lease_until, None);
    assert_eq!(event.lease_id, None);
    assert_eq!(event.mapped_output, Some(json!({"CardCode": "C1"})));
    assert_eq!(event.response_status, Some(201));
    assert_eq!(event.last_error, None);
    assert_eq!(event.published_generation, Some(3));
    assert_eq!(h.store.event(delivered).await.expect("read"), Some(event));

    let event = h
        .store
        .record_outcome(skipped, lease_id, Outcome::Skipped { generation: 3 })
        .await
        .expect("skipped");
    assert_eq!(event.status, EventStatus::Skipped);
    assert_eq!(event.attempts, 0, "skipping is not a delivery attempt");
    assert_eq!(event.lease_until, None);

    let next = (Utc::now() + secs(60)).trunc_subsecs(6);
    let event = h
        .store
        .record_outcome(retried, lease_id, retry_at(next))
        .await
        .expect("retry");
    assert_eq!(event.status, EventStatus::Unprocessed);
    assert_eq!(event.attempts, 1);
    assert_eq!(event.next_attempt_at, next);
    assert_eq!(event.lease_until, None);
    assert_eq!(event.last_error.as_deref(), Some("destination unavailable"));
    assert_eq!(event.response_status, Some(503));

    let event = settle(
        &h.store,
        retried,
        Outcome::Failed {
            park: false,
            mapped: Some(json!({"x": 1})),
            error: "gave up".to_owned(),
            response_status: None,
            generation: 4,
            attempt: None,
        },
    )
    .await;
    assert_eq!(event.status, EventStatus::Failed);
    assert_eq!(event.attempts, 2);
    assert_eq!(event.last_error.as_deref(), Some("gave up"));
    assert_eq!(event.mapped_output, Some(json!({"x": 1})));
    assert_eq!(event.response_status, None);
    assert_eq!(event.published_generation, Some(4));

    let missing = h
        .store
        .record_outcome(
            Uuid::now_v7(),
            Uuid::now_v7(),
            Outcome::Skipped { generation: 1 },
        )
        .await;
    assert!(matches!(missing, Err(StoreError::EventNotFound)));
}

/// The outcome for the `n`th of [`concurrent_outcomes_are_recorded_together`]'s events, and
/// what the event must look like after it.
fn nth_outcome(n: usize, at: DateTime<Utc>) -> (Outcome, EventStatus, i32) {
    let attempt = Some(AttemptRecord {
        started_at: at,
        duration_ms: n as u64,
        response_status: Some(200),
        error: None,
        response_snippet: Some(format!("reply {n}")),
    });
    match n % 4 {
        0 => (
            Outcome::Success {
                mapped: json!({"n": n}),
                response_status: 201,
                generation: 2,
                attempt,
            },
            EventStatus::Success,
            1,
        ),
        1 => (
            Outcome::Retry {
                mapped: Some(json!({"n": n})),
                error: format!("busy {n}"),
                response_status: Some(503),
                next_attempt_at: at + secs(600),
                generation: 2,
                attempt,
            },
            EventStatus::Unprocessed,
            1,
        ),
        2 => (
            Outcome::Failed {
                park: true,
                mapped: None,
                error: format!("refused {n}"),
                response_status: Some(400),
                generation: 2,
                attempt,
            },
            EventStatus::Failed,
            1,
        ),
        _ => (Outcome::Skipped { generation: 2 }, EventStatus::Skipped, 0),
    }
}

/// Outcomes recorded at once share the writer's batches (on PostgreSQL, one statement for
/// all of them): each is recorded exactly as alone, with its attempt row and log entry, and
/// one with a stale lease or a missing event is refused without costing the others.
async fn concurrent_outcomes_are_recorded_together(h: &Harness) {
    const EVENTS: usize = 40;
    let touchpoint = h.running_touchpoint("orders").await;
    let events = append(&h.store, touchpoint.id, EVENTS).await;
    let now = Utc::now().trunc_subsecs(6) + secs(1);
    let claimed = h
        .store
        .claim_due_events(now, LEASE, EVENTS as u64)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), EVENTS);
    let lease_id = claimed[0].lease_id.expect("leased");
    let before = h.store.writer_stats();

    for round in 0..2 {
        // Round 0: every outcome is good. Round 1 (the events are settled by then, so leases
        // are gone): stale leases and a missing event among good ones for fresh events.
        let leases: Vec<(Uuid, Uuid)> = match round {
            0 => events.iter().map(|id| (*id, lease_id)).collect(),
            _ => {
                let more = append(&h.store, touchpoint.id, 6).await;
                let claimed = h
                    .store
                    .claim_due_events(now, LEASE, 100)
                    .await
                    .expect("claim");
                assert_eq!(ids(&claimed), more, "only the new events are due");
                claimed
                    .iter()
                    .map(|event| (event.id, event.lease_id.expect("leased")))
                    .collect()
            }
        };
        let start = Arc::new(Barrier::new(leases.len() + 2 * round));
        let mut tasks = Vec::new();
        for (n, (id, lease)) in leases.iter().copied().enumerate() {
            let store = h.store.clone();
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                let (outcome, status, attempts) = nth_outcome(n, now);
                start.wait().await;
                let answer = if n % 3 == 0 {
                    let log = OutcomeLog {
                        level: LogLevel::Info,
                        message: format!("outcome {n}"),
                        fields: json!({"n": n}),
                    };
                    store
                        .record_outcome_with_log(id, lease, outcome, log)
                        .await
                        .map(|(event, entry)| (event, Some(entry)))
                } else {
                    store
                        .record_outcome(id, lease, outcome)
                        .await
                        .map(|event| (event, None))
                };
                (n, id, status, attempts, answer)
            }));
        }
        let mut refused = Vec::new();
        if round == 1 {
            // A stale lease on a settled event, and an event that does not exist.
            for (id, lease) in [(events[0], lease_id), (Uuid::now_v7(), Uuid::now_v7())] {
                let store = h.store.clone();
                let start = start.clone();
                refused.push(tokio::spawn(async move {
                    start.wait().await;
                    store
                        .record_outcome(id, lease, Outcome::Skipped { generation: 9 })
                        .await
                }));
            }
        }
        for task in tasks {
            let (n, id, status, attempts, answer) = task.await.expect("task");
            let (event, entry) = answer.unwrap_or_else(|error| panic!("outcome {n}: {error}"));
            assert_eq!(event.id, id);
            assert_eq!(event.status, status, "outcome {n}");
            assert_eq!(event.attempts, attempts, "outcome {n}");
            assert_eq!(event.lease_id, None);
            assert_eq!(event.lease_until, None);
            assert_eq!(event.published_generation, Some(2));
            assert_eq!(event.parked, n % 4 == 2, "outcome {n}");
            match n % 4 {
                1 => assert_eq!(event.next_attempt_at, now + secs(600), "outcome {n}"),
                3 => assert_eq!(event.last_attempt_at, None, "outcome {n}"),
                _ => assert_eq!(event.last_attempt_at, Some(now), "outcome {n}"),
            }
            assert_eq!(
                h.store.event(id).await.expect("read"),
                Some(event.clone()),
                "what the outcome answered is what is stored"
            );
            let rows = h.store.attempts(id).await.expect("attempts");
            assert_eq!(rows.len(), usize::from(n % 4 != 3), "outcome {n}");
            if let Some(entry) = entry {
                assert_eq!(entry.message, format!("outcome {n}"));
                assert_eq!(entry.event_id, Some(id));
                assert!(h.store.log_entry(entry.id).await.expect("log").is_some());
            }
        }
        let settled = h.store.event(events[0]).await.expect("read");
        for task in refused {
            match task.await.expect("task") {
                Err(StoreError::LeaseLost | StoreError::EventNotFound) => {}
                other => panic!("a stale lease or a missing event is refused: {other:?}"),
            }
        }
        assert_eq!(
            h.store.event(events[0]).await.expect("read"),
            settled,
            "a refused outcome changes nothing"
        );
    }
    let after = h.store.writer_stats();
    assert_eq!(after.outcomes - before.outcomes, (EVENTS + 6) as u64);
}

async fn failed_events_are_resynced(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let ids = append(&h.store, touchpoint.id, 2).await;
    let now = Utc::now() + secs(1);
    let claimed = h
        .store
        .claim_due_events(now, LEASE, 10)
        .await
        .expect("claim");
    for event in &claimed {
        h.store
            .record_outcome(
                event.id,
                event.lease_id.expect("leased"),
                Outcome::Failed {
                    park: false,
                    mapped: None,
                    error: "bad request".to_owned(),
                    response_status: Some(400),
                    generation: 1,
                    attempt: None,
                },
            )
            .await
            .expect("failed");
    }
    assert!(
        h.store
            .claim_due_events(now, LEASE, 10)
            .await
            .expect("claim")
            .is_empty()
    );

    let before = Utc::now().trunc_subsecs(6);
    let resynced = h
        .store
        .resync_events(&[ids[1], Uuid::now_v7(), ids[0]])
        .await
        .expect("resync");
    assert_eq!(resynced.len(), 2, "unknown ids are left out");
    for event in &resynced {
        assert_eq!(event.status, EventStatus::Unprocessed);
        assert_eq!(event.attempts, 0);
        assert_eq!(event.last_error, None);
        assert_eq!(event.lease_until, None);
        assert!(event.next_attempt_at >= before);
    }
    let claimed = h
        .store
        .claim_due_events(Utc::now() + secs(1), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(self::ids(&claimed), ids);
    assert!(h.store.resync_events(&[]).await.expect("none").is_empty());
}

async fn next_due_time_and_subsecond_order(h: &Harness) {
    assert_eq!(h.store.next_due_at().await.expect("next"), None);
    let touchpoint = h.running_touchpoint("orders").await;
    let connection = h.connection().await;
    let paused = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "paused"))
        .await
        .expect("create");
    h.store
        .publish_touchpoint(paused.id)
        .await
        .expect("publish");
    append(&h.store, paused.id, 1).await;
    assert_eq!(h.store.next_due_at().await.expect("next"), None, "paused");

    // Fractions of different widths: whole second, .5, .123456 (text on SQLite).
    let base = Utc::now().trunc_subsecs(0) + secs(100);
    let whole = base + secs(1);
    let half = base + TimeDelta::milliseconds(500);
    let fine = base + TimeDelta::microseconds(123_456);
    let [a, b, c] = append(&h.store, touchpoint.id, 3)
        .await
        .try_into()
        .expect("three ids");
    for (id, at) in [(a, whole), (b, half), (c, fine)] {
        settle(&h.store, id, retry_at(at)).await;
    }
    assert_eq!(h.store.next_due_at().await.expect("next"), Some(fine));

    let at = base + TimeDelta::milliseconds(400);
    let claimed = h
        .store
        .claim_due_events(at, Duration::from_millis(50), 10)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [c]);
    // Leased until .450: due again then, before `half`.
    assert_eq!(
        h.store.next_due_at().await.expect("next"),
        Some(base + TimeDelta::milliseconds(450))
    );
    let claimed = h
        .store
        .claim_due_events(half, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [b, c]);
    assert_eq!(
        h.store.next_due_at().await.expect("next"),
        Some(whole),
        "`whole` is due before the new leases expire"
    );
    let claimed = h
        .store
        .claim_due_events(whole - TimeDelta::microseconds(1), LEASE, 10)
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "one microsecond early");
    let claimed = h
        .store
        .claim_due_events(whole, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), [a]);
}

async fn claim_filters_include_and_exclude_touchpoints(h: &Harness) {
    let orders = h.running_touchpoint("orders").await;
    let refunds = h.running_touchpoint("refunds").await;
    let order_event = append(&h.store, orders.id, 1).await[0];
    let refund_event = append(&h.store, refunds.id, 1).await[0];
    let now = Utc::now() + secs(1);

    let only_refunds = ClaimFilter {
        only: Some(vec![refunds.id]),
        exclude: Vec::new(),
    };
    assert!(
        h.store
            .next_due_at_where(&only_refunds)
            .await
            .expect("due")
            .is_some()
    );
    let claimed = h
        .store
        .claim_due_events_where(now, LEASE, 10, &only_refunds)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), vec![refund_event]);

    let nothing = ClaimFilter {
        only: Some(Vec::new()),
        exclude: Vec::new(),
    };
    assert!(
        h.store
            .claim_due_events_where(now, LEASE, 10, &nothing)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        h.store.next_due_at_where(&nothing).await.expect("due"),
        None
    );

    let not_orders = ClaimFilter {
        only: None,
        exclude: vec![orders.id],
    };
    assert!(
        h.store
            .claim_due_events_where(now, LEASE, 10, &not_orders)
            .await
            .expect("claim")
            .is_empty()
    );
    let claimed = h
        .store
        .claim_due_events(now, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(ids(&claimed), vec![order_event]);
}
