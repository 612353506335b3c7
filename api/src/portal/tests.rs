//! The use cases through the GraphQL schema (`schema.execute`), without HTTP: what a change
//! does to the running snapshot, and what a refused change leaves behind.

use std::sync::Arc;

use async_graphql::{Request, Variables};
use hookplane_dataplane::runtime::Runtime;
use hookplane_mapping::{Limits, Sandbox, SandboxConfig};
use hookplane_store::{Store, StoreOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Portal;
use crate::auth::Principal;
use crate::graphql::{ApiContext, HookplaneSchema, schema};

/// The instance owner, as the HTTP layer would attach it after checking a token.
fn owner() -> Principal {
    Principal {
        actor: "token:owner".to_owned(),
        token_id: None,
        owner: true,
        roles: Vec::new(),
        expires_at: None,
    }
}

struct Api {
    schema: HookplaneSchema,
    runtime: Arc<Runtime>,
    _dir: TempDir,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("portal.db").display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        let runtime = Arc::new(Runtime::new(store.clone(), shortcut_only_sandbox()));
        let portal = Portal::new(
            store.clone(),
            Arc::clone(&runtime),
            Arc::new(Notify::new()),
            None,
        );
        let schema = schema(ApiContext {
            portal,
            store,
            shutdown: CancellationToken::new(),
        });
        Self {
            schema,
            runtime,
            _dir: dir,
        }
    }

    async fn execute(&self, query: &str, variables: Value) -> async_graphql::Response {
        self.schema
            .execute(
                Request::new(query)
                    .variables(Variables::from_json(variables))
                    .data(owner()),
            )
            .await
    }

    async fn ok(&self, query: &str, variables: Value) -> Value {
        let response = self.execute(query, variables).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        response.data.into_json().expect("JSON data")
    }

    async fn error_code(&self, query: &str, variables: Value) -> String {
        let response = self.execute(query, variables).await;
        let error = response.errors.first().expect("an error");
        let code = error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .expect("a code");
        match code {
            async_graphql::Value::String(code) => code.clone(),
            other => panic!("a string code, not {other:?}"),
        }
    }

    async fn connection(&self) -> String {
        self.ok(
            r#"mutation { registerUrl(input: { organization: "acme", url: "https://hooks.acme.test" }) { id } }"#,
            json!({}),
        )
        .await;
        let data = self
            .ok(
                r#"mutation { createConnection(input: { name: "Shop to ERP", sourceApp: "generic", destinationApp: "generic" }) { id } }"#,
                json!({}),
            )
            .await;
        data["createConnection"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    async fn touchpoint(&self, connection: &str, endpoint: &str, source: Value) -> Uuid {
        let input = json!({
            "connectionId": connection,
            "name": endpoint,
            "source": source,
            "destination": { "url": "http://127.0.0.1:9/orders" },
            "autoSync": true,
        });
        let data = self
            .ok(
                "mutation($input: CreateTouchpointInput!) { createTouchpoint(input: $input) { id } }",
                json!({ "input": input }),
            )
            .await;
        data["createTouchpoint"]["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .expect("a touchpoint id")
    }

    async fn publish(&self, id: Uuid) -> async_graphql::Response {
        self.execute(
            "mutation($id: ID!) { publishTouchpoint(id: $id) { id publishedGeneration } }",
            json!({ "id": id }),
        )
        .await
    }
}

/// These tests' expressions all run in-process through the shortcut; one that needs an
/// evaluator process would answer `EVALUATOR_UNAVAILABLE` (the e2e tests run the real ones).
fn shortcut_only_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        program: "/nonexistent/hookplane-evaluator".into(),
        args: Vec::new(),
        processes: 1,
        defaults: Limits::default(),
        max: Limits::default(),
    })
}

fn unsigned(endpoint: &str) -> Value {
    json!({ "endpoint": endpoint, "verification": { "scheme": "none" } })
}

#[tokio::test]
async fn publishing_one_touchpoint_recompiles_only_that_one() {
    let api = Api::new().await;
    let connection = api.connection().await;
    let orders = api
        .touchpoint(&connection, "orders", unsigned("orders"))
        .await;
    let refunds = api
        .touchpoint(&connection, "refunds", unsigned("refunds"))
        .await;
    assert!(api.publish(orders).await.errors.is_empty());
    assert!(api.publish(refunds).await.errors.is_empty());
    let before = api.runtime.snapshot();
    let orders_before = Arc::clone(before.touchpoint(orders).expect("orders runs"));

    api.ok(
        r#"mutation($id: ID!) { updateTouchpoint(input: { id: $id, filter: ".total > 0" }) { id } }"#,
        json!({ "id": refunds }),
    )
    .await;
    assert!(api.publish(refunds).await.errors.is_empty());

    let after = api.runtime.snapshot();
    let orders_after = after.touchpoint(orders).expect("orders still runs");
    assert!(
        Arc::ptr_eq(&orders_before, orders_after),
        "publishing refunds left the compiled orders touchpoint as it was"
    );
    let refunds_after = after.touchpoint(refunds).expect("refunds runs");
    assert_eq!(refunds_after.generation, 2);
    assert_eq!(
        refunds_after.touchpoint.spec().filter.as_deref(),
        Some(".total > 0")
    );
}

#[tokio::test]
async fn deleting_a_touchpoint_takes_it_out_of_the_snapshot() {
    let api = Api::new().await;
    let connection = api.connection().await;
    let orders = api
        .touchpoint(&connection, "orders", unsigned("orders"))
        .await;
    assert!(api.publish(orders).await.errors.is_empty());
    assert!(api.runtime.snapshot().touchpoint(orders).is_some());
    api.ok(
        "mutation($id: ID!) { deleteTouchpoint(id: $id) }",
        json!({ "id": orders }),
    )
    .await;
    let snapshot = api.runtime.snapshot();
    assert!(snapshot.touchpoint(orders).is_none());
    assert_eq!(snapshot.touchpoints().count(), 0);
    assert_eq!(snapshot.connections().count(), 0);
}

#[tokio::test]
async fn a_draft_waits_for_its_secret_and_a_refused_publish_changes_nothing() {
    let api = Api::new().await;
    let connection = api.connection().await;
    let draft = api
        .touchpoint(
            &connection,
            "shop",
            json!({ "app": "shopify", "endpoint": "shop" }),
        )
        .await;
    let response = api.publish(draft).await;
    let code = response.errors[0]
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .cloned();
    assert_eq!(
        code,
        Some(async_graphql::Value::from("SECRET_REQUIRED")),
        "{:?}",
        response.errors
    );
    assert!(api.runtime.snapshot().touchpoint(draft).is_none());
    let data = api
        .ok(
            "query($id: ID!) { touchpoint(id: $id) { publishedGeneration } }",
            json!({ "id": draft }),
        )
        .await;
    assert_eq!(data["touchpoint"]["publishedGeneration"], Value::Null);
}

#[tokio::test]
async fn the_mapping_of_a_draft_previews_before_its_secret_exists() {
    let api = Api::new().await;
    let connection = api.connection().await;
    let input = json!({
        "connectionId": connection,
        "name": "shop",
        "source": { "app": "shopify", "endpoint": "shop" },
        "destination": { "url": "http://127.0.0.1:9/orders" },
        "mapping": { "rules": [{ "target": "CardCode", "expr": ".customer.id | tostring" }] },
    });
    let data = api
        .ok(
            "mutation($input: CreateTouchpointInput!) { createTouchpoint(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await;
    let id = data["createTouchpoint"]["id"].clone();
    let data = api
        .ok(
            "mutation($id: ID!, $payload: JSON!) { previewMapping(touchpointId: $id, payload: $payload) { output error } }",
            json!({ "id": id, "payload": { "customer": { "id": 42 } } }),
        )
        .await;
    assert_eq!(
        data["previewMapping"]["output"],
        json!({ "CardCode": "42" })
    );
    assert_eq!(data["previewMapping"]["error"], Value::Null);
}

#[tokio::test]
async fn resync_refuses_unknown_ids_without_touching_known_ones() {
    let api = Api::new().await;
    let code = api
        .error_code(
            "mutation($ids: [ID!]!) { resyncEvents(ids: $ids) { id } }",
            json!({ "ids": [Uuid::now_v7()] }),
        )
        .await;
    assert_eq!(code, "EVENT_NOT_FOUND");
    let code = api
        .error_code(
            "mutation($ids: [ID!]!) { resyncEvents(ids: $ids) { id } }",
            json!({ "ids": [] }),
        )
        .await;
    assert_eq!(code, "INVALID_INPUT");
}

#[tokio::test]
async fn a_sample_too_deep_to_infer_is_refused() {
    let api = Api::new().await;
    api.connection().await; // registers the organization the schema belongs to
    let mut sample = json!(1);
    for _ in 0..100 {
        sample = json!([sample]);
    }
    let code = api
        .error_code(
            "mutation($sample: JSON!) { inferSchema(name: \"deep\", sample: $sample) { name } }",
            json!({ "sample": sample }),
        )
        .await;
    assert_eq!(code, "SAMPLE_TOO_DEEP");
    let shallow = api
        .ok(
            "mutation($sample: JSON!) { inferSchema(name: \"order\", sample: $sample) { name } }",
            json!({ "sample": { "id": 1, "lines": [{ "sku": "A" }] } }),
        )
        .await;
    assert_eq!(shallow["inferSchema"]["name"], "order");
}
