//! Retention: old finished events (with their attempts) and old logs go, in bounded batches;
//! UNPROCESSED events and FAILED heads holding their key stay; counts stay right.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use hookplane_store::{
    AttemptRecord, LogLevel, ManualClock, NewEvent, Outcome, PurgeStats, StatusCounts, Store,
    StoreOptions,
};
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::common::{
    Harness, append, backend_tests, new_event, new_log, running_touchpoint, settle,
};

backend_tests!(
    purge_deletes_old_finished_entries_only,
    purge_runs_beside_intake,
);

fn attempt() -> AttemptRecord {
    AttemptRecord {
        started_at: Utc::now(),
        duration_ms: 5,
        response_status: Some(500),
        error: Some("boom".to_owned()),
        response_snippet: None,
    }
}

fn retry() -> Outcome {
    Outcome::Retry {
        mapped: None,
        error: "boom".to_owned(),
        response_status: Some(500),
        next_attempt_at: Utc::now(),
        generation: 1,
        attempt: Some(attempt()),
    }
}

fn success() -> Outcome {
    Outcome::Success {
        mapped: json!({}),
        response_status: 200,
        generation: 1,
        attempt: Some(attempt()),
    }
}

fn failed(park: bool) -> Outcome {
    Outcome::Failed {
        park,
        mapped: None,
        error: "no".to_owned(),
        response_status: Some(400),
        generation: 1,
        attempt: None,
    }
}

fn keyed(touchpoint_id: Uuid, key: &str) -> NewEvent {
    new_event(touchpoint_id, 0).with_ordering_key(Some(key.to_owned()))
}

async fn append_one(store: &Store, event: NewEvent) -> Uuid {
    store.append_events(vec![event]).await.expect("append")[0]
        .event()
        .id
}

async fn log(store: &Store, touchpoint_id: Uuid, n: usize) {
    let logs = (0..n)
        .map(|i| new_log(touchpoint_id, LogLevel::Info, &format!("log {i}")))
        .collect();
    store.append_logs(logs).await.expect("logs");
}

async fn purge_deletes_old_finished_entries_only(h: &Harness) {
    let start: DateTime<Utc> = Utc::now().trunc_subsecs(6) - TimeDelta::days(60);
    let clock = ManualClock::new(start);
    let store = h
        .store_with(StoreOptions {
            clock: clock.clone().into(),
            ..StoreOptions::default()
        })
        .await;
    let touchpoint = running_touchpoint(&store, "orders").await;
    let other = running_touchpoint(&store, "customers").await;

    // 60 days ago.
    let [
        delivered,
        retried_then_delivered,
        gave_up,
        skipped,
        waiting,
        retrying,
    ]: [Uuid; 6] = append(&store, touchpoint.id, 6)
        .await
        .try_into()
        .expect("six ids");
    let blocking_head = append_one(&store, keyed(touchpoint.id, "held")).await;
    let lone_blocking = append_one(&store, keyed(touchpoint.id, "lone")).await;
    let parked_head = append_one(&store, keyed(touchpoint.id, "parked")).await;
    let elsewhere = append(&store, other.id, 1).await[0];
    settle(&store, delivered, success()).await;
    settle(&store, retried_then_delivered, retry()).await;
    settle(&store, retried_then_delivered, retry()).await;
    settle(&store, retried_then_delivered, success()).await;
    settle(&store, gave_up, failed(false)).await;
    settle(&store, skipped, Outcome::Skipped { generation: 1 }).await;
    settle(&store, retrying, retry()).await;
    settle(&store, blocking_head, failed(false)).await;
    settle(&store, lone_blocking, failed(false)).await;
    settle(&store, parked_head, failed(true)).await;
    settle(&store, elsewhere, success()).await;
    // Followers that wait behind the blocking head and behind the parked one.
    let follower = append_one(&store, keyed(touchpoint.id, "held")).await;
    let parked_follower = append_one(&store, keyed(touchpoint.id, "parked")).await;
    log(&store, touchpoint.id, 5).await;
    log(&store, other.id, 2).await;

    // Today.
    clock.set(start + TimeDelta::days(60));
    let recent = append(&store, touchpoint.id, 1).await[0];
    settle(&store, recent, success()).await;
    log(&store, touchpoint.id, 3).await;
    let before = store.count_events(touchpoint.id).await.expect("count");
    assert_eq!(
        before,
        StatusCounts {
            unprocessed: 4,
            success: 3,
            failed: 4,
            skipped: 1,
        }
    );

    let cutoff = clock.now() - TimeDelta::days(30);
    let stats = store.purge(cutoff, 2).await.expect("purge");
    assert_eq!(
        stats,
        PurgeStats {
            // delivered, retried_then_delivered, gave_up, skipped, lone_blocking,
            // parked_head, elsewhere
            events: 7,
            logs: 7,
            // 1 + 3 + 1 (elsewhere); `retrying` keeps its attempt
            attempts: 5,
        }
    );
    for id in [
        delivered,
        retried_then_delivered,
        gave_up,
        skipped,
        lone_blocking,
        parked_head,
        elsewhere,
    ] {
        assert_eq!(store.event(id).await.expect("read"), None, "{id} purged");
        assert!(store.attempts(id).await.expect("attempts").is_empty());
    }
    for id in [
        waiting,
        retrying,
        blocking_head,
        follower,
        parked_follower,
        recent,
    ] {
        assert!(store.event(id).await.expect("read").is_some(), "{id} kept");
    }
    assert_eq!(store.attempts(retrying).await.expect("attempts").len(), 1);
    assert_eq!(store.attempts(recent).await.expect("attempts").len(), 1);
    assert_eq!(
        store.count_events(touchpoint.id).await.expect("count"),
        StatusCounts {
            unprocessed: 4,
            success: 1,
            failed: 1,
            skipped: 0,
        },
        "counts follow the rows"
    );
    assert_eq!(
        store.count_events(other.id).await.expect("count"),
        StatusCounts::default()
    );

    // Nothing old is left; batch 0 deletes nothing.
    assert_eq!(
        store.purge(cutoff, 2).await.expect("again"),
        PurgeStats::default()
    );
    assert_eq!(
        store
            .purge(clock.now() + TimeDelta::days(1), 0)
            .await
            .expect("batch 0"),
        PurgeStats::default()
    );

    // Once resynced and delivered, the blocking head and its follower go too.
    store.resync_events(&[blocking_head]).await.expect("resync");
    settle(&store, blocking_head, success()).await;
    settle(&store, follower, success()).await;
    let stats = store
        .purge(clock.now() + TimeDelta::seconds(1), 1000)
        .await
        .expect("purge");
    assert_eq!((stats.events, stats.logs), (3, 3), "{stats:?}");
    store.close().await;
}

/// A purge of many small batches runs while webhooks keep arriving; every append succeeds
/// and nothing new is deleted.
async fn purge_runs_beside_intake(h: &Harness) {
    const OLD: usize = 300;
    const NEW: usize = 100;
    let start = Utc::now().trunc_subsecs(6) - TimeDelta::days(40);
    let clock = ManualClock::new(start);
    let store = h
        .store_with(StoreOptions {
            clock: clock.clone().into(),
            ..StoreOptions::default()
        })
        .await;
    let touchpoint = running_touchpoint(&store, "orders").await;
    let old: Vec<NewEvent> = (0..OLD).map(|n| new_event(touchpoint.id, n)).collect();
    store.append_events(old).await.expect("append");
    let claimed = store
        .claim_due_events(Utc::now(), Duration::from_secs(60), u64::MAX)
        .await
        .expect("claim");
    for event in &claimed {
        store
            .record_outcome(event.id, event.lease_id.expect("leased"), success())
            .await
            .expect("success");
    }
    clock.set(start + TimeDelta::days(40));

    let go = Arc::new(Barrier::new(2));
    let intake = {
        let store = store.clone();
        let go = go.clone();
        tokio::spawn(async move {
            go.wait().await;
            for n in 0..NEW {
                store
                    .append_events(vec![new_event(touchpoint.id, n)])
                    .await
                    .expect("intake keeps going");
            }
        })
    };
    go.wait().await;
    let stats = store
        .purge(clock.now() - TimeDelta::days(30), 7)
        .await
        .expect("purge");
    intake.await.expect("intake");
    assert_eq!(stats.events, OLD as u64);
    assert_eq!(stats.attempts, OLD as u64);
    assert_eq!(
        store.count_events(touchpoint.id).await.expect("count"),
        StatusCounts {
            unprocessed: NEW as i64,
            ..StatusCounts::default()
        }
    );
    store.close().await;
}
