//! Queries for the portal, metrics and the operator: events by time received, the backlog of
//! every touchpoint, totals per status.

use chrono::{SubsecRound, TimeDelta, Utc};
use hookplane_store::{EventQuery, EventStatus, ManualClock, Outcome, StatusCounts, StoreOptions};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, running_touchpoint, settle};

backend_tests!(
    events_are_filtered_by_time_received,
    backlog_and_totals_are_grouped,
);

async fn events_are_filtered_by_time_received(h: &Harness) {
    let start = Utc::now().trunc_subsecs(6) - TimeDelta::days(1);
    let clock = ManualClock::new(start);
    let store = h
        .store_with(StoreOptions {
            clock: clock.clone().into(),
            ..StoreOptions::default()
        })
        .await;
    let touchpoint = running_touchpoint(&store, "orders").await;
    let mut ids = Vec::new();
    for hour in 0..5 {
        clock.set(start + TimeDelta::hours(hour));
        ids.extend(append(&store, touchpoint.id, 2).await);
    }
    // ids[2k], ids[2k+1] arrived at hour k. Fail the ones of hour 2.
    for id in [ids[4], ids[5]] {
        settle(
            &store,
            id,
            Outcome::Failed {
                park: false,
                mapped: None,
                error: "no".to_owned(),
                response_status: None,
                generation: 1,
                attempt: None,
            },
        )
        .await;
    }
    let query = |from: Option<i64>, to: Option<i64>, status, first, after| EventQuery {
        touchpoint_id: touchpoint.id,
        status,
        received_from: from.map(|hour| start + TimeDelta::hours(hour)),
        received_to: to.map(|hour| start + TimeDelta::hours(hour)),
        search: None,
        first,
        after,
    };
    let page_ids = |page: hookplane_store::Page<hookplane_store::Event>| {
        page.items.iter().map(|e| e.id).collect::<Vec<Uuid>>()
    };

    let both_ends = store
        .events(query(Some(1), Some(3), None, 100, None))
        .await
        .expect("range");
    assert_eq!(
        page_ids(both_ends),
        [ids[7], ids[6], ids[5], ids[4], ids[3], ids[2]],
        "both bounds inclusive, newest first"
    );
    let from = store
        .events(query(Some(4), None, None, 100, None))
        .await
        .expect("from");
    assert_eq!(page_ids(from), [ids[9], ids[8]]);
    let to = store
        .events(query(None, Some(0), None, 100, None))
        .await
        .expect("to");
    assert_eq!(page_ids(to), [ids[1], ids[0]]);
    let failed = store
        .events(query(
            Some(2),
            Some(2),
            Some(EventStatus::Failed),
            100,
            None,
        ))
        .await
        .expect("failed in range");
    assert_eq!(page_ids(failed), [ids[5], ids[4]]);
    let none = store
        .events(query(
            Some(1),
            Some(3),
            Some(EventStatus::Skipped),
            100,
            None,
        ))
        .await
        .expect("none");
    assert!(none.items.is_empty());

    // Paging through a range.
    let first = store
        .events(query(Some(1), Some(3), None, 4, None))
        .await
        .expect("page 1");
    assert!(first.has_next_page);
    let last = first.items.last().map(|e| e.id);
    let second = store
        .events(query(Some(1), Some(3), None, 4, last))
        .await
        .expect("page 2");
    assert!(!second.has_next_page);
    assert_eq!(page_ids(second), [ids[3], ids[2]]);
    store.close().await;
}

async fn backlog_and_totals_are_grouped(h: &Harness) {
    assert!(h.store.backlog().await.expect("backlog").is_empty());
    assert_eq!(
        h.store.count_events_by_status_all().await.expect("totals"),
        StatusCounts::default()
    );
    let orders = h.running_touchpoint("orders").await;
    let customers = h.running_touchpoint("customers").await;
    let idle = h.running_touchpoint("idle").await;
    let order_ids = append(&h.store, orders.id, 4).await;
    let customer_ids = append(&h.store, customers.id, 2).await;
    let idle_ids = append(&h.store, idle.id, 1).await;
    let delivered = Outcome::Success {
        mapped: json!({}),
        response_status: 200,
        generation: 1,
        attempt: None,
    };
    settle(&h.store, order_ids[0], delivered.clone()).await;
    settle(
        &h.store,
        customer_ids[0],
        Outcome::Skipped { generation: 1 },
    )
    .await;
    settle(&h.store, idle_ids[0], delivered).await;

    let mut expected = vec![(orders.id, 3), (customers.id, 1)];
    expected.sort();
    assert_eq!(
        h.store.backlog().await.expect("backlog"),
        expected,
        "by touchpoint id; touchpoints without backlog left out"
    );
    assert_eq!(
        h.store.count_events_by_status_all().await.expect("totals"),
        StatusCounts {
            unprocessed: 4,
            success: 2,
            failed: 0,
            skipped: 1,
        }
    );
}
