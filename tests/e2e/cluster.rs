//! `hookplane api --kubernetes`: the portal model and the cluster's resources in step, against
//! a stateful in-memory Kubernetes API over real HTTP (list, watch, server-side apply with
//! managed fields, delete), on both backends.

use std::time::Duration;

use hookplane_crds::{
    Connection, Touchpoint,
    identity::{ID_ANNOTATION, PUBLISHED_GENERATION_ANNOTATION},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    flows::{LOG_PAGE, PUBLISH, SET_AUTO_SYNC, connection},
    on_both_backends,
    support::{Backend, Server, eventually, gql_error_code, gql_ok, kube_api::FakeKubeApi},
};

pub(crate) const NAMESPACE: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);

const TOUCHPOINT: &str = r#"
query($id: ID!) {
  touchpoint(id: $id) {
    id name endpoint autoSync generation publishedGeneration managedBy
    resource { namespace name }
    spec { filter }
    publishedSpec { filter }
  }
}"#;

const CONNECTIONS: &str = r#"
{ connections { id name managedBy resource { namespace name } touchpoints { id name managedBy } } }"#;

const CREATE_SIGNED_TOUCHPOINT: &str = r#"
mutation($connectionId: ID!) {
  createTouchpoint(input: {
    connectionId: $connectionId, name: "Orders to ERP", autoSync: true,
    source: { app: "generic", endpoint: "orders",
              verification: { scheme: "hmac", secret: "s3cr3t-value", header: "X-Signature" } },
    destination: { url: "http://127.0.0.1:9/orders" }
  }) { id }
}"#;

const UPDATE_FILTER: &str = r#"
mutation($id: ID!, $filter: String!) { updateTouchpoint(input: { id: $id, filter: $filter }) { id generation } }"#;

const DELETE: &str = r#"mutation($id: ID!) { deleteTouchpoint(id: $id) }"#;

on_both_backends!(
    publishing_applies_the_resources_and_secrets,
    kubectl_applied_resources_appear_read_only_and_follow_the_cluster,
    a_portal_touchpoint_edited_with_kubectl_becomes_read_only,
);

/// The fake cluster and `hookplane api --kubernetes` on it, mirrored and ready.
pub(crate) async fn start(backend: &Backend) -> (FakeKubeApi, Server) {
    let cluster = FakeKubeApi::start(NAMESPACE).await;
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let server = Server::start_role_with_env(
        backend,
        "api",
        "Hookplane API listening on http://",
        &["--kubernetes"],
        &[("KUBECONFIG", kubeconfig.as_str())],
    )
    .await;
    let ready = server.url("/readyz");
    eventually(WAIT, "the API to mirror the cluster and be ready", || {
        let ready = ready.clone();
        async move {
            let response = reqwest::get(&ready).await.ok()?;
            response.status().is_success().then_some(())
        }
    })
    .await;
    (cluster, server)
}

/// Create the signed draft of [`CREATE_SIGNED_TOUCHPOINT`]; returns its id.
async fn signed_touchpoint(server: &Server, connection_id: &str) -> String {
    let data = gql_ok(
        server,
        CREATE_SIGNED_TOUCHPOINT,
        json!({ "connectionId": connection_id }),
    )
    .await;
    data["createTouchpoint"]["id"].as_str().unwrap().to_owned()
}

pub(crate) fn kubectl() -> PatchParams {
    PatchParams::apply("kubectl").force()
}

async fn touchpoint(server: &Server, id: &str) -> Value {
    gql_ok(server, TOUCHPOINT, json!({ "id": id })).await["touchpoint"].clone()
}

async fn publishing_applies_the_resources_and_secrets(backend: Backend) {
    let (cluster, server) = start(&backend).await;
    let client = cluster.client().await;
    let touchpoints: Api<Touchpoint> = Api::namespaced(client.clone(), NAMESPACE);
    let connections: Api<Connection> = Api::namespaced(client.clone(), NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client, NAMESPACE);

    let connection_id = connection(&server).await;
    let id = signed_touchpoint(&server, &connection_id).await;

    // The write-only secret went to a Kubernetes Secret, and nothing is applied yet.
    let listed = secrets.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "one Secret for the one secret value");
    let secret = listed.into_iter().next().unwrap();
    let secret_name = secret.metadata.name.clone().unwrap();
    let values: Vec<Vec<u8>> = secret.data.unwrap().into_values().map(|v| v.0).collect();
    assert_eq!(values, [b"s3cr3t-value".to_vec()]);
    assert!(
        touchpoints
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let draft = touchpoint(&server, &id).await;
    assert_eq!(draft["resource"], Value::Null);
    assert_eq!(draft["managedBy"], "PORTAL");

    // Publishing applies the Connection and the Touchpoint under the portal's ids.
    gql_ok(&server, PUBLISH, json!({ "id": id })).await;
    let published = touchpoint(&server, &id).await;
    let name = published["resource"]["name"]
        .as_str()
        .expect("a resource name")
        .to_owned();
    assert!(name.starts_with("orders-to-erp-"), "{name}");
    assert_eq!(published["resource"]["namespace"], NAMESPACE);
    assert_eq!(published["managedBy"], "PORTAL");
    let resource = touchpoints.get(&name).await.expect("the Touchpoint exists");
    let annotations = resource.metadata.annotations.clone().unwrap();
    assert_eq!(annotations[ID_ANNOTATION], id);
    assert_eq!(annotations[PUBLISHED_GENERATION_ANNOTATION], "1");
    assert!(resource.spec.auto_sync);
    let verification = resource.spec.source.verification.clone().unwrap();
    assert_eq!(verification.secret_ref.unwrap().name, secret_name);
    let connection_name = resource.spec.connection_ref.clone();
    let applied = connections
        .get(&connection_name)
        .await
        .expect("the Connection exists");
    assert_eq!(
        applied.metadata.annotations.unwrap()[ID_ANNOTATION],
        connection_id
    );
    assert_eq!(applied.spec.name, "Shop to ERP");
    let listed = gql_ok(&server, CONNECTIONS, json!({})).await;
    assert_eq!(
        listed["connections"][0]["resource"]["name"],
        connection_name.as_str()
    );

    // Auto-sync off is written to the resource, at the same published generation.
    gql_ok(
        &server,
        SET_AUTO_SYNC,
        json!({ "id": id, "enabled": false }),
    )
    .await;
    let switched = touchpoints.get(&name).await.unwrap();
    assert!(!switched.spec.auto_sync);
    assert_eq!(
        switched.metadata.annotations.unwrap()[PUBLISHED_GENERATION_ANNOTATION],
        "1"
    );

    // A draft edit stays in the portal until it is published.
    gql_ok(
        &server,
        UPDATE_FILTER,
        json!({ "id": id, "filter": ".test != true" }),
    )
    .await;
    assert_eq!(touchpoints.get(&name).await.unwrap().spec.filter, None);
    gql_ok(&server, PUBLISH, json!({ "id": id })).await;
    let republished = touchpoints.get(&name).await.unwrap();
    assert_eq!(republished.spec.filter.as_deref(), Some(".test != true"));
    assert_eq!(
        republished.metadata.annotations.unwrap()[PUBLISHED_GENERATION_ANNOTATION],
        "2"
    );
    assert!(!republished.spec.auto_sync, "publishing keeps the switch");

    // The mirror agrees with what the portal published: nothing is marked external, and the
    // published spec did not move.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mirrored = touchpoint(&server, &id).await;
    assert_eq!(mirrored["managedBy"], "PORTAL");
    assert_eq!(mirrored["publishedGeneration"], 2);
    assert_eq!(mirrored["publishedSpec"]["filter"], ".test != true");

    // Deleting in the portal deletes the resource.
    gql_ok(&server, DELETE, json!({ "id": id })).await;
    assert!(touchpoints.get_opt(&name).await.unwrap().is_none());
    assert_eq!(touchpoint(&server, &id).await, Value::Null);
    server.stop().await;
}

pub(crate) fn kubectl_touchpoint(name: &str, endpoint: &str, filter: Option<&str>) -> Value {
    let mut touchpoint = json!({
        "apiVersion": "hookplane.io/v1alpha1",
        "kind": "Touchpoint",
        "metadata": { "name": name, "namespace": NAMESPACE },
        "spec": {
            "connectionRef": "erp",
            "name": "GitOps orders",
            "source": { "app": "generic", "endpoint": endpoint, "verification": { "scheme": "none" } },
            "destination": { "url": "http://127.0.0.1:9/orders" },
            "autoSync": true
        }
    });
    if let Some(filter) = filter {
        touchpoint["spec"]["filter"] = json!(filter);
    }
    touchpoint
}

async fn kubectl_applied_resources_appear_read_only_and_follow_the_cluster(backend: Backend) {
    let (cluster, server) = start(&backend).await;
    let client = cluster.client().await;
    let touchpoints: Api<Touchpoint> = Api::namespaced(client.clone(), NAMESPACE);
    let connections: Api<Connection> = Api::namespaced(client, NAMESPACE);

    let erp = json!({
        "apiVersion": "hookplane.io/v1alpha1",
        "kind": "Connection",
        "metadata": { "name": "erp", "namespace": NAMESPACE },
        "spec": { "name": "ERP", "sourceApp": "generic", "destinationApp": "generic" }
    });
    connections
        .patch("erp", &kubectl(), &Patch::Apply(&erp))
        .await
        .expect("apply Connection");
    let applied = touchpoints
        .patch(
            "orders",
            &kubectl(),
            &Patch::Apply(kubectl_touchpoint("orders", "gitops/orders", None)),
        )
        .await
        .expect("apply Touchpoint");
    let uid = applied.metadata.uid.clone().expect("a uid");

    // It appears in the portal under its uid, managed outside the portal.
    let mirrored = eventually(WAIT, "the kubectl touchpoint in the portal", || {
        let server = &server;
        let uid = uid.clone();
        async move {
            let found = touchpoint(server, &uid).await;
            (!found.is_null()).then_some(found)
        }
    })
    .await;
    assert_eq!(mirrored["managedBy"], "EXTERNAL");
    assert_eq!(
        mirrored["resource"],
        json!({ "namespace": NAMESPACE, "name": "orders" })
    );
    assert_eq!(mirrored["endpoint"], "gitops/orders");
    assert_eq!(mirrored["publishedGeneration"], 1);
    let listed = gql_ok(&server, CONNECTIONS, json!({})).await;
    let erp = &listed["connections"][0];
    assert_eq!(erp["name"], "ERP");
    assert_eq!(erp["managedBy"], "EXTERNAL");
    assert_eq!(erp["touchpoints"][0]["id"], uid.as_str());

    // The portal refuses to change it, and the resource stays as applied.
    for (query, variables) in [
        (PUBLISH, json!({ "id": uid })),
        (SET_AUTO_SYNC, json!({ "id": uid, "enabled": false })),
        (UPDATE_FILTER, json!({ "id": uid, "filter": ".x" })),
        (DELETE, json!({ "id": uid })),
    ] {
        assert_eq!(
            gql_error_code(&server, query, variables).await,
            "MANAGED_OUTSIDE_PORTAL"
        );
    }
    let unchanged = touchpoints.get("orders").await.unwrap();
    assert_eq!(unchanged.metadata.generation, Some(1));
    assert!(unchanged.spec.auto_sync);

    // A kubectl change is followed, and written to the touchpoint's log.
    touchpoints
        .patch(
            "orders",
            &kubectl(),
            &Patch::Apply(kubectl_touchpoint(
                "orders",
                "gitops/orders",
                Some(".total > 0"),
            )),
        )
        .await
        .expect("apply change");
    eventually(WAIT, "the kubectl change in the portal", || {
        let server = &server;
        let uid = uid.clone();
        async move {
            let found = touchpoint(server, &uid).await;
            (found["publishedSpec"]["filter"] == ".total > 0").then_some(())
        }
    })
    .await;
    let changed = touchpoint(&server, &uid).await;
    assert_eq!(changed["publishedGeneration"], 2);
    assert_eq!(
        changed["spec"]["filter"], ".total > 0",
        "the draft follows the cluster"
    );
    // The log entry is written just after the change it reports: wait for it.
    eventually(WAIT, "the kubectl change in the touchpoint's log", || {
        let server = &server;
        let uid = uid.clone();
        async move {
            let logs = gql_ok(server, LOG_PAGE, json!({ "id": uid })).await;
            let logged = logs["logBucket"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["node"]["message"].as_str())
                .any(|m| m.contains("changed in the cluster") && m.contains("generation 2"));
            logged.then_some(())
        }
    })
    .await;

    // A portal touchpoint cannot take an endpoint a kubectl one holds.
    let portal_connection = connection(&server).await;
    let clash = gql_error_code(
        &server,
        r#"mutation($c: ID!) { createTouchpoint(input: { connectionId: $c, name: "x",
             source: { app: "generic", endpoint: "gitops/orders", verification: { scheme: "none" } },
             destination: { url: "http://127.0.0.1:9/x" } }) { id } }"#,
        json!({ "c": portal_connection }),
    )
    .await;
    assert_eq!(clash, "ENDPOINT_TAKEN");

    // A copy that carries its id (a copied hookplane.io/id) does not take its place.
    let mut copy = kubectl_touchpoint("orders-copy", "gitops/copy", None);
    copy["metadata"]["annotations"] = json!({ ID_ANNOTATION: uid });
    touchpoints
        .patch("orders-copy", &kubectl(), &Patch::Apply(&copy))
        .await
        .expect("apply the copy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = touchpoint(&server, &uid).await;
    assert_eq!(kept["resource"]["name"], "orders");
    assert_eq!(kept["endpoint"], "gitops/orders");
    touchpoints
        .delete("orders-copy", &DeleteParams::default())
        .await
        .expect("delete the copy");

    // kubectl delete removes it from the portal.
    touchpoints
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the deleted touchpoint to leave the portal", || {
        let server = &server;
        let uid = uid.clone();
        async move { touchpoint(server, &uid).await.is_null().then_some(()) }
    })
    .await;

    // Each mirrored write is counted.
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"hookplane_cluster_mirrored_total{kind="connection",result="created"} 1"#,
        r#"hookplane_cluster_mirrored_total{kind="touchpoint",result="created"} 1"#,
        r#"hookplane_cluster_mirrored_total{kind="touchpoint",result="updated"} 1"#,
        r#"hookplane_cluster_mirrored_total{kind="touchpoint",result="deleted"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    server.stop().await;
}

async fn a_portal_touchpoint_edited_with_kubectl_becomes_read_only(backend: Backend) {
    let (cluster, server) = start(&backend).await;
    let touchpoints: Api<Touchpoint> = Api::namespaced(cluster.client().await, NAMESPACE);
    let connection_id = connection(&server).await;
    let id = signed_touchpoint(&server, &connection_id).await;
    gql_ok(&server, PUBLISH, json!({ "id": id })).await;
    let name = touchpoint(&server, &id).await["resource"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone takes spec.filter over with kubectl.
    let edit = json!({
        "apiVersion": "hookplane.io/v1alpha1",
        "kind": "Touchpoint",
        "metadata": { "name": name, "namespace": NAMESPACE },
        "spec": { "filter": ".edited" }
    });
    touchpoints
        .patch(
            &name,
            &PatchParams::apply("kubectl-edit").force(),
            &Patch::Apply(&edit),
        )
        .await
        .expect("kubectl edit");
    let edited = eventually(WAIT, "the edit in the portal", || {
        let server = &server;
        let id = id.clone();
        async move {
            let found = touchpoint(server, &id).await;
            (found["managedBy"] == "EXTERNAL").then_some(found)
        }
    })
    .await;
    assert_eq!(edited["publishedSpec"]["filter"], ".edited");
    assert_eq!(edited["spec"]["filter"], ".edited");
    assert_eq!(
        edited["publishedGeneration"], 1,
        "the portal's generation number stays"
    );
    assert_eq!(
        gql_error_code(&server, PUBLISH, json!({ "id": id })).await,
        "MANAGED_OUTSIDE_PORTAL"
    );
    let resource = touchpoints.get(&name).await.unwrap();
    assert_eq!(
        resource.spec.filter.as_deref(),
        Some(".edited"),
        "the portal did not write over it"
    );
    server.stop().await;
}

on_both_backends!(
    a_cluster_that_cannot_be_reached_changes_nothing,
    what_the_portal_publishes_the_crds_admit,
);

async fn a_cluster_that_cannot_be_reached_changes_nothing(backend: Backend) {
    let (cluster, server) = start(&backend).await;
    let connection_id = connection(&server).await;
    let id = crate::flows::touchpoint(
        &server,
        &connection_id,
        json!({
            "name": "Unsigned",
            "source": { "endpoint": "unsigned", "verification": { "scheme": "none" } },
            "destination": { "url": "http://127.0.0.1:9/x" },
        }),
    )
    .await;
    drop(cluster);

    assert_eq!(
        gql_error_code(&server, PUBLISH, json!({ "id": id })).await,
        "KUBERNETES_ERROR"
    );
    let after = touchpoint(&server, &id).await;
    assert_eq!(after["publishedGeneration"], Value::Null);
    assert_eq!(after["resource"], Value::Null);

    // An edit that brings a secret is refused before the draft changes.
    let edit = gql_error_code(
        &server,
        r#"mutation($id: ID!) { updateTouchpoint(input: { id: $id, source: {
             endpoint: "unsigned", verification: { scheme: "hmac", secret: "new", header: "X-Sig" } } }) { id } }"#,
        json!({ "id": id }),
    )
    .await;
    assert_eq!(edit, "KUBERNETES_ERROR");
    assert_eq!(touchpoint(&server, &id).await["generation"], 1);

    // A new touchpoint whose secret cannot be written is not created either.
    assert_eq!(
        gql_error_code(
            &server,
            CREATE_SIGNED_TOUCHPOINT,
            json!({ "connectionId": connection_id })
        )
        .await,
        "KUBERNETES_ERROR"
    );
    let listed = gql_ok(&server, CONNECTIONS, json!({})).await;
    let names: Vec<&str> = listed["connections"][0]["touchpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Unsigned"]);
    server.stop().await;
}

/// The API server would accept what the portal publishes: every option the wizard offers,
/// applied and read back, passes the generated CRDs' schema and CEL rules.
async fn what_the_portal_publishes_the_crds_admit(backend: Backend) {
    let (cluster, server) = start(&backend).await;
    let client = cluster.client().await;
    gql_ok(
        &server,
        crate::flows::REGISTER_URL,
        json!({ "org": NAMESPACE, "url": "https://hooks.shop.test" }),
    )
    .await;
    let data = gql_ok(
        &server,
        r#"mutation {
          createConnection(input: {
            name: "Shopify to SAP Business One (EU)", sourceApp: "shopify", destinationApp: "generic",
            destinationBaseUrl: "https://erp.example.com/b1s/v1", showInSyncPanel: false,
            credentials: [{ name: "api-key", header: "X-Api-Key", prefix: "Key ", value: "k-1" }],
            limits: { maxConcurrency: 4, requestsPerSecond: 20 }
          }) { id }
        }"#,
        json!({}),
    )
    .await;
    let connection_id = data["createConnection"]["id"].as_str().unwrap().to_owned();
    gql_ok(
        &server,
        r#"mutation { inferSchema(name: "shopify.order", sample: { id: 1, total_price: "9.50" }) { name } }"#,
        json!({}),
    )
    .await;
    let id = crate::flows::touchpoint(
        &server,
        &connection_id,
        json!({
            "name": "Orders → Sales Orders (B1)",
            "helpUrl": "https://wiki.example.com/orders",
            "showInAgent": false,
            "autoSync": true,
            "source": {
                "app": "shopify", "endpoint": "shopify/orders-create", "schema": "shopify.order",
                "verification": { "secret": "shpss_1", "previousSecret": "shpss_0" }
            },
            "destination": {
                "method": "PUT", "url": "Orders('{.DocNum}')", "format": "XML", "xmlRoot": "Order",
                "headers": [{ "name": "X-Source", "value": "hookplane" }]
            },
            "mapping": { "rules": [
                { "target": "DocNum", "expr": ".id" },
                { "target": "DocTotal", "expr": ".total_price | tonumber" }
            ] },
            "filter": ".test != true",
            "delivery": { "maxAttempts": 8, "initialBackoffMs": 500, "maxBackoffMs": 60000,
                          "timeoutSeconds": 20, "retryClientErrors": true },
            "ordering": { "key": ".id", "onFailure": "PARK" }
        }),
    )
    .await;
    gql_ok(&server, PUBLISH, json!({ "id": id })).await;
    let published = touchpoint(&server, &id).await;
    let name = published["resource"]["name"].as_str().unwrap().to_owned();

    let touchpoints: Api<Touchpoint> = Api::namespaced(client.clone(), NAMESPACE);
    let connections: Api<Connection> = Api::namespaced(client, NAMESPACE);
    let touchpoint_object = serde_json::to_value(touchpoints.get(&name).await.unwrap()).unwrap();
    let connection_name = touchpoint_object["spec"]["connectionRef"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(connection_name.len() <= 44, "{connection_name}");
    let connection_object =
        serde_json::to_value(connections.get(&connection_name).await.unwrap()).unwrap();
    for object in [&touchpoint_object, &connection_object] {
        let errors = hookplane_admission::admit(object, None);
        assert!(errors.is_empty(), "{errors:#?}\n{object:#}");
    }
    // Publishing again is an update the CEL transition rules accept.
    gql_ok(
        &server,
        UPDATE_FILTER,
        json!({ "id": id, "filter": ".total_price != \"0\"" }),
    )
    .await;
    gql_ok(&server, PUBLISH, json!({ "id": id })).await;
    let updated = serde_json::to_value(touchpoints.get(&name).await.unwrap()).unwrap();
    let errors = hookplane_admission::admit(&updated, Some(&touchpoint_object));
    assert!(errors.is_empty(), "{errors:#?}");
    server.stop().await;
}
