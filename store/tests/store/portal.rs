//! The portal model: organization, connections, touchpoints, secrets.

use hookplane_store::{LogLevel, LogQuery, StoreError};
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, connection_spec, new_log, touchpoint_spec};

backend_tests!(
    organization_is_registered_then_updated,
    concurrent_first_registrations_make_one_organization,
    connections_are_created_and_listed,
    touchpoints_are_created_read_and_listed,
    create_touchpoint_needs_a_known_connection,
    endpoints_belong_to_one_touchpoint,
    update_bumps_generation_and_keeps_the_connection,
    publish_copies_the_draft,
    auto_sync_keeps_specs_in_step,
    delete_touchpoint_cascades,
    secrets_are_stored_and_replaced,
);

async fn organization_is_registered_then_updated(h: &Harness) {
    assert_eq!(h.store.organizations().await.expect("read"), []);
    let first = h
        .store
        .create_organization("acme", "https://hooks.acme.test")
        .await
        .expect("create");
    assert_eq!(first.slug, "acme");
    let second = h
        .store
        .set_registered_url(first.id, "https://eu.acme.test")
        .await
        .expect("new URL");
    assert_eq!(second.id, first.id);
    assert_eq!(second.slug, "acme", "the slug never changes");
    assert_eq!(second.registered_url, "https://eu.acme.test");
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(
        h.store.organization(first.id).await.expect("read"),
        Some(second.clone())
    );
    assert_eq!(
        h.store.organization_by_slug("acme").await.expect("read"),
        Some(second)
    );
}

async fn concurrent_first_registrations_make_one_organization(h: &Harness) {
    let registrations = (0..5).map(|_| {
        let store = h.store.clone();
        tokio::spawn(async move { store.create_organization("org", "https://hooks.test").await })
    });
    let mut created = 0;
    for registration in registrations.collect::<Vec<_>>() {
        match registration.await.expect("task") {
            Ok(_) => created += 1,
            Err(error) => assert_eq!(error.code(), "ORGANIZATION_TAKEN"),
        }
    }
    assert_eq!(created, 1, "one organization per slug");
    assert_eq!(h.store.organizations().await.expect("read").len(), 1);
}

async fn connections_are_created_and_listed(h: &Harness) {
    let a = h
        .store
        .create_connection(
            crate::common::organization(&h.store).await,
            connection_spec("A"),
        )
        .await
        .expect("create");
    let b = h
        .store
        .create_connection(
            crate::common::organization(&h.store).await,
            connection_spec("B"),
        )
        .await
        .expect("create");
    assert_eq!(a.spec, connection_spec("A"));
    assert!(!a.paused, "a new connection delivers");
    assert_eq!(
        h.store.connection(a.id).await.expect("read"),
        Some(a.clone())
    );
    assert_eq!(
        h.store.connection(Uuid::now_v7()).await.expect("read"),
        None
    );
    assert_eq!(h.store.connections().await.expect("list"), vec![a, b]);
}

async fn touchpoints_are_created_read_and_listed(h: &Harness) {
    let connection = h.connection().await;
    let other = h.connection().await;
    let mut spec = touchpoint_spec(connection.id, "orders");
    spec.connection_ref = connection.id.to_string().to_uppercase();
    spec.auto_sync = true;
    let created = h.store.create_touchpoint(spec).await.expect("create");
    assert_eq!(created.connection_id, connection.id);
    assert_eq!(created.spec.connection_ref, connection.id.to_string());
    assert_eq!(created.generation, 1);
    assert_eq!(created.published, None);
    assert!(created.auto_sync);

    let second = h
        .store
        .create_touchpoint(touchpoint_spec(other.id, "customers"))
        .await
        .expect("create");
    assert_eq!(
        h.store.touchpoint(created.id).await.expect("read"),
        Some(created.clone())
    );
    assert_eq!(
        h.store.touchpoints(None).await.expect("list"),
        vec![created.clone(), second.clone()]
    );
    assert_eq!(
        h.store.touchpoints(Some(other.id)).await.expect("list"),
        vec![second]
    );
    assert!(
        h.store
            .published_touchpoints()
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        h.store.touchpoint(Uuid::now_v7()).await.expect("read"),
        None
    );
}

async fn create_touchpoint_needs_a_known_connection(h: &Harness) {
    let unknown = h
        .store
        .create_touchpoint(touchpoint_spec(Uuid::now_v7(), "orders"))
        .await;
    assert!(matches!(unknown, Err(StoreError::ConnectionNotFound)));
    let mut spec = touchpoint_spec(Uuid::now_v7(), "orders");
    spec.connection_ref = "not-an-id".to_owned();
    let error = h
        .store
        .create_touchpoint(spec)
        .await
        .expect_err("not an id");
    assert_eq!(error.code(), "CONNECTION_NOT_FOUND");
    assert!(h.store.touchpoints(None).await.expect("list").is_empty());
}

async fn endpoints_belong_to_one_touchpoint(h: &Harness) {
    let connection = h.connection().await;
    let a = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "orders"))
        .await
        .expect("create");
    let taken = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "orders"))
        .await;
    assert!(matches!(taken, Err(StoreError::EndpointTaken { endpoint }) if endpoint == "orders"));

    // Published at "orders", then the draft moves to "orders-v2": both stay A's.
    h.store.publish_touchpoint(a.id).await.expect("publish");
    h.store
        .update_touchpoint(a.id, touchpoint_spec(connection.id, "orders-v2"))
        .await
        .expect("update");
    for endpoint in ["orders", "orders-v2"] {
        let error = h
            .store
            .create_touchpoint(touchpoint_spec(connection.id, endpoint))
            .await
            .expect_err("taken");
        assert_eq!(error.code(), "ENDPOINT_TAKEN", "{endpoint}");
    }

    let b = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "customers"))
        .await
        .expect("create");
    let error = h
        .store
        .update_touchpoint(b.id, touchpoint_spec(connection.id, "orders"))
        .await
        .expect_err("taken by A's published spec");
    assert!(matches!(error, StoreError::EndpointTaken { .. }));
    // A may move back to its own published endpoint.
    h.store
        .update_touchpoint(a.id, touchpoint_spec(connection.id, "orders"))
        .await
        .expect("own endpoint");
}

async fn update_bumps_generation_and_keeps_the_connection(h: &Harness) {
    let connection = h.connection().await;
    let other = h.connection().await;
    let created = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "orders"))
        .await
        .expect("create");
    let mut spec = touchpoint_spec(connection.id, "orders");
    spec.name = "Renamed".to_owned();
    spec.auto_sync = true; // ignored: set_auto_sync is the switch
    let updated = h
        .store
        .update_touchpoint(created.id, spec)
        .await
        .expect("update");
    assert_eq!(updated.generation, 2);
    assert_eq!(updated.spec.name, "Renamed");
    assert!(!updated.auto_sync);
    assert!(!updated.spec.auto_sync);
    assert!(updated.updated_at >= created.updated_at);

    let moved = h
        .store
        .update_touchpoint(created.id, touchpoint_spec(other.id, "orders"))
        .await;
    assert!(matches!(moved, Err(StoreError::ConnectionImmutable)));
    let missing = h
        .store
        .update_touchpoint(Uuid::now_v7(), touchpoint_spec(connection.id, "x"))
        .await;
    assert!(matches!(missing, Err(StoreError::TouchpointNotFound)));
    assert_eq!(
        h.store
            .touchpoint(created.id)
            .await
            .expect("read")
            .map(|t| t.generation),
        Some(2)
    );
}

async fn publish_copies_the_draft(h: &Harness) {
    let connection = h.connection().await;
    let created = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "orders"))
        .await
        .expect("create");
    let published = h
        .store
        .publish_touchpoint(created.id)
        .await
        .expect("publish");
    let running = published.published.clone().expect("published");
    assert_eq!(running.spec, created.spec);
    assert_eq!(running.generation, 1);

    let mut spec = touchpoint_spec(connection.id, "orders");
    spec.name = "Draft edit".to_owned();
    let edited = h
        .store
        .update_touchpoint(created.id, spec)
        .await
        .expect("update");
    assert_eq!(edited.generation, 2);
    let still = edited.published.clone().expect("still published");
    assert_eq!(still.generation, 1, "editing the draft does not publish it");
    assert_ne!(still.spec.name, "Draft edit");
    assert_eq!(
        h.store.published_touchpoints().await.expect("list"),
        vec![edited.clone()]
    );

    let republished = h
        .store
        .publish_touchpoint(created.id)
        .await
        .expect("publish");
    let running = republished.published.expect("published");
    assert_eq!(running.generation, 2);
    assert_eq!(running.spec.name, "Draft edit");
    assert!(running.published_at >= still.published_at);
    assert!(matches!(
        h.store.publish_touchpoint(Uuid::now_v7()).await,
        Err(StoreError::TouchpointNotFound)
    ));
}

async fn auto_sync_keeps_specs_in_step(h: &Harness) {
    let connection = h.connection().await;
    let created = h
        .store
        .create_touchpoint(touchpoint_spec(connection.id, "orders"))
        .await
        .expect("create");
    let draft_only = h.store.set_auto_sync(created.id, true).await.expect("on");
    assert!(draft_only.auto_sync && draft_only.spec.auto_sync);
    assert_eq!(draft_only.generation, 1, "not a draft edit");

    h.store
        .publish_touchpoint(created.id)
        .await
        .expect("publish");
    let off = h.store.set_auto_sync(created.id, false).await.expect("off");
    assert!(!off.auto_sync && !off.spec.auto_sync);
    assert!(!off.published.as_ref().expect("published").spec.auto_sync);
    let on = h.store.set_auto_sync(created.id, true).await.expect("on");
    assert!(on.auto_sync && on.spec.auto_sync);
    assert!(on.published.as_ref().expect("published").spec.auto_sync);
    assert!(matches!(
        h.store.set_auto_sync(Uuid::now_v7(), true).await,
        Err(StoreError::TouchpointNotFound)
    ));
}

async fn delete_touchpoint_cascades(h: &Harness) {
    let doomed = h.running_touchpoint("doomed").await;
    let kept = h.running_touchpoint("kept").await;
    let doomed_events = append(&h.store, doomed.id, 3).await;
    let kept_events = append(&h.store, kept.id, 2).await;
    h.store
        .append_logs(vec![
            new_log(doomed.id, LogLevel::Info, "bye"),
            new_log(kept.id, LogLevel::Info, "stay"),
        ])
        .await
        .expect("logs");

    assert!(h.store.delete_touchpoint(doomed.id).await.expect("delete"));
    assert!(!h.store.delete_touchpoint(doomed.id).await.expect("gone"));
    assert_eq!(h.store.touchpoint(doomed.id).await.expect("read"), None);
    for id in doomed_events {
        assert_eq!(h.store.event(id).await.expect("read"), None);
    }
    let logs = |touchpoint_id| LogQuery {
        touchpoint_id,
        level: None,
        event_id: None,
        first: 10,
        after: None,
    };
    assert!(
        h.store
            .logs(logs(doomed.id))
            .await
            .expect("logs")
            .items
            .is_empty()
    );
    assert_eq!(
        h.store.logs(logs(kept.id)).await.expect("logs").items.len(),
        1
    );
    for id in kept_events {
        assert!(h.store.event(id).await.expect("read").is_some());
    }
}

async fn secrets_are_stored_and_replaced(h: &Harness) {
    assert_eq!(
        h.store.secret("shopify", "signing").await.expect("read"),
        None
    );
    h.store
        .put_secret("shopify", "signing", "s3cret")
        .await
        .expect("put");
    h.store
        .put_secret("shopify", "previous", "old")
        .await
        .expect("put");
    assert_eq!(
        h.store
            .secret("shopify", "signing")
            .await
            .expect("read")
            .as_deref(),
        Some("s3cret")
    );
    h.store
        .put_secret("shopify", "signing", "rotated")
        .await
        .expect("replace");
    assert_eq!(
        h.store
            .secret("shopify", "signing")
            .await
            .expect("read")
            .as_deref(),
        Some("rotated")
    );
    assert_eq!(
        h.store
            .secret("shopify", "previous")
            .await
            .expect("read")
            .as_deref(),
        Some("old")
    );
    assert_eq!(
        h.store.secret("other", "signing").await.expect("read"),
        None
    );
}
