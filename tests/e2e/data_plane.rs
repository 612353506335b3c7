//! The Kubernetes data plane without Kubernetes: `hookplane receiver` and `hookplane worker`
//! as separate processes on one database, driven by the configuration file the operator
//! renders (`hookplane_crds::config::RenderedConfig`), with secrets in mounted files.

use std::{path::Path, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use hookplane_crds::{
    ConnectionSpec, DestinationSpec, MappingRule, MappingSpec, SecretKeyRef, SourceSpec,
    TouchpointSpec, VerificationSpec,
    config::{FORMAT_VERSION, RenderedConfig, RenderedConnection, RenderedTouchpoint},
};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    on_both_backends,
    support::{Backend, Destination, Server, destination::Mode, eventually},
};

on_both_backends!(
    a_webhook_received_by_one_process_is_delivered_by_another,
    a_strict_worker_never_connects_to_a_private_destination,
    an_endpoint_held_in_the_portal_leaves_out_one_touchpoint_not_the_receiver,
);

const SECRET: &str = "shpss_cluster_secret";

fn rendered(
    destination: &str,
    mapping_target: &str,
    connection_uid: Uuid,
    touchpoint_uid: Uuid,
    generation: i64,
) -> RenderedConfig {
    let spec = TouchpointSpec {
        connection_ref: "shop-to-erp".into(),
        name: "Orders".into(),
        show_in_agent: true,
        auto_sync: true,
        source: SourceSpec {
            app: "shopify".into(),
            endpoint: "orders".into(),
            verification: Some(VerificationSpec {
                secret_ref: Some(SecretKeyRef {
                    name: "shopify".into(),
                    key: "clientSecret".into(),
                }),
                ..VerificationSpec::default()
            }),
            ..SourceSpec::default()
        },
        destination: DestinationSpec {
            url: destination.into(),
            ..DestinationSpec::default()
        },
        mapping: MappingSpec {
            rules: vec![MappingRule {
                target: mapping_target.into(),
                expr: ".id".into(),
            }],
            program: None,
        },
        ..TouchpointSpec::default()
    };
    RenderedConfig {
        version: FORMAT_VERSION,
        connection: RenderedConnection {
            namespace: "shop".into(),
            name: "shop-to-erp".into(),
            uid: connection_uid.to_string(),
            spec: ConnectionSpec {
                name: "Shop to ERP".into(),
                source_app: "shopify".into(),
                destination_app: "generic".into(),
                ..ConnectionSpec::default()
            },
        },
        touchpoints: vec![RenderedTouchpoint {
            namespace: "shop".into(),
            name: "orders".into(),
            uid: touchpoint_uid.to_string(),
            generation,
            spec,
        }],
    }
}

/// Replace the file the way Kubernetes updates a ConfigMap volume: never half-written.
fn write_config(path: &Path, config: &RenderedConfig) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, config.to_json()).expect("writing the configuration");
    std::fs::rename(&temporary, path).expect("swapping the configuration in");
}

async fn post_order(client: &reqwest::Client, receiver: &Server, id: u64) -> u16 {
    post_to(client, receiver, "orders", id).await
}

/// A signed Shopify order `id` to the receiver's `endpoint`; the answer's status.
async fn post_to(client: &reqwest::Client, receiver: &Server, endpoint: &str, id: u64) -> u16 {
    let body = json!({ "id": id, "total_price": "10.00" }).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    client
        .post(receiver.url(&format!("/hooks/shop/{endpoint}")))
        .header("content-type", "application/json")
        .header("x-shopify-hmac-sha256", signature)
        .header("x-shopify-webhook-id", format!("delivery-{endpoint}-{id}"))
        .body(body)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

/// The Shopify secret mounted the way the operator mounts Secrets
/// (`<dir>/secrets/shopify/clientSecret`); returns the secrets directory.
fn mount_secret(dir: &Path) -> std::path::PathBuf {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(secrets.join("shopify")).expect("secret directory");
    std::fs::write(secrets.join("shopify").join("clientSecret"), SECRET).expect("secret file");
    secrets
}

/// `hookplane worker` is strict by default (public addresses only); the local destinations
/// of these tests are allowed explicitly.
const LOOPBACK_ALLOWED: [&str; 2] = ["--destination-allow", "127.0.0.0/8"];

/// A destination, a rendered configuration with its mounted secret, and a receiver and a
/// worker process on it (the worker with `worker_args` added).
struct Plane {
    destination: Destination,
    config_path: std::path::PathBuf,
    connection_uid: Uuid,
    touchpoint_uid: Uuid,
    receiver: Server,
    worker: Server,
    _dir: tempfile::TempDir,
}

impl Plane {
    async fn start(backend: &Backend, worker_args: &[&str]) -> Plane {
        let destination = Destination::start(Mode::Ok).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let secrets = mount_secret(dir.path());
        let config_path = dir.path().join("hookplane.json");
        let (connection_uid, touchpoint_uid) = (Uuid::now_v7(), Uuid::now_v7());
        write_config(
            &config_path,
            &rendered(
                &destination.url("/erp"),
                "OrderId",
                connection_uid,
                touchpoint_uid,
                1,
            ),
        );
        let config = config_path.to_string_lossy().into_owned();
        let secrets_dir = secrets.to_string_lossy().into_owned();
        let role_args = [
            "--config",
            config.as_str(),
            "--secrets-dir",
            secrets_dir.as_str(),
        ];
        let receiver = Server::start_role(
            backend,
            "receiver",
            "Hookplane receiver listening on http://",
            &role_args,
        )
        .await;
        let mut args = role_args.to_vec();
        args.extend_from_slice(worker_args);
        let worker = Server::start_role(
            backend,
            "worker",
            "Hookplane worker listening on http://",
            &args,
        )
        .await;
        Plane {
            destination,
            config_path,
            connection_uid,
            touchpoint_uid,
            receiver,
            worker,
            _dir: dir,
        }
    }
}

async fn a_webhook_received_by_one_process_is_delivered_by_another(backend: Backend) {
    let Plane {
        destination,
        config_path,
        connection_uid,
        touchpoint_uid,
        receiver,
        worker,
        _dir,
    } = Plane::start(&backend, &LOOPBACK_ALLOWED).await;
    let url = destination.url("/erp");
    let client = reqwest::Client::new();

    assert_eq!(post_order(&client, &receiver, 1).await, 200);
    let delivered = eventually(Duration::from_secs(20), "the worker delivers", || async {
        destination.received().first().map(|r| r.body.clone())
    })
    .await;
    assert_eq!(delivered, json!({ "OrderId": 1 }));
    // The event id in the database is keyed by the Touchpoint's uid.
    let key = destination.received()[0]
        .idempotency_key
        .clone()
        .expect("Idempotency-Key");
    assert!(Uuid::parse_str(&key).is_ok());

    // `hookplane api` on the same database shows the touchpoint under its Kubernetes uid,
    // with the backlog the operator scales on.
    let api = Server::start_role(&backend, "api", "Hookplane API listening on http://", &[]).await;
    let data = crate::support::gql_ok(
        &api,
        "{ touchpoints { id name bucketCounts { unprocessed success } } }",
        json!({}),
    )
    .await;
    assert_eq!(data["touchpoints"][0]["id"], touchpoint_uid.to_string());
    assert_eq!(data["touchpoints"][0]["bucketCounts"]["success"], 1);
    let no_intake = client
        .post(api.url("/hooks/shop/orders"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(no_intake.status(), 404, "the API role does no intake");
    api.stop().await;

    // Roles serve only their part: the receiver has no GraphQL, the worker no intake.
    let graphql = client
        .get(receiver.url("/graphql"))
        .send()
        .await
        .expect("GET");
    assert_eq!(graphql.status(), 404);
    let intake = client
        .post(worker.url("/hooks/shop/orders"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(intake.status(), 404);
    for server in [&receiver, &worker] {
        let ready = client
            .get(server.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200);
    }

    // "Update Configuration": a new file is picked up by both processes without a restart.
    write_config(
        &config_path,
        &rendered(&url, "DocEntry", connection_uid, touchpoint_uid, 2),
    );
    let next_id = std::sync::atomic::AtomicU64::new(2);
    let reloaded = eventually(Duration::from_secs(20), "the new mapping runs", || {
        let client = client.clone();
        let receiver = &receiver;
        let destination = &destination;
        // A new delivery each time: a repeated one would be absorbed as a duplicate.
        let id = next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let status = post_order(&client, receiver, id).await;
            assert_eq!(status, 200);
            tokio::time::sleep(Duration::from_millis(300)).await;
            destination
                .received()
                .iter()
                .map(|r| r.body.clone())
                .find(|body: &Value| body.get("DocEntry").is_some())
        }
    })
    .await;
    assert!(
        reloaded["DocEntry"].as_u64().is_some_and(|id| id >= 2),
        "{reloaded}"
    );

    // A bad signature is still refused by the receiver.
    let refused = client
        .post(receiver.url("/hooks/shop/orders"))
        .header("content-type", "application/json")
        .header("x-shopify-hmac-sha256", "AAAA")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 401);
    receiver.stop().await;
    worker.stop().await;
}

/// The worker's default policy refuses loopback and private addresses: the event fails at
/// once with `DESTINATION_FORBIDDEN`, naming the address and the rule, and the destination
/// never sees a request.
async fn a_strict_worker_never_connects_to_a_private_destination(backend: Backend) {
    let Plane {
        destination,
        touchpoint_uid,
        receiver,
        worker,
        _dir,
        ..
    } = Plane::start(&backend, &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(post_order(&client, &receiver, 7).await, 200);
    let api = Server::start_role(&backend, "api", "Hookplane API listening on http://", &[]).await;
    let failed = eventually(Duration::from_secs(20), "the event to fail", || async {
        let data = crate::support::gql_ok(
            &api,
            "query($id: ID!) { logBucket(touchpointId: $id, level: ERROR) { edges { node { message fields } } } }",
            json!({ "id": touchpoint_uid.to_string() }),
        )
        .await;
        data["logBucket"]["edges"]
            .as_array()
            .and_then(|edges| edges.first())
            .map(|edge| edge["node"].clone())
    })
    .await;
    assert_eq!(
        failed["fields"]["code"], "DESTINATION_FORBIDDEN",
        "{failed}"
    );
    assert_eq!(failed["fields"]["rule"], "strict", "{failed}");
    assert!(
        failed["fields"]["address"]
            .as_str()
            .is_some_and(|address| address.starts_with("127.0.0.1")),
        "{failed}"
    );
    let data = crate::support::gql_ok(
        &api,
        "query($id: ID!) { touchpoint(id: $id) { bucketCounts { failed unprocessed } } }",
        json!({ "id": touchpoint_uid.to_string() }),
    )
    .await;
    assert_eq!(data["touchpoint"]["bucketCounts"]["failed"], 1, "{data}");
    assert!(
        destination.received().is_empty(),
        "nothing reached the destination"
    );
    api.stop().await;
    receiver.stop().await;
    worker.stop().await;
}

/// On PostgreSQL the processes share one live view: a webhook taken by the receiver wakes a
/// worker in another process at once (its idle poll here is ten minutes) and streams to a
/// subscription on a third, `hookplane api`. SQLite has no such relay (its feed is
/// in-process), so this runs on PostgreSQL only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_changes_cross_processes_live() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let Plane {
        destination,
        touchpoint_uid,
        receiver,
        worker,
        _dir,
        ..
    } = Plane::start(
        &backend,
        &[
            LOOPBACK_ALLOWED[0],
            LOOPBACK_ALLOWED[1],
            "--worker-idle-poll-ms",
            "600000",
        ],
    )
    .await;
    let api = Server::start_role(&backend, "api", "Hookplane API listening on http://", &[]).await;
    let mut stream = crate::support::Subscription::start(
        &api,
        "graphql-transport-ws",
        "subscription($id: ID!) { resyncBucket(touchpointId: $id) { kind status entry { id } } }",
        json!({ "id": touchpoint_uid.to_string() }),
    )
    .await;
    // A subscription is live once the server has polled it; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let client = reqwest::Client::new();
    assert_eq!(post_order(&client, &receiver, 41).await, 200);
    let delivered = eventually(
        Duration::from_secs(20),
        "the worker, woken by the receiver's notification, delivers",
        || async { destination.received().first().map(|r| r.body.clone()) },
    )
    .await;
    assert_eq!(delivered, json!({ "OrderId": 41 }));

    let mut seen = Vec::new();
    let statuses = eventually(
        Duration::from_secs(20),
        "the API's subscription to see the event created and delivered",
        || {
            seen.extend(stream.drain());
            let statuses: Vec<String> = seen
                .iter()
                .map(|item| {
                    let change = &item["data"]["resyncBucket"];
                    format!(
                        "{} {}",
                        change["kind"].as_str().unwrap_or("?"),
                        change["status"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            let done = statuses.iter().any(|s| s.ends_with("SUCCESS"));
            async move { done.then_some(statuses) }
        },
    )
    .await;
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("CREATED UNPROCESSED"),
        "{statuses:?}"
    );
    api.stop().await;
    receiver.stop().await;
    worker.stop().await;
}

/// A portal draft holding an endpoint that a rendered touchpoint also uses leaves that one
/// touchpoint out: the receiver still starts and serves the others.
async fn an_endpoint_held_in_the_portal_leaves_out_one_touchpoint_not_the_receiver(
    backend: Backend,
) {
    let api = Server::start_role(&backend, "api", "Hookplane API listening on http://", &[]).await;
    let connection_id = crate::flows::connection(&api).await;
    crate::flows::touchpoint(
        &api,
        &connection_id,
        json!({
            "name": "Portal draft",
            "source": { "endpoint": "orders", "verification": { "scheme": "none" } },
            "destination": { "url": "http://127.0.0.1:9/x" },
        }),
    )
    .await;

    let destination = Destination::start(Mode::Ok).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secrets = mount_secret(dir.path());
    let mut config = rendered(
        &destination.url("/erp"),
        "OrderId",
        Uuid::now_v7(),
        Uuid::now_v7(),
        1,
    );
    let mut refunds = config.touchpoints[0].clone();
    refunds.name = "refunds".into();
    refunds.uid = Uuid::now_v7().to_string();
    refunds.spec.source.endpoint = "refunds".into();
    config.touchpoints.push(refunds);
    let config_path = dir.path().join("hookplane.json");
    write_config(&config_path, &config);
    let config_arg = config_path.to_string_lossy().into_owned();
    let secrets_arg = secrets.to_string_lossy().into_owned();
    let receiver = Server::start_role(
        &backend,
        "receiver",
        "Hookplane receiver listening on http://",
        &["--config", &config_arg, "--secrets-dir", &secrets_arg],
    )
    .await;

    let client = reqwest::Client::new();
    assert_eq!(post_to(&client, &receiver, "refunds", 7).await, 200);
    assert_eq!(post_to(&client, &receiver, "orders", 7).await, 404);
    receiver.stop().await;
    api.stop().await;
}
