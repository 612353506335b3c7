//! Touchpoints from a rendered configuration (Kubernetes resources) upserted under their ids.

use hookplane_store::{ExternalTouchpoint, StoreError};
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, connection_spec, touchpoint_spec};

backend_tests!(external_touchpoints_are_upserted_published_under_their_ids);

async fn external_touchpoints_are_upserted_published_under_their_ids(h: &Harness) {
    let connection_id = Uuid::now_v7();
    let id = Uuid::now_v7();
    let mut spec = touchpoint_spec(Uuid::nil(), "k8s/orders");
    spec.connection_ref = "shop-to-erp".to_owned();
    spec.auto_sync = true;
    let external = ExternalTouchpoint {
        id,
        generation: 3,
        spec: spec.clone(),
    };
    h.store
        .apply_external(
            connection_id,
            &connection_spec("shop-to-erp"),
            std::slice::from_ref(&external),
        )
        .await
        .expect("apply");
    let stored = h
        .store
        .touchpoint(id)
        .await
        .expect("read")
        .expect("created");
    assert_eq!(stored.connection_id, connection_id);
    assert_eq!(stored.spec.connection_ref, connection_id.to_string());
    assert!(stored.auto_sync);
    let published = stored.published.clone().expect("published");
    assert_eq!(published.generation, 3);
    assert_eq!(published.spec.source.endpoint, "k8s/orders");

    // Applying the same configuration again changes nothing.
    h.store
        .apply_external(
            connection_id,
            &connection_spec("shop-to-erp"),
            std::slice::from_ref(&external),
        )
        .await
        .expect("apply again");
    let again = h.store.touchpoint(id).await.expect("read").expect("exists");
    assert_eq!(again.updated_at, stored.updated_at);

    // Its events are claimable like any published touchpoint's.
    append(&h.store, id, 1).await;
    assert_eq!(h.store.backlog().await.expect("backlog"), vec![(id, 1)]);

    // A new generation replaces the published spec.
    let mut changed = external.clone();
    changed.generation = 4;
    changed.spec.filter = Some(".n > 0".to_owned());
    h.store
        .apply_external(connection_id, &connection_spec("shop-to-erp"), &[changed])
        .await
        .expect("apply change");
    let updated = h.store.touchpoint(id).await.expect("read").expect("exists");
    assert_eq!(
        updated.published.expect("published").spec.filter.as_deref(),
        Some(".n > 0")
    );

    // An endpoint another touchpoint holds is refused, and nothing of that apply is kept.
    let portal = h.running_touchpoint("taken").await;
    let clash = ExternalTouchpoint {
        id: Uuid::now_v7(),
        generation: 1,
        spec: touchpoint_spec(Uuid::nil(), "taken"),
    };
    let refused = h
        .store
        .apply_external(
            connection_id,
            &connection_spec("renamed"),
            std::slice::from_ref(&clash),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::EndpointTaken { .. })),
        "{refused:?}"
    );
    assert!(h.store.touchpoint(clash.id).await.expect("read").is_none());
    let connection = h
        .store
        .connection(connection_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        connection.spec.name, "shop-to-erp",
        "the failed apply was rolled back"
    );
    assert!(h.store.touchpoint(portal.id).await.expect("read").is_some());
}
