//! The log bucket: appends, pages, level and event filters.

use chrono::{SubsecRound, TimeDelta, Utc};
use hookplane_store::{
    AttemptRecord, ChangeKind, EventStatus, IntakeLog, LogEntry, LogLevel, LogQuery, NewLog,
    Outcome, OutcomeLog, Store, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, lease, new_event, new_log, received};

backend_tests!(
    logs_page_newest_first_and_filter,
    intake_commits_each_event_with_its_log_entry,
    an_outcome_commits_with_its_log_entry,
);

async fn logs_page_newest_first_and_filter(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let event = append(&h.store, touchpoint.id, 1).await[0];
    let levels = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];
    let mut written = Vec::new();
    for round in 0..3 {
        let batch: Vec<NewLog> = levels
            .iter()
            .map(|level| NewLog {
                event_id: (round == 1).then_some(event),
                fields: json!({"round": round}),
                ..new_log(touchpoint.id, *level, &format!("{level} {round}"))
            })
            .collect();
        written.extend(h.store.append_logs(batch).await.expect("append"));
    }
    assert_eq!(written.len(), 12);
    assert!(
        written.windows(2).all(|pair| pair[0].id < pair[1].id),
        "v7 ids ascend"
    );
    let stored = h.store.log_entry(written[5].id).await.expect("read");
    assert_eq!(stored.as_ref(), Some(&written[5]));
    assert_eq!(stored.map(|entry| entry.fields), Some(json!({"round": 1})));
    assert_eq!(h.store.log_entry(Uuid::now_v7()).await.expect("read"), None);

    let query = |level, event_id, first, after| LogQuery {
        touchpoint_id: touchpoint.id,
        level,
        event_id,
        first,
        after,
    };
    let newest_first: Vec<Uuid> = written.iter().rev().map(|entry| entry.id).collect();
    let page = h
        .store
        .logs(query(None, None, 5, None))
        .await
        .expect("page");
    assert!(page.has_next_page);
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        newest_first[..5]
    );
    let page = h
        .store
        .logs(query(None, None, 10, page.items.last().map(|e| e.id)))
        .await
        .expect("page 2");
    assert!(!page.has_next_page);
    assert_eq!(page.items.len(), 7);

    let warnings = h
        .store
        .logs(query(Some(LogLevel::Warn), None, 100, None))
        .await
        .expect("warn and up");
    assert_eq!(warnings.items.len(), 6);
    assert!(
        warnings
            .items
            .iter()
            .all(|entry| entry.level >= LogLevel::Warn)
    );
    let errors = h
        .store
        .logs(query(Some(LogLevel::Error), None, 2, None))
        .await
        .expect("errors");
    assert_eq!(errors.items.len(), 2);
    assert!(errors.has_next_page);
    assert!(
        errors
            .items
            .iter()
            .all(|entry| entry.level == LogLevel::Error)
    );

    let about_event = h
        .store
        .logs(query(Some(LogLevel::Info), Some(event), 100, None))
        .await
        .expect("per event");
    assert_eq!(
        about_event
            .items
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        ["ERROR 1", "WARN 1", "INFO 1"]
    );
    let other = h.running_touchpoint("customers").await;
    assert!(
        h.store
            .logs(LogQuery {
                touchpoint_id: other.id,
                ..query(None, None, 10, None)
            })
            .await
            .expect("other")
            .items
            .is_empty()
    );
}

fn intake_log() -> IntakeLog {
    IntakeLog {
        created: "webhook received".into(),
        duplicate: "duplicate delivery absorbed".into(),
        fields: serde_json::Map::from_iter([("bytes".to_owned(), json!(7))]),
    }
}

async fn intake_commits_each_event_with_its_log_entry(h: &Harness) {
    let touchpoint = h.running_touchpoint("intake").await;
    let mut feed = h.store.subscribe();
    let keyed = |n| received(touchpoint.id, json!({"n": n}), &format!("d-{n}"));
    let first = h
        .store
        .receive_events(vec![keyed(1)], intake_log())
        .await
        .expect("receive");
    let again = h
        .store
        .receive_events(vec![keyed(1)], intake_log())
        .await
        .expect("receive the duplicate");
    assert!(again[0].is_duplicate());
    let event = first[0].event().id;

    let page = h
        .store
        .logs(LogQuery {
            touchpoint_id: touchpoint.id,
            level: None,
            event_id: Some(event),
            first: 10,
            after: None,
        })
        .await
        .expect("logs");
    let entries: Vec<(String, serde_json::Value)> = page
        .items
        .iter()
        .map(|e| (e.message.clone(), e.fields.clone()))
        .collect();
    assert_eq!(
        entries,
        [
            (
                "duplicate delivery absorbed".to_owned(),
                json!({"bytes": 7, "duplicates": 1})
            ),
            (
                "webhook received".to_owned(),
                json!({"bytes": 7, "duplicates": 0})
            ),
        ]
    );
    // Both writes of a webhook are published, the event first.
    let kinds: Vec<ChangeKind> = (0..4)
        .map(|_| feed.try_recv().expect("a change").kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::EventCreated,
            ChangeKind::LogCreated,
            ChangeKind::EventUpdated,
            ChangeKind::LogCreated
        ]
    );

    // An unknown touchpoint stores neither.
    let unknown = h
        .store
        .receive_events(vec![new_event(Uuid::now_v7(), 9)], intake_log())
        .await;
    assert!(
        matches!(unknown, Err(StoreError::TouchpointNotFound)),
        "{unknown:?}"
    );
}

/// The log entries of one event, newest first.
async fn event_logs(store: &Store, touchpoint_id: Uuid, event_id: Uuid) -> Vec<LogEntry> {
    store
        .logs(LogQuery {
            touchpoint_id,
            level: None,
            event_id: Some(event_id),
            first: 10,
            after: None,
        })
        .await
        .expect("logs")
        .items
}

async fn an_outcome_commits_with_its_log_entry(h: &Harness) {
    let touchpoint = h.running_touchpoint("outcomes").await;
    let id = append(&h.store, touchpoint.id, 1).await[0];
    let lease_id = lease(&h.store, id).await;
    let mut feed = h.store.subscribe();
    let started_at = Utc::now().trunc_subsecs(6);
    let next_attempt_at = started_at + TimeDelta::seconds(30);
    let retry = || Outcome::Retry {
        mapped: Some(json!({"n": 0})),
        error: "the destination answered 503".to_owned(),
        response_status: Some(503),
        next_attempt_at,
        generation: 1,
        attempt: Some(AttemptRecord {
            started_at,
            duration_ms: 12,
            response_status: Some(503),
            error: Some("the destination answered 503".to_owned()),
            response_snippet: None,
        }),
    };
    let log = || OutcomeLog {
        level: LogLevel::Warn,
        message: "attempt 1 failed, retrying".to_owned(),
        fields: json!({"attempt": 1, "status": 503}),
    };

    let (event, entry) = h
        .store
        .record_outcome_with_log(id, lease_id, retry(), log())
        .await
        .expect("record");
    // The outcome: status, retry schedule, attempt row.
    assert_eq!(event.status, EventStatus::Unprocessed);
    assert_eq!(event.attempts, 1);
    assert_eq!(event.next_attempt_at, next_attempt_at);
    assert_eq!(event.lease_id, None);
    let attempts = h.store.attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].response_status, Some(503));
    // Its log entry, about the event.
    assert_eq!(
        (entry.touchpoint_id, entry.event_id, entry.level),
        (touchpoint.id, Some(id), LogLevel::Warn)
    );
    assert_eq!(
        event_logs(&h.store, touchpoint.id, id).await,
        vec![entry.clone()]
    );
    assert_eq!(
        h.store.log_entry(entry.id).await.expect("read"),
        Some(entry)
    );
    // Published after the commit, the event first.
    let kinds: Vec<ChangeKind> = (0..2)
        .map(|_| feed.try_recv().expect("a change").kind)
        .collect();
    assert_eq!(kinds, [ChangeKind::EventUpdated, ChangeKind::LogCreated]);

    // A lost lease stores neither: the event, its attempts and its log are as they were.
    let lost = h
        .store
        .record_outcome_with_log(id, lease_id, retry(), log())
        .await;
    assert!(matches!(lost, Err(StoreError::LeaseLost)), "{lost:?}");
    assert_eq!(h.store.event(id).await.expect("read"), Some(event.clone()));
    assert_eq!(h.store.attempts(id).await.expect("attempts"), attempts);
    assert_eq!(event_logs(&h.store, touchpoint.id, id).await.len(), 1);

    // Nor does a missing event.
    let missing = Uuid::now_v7();
    let gone = h
        .store
        .record_outcome_with_log(missing, lease_id, retry(), log())
        .await;
    assert!(matches!(gone, Err(StoreError::EventNotFound)), "{gone:?}");
    assert!(
        event_logs(&h.store, touchpoint.id, missing)
            .await
            .is_empty()
    );
    assert!(feed.try_recv().is_err(), "nothing published for failures");
}
