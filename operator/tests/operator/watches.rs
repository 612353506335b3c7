//! Which change wakes which reconcile, through the real controllers and their watches.
//!
//! The controllers run against a scripted API server (tower-test): each LIST answers a fixed
//! list, each WATCH a stream the test feeds. The reconcilers only record what woke them.

use std::{
    collections::{BTreeSet, HashMap},
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use hookplane_crds::{Connection, Touchpoint};
use hookplane_operator::{
    controller::{Scoped, connection_controller, touchpoint_controller},
    wakeups::Wake,
    watches,
};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Client, ResourceExt,
    runtime::{controller::Action, reflector::Store},
};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A scripted API server: a list and a feed of watch events per resource (by plural).
struct ApiServer {
    lists: HashMap<&'static str, Vec<Value>>,
    feeds: HashMap<&'static str, broadcast::Sender<Value>>,
    /// Secret requests: (label selector given, metadata only asked for).
    secret_requests: Mutex<Vec<(bool, bool)>>,
}

const RESOURCES: [&str; 8] = [
    "connections",
    "touchpoints",
    "secrets",
    "configmaps",
    "services",
    "deployments",
    "poddisruptionbudgets",
    "ingresses",
];

impl ApiServer {
    fn new(lists: HashMap<&'static str, Vec<Value>>) -> (Client, Arc<Self>) {
        let feeds = RESOURCES
            .iter()
            .map(|r| (*r, broadcast::channel(64).0))
            .collect();
        let server = Arc::new(Self {
            lists,
            feeds,
            secret_requests: Mutex::default(),
        });
        let (service, mut handle) =
            tower_test::mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let serving = server.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                respond.send_response(serving.answer(&request));
            }
        });
        (Client::new(service, "default"), server)
    }

    fn answer(&self, request: &Request<kube::client::Body>) -> Response<Body> {
        let resource = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let resource = RESOURCES
            .iter()
            .find(|r| **r == resource)
            .unwrap_or_else(|| panic!("unexpected request {}", request.uri()));
        if *resource == "secrets" {
            let query = request.uri().query().unwrap_or_default();
            let accept = request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .unwrap_or_default();
            self.secret_requests.lock().unwrap().push((
                query.contains("labelSelector"),
                accept.contains("as=PartialObjectMetadata"),
            ));
        }
        if request
            .uri()
            .query()
            .unwrap_or_default()
            .contains("watch=true")
        {
            let events = BroadcastStream::new(self.feeds[resource].subscribe()).filter_map(
                |event| async move {
                    event
                        .ok()
                        .map(|e| Ok(Frame::data(Bytes::from(format!("{e}\n")))))
                },
            );
            Response::new(StreamBody::new(events).boxed_unsync())
        } else {
            let list = json!({
                "kind": "List", "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": self.lists.get(resource).cloned().unwrap_or_default(),
            });
            let body = http_body_util::Full::new(Bytes::from(list.to_string()));
            Response::new(body.map_err(|never| match never {}).boxed_unsync())
        }
    }

    fn send(&self, resource: &str, kind: &str, object: Value) {
        let _ = self.feeds[resource].send(json!({"type": kind, "object": object}));
    }
}

fn connection(name: &str, credential_secret: Option<&str>) -> Value {
    let credentials: Vec<Value> = credential_secret
        .map(|s| json!({"name": "token", "header": "Authorization", "secretKeyRef": {"name": s, "key": "token"}}))
        .into_iter()
        .collect();
    json!({
        "apiVersion": "hookplane.io/v1alpha1", "kind": "Connection",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": {"name": name, "sourceApp": "generic", "destinationApp": "generic", "credentials": credentials}
    })
}

fn touchpoint(name: &str, namespace: &str, connection: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "hookplane.io/v1alpha1", "kind": "Touchpoint",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "resourceVersion": "2"},
        "spec": {
            "connectionRef": connection, "name": name,
            "source": {"endpoint": name, "verification": {"scheme": "hmac", "secretRef": {"name": secret, "key": "k"}}},
            "destination": {"url": "https://erp.example.com/"}
        }
    })
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "shop", "resourceVersion": "3"}})
}

/// The names a recorder saw, once `expected` all appeared (or 5 s passed) and a little longer
/// for anything unexpected; the recorder is emptied.
async fn woken(seen: &Mutex<BTreeSet<String>>, expected: &[&str]) -> BTreeSet<String> {
    for _ in 0..100 {
        if expected.iter().all(|e| seen.lock().unwrap().contains(*e)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::mem::take(&mut *seen.lock().unwrap())
}

/// Wait until the Touchpoint controller's cache holds `count` touchpoints.
async fn cached(store: &Store<Touchpoint>, count: usize) {
    for _ in 0..250 {
        if store.state().len() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the touchpoint cache never held {count} touchpoints");
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn touchpoint_secret_and_owned_changes_wake_the_right_connection() {
    let (client, server) = ApiServer::new(HashMap::from([
        (
            "connections",
            vec![
                connection("conn-a", Some("erp-api")),
                connection("conn-b", None),
            ],
        ),
        (
            "touchpoints",
            vec![
                touchpoint("tp-1", "shop", "conn-a", "shopify-webhooks"),
                touchpoint("tp-2", "shop", "conn-b", "partner-hooks"),
            ],
        ),
    ]));
    let scoped = Scoped {
        client,
        namespace: None,
    };
    let touchpoints = touchpoint_controller(&scoped);
    let touchpoint_store = touchpoints.store();
    let (wake, wakes) = tokio::sync::mpsc::channel(4);
    let (connections, caches) = connection_controller(
        &scoped,
        touchpoint_store.clone(),
        tokio_stream::wrappers::ReceiverStream::new(wakes),
    );

    let connections_woken: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let touchpoints_woken: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    async fn record<K: kube::Resource>(
        object: Arc<K>,
        seen: Arc<Mutex<BTreeSet<String>>>,
    ) -> Result<Action, kube::Error> {
        seen.lock().unwrap().insert(object.name_any());
        Ok(Action::await_change())
    }
    fn retry<K>(_: Arc<K>, _: &kube::Error, _: Arc<Mutex<BTreeSet<String>>>) -> Action {
        Action::await_change()
    }
    tokio::spawn(
        connections
            .run(record, retry, connections_woken.clone())
            .for_each(|_| async {}),
    );
    tokio::spawn(
        touchpoints
            .run(record, retry, touchpoints_woken.clone())
            .for_each(|_| async {}),
    );
    cached(&touchpoint_store, 2).await;
    tokio::time::timeout(Duration::from_secs(5), caches.ready())
        .await
        .expect("the reconciles' caches fill from the controller's watches");
    assert_eq!(caches.touchpoints_of("shop", "conn-a").len(), 1);

    assert_eq!(
        woken(&connections_woken, &["conn-a", "conn-b"]).await,
        set(&["conn-a", "conn-b"])
    );
    assert_eq!(
        woken(&touchpoints_woken, &["tp-1", "tp-2"]).await,
        set(&["tp-1", "tp-2"])
    );

    // A touchpoint change wakes its connection.
    server.send(
        "touchpoints",
        "MODIFIED",
        touchpoint("tp-2", "shop", "conn-b", "partner-hooks"),
    );
    assert_eq!(
        woken(&connections_woken, &["conn-b"]).await,
        set(&["conn-b"])
    );
    touchpoints_woken.lock().unwrap().clear();

    // A Secret wakes the connections whose touchpoints or credentials refer to it, only those.
    server.send("secrets", "ADDED", secret("shopify-webhooks"));
    assert_eq!(
        woken(&connections_woken, &["conn-a"]).await,
        set(&["conn-a"])
    );
    server.send("secrets", "ADDED", secret("unrelated"));
    assert_eq!(woken(&connections_woken, &[]).await, set(&[]));
    server.send("secrets", "MODIFIED", secret("erp-api"));
    assert_eq!(
        woken(&connections_woken, &["conn-a"]).await,
        set(&["conn-a"])
    );

    // Once a touchpoint of conn-b refers to erp-api too, erp-api wakes both.
    server.send(
        "touchpoints",
        "ADDED",
        touchpoint("tp-3", "shop", "conn-b", "erp-api"),
    );
    assert_eq!(
        woken(&connections_woken, &["conn-b"]).await,
        set(&["conn-b"])
    );
    cached(&touchpoint_store, 3).await;
    server.send("secrets", "DELETED", secret("erp-api"));
    assert_eq!(
        woken(&connections_woken, &["conn-a", "conn-b"]).await,
        set(&["conn-a", "conn-b"])
    );

    // A change to an object it owns wakes the owner.
    server.send(
        "deployments",
        "MODIFIED",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "hookplane-conn-b-worker", "namespace": "shop", "resourceVersion": "9",
                "ownerReferences": [{"apiVersion": "hookplane.io/v1alpha1", "kind": "Connection",
                    "name": "conn-b", "uid": "uid-conn-b", "controller": true}]},
            "spec": {"selector": {}, "template": {}}
        }),
    );
    assert_eq!(
        woken(&connections_woken, &["conn-b"]).await,
        set(&["conn-b"])
    );

    // A deleted touchpoint wakes its connection (to leave the configuration); one naming
    // conn-a in another namespace does not wake conn-a.
    server.send(
        "touchpoints",
        "DELETED",
        touchpoint("tp-1", "shop", "conn-a", "shopify-webhooks"),
    );
    server.send(
        "touchpoints",
        "ADDED",
        touchpoint("tp-9", "elsewhere", "conn-a", "x"),
    );
    assert_eq!(
        woken(&connections_woken, &["conn-a"]).await,
        set(&["conn-a"])
    );
    touchpoints_woken.lock().unwrap().clear();

    // A backlog change wakes the connection of its touchpoint (by uid), only that one; a
    // reconnected listener wakes every connection.
    let uids = |names: &[&str]| names.iter().map(|n| format!("uid-{n}")).collect();
    wake.send(Wake::Touchpoints(uids(&["tp-2", "tp-unknown"])))
        .await
        .unwrap();
    assert_eq!(
        woken(&connections_woken, &["conn-b"]).await,
        set(&["conn-b"])
    );
    wake.send(Wake::All).await.unwrap();
    assert_eq!(
        woken(&connections_woken, &["conn-a", "conn-b"]).await,
        set(&["conn-a", "conn-b"])
    );

    // Every Secret of the cluster is watched as metadata only; full objects only for the
    // operator's own (selected by label).
    let requests = server.secret_requests.lock().unwrap().clone();
    assert!(requests.contains(&(false, true)), "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|(labelled, metadata)| *labelled || *metadata),
        "a full Secret watch without a selector: {requests:?}"
    );

    // A Connection's change wakes the touchpoints naming it (for ConnectionNotFound).
    server.send("connections", "DELETED", connection("conn-b", None));
    assert_eq!(
        woken(&touchpoints_woken, &["tp-2", "tp-3"]).await,
        set(&["tp-2", "tp-3"])
    );
}

#[test]
fn mappers_respect_namespaces() {
    let parse = |v: Value| serde_json::from_value::<Touchpoint>(v).unwrap();
    let here = Arc::new(parse(touchpoint("tp-1", "shop", "conn-a", "s")));
    let there = Arc::new(parse(touchpoint("tp-2", "elsewhere", "conn-a", "s")));
    let conn: Connection = serde_json::from_value(connection("conn-a", None)).unwrap();
    let refs = watches::touchpoints_of_connection(&conn, &[here.clone(), there.clone()]);
    assert_eq!(
        refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["tp-1"]
    );
    let secret: Secret = serde_json::from_value(secret("s")).unwrap();
    let refs = watches::connections_using_secret(&secret, &[], &[here, there]);
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].namespace.as_deref(), Some("shop"));
}
