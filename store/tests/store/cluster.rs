//! Connections and touchpoints from Kubernetes: the data plane's rendered configuration and the
//! API's mirror of the resources.

use hookplane_store::{Clash, ExternalTouchpoint, KubeResource, Mirrored, StoreError};
use uuid::Uuid;

use crate::common::{Harness, append, backend_tests, connection_spec, touchpoint_spec};

backend_tests!(
    external_touchpoints_are_upserted_published_under_their_ids,
    an_older_configuration_never_rolls_a_publish_back,
    mirrored_resources_record_their_name_and_who_manages_them,
    a_touchpoint_resource_edited_outside_the_portal_replaces_the_draft,
    only_unused_connections_are_deleted,
);

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
            "acme",
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
            "acme",
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
        .apply_external(
            connection_id,
            &connection_spec("shop-to-erp"),
            "acme",
            &[changed],
        )
        .await
        .expect("apply change");
    let updated = h.store.touchpoint(id).await.expect("read").expect("exists");
    assert_eq!(
        updated.published.expect("published").spec.filter.as_deref(),
        Some(".n > 0")
    );

    // A touchpoint whose endpoint another one holds is left out, and reported; the rest of
    // the configuration (the connection, the other touchpoints) is applied.
    let portal = h.running_touchpoint("taken").await;
    let clash = ExternalTouchpoint {
        id: Uuid::now_v7(),
        generation: 1,
        spec: touchpoint_spec(Uuid::nil(), "taken"),
    };
    let beside = ExternalTouchpoint {
        id: Uuid::now_v7(),
        generation: 1,
        spec: touchpoint_spec(Uuid::nil(), "k8s/beside"),
    };
    let clashes = h
        .store
        .apply_external(
            connection_id,
            &connection_spec("renamed"),
            "acme",
            &[clash.clone(), beside.clone()],
        )
        .await
        .expect("apply");
    assert_eq!(
        clashes,
        [Clash {
            id: clash.id,
            endpoint: "taken".to_owned()
        }]
    );
    assert!(h.store.touchpoint(clash.id).await.expect("read").is_none());
    assert!(h.store.touchpoint(beside.id).await.expect("read").is_some());
    let connection = h
        .store
        .connection(connection_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(connection.spec.name, "renamed");
    let kept = h
        .store
        .touchpoint(portal.id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.spec.source.endpoint, "taken");
}

fn resource(name: &str, managed_outside: bool) -> KubeResource {
    KubeResource {
        namespace: "shop".to_owned(),
        name: name.to_owned(),
        managed_outside,
    }
}

/// A portal touchpoint published at generation 2 with a draft at generation 3.
async fn portal_touchpoint_with_pending_draft(h: &Harness) -> (Uuid, Uuid) {
    let portal = h.running_touchpoint("portal/orders").await;
    let mut draft = portal.spec.clone();
    draft.filter = Some(".n > 1".to_owned());
    h.store
        .update_touchpoint(portal.id, draft.clone())
        .await
        .expect("edit");
    h.store
        .publish_touchpoint(portal.id)
        .await
        .expect("publish 2");
    draft.filter = Some(".n > 2".to_owned());
    h.store
        .update_touchpoint(portal.id, draft)
        .await
        .expect("edit 3");
    (portal.id, portal.connection_id)
}

async fn an_older_configuration_never_rolls_a_publish_back(h: &Harness) {
    let (id, connection_id) = portal_touchpoint_with_pending_draft(h).await;
    let before = h.store.touchpoint(id).await.expect("read").expect("exists");
    assert_eq!(
        (
            before.generation,
            before.published.as_ref().unwrap().generation
        ),
        (3, 2)
    );
    let connection = h.store.connection(connection_id).await.unwrap().unwrap();
    let published = before.published.clone().unwrap();

    // A pod restarting on the generation-1 file changes nothing.
    let mut old = published.spec.clone();
    old.filter = None;
    let stale = ExternalTouchpoint {
        id,
        generation: 1,
        spec: old,
    };
    h.store
        .apply_external(connection_id, &connection.spec, "acme", &[stale])
        .await
        .expect("apply stale");
    let after = h.store.touchpoint(id).await.expect("read").expect("exists");
    assert_eq!(after, before, "a stale configuration is ignored");

    // The same generation with auto-sync turned on replaces the published spec and the
    // switch, and keeps the draft (ahead) with the same switch.
    let mut switched = published.spec.clone();
    switched.auto_sync = !published.spec.auto_sync;
    let same_generation = ExternalTouchpoint {
        id,
        generation: 2,
        spec: switched.clone(),
    };
    h.store
        .apply_external(connection_id, &connection.spec, "acme", &[same_generation])
        .await
        .expect("apply switch");
    let after = h.store.touchpoint(id).await.expect("read").expect("exists");
    assert_eq!(after.auto_sync, switched.auto_sync);
    assert_eq!(
        after.published.as_ref().unwrap().spec.auto_sync,
        switched.auto_sync
    );
    assert_eq!(after.generation, 3, "the draft stays ahead");
    assert_eq!(after.spec.filter.as_deref(), Some(".n > 2"));
    assert_eq!(after.spec.auto_sync, switched.auto_sync);
}

async fn mirrored_resources_record_their_name_and_who_manages_them(h: &Harness) {
    let connection_id = Uuid::now_v7();
    let spec = connection_spec("shop-to-erp");
    let outside = resource("shop-to-erp", true);
    let created = h
        .store
        .mirror_connection(connection_id, &spec, &outside)
        .await
        .expect("mirror");
    assert_eq!(created, Mirrored::Created);
    let again = h
        .store
        .mirror_connection(connection_id, &spec, &outside)
        .await
        .expect("mirror");
    assert_eq!(again, Mirrored::Unchanged);
    let connection = h.store.connection(connection_id).await.unwrap().unwrap();
    assert_eq!(connection.resource, Some(outside.clone()));

    let id = Uuid::now_v7();
    let mut touchpoint_spec = touchpoint_spec(Uuid::nil(), "k8s/orders");
    touchpoint_spec.connection_ref = "shop-to-erp".to_owned();
    let external = ExternalTouchpoint {
        id,
        generation: 1,
        spec: touchpoint_spec,
    };
    let orders = resource("orders", true);
    let missing = h
        .store
        .mirror_touchpoint(Uuid::now_v7(), &external, &orders)
        .await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound)),
        "{missing:?}"
    );
    assert_eq!(
        h.store
            .mirror_touchpoint(connection_id, &external, &orders)
            .await
            .expect("mirror"),
        Mirrored::Created
    );
    assert_eq!(
        h.store
            .mirror_touchpoint(connection_id, &external, &orders)
            .await
            .expect("mirror"),
        Mirrored::Unchanged
    );
    let stored = h.store.touchpoint(id).await.unwrap().unwrap();
    assert_eq!(stored.resource, Some(orders));
    assert_eq!(stored.spec.connection_ref, connection_id.to_string());
    assert_eq!(stored.published.unwrap().generation, 1);

    // Handing the resource to the portal flips only the flag.
    let portal = resource("orders", false);
    assert_eq!(
        h.store
            .mirror_touchpoint(connection_id, &external, &portal)
            .await
            .expect("mirror"),
        Mirrored::Updated
    );
    assert_eq!(
        h.store.touchpoint(id).await.unwrap().unwrap().resource,
        Some(portal)
    );

    // What the portal publishes records its resource as managed by the portal.
    let published = h.running_touchpoint("portal/invoices").await;
    assert_eq!(published.resource, None);
    h.store
        .set_touchpoint_resource(published.id, "shop", "invoices-0b7c6a52")
        .await
        .expect("set");
    h.store
        .set_connection_resource(published.connection_id, "shop", "erp-0b7c6a52")
        .await
        .expect("set");
    assert_eq!(
        h.store
            .touchpoint(published.id)
            .await
            .unwrap()
            .unwrap()
            .resource,
        Some(resource("invoices-0b7c6a52", false))
    );
    assert_eq!(
        h.store
            .connection(published.connection_id)
            .await
            .unwrap()
            .unwrap()
            .resource,
        Some(resource("erp-0b7c6a52", false))
    );
}

async fn a_touchpoint_resource_edited_outside_the_portal_replaces_the_draft(h: &Harness) {
    let (id, connection_id) = portal_touchpoint_with_pending_draft(h).await;
    let before = h.store.touchpoint(id).await.unwrap().unwrap();
    let mut edited = before.published.clone().unwrap().spec;
    edited.filter = Some(".edited".to_owned());
    let external = ExternalTouchpoint {
        id,
        generation: 2,
        spec: edited,
    };

    // Managed by the portal: the published spec follows the resource, the draft stays.
    let mirrored = h
        .store
        .mirror_touchpoint(connection_id, &external, &resource("orders", false))
        .await
        .expect("mirror");
    assert_eq!(mirrored, Mirrored::Updated);
    let after = h.store.touchpoint(id).await.unwrap().unwrap();
    assert_eq!(after.spec.filter.as_deref(), Some(".n > 2"));
    assert_eq!(
        after.published.unwrap().spec.filter.as_deref(),
        Some(".edited")
    );

    // Managed outside: the cluster wins, draft included.
    h.store
        .mirror_touchpoint(connection_id, &external, &resource("orders", true))
        .await
        .expect("mirror");
    let after = h.store.touchpoint(id).await.unwrap().unwrap();
    assert_eq!(after.spec.filter.as_deref(), Some(".edited"));
    assert_eq!(after.generation, 2);
    assert_eq!(after.published.unwrap().generation, 2);
}

async fn only_unused_connections_are_deleted(h: &Harness) {
    let used = h.running_touchpoint("used").await;
    assert!(
        !h.store
            .delete_unused_connection(used.connection_id)
            .await
            .expect("delete")
    );
    assert!(
        h.store
            .connection(used.connection_id)
            .await
            .unwrap()
            .is_some()
    );
    h.store
        .delete_touchpoint(used.id)
        .await
        .expect("delete touchpoint");
    assert!(
        h.store
            .delete_unused_connection(used.connection_id)
            .await
            .expect("delete")
    );
    assert!(
        h.store
            .connection(used.connection_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !h.store
            .delete_unused_connection(used.connection_id)
            .await
            .expect("delete again")
    );
}
