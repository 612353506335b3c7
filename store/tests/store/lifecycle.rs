//! Opening, migrating, readiness, closing and reopening.

use hookplane_store::{Backend, EventQuery, Store, StoreError, StoreOptions};

use crate::common::{Harness, append, backend_tests, new_event};

backend_tests!(
    check_ready_fails_before_migrate,
    concurrent_migrators_take_turns,
    data_survives_close_and_reopen,
);

async fn check_ready_fails_before_migrate(h: &Harness) {
    h.store
        .check_ready()
        .await
        .expect("the harness store is migrated");
    let url = h.fresh_url().await;
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("open");
    let error = store.check_ready().await.expect_err("not migrated");
    assert!(matches!(error, StoreError::NotMigrated), "{error:?}");
    assert_eq!(error.code(), "NOT_MIGRATED");
    // check_ready created nothing: still not migrated.
    assert!(matches!(
        store.check_ready().await,
        Err(StoreError::NotMigrated)
    ));
    store.migrate().await.expect("migrate");
    store.check_ready().await.expect("ready");
    store.migrate().await.expect("migrating again is a no-op");
    store.close().await;
}

async fn concurrent_migrators_take_turns(h: &Harness) {
    let url = h.fresh_url().await;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(
            Store::open(&url, StoreOptions::default())
                .await
                .expect("open"),
        );
    }
    let results = futures::future::join_all(stores.iter().map(Store::migrate)).await;
    for result in results {
        result.expect("every migrator succeeds");
    }
    for store in &stores {
        store.check_ready().await.expect("ready");
        store.close().await;
    }
}

async fn data_survives_close_and_reopen(h: &Harness) {
    let url = h.fresh_url().await;
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let connection = store
        .create_connection(
            crate::common::organization(&store).await,
            crate::common::connection_spec("C"),
        )
        .await
        .expect("connection");
    let touchpoint = store
        .create_touchpoint(crate::common::touchpoint_spec(connection.id, "orders"))
        .await
        .expect("touchpoint");
    let ids = append(&store, touchpoint.id, 5).await;
    store.put_secret("s", "k", "v").await.expect("secret");
    store.close().await;

    let closed = store.append_events(vec![new_event(touchpoint.id, 9)]).await;
    assert!(
        matches!(closed, Err(StoreError::WriterClosed)),
        "{closed:?}"
    );
    store.close().await; // closing twice is harmless

    let reopened = Store::open(&url, StoreOptions::default())
        .await
        .expect("reopen");
    reopened.check_ready().await.expect("still migrated");
    assert_eq!(
        reopened.touchpoint(touchpoint.id).await.expect("read"),
        Some(touchpoint.clone())
    );
    let events = reopened
        .events(EventQuery {
            touchpoint_id: touchpoint.id,
            status: None,
            received_from: None,
            received_to: None,
            search: None,
            first: 10,
            after: None,
        })
        .await
        .expect("events");
    let mut stored: Vec<_> = events.items.iter().map(|event| event.id).collect();
    stored.reverse();
    assert_eq!(stored, ids);
    assert_eq!(
        reopened.secret("s", "k").await.expect("secret").as_deref(),
        Some("v")
    );
    reopened.close().await;
}

#[tokio::test]
async fn sqlite_accepts_bare_paths_and_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested-free.db");
    let store = Store::open(&path.display().to_string(), StoreOptions::default())
        .await
        .expect("bare path");
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.expect("migrate");
    store.close().await;
    assert!(path.exists());

    let memory = Store::open("sqlite::memory:", StoreOptions::default())
        .await
        .expect("memory");
    memory.migrate().await.expect("migrate");
    let connection = memory
        .create_connection(
            crate::common::organization(&memory).await,
            crate::common::connection_spec("M"),
        )
        .await
        .expect("connection");
    let touchpoint = memory
        .create_touchpoint(crate::common::touchpoint_spec(connection.id, "m"))
        .await
        .expect("touchpoint");
    append(&memory, touchpoint.id, 3).await;
    assert_eq!(
        memory
            .count_events(touchpoint.id)
            .await
            .expect("count")
            .unprocessed,
        3
    );
    memory.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let error = Store::open("mysql://root:hunter2@localhost/db", StoreOptions::default())
        .await
        .err()
        .expect("unsupported");
    assert_eq!(error.code(), "UNSUPPORTED_DATABASE");
    assert!(!error.to_string().contains("hunter2"));
}
