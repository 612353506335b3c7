//! The front through real kube clients over HTTP: apply with conflicts, watches (resumed,
//! streaming, selected, across a cascading delete, ended by a drop), the kubeconfig, and the
//! `Status` answers to bad requests.

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt};
use hookplane_crds::Touchpoint;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::watcher,
};
use serde_json::{Value, json};

use super::FakeKubeApi;

const WAIT: Duration = Duration::from_secs(10);

type Events<K> = Pin<Box<dyn Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send>>;

fn touchpoint(name: &str, display_name: &str) -> Value {
    json!({
        "apiVersion": "hookplane.io/v1alpha1",
        "kind": "Touchpoint",
        "metadata": { "name": name },
        "spec": {
            "connectionRef": "shop-to-erp",
            "name": display_name,
            "source": { "app": "generic", "endpoint": name },
            "destination": { "method": "POST", "url": format!("/{name}") },
            "autoSync": true,
        },
    })
}

async fn apply(
    api: &Api<Touchpoint>,
    manager: &str,
    force: bool,
    object: &Value,
) -> kube::Result<Touchpoint> {
    let mut params = PatchParams::apply(manager);
    params.force = force;
    let name = object["metadata"]["name"]
        .as_str()
        .expect("fixtures have a name");
    api.patch(name, &params, &Patch::Apply(object)).await
}

fn watch<K>(api: Api<K>) -> Events<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, watcher::Config::default()).boxed()
}

async fn next_event<K>(events: &mut Events<K>) -> watcher::Event<K> {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("a watcher event within the wait")
        .expect("the watcher does not end")
        .expect("the watcher does not fail")
}

/// Drains the initial list up to `InitDone`.
async fn initial_objects<K>(events: &mut Events<K>) -> Vec<K> {
    let mut objects = Vec::new();
    loop {
        match next_event(events).await {
            watcher::Event::Init => {}
            watcher::Event::InitApply(object) => objects.push(object),
            watcher::Event::InitDone => return objects,
            _ => panic!("unexpected event before InitDone"),
        }
    }
}

async fn applied<K>(events: &mut Events<K>) -> K {
    match next_event(events).await {
        watcher::Event::Apply(object) => object,
        _ => panic!("expected an Apply event"),
    }
}

async fn deleted<K>(events: &mut Events<K>) -> K {
    match next_event(events).await {
        watcher::Event::Delete(object) => object,
        _ => panic!("expected a Delete event"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_apply_watch_conflict_and_delete() {
    let server = FakeKubeApi::start("shop").await;
    let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
    let created = apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders"),
    )
    .await
    .expect("applying");
    assert_eq!(created.namespace().as_deref(), Some("shop"));

    let mut events = watch(touchpoints.clone());
    let initial = initial_objects(&mut events).await;
    assert_eq!(
        initial
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        ["orders"]
    );

    apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders v2"),
    )
    .await
    .expect("applying a change");
    let changed = applied(&mut events).await;
    assert_eq!(changed.spec.name, "Orders v2");
    assert!(
        changed.metadata.generation > created.metadata.generation,
        "generation bumps on a spec change"
    );

    let conflict = apply(
        &touchpoints,
        "portal",
        false,
        &touchpoint("orders", "Orders v3"),
    )
    .await;
    match conflict {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("expected a 409 conflict, got {other:?}"),
    }

    let fetched = touchpoints.get("orders").await.expect("getting");
    let managers: Vec<_> = fetched
        .managed_fields()
        .iter()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert_eq!(managers, ["kubectl"]);
    assert_eq!(
        fetched.spec.name, "Orders v2",
        "the conflicting apply changed nothing"
    );

    touchpoints
        .delete("orders", &DeleteParams::default())
        .await
        .expect("deleting");
    let gone = deleted(&mut events).await;
    assert_eq!(gone.name_any(), "orders");
    let version = |tp: &Touchpoint| {
        tp.resource_version()
            .and_then(|v| v.parse::<u64>().ok())
            .expect("numeric")
    };
    assert!(
        version(&gone) > version(&changed),
        "a DELETED event has a fresh resourceVersion"
    );
    assert!(
        touchpoints
            .get_opt("orders")
            .await
            .expect("getting")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_watch_sees_objects_created_later() {
    let server = FakeKubeApi::start("shop").await;
    let client = server.client().await;
    let touchpoints: Api<Touchpoint> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut touchpoint_events = watch(touchpoints.clone());
    let mut secret_events = watch(secrets.clone());
    assert!(initial_objects(&mut touchpoint_events).await.is_empty());
    assert!(initial_objects(&mut secret_events).await.is_empty());

    let mut secret = Secret::default();
    secret.metadata.name = Some("shop-signing".into());
    secret.data = Some([("secret".to_owned(), ByteString(b"s3cret".to_vec()))].into());
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating a secret");
    let seen = applied(&mut secret_events).await;
    assert_eq!(seen.name_any(), "shop-signing");
    assert_eq!(seen.data, secret.data);

    apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders"),
    )
    .await
    .expect("applying");
    assert_eq!(applied(&mut touchpoint_events).await.name_any(), "orders");

    let status = json!({ "status": { "endpointUrl": "http://hooks/shop/orders" } });
    touchpoints
        .patch_status("orders", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patching the status");
    let with_status = applied(&mut touchpoint_events).await;
    let endpoint = with_status.status.and_then(|status| status.endpoint_url);
    assert_eq!(endpoint.as_deref(), Some("http://hooks/shop/orders"));

    secrets
        .delete("shop-signing", &DeleteParams::default())
        .await
        .expect("deleting the secret");
    assert_eq!(deleted(&mut secret_events).await.name_any(), "shop-signing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_cascading_delete_is_watched() {
    let server = FakeKubeApi::start("shop").await;
    let client = server.client().await;
    let touchpoints: Api<Touchpoint> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let owner = apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders"),
    )
    .await
    .expect("applying");
    let mut secret = Secret::default();
    secret.metadata.name = Some("orders-signing".into());
    secret.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).expect("a uid")]);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating an owned secret");
    let mut secret_events = watch(secrets.clone());
    assert_eq!(initial_objects(&mut secret_events).await.len(), 1);

    touchpoints
        .delete("orders", &DeleteParams::default())
        .await
        .expect("deleting the owner");
    assert_eq!(
        deleted(&mut secret_events).await.name_any(),
        "orders-signing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_drop_ends_watches() {
    let server = FakeKubeApi::start("shop").await;
    let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
    let events = touchpoints
        .watch(&WatchParams::default(), "0")
        .await
        .expect("starting a watch");
    drop(server);
    tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
        .await
        .expect("the watch ends when the server is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_kubeconfig_reaches_the_server() {
    let server = FakeKubeApi::start("tenant-a").await;
    assert!(
        server.url().starts_with("http://127.0.0.1:"),
        "{}",
        server.url()
    );
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("reading the kubeconfig");
    let cluster = kubeconfig.clusters[0].cluster.as_ref().expect("a cluster");
    assert_eq!(cluster.server.as_deref(), Some(server.url()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config from the kubeconfig");
    let client = Client::try_from(config).expect("a client from the kubeconfig");
    assert_eq!(client.default_namespace(), server.namespace());

    let touchpoints: Api<Touchpoint> = Api::default_namespaced(client);
    apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders"),
    )
    .await
    .expect("applying");
    let listed = touchpoints
        .list(&Default::default())
        .await
        .expect("listing");
    assert_eq!(listed.items.len(), 1);
    let other: Api<Touchpoint> = Api::default_namespaced(server.client().await);
    assert_eq!(
        other
            .get("orders")
            .await
            .expect("getting")
            .namespace()
            .as_deref(),
        Some("tenant-a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_watch_resumes_after_a_resource_version_and_times_out() {
    let server = FakeKubeApi::start("shop").await;
    let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
    apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders"),
    )
    .await
    .expect("applying orders");
    let refunds = apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("refunds", "Refunds"),
    )
    .await
    .expect("applying refunds");
    apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("orders", "Orders v2"),
    )
    .await
    .expect("changing orders");
    touchpoints
        .delete("refunds", &DeleteParams::default())
        .await
        .expect("deleting refunds");

    let since = refunds.resource_version().expect("a resourceVersion");
    let resumed = collect_watch(&touchpoints, &since).await;
    assert_eq!(resumed, ["MODIFIED orders", "DELETED refunds"]);

    let from_start = collect_watch(&touchpoints, "0").await;
    assert_eq!(from_start, ["ADDED orders"]);

    let list = touchpoints
        .list(&Default::default())
        .await
        .expect("listing");
    let list_version = list
        .metadata
        .resource_version
        .expect("a list resourceVersion");
    assert!(
        collect_watch(&touchpoints, &list_version).await.is_empty(),
        "nothing after the list's version"
    );
}

/// The events of a one-second watch from `version`, as `TYPE name`.
async fn collect_watch(api: &Api<Touchpoint>, version: &str) -> Vec<String> {
    let events = api
        .watch(&WatchParams::default().timeout(1), version)
        .await
        .expect("starting a watch");
    let events = tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
        .await
        .expect("the watch ends after its timeout");
    events
        .into_iter()
        .map(|event| match event.expect("a watch event") {
            WatchEvent::Added(tp) => format!("ADDED {}", tp.name_any()),
            WatchEvent::Modified(tp) => format!("MODIFIED {}", tp.name_any()),
            WatchEvent::Deleted(tp) => format!("DELETED {}", tp.name_any()),
            WatchEvent::Bookmark(_) => "BOOKMARK".to_owned(),
            WatchEvent::Error(status) => format!("ERROR {status:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_streaming_list_and_label_selector() {
    let server = FakeKubeApi::start("shop").await;
    let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
    let mut labelled = touchpoint("orders", "Orders");
    labelled["metadata"]["labels"] = json!({ "tier": "gold" });
    apply(&touchpoints, "kubectl", true, &labelled)
        .await
        .expect("applying orders");
    apply(
        &touchpoints,
        "kubectl",
        true,
        &touchpoint("refunds", "Refunds"),
    )
    .await
    .expect("applying refunds");

    let config = watcher::Config::default()
        .streaming_lists()
        .labels("tier=gold");
    let mut events: Events<Touchpoint> = watcher(touchpoints.clone(), config).boxed();
    let initial = initial_objects(&mut events).await;
    assert_eq!(
        initial
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        ["orders"]
    );

    labelled["metadata"]["labels"] = json!({ "tier": "silver" });
    apply(&touchpoints, "kubectl", true, &labelled)
        .await
        .expect("relabelling orders");
    assert_eq!(
        deleted(&mut events).await.name_any(),
        "orders",
        "leaving the selector is a delete"
    );

    let mut refunds = touchpoint("refunds", "Refunds");
    refunds["metadata"]["labels"] = json!({ "tier": "gold" });
    apply(&touchpoints, "kubectl", true, &refunds)
        .await
        .expect("relabelling refunds");
    assert_eq!(
        applied(&mut events).await.name_any(),
        "refunds",
        "entering the selector is an add"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_answers_bad_requests_with_a_status() {
    let server = FakeKubeApi::start("shop").await;
    let client = server.client().await;
    let get = |path: &str| http_request("GET", path, Vec::new());
    let (code, body) = send(&client, get("/not/a/kubernetes/path")).await;
    assert_eq!(
        (code, body["kind"].as_str(), body["code"].as_u64()),
        (404, Some("Status"), Some(404))
    );

    let (code, body) = send(
        &client,
        get("/apis/hookplane.io/v1alpha1/namespaces/shop/widgets"),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));

    let post = http_request(
        "POST",
        "/apis/hookplane.io/v1alpha1/namespaces/shop/touchpoints",
        b"{not json".to_vec(),
    );
    let (code, body) = send(&client, post).await;
    assert_eq!((code, body["kind"].as_str()), (400, Some("Status")));

    let watch = get(
        "/apis/hookplane.io/v1alpha1/namespaces/shop/touchpoints?watch=true&resourceVersion=abc",
    );
    assert_eq!(send(&client, watch).await.0, 400);
}

fn http_request(
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> axum::http::Request<kube::client::Body> {
    axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("a valid request")
}

async fn send(client: &Client, request: axum::http::Request<kube::client::Body>) -> (u16, Value) {
    let response = client.send(request).await.expect("an answer");
    let code = response.status().as_u16();
    let body = response.into_body().collect_bytes().await.expect("a body");
    (code, serde_json::from_slice(&body).expect("a JSON body"))
}
