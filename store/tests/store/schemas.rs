//! JSON Schemas of source entities: put (insert or replace), read, list, delete.

use chrono::{SubsecRound, TimeDelta, Utc};
use hookplane_store::{ManualClock, StoreOptions};
use serde_json::json;

use crate::common::{Harness, backend_tests};

backend_tests!(schemas_are_stored_replaced_and_deleted);

async fn schemas_are_stored_replaced_and_deleted(h: &Harness) {
    let start = Utc::now().trunc_subsecs(6);
    let clock = ManualClock::new(start);
    let store = h
        .store_with(StoreOptions {
            clock: clock.clone().into(),
            ..StoreOptions::default()
        })
        .await;
    let org = crate::common::organization(&store).await;
    let other = store
        .create_organization("other", "https://other.test")
        .await
        .expect("another organization")
        .id;
    assert!(store.schemas(org).await.expect("list").is_empty());
    assert_eq!(store.schema(org, "Order").await.expect("read"), None);

    let order_v1 = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "integer"}}
    });
    let order = store
        .put_schema(org, "Order", order_v1.clone())
        .await
        .expect("put");
    assert_eq!(order.name, "Order");
    assert_eq!(order.document, order_v1);
    assert_eq!((order.created_at, order.updated_at), (start, start));
    let customer = store
        .put_schema(org, "Customer", json!({"type": "object"}))
        .await
        .expect("put");

    clock.advance(TimeDelta::minutes(5));
    let order_v2 = json!({"type": "object", "required": ["id", "email"]});
    let replaced = store
        .put_schema(org, "Order", order_v2.clone())
        .await
        .expect("replace");
    assert_eq!(replaced.id, order.id, "same schema, new document");
    assert_eq!(replaced.document, order_v2);
    assert_eq!(replaced.created_at, start);
    assert_eq!(replaced.updated_at, start + TimeDelta::minutes(5));
    assert_eq!(
        store.schema(org, "Order").await.expect("read"),
        Some(replaced.clone())
    );
    assert_eq!(
        store.schema(org, "order").await.expect("read"),
        None,
        "exact names"
    );
    assert_eq!(
        store.schemas(org).await.expect("list"),
        [customer.clone(), replaced],
        "by name"
    );

    // Another organization's schema of the same name is its own: neither replaces nor sees
    // the other.
    let theirs = store
        .put_schema(other, "Order", json!({"type": "array"}))
        .await
        .expect("their Order");
    assert_ne!(theirs.id, customer.id);
    assert_eq!(
        store.schemas(other).await.expect("list"),
        std::slice::from_ref(&theirs)
    );
    assert!(
        !store
            .delete_schema(other, "Customer")
            .await
            .expect("not theirs")
    );

    assert!(store.delete_schema(org, "Order").await.expect("delete"));
    assert!(!store.delete_schema(org, "Order").await.expect("gone"));
    assert_eq!(store.schemas(org).await.expect("list"), [customer]);
    assert_eq!(store.schemas(other).await.expect("list"), [theirs]);
    store.close().await;
}
