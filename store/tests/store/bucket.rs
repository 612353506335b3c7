//! The resync bucket: durable appends with group commit, dedupe, reads, the change feed.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::{SubsecRound, TimeDelta, Utc};
use hookplane_store::{
    Appended, Change, ChangeKind, ChangedRow, EventQuery, EventStatus, LogLevel, ManualClock,
    Outcome, StatusCounts, StoreError, StoreOptions,
};
use serde_json::json;
use tokio::sync::{Barrier, broadcast};
use uuid::Uuid;

use crate::common::{
    Harness, append, backend_tests, new_event, new_log, received, running_touchpoint, settle,
};

backend_tests!(
    concurrent_appends_share_transactions,
    duplicates_are_absorbed,
    batched_appends_tell_new_from_duplicate,
    duplicates_are_absorbed_within_the_dedupe_window_only,
    a_bad_request_fails_alone,
    a_bad_log_request_fails_alone,
    events_page_newest_first,
    events_are_found_by_id_or_key,
    events_are_counted_per_status,
    changes_are_published_after_commit,
);

const TASKS: usize = 50;
const PER_TASK: usize = 10;

async fn concurrent_appends_share_transactions(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let before = h.store.writer_stats();
    let started = std::time::Instant::now();
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = h.store.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut ids = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    let appended = store
                        .append_events(vec![new_event(touchpoint.id, task * PER_TASK + i)])
                        .await
                        .expect("append");
                    match appended.as_slice() {
                        [Appended::Created(event)] => ids.push(event.id),
                        other => panic!("expected one created event, got {other:?}"),
                    }
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        for id in task.await.expect("task") {
            assert!(ids.insert(id), "ids are unique");
        }
    }
    assert_eq!(ids.len(), TASKS * PER_TASK);
    let elapsed = started.elapsed();

    let stored = h
        .store
        .events(EventQuery {
            touchpoint_id: touchpoint.id,
            status: None,
            received_from: None,
            received_to: None,
            search: None,
            first: 10_000,
            after: None,
        })
        .await
        .expect("read");
    assert_eq!(
        stored.items.len(),
        TASKS * PER_TASK,
        "each event exactly once"
    );
    let payloads: HashSet<_> = stored
        .items
        .iter()
        .map(|event| event.payload["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(payloads.len(), TASKS * PER_TASK);
    assert!(stored.items.iter().all(|event| ids.contains(&event.id)));

    let after = h.store.writer_stats();
    let events = after.events - before.events;
    let transactions = after.transactions - before.transactions;
    eprintln!(
        "{:?}: {events} events from {TASKS} tasks in {transactions} transactions \
         ({:.1} events per transaction, {elapsed:?})",
        h.backend,
        events as f64 / transactions as f64
    );
    assert_eq!(events, (TASKS * PER_TASK) as u64);
    assert_eq!(
        after.careful_batches, before.careful_batches,
        "every batch committed on the fast path"
    );
    assert!(
        transactions < events,
        "group commit: {transactions} transactions for {events} events"
    );
}

async fn duplicates_are_absorbed(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let other = h.running_touchpoint("customers").await;
    let event = received(touchpoint.id, json!({"n": 1}), "delivery-1");

    let first = h
        .store
        .append_events(vec![event.clone()])
        .await
        .expect("append");
    let [Appended::Created(original)] = first.as_slice() else {
        panic!("expected a created event: {first:?}");
    };
    assert_eq!(original.duplicates, 0);

    let retry = received(touchpoint.id, json!({"n": "ignored"}), "delivery-1");
    let second = h.store.append_events(vec![retry]).await.expect("append");
    let [Appended::Duplicate(existing)] = second.as_slice() else {
        panic!("expected a duplicate: {second:?}");
    };
    assert_eq!(existing.id, original.id);
    assert_eq!(existing.duplicates, 1);
    assert_eq!(
        existing.payload, original.payload,
        "the first delivery wins"
    );

    // The same key twice in one request, and the same key at another touchpoint.
    let twice = received(touchpoint.id, json!({"n": 2}), "delivery-2");
    let elsewhere = received(other.id, json!({"n": 1}), "delivery-1");
    let mixed = h
        .store
        .append_events(vec![twice.clone(), twice, elsewhere])
        .await
        .expect("append");
    assert!(matches!(&mixed[0], Appended::Created(_)));
    assert!(
        matches!(&mixed[1], Appended::Duplicate(e) if e.id == mixed[0].event().id && e.duplicates == 1)
    );
    assert!(matches!(&mixed[2], Appended::Created(_)));

    // Different deliveries never collide, even with the same body. (Every event has a key
    // now: a `NewEvent` only comes from a parsed delivery, and every app keys its events.)
    let plain = h
        .store
        .append_events(vec![
            new_event(touchpoint.id, 3),
            new_event(touchpoint.id, 3),
        ])
        .await
        .expect("append");
    assert!(plain.iter().all(|appended| !appended.is_duplicate()));

    let counts = h.store.count_events(touchpoint.id).await.expect("count");
    assert_eq!(counts.unprocessed, 4);
    assert_eq!(
        h.store
            .event(original.id)
            .await
            .expect("read")
            .map(|e| e.duplicates),
        Some(1)
    );
}

async fn duplicates_are_absorbed_within_the_dedupe_window_only(h: &Harness) {
    assert_eq!(
        StoreOptions::default().dedupe_window,
        Duration::from_secs(72 * 3600)
    );
    let start = Utc::now().trunc_subsecs(6) - TimeDelta::days(10);
    let clock = ManualClock::new(start);
    let store = h
        .store_with(StoreOptions {
            clock: clock.clone().into(),
            ..StoreOptions::default()
        })
        .await;
    let touchpoint = running_touchpoint(&store, "orders").await;
    let event = received(touchpoint.id, json!({"n": 1}), "delivery-1");
    let append = |n: usize| {
        let event = received(touchpoint.id, json!({"n": n}), "delivery-1");
        let store = store.clone();
        async move { store.append_events(vec![event]).await.expect("append") }
    };

    let first = append(1).await;
    let [Appended::Created(original)] = first.as_slice() else {
        panic!("created: {first:?}");
    };
    assert_eq!(
        original.received_at, start,
        "received_at comes from the store's clock"
    );

    // Exactly at the end of the window: still a duplicate.
    clock.advance(TimeDelta::hours(72));
    let inside = append(2).await;
    assert!(
        matches!(inside.as_slice(), [Appended::Duplicate(e)] if e.id == original.id && e.duplicates == 1),
        "{inside:?}"
    );
    assert_eq!(inside[0].event().updated_at, start + TimeDelta::hours(72));

    // One microsecond later the original is outside the window: a new event takes the key.
    clock.advance(TimeDelta::microseconds(1));
    let outside = append(3).await;
    let [Appended::Created(renewed)] = outside.as_slice() else {
        panic!("a new event past the window: {outside:?}");
    };
    assert_ne!(renewed.id, original.id);
    assert_eq!(renewed.payload, json!({"n": 3}));
    assert_eq!(renewed.dedupe_key.as_deref(), Some("webhook-id:delivery-1"));
    let old = store.event(original.id).await.expect("read").expect("kept");
    assert_eq!(
        old.dedupe_key.as_deref(),
        Some("webhook-id:delivery-1"),
        "still shown"
    );
    assert_eq!(old.duplicates, 1);

    // The new event now absorbs duplicates, in the same request too.
    clock.advance(TimeDelta::hours(1));
    let again = append(4).await;
    assert!(
        matches!(again.as_slice(), [Appended::Duplicate(e)] if e.id == renewed.id),
        "{again:?}"
    );
    let both = store
        .append_events(vec![event.clone(), event.clone()])
        .await
        .expect("append");
    assert!(
        both.iter()
            .all(|a| a.is_duplicate() && a.event().id == renewed.id)
    );
    assert_eq!(
        store
            .count_events(touchpoint.id)
            .await
            .expect("count")
            .unprocessed,
        2
    );

    // A shorter window, in a store of its own.
    store.close().await;
    let short = h
        .store_with(StoreOptions {
            clock: clock.clone().into(),
            dedupe_window: Duration::from_secs(60),
            ..StoreOptions::default()
        })
        .await;
    let touchpoint = running_touchpoint(&short, "orders").await;
    let event = received(touchpoint.id, json!({"n": 1}), "delivery-1");
    let first = short
        .append_events(vec![event.clone()])
        .await
        .expect("append");
    clock.advance(TimeDelta::seconds(61));
    let second = short
        .append_events(vec![event.clone()])
        .await
        .expect("append");
    assert!(!second[0].is_duplicate());
    assert_ne!(second[0].event().id, first[0].event().id);
    short.close().await;
}

/// Concurrent requests share multi-row inserts: each still gets its own events back, in its
/// order, each told new or duplicate (of the right holder, counted once).
async fn batched_appends_tell_new_from_duplicate(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let mut holders = Vec::new();
    for n in 0..10 {
        let key = format!("key-{n}");
        let appended = h
            .store
            .append_events(vec![received(touchpoint.id, json!({"n": n}), &key)])
            .await
            .expect("append");
        holders.push(appended[0].event().id);
    }
    let start = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = h.store.clone();
            let start = start.clone();
            let id = touchpoint.id;
            tokio::spawn(async move {
                let mut events = Vec::new();
                if n < 10 {
                    events.push(received(id, json!({"again": n}), &format!("key-{n}")));
                }
                events.push(received(id, json!({"new": n}), &format!("new-{n}")));
                start.wait().await;
                store.append_events(events).await
            })
        })
        .collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let appended = task.await.expect("task").expect("append");
        let created = appended.last().expect("an event");
        assert!(
            matches!(created, Appended::Created(event) if event.payload == json!({"new": n})),
            "{created:?}"
        );
        if n < 10 {
            assert_eq!(appended.len(), 2);
            assert!(
                matches!(&appended[0], Appended::Duplicate(event)
                    if event.id == holders[n] && event.duplicates == 1
                        && event.payload == json!({"n": n})),
                "{:?}",
                appended[0]
            );
        } else {
            assert_eq!(appended.len(), 1);
        }
    }
    let counts = h.store.count_events(touchpoint.id).await.expect("count");
    assert_eq!(counts.unprocessed, 30);
}

async fn a_bad_request_fails_alone(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let unknown = Uuid::now_v7();
    let start = Arc::new(Barrier::new(21));
    let mut tasks = Vec::new();
    for n in 0..21 {
        let store = h.store.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            if n == 10 {
                // One valid and one invalid event: the request is all or nothing.
                store
                    .append_events(vec![new_event(touchpoint.id, 999), new_event(unknown, n)])
                    .await
            } else {
                store.append_events(vec![new_event(touchpoint.id, n)]).await
            }
        }));
    }
    let mut ok = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(error) => {
                assert_eq!(n, 10);
                assert!(matches!(error, StoreError::TouchpointNotFound), "{error:?}");
            }
        }
    }
    assert_eq!(ok, 20);
    let counts = h.store.count_events(touchpoint.id).await.expect("count");
    assert_eq!(
        counts.unprocessed, 20,
        "nothing of the failed request is stored"
    );

    let logs = h
        .store
        .append_logs(vec![new_log(unknown, LogLevel::Info, "nowhere")])
        .await;
    assert!(matches!(logs, Err(StoreError::TouchpointNotFound)));
    assert!(
        h.store
            .append_events(Vec::new())
            .await
            .expect("empty")
            .is_empty()
    );
}

/// Log entries are inserted for a whole batch at once, just before its commit: one naming an
/// unknown touchpoint still fails only its own request, and the others' entries are stored.
async fn a_bad_log_request_fails_alone(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let unknown = Uuid::now_v7();
    let start = Arc::new(Barrier::new(21));
    let tasks: Vec<_> = (0..21)
        .map(|n| {
            let store = h.store.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let owner = if n == 10 { unknown } else { touchpoint.id };
                store
                    .append_logs(vec![new_log(owner, LogLevel::Info, &format!("log {n}"))])
                    .await
            })
        })
        .collect();
    let mut stored = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(entries) => stored.extend(entries),
            Err(error) => {
                assert_eq!(n, 10);
                assert!(matches!(error, StoreError::TouchpointNotFound), "{error:?}");
            }
        }
    }
    assert_eq!(stored.len(), 20);
    for entry in &stored {
        let read = h.store.log_entry(entry.id).await.expect("read");
        assert_eq!(read.as_ref(), Some(entry), "an answered entry is stored");
    }
}

async fn events_page_newest_first(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let other = h.running_touchpoint("customers").await;
    let ids = append(&h.store, touchpoint.id, 25).await;
    append(&h.store, other.id, 3).await;
    let newest_first: Vec<Uuid> = ids.iter().rev().copied().collect();
    let query = |first, after| EventQuery {
        touchpoint_id: touchpoint.id,
        status: None,
        received_from: None,
        received_to: None,
        search: None,
        first,
        after,
    };

    let page = h.store.events(query(10, None)).await.expect("page 1");
    assert!(page.has_next_page);
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        newest_first[..10]
    );
    let page = h
        .store
        .events(query(10, page.items.last().map(|e| e.id)))
        .await
        .expect("page 2");
    assert!(page.has_next_page);
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        newest_first[10..20]
    );
    let page = h
        .store
        .events(query(10, page.items.last().map(|e| e.id)))
        .await
        .expect("page 3");
    assert!(!page.has_next_page);
    assert_eq!(
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        newest_first[20..]
    );
    let all = h
        .store
        .events(query(u64::MAX, None))
        .await
        .expect("first max");
    assert_eq!(all.items.len(), 25);
    assert!(!all.has_next_page);
    let empty = h.store.events(query(0, None)).await.expect("first 0");
    assert!(empty.items.is_empty() && empty.has_next_page);

    // Status filter.
    for id in [ids[3], ids[7], ids[20]] {
        settle(
            &h.store,
            id,
            Outcome::Failed {
                park: false,
                mapped: None,
                error: "boom".to_owned(),
                response_status: Some(500),
                generation: 1,
                attempt: None,
            },
        )
        .await;
    }
    let failed = h
        .store
        .events(EventQuery {
            status: Some(EventStatus::Failed),
            ..query(2, None)
        })
        .await
        .expect("failed");
    assert_eq!(
        failed.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[20], ids[7]]
    );
    assert!(failed.has_next_page);
    let rest = h
        .store
        .events(EventQuery {
            status: Some(EventStatus::Failed),
            ..query(2, Some(ids[7]))
        })
        .await
        .expect("failed page 2");
    assert_eq!(
        rest.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[3]]
    );
    assert!(!rest.has_next_page);
    let event = &rest.items[0];
    assert_eq!(event.raw_body, b"{\"n\":3}");
    assert_eq!(event.headers["content-type"], "application/json");
}

async fn events_are_found_by_id_or_key(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let other = h.running_touchpoint("customers").await;
    let ids = append(&h.store, touchpoint.id, 5).await;
    let keyed = h
        .store
        .append_events(vec![
            received(touchpoint.id, json!({"n": "a"}), "delivery-a"),
            received(other.id, json!({"n": "b"}), "delivery-a"),
        ])
        .await
        .expect("append")[0]
        .event()
        .clone();
    let search = |text: &str| EventQuery {
        touchpoint_id: touchpoint.id,
        status: None,
        received_from: None,
        received_to: None,
        search: Some(text.to_owned()),
        first: 50,
        after: None,
    };
    let found = |page: hookplane_store::Page<hookplane_store::Event>| {
        page.items.iter().map(|e| e.id).collect::<Vec<_>>()
    };

    let by_id = h
        .store
        .events(search(&ids[2].to_string()))
        .await
        .expect("by id");
    assert_eq!(found(by_id), [ids[2]]);
    let key = keyed
        .dedupe_key
        .clone()
        .expect("a delivery id is a dedupe key");
    let by_key = h.store.events(search(&key)).await.expect("by key");
    assert_eq!(found(by_key), [keyed.id], "only this touchpoint's event");
    let by_other_id = h.store.events(search(&Uuid::now_v7().to_string())).await;
    assert!(found(by_other_id.expect("unknown id")).is_empty());
    let by_text = h
        .store
        .events(search("delivery"))
        .await
        .expect("a partial key");
    assert!(found(by_text).is_empty(), "keys match exactly");
    let everything = h.store.events(search("")).await.expect("empty search");
    assert_eq!(
        found(everything).len(),
        6,
        "an empty search filters nothing"
    );
}

async fn events_are_counted_per_status(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    assert_eq!(
        h.store.count_events(touchpoint.id).await.expect("count"),
        StatusCounts::default()
    );
    let ids = append(&h.store, touchpoint.id, 6).await;
    let outcomes = [
        Outcome::Success {
            mapped: json!({}),
            response_status: 200,
            generation: 1,
            attempt: None,
        },
        Outcome::Success {
            mapped: json!({}),
            response_status: 201,
            generation: 1,
            attempt: None,
        },
        Outcome::Skipped { generation: 1 },
        Outcome::Failed {
            park: false,
            mapped: None,
            error: "no".to_owned(),
            response_status: None,
            generation: 1,
            attempt: None,
        },
    ];
    for (id, outcome) in ids.iter().zip(outcomes) {
        settle(&h.store, *id, outcome).await;
    }
    assert_eq!(
        h.store.count_events(touchpoint.id).await.expect("count"),
        StatusCounts {
            unprocessed: 2,
            success: 2,
            failed: 1,
            skipped: 1,
        }
    );
}

async fn next_change(changes: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change within 10 s")
        .expect("the feed is open")
}

async fn changes_are_published_after_commit(h: &Harness) {
    let touchpoint = h.running_touchpoint("orders").await;
    let mut changes = h.store.subscribe();

    let event = received(touchpoint.id, json!({"n": 1}), "d-1");
    let appended = h
        .store
        .append_events(vec![event.clone()])
        .await
        .expect("append");
    let id = appended[0].event().id;
    let change = next_change(&mut changes).await;
    match &change.row {
        Some(ChangedRow::Event(event)) => assert_eq!(event.id, id, "the change carries its row"),
        other => panic!("expected the event row, got {other:?}"),
    }
    assert_eq!(
        change,
        Change {
            kind: ChangeKind::EventCreated,
            touchpoint_id: touchpoint.id,
            id,
            status: Some(EventStatus::Unprocessed),
            row: change.row.clone(),
        }
    );

    // A second subscriber that loads the row as soon as it hears of it always finds it.
    let mut watcher = h.store.subscribe();
    let store = h.store.clone();
    let loader = tokio::spawn(async move {
        let change = next_change(&mut watcher).await;
        (
            change.id,
            store.event(change.id).await.expect("read").is_some(),
        )
    });
    let appended = h
        .store
        .append_events(vec![new_event(touchpoint.id, 2)])
        .await
        .expect("append");
    let second = appended[0].event().id;
    assert_eq!(next_change(&mut changes).await.id, second);
    assert_eq!(loader.await.expect("loader"), (second, true));

    h.store.append_events(vec![event]).await.expect("duplicate");
    assert_eq!(
        next_change(&mut changes).await.kind,
        ChangeKind::EventUpdated
    );

    settle(&h.store, id, Outcome::Skipped { generation: 1 }).await;
    let change = next_change(&mut changes).await;
    assert_eq!(
        (change.kind, change.id, change.status),
        (ChangeKind::EventUpdated, id, Some(EventStatus::Skipped)),
        "a change carries the status it set"
    );

    h.store.resync_events(&[id]).await.expect("resync");
    let change = next_change(&mut changes).await;
    assert_eq!(
        (change.kind, change.id, change.status),
        (ChangeKind::EventUpdated, id, Some(EventStatus::Unprocessed))
    );

    let logs = h
        .store
        .append_logs(vec![new_log(touchpoint.id, LogLevel::Info, "hello")])
        .await
        .expect("log");
    let change = next_change(&mut changes).await;
    assert_eq!(
        (change.kind, change.id),
        (ChangeKind::LogCreated, logs[0].id)
    );
    assert_eq!(
        h.store.log_entry(change.id).await.expect("read"),
        Some(logs[0].clone())
    );
}
