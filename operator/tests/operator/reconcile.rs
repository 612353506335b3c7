//! The reconcilers against a stateful in-memory Kubernetes API (kube-fake-client): what they
//! create, that an unchanged world is left alone, scaling, invalid references, clean-up, and
//! two operators claiming one Connection.

use std::{collections::HashMap, sync::Arc, time::Duration};

use hookplane_crds::{
    Connection, Touchpoint,
    config::{CONFIG_HASH_ANNOTATION, CONFIG_KEY, RenderedConfig},
};
use hookplane_operator::build::sha256_hex;
use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentStatus},
    core::v1::{ConfigMap, Secret, Service},
};
use kube::{
    ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::controller::Action,
};
use serde_json::json;

use hookplane_operator::reconcile::{
    Clock, Context,
    claim::{CLAIM_ANNOTATION, Claim},
};

use crate::support::{self, CONNECTION, Cluster, Harness, NAMESPACE, example_documents};

const CONFIG: &str = "hookplane-shop-to-erp-config";
const RECEIVER: &str = "hookplane-shop-to-erp-receiver";
const WORKER: &str = "hookplane-shop-to-erp-worker";

async fn deployment(harness: &Harness, name: &str) -> Deployment {
    harness
        .cluster
        .api::<Deployment>()
        .get(name)
        .await
        .expect("the deployment exists")
}

fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().unwrap().replicas.unwrap()
}

fn pod_hash(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH_ANNOTATION]
        .clone()
}

async fn uid_of(harness: &Harness, touchpoint: &str) -> String {
    harness
        .cluster
        .api::<Touchpoint>()
        .get(touchpoint)
        .await
        .unwrap()
        .uid()
        .unwrap()
}

fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> (String, String) {
    let c = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone())
}

/// Play the Deployment controller: every replica of `name` rolled out and ready.
async fn roll_out(harness: &Harness, name: &str) {
    let api = harness.cluster.api::<Deployment>();
    let current = api.get(name).await.unwrap();
    let replicas = replicas(&current);
    let status = DeploymentStatus {
        observed_generation: current.metadata.generation,
        replicas: Some(replicas),
        ready_replicas: Some(replicas),
        updated_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..DeploymentStatus::default()
    };
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_connection_becomes_a_config_map_two_deployments_and_a_service() {
    let harness = Harness::examples().await;
    let action = harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(30)),
        "polls the backlog, not hot"
    );

    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    let config_map: ConfigMap = harness.cluster.api().get(CONFIG).await.unwrap();
    let json = &config_map.data.as_ref().unwrap()[CONFIG_KEY];
    let config = RenderedConfig::from_json(json).unwrap();
    let uids: Vec<_> = config.touchpoints.iter().map(|t| t.uid.clone()).collect();
    assert_eq!(
        uids,
        [
            uid_of(&harness, "partner-shipments").await,
            uid_of(&harness, "shopify-orders").await
        ],
        "touchpoint ids are their uids"
    );
    assert_eq!(config.connection.uid, connection.uid().unwrap());

    let receiver = deployment(&harness, RECEIVER).await;
    let worker = deployment(&harness, WORKER).await;
    let service: Service = harness.cluster.api().get(RECEIVER).await.unwrap();
    assert_eq!(pod_hash(&receiver), sha256_hex(json.as_bytes()));
    assert_eq!(pod_hash(&worker), pod_hash(&receiver));
    assert_eq!((replicas(&receiver), replicas(&worker)), (2, 1));
    for owners in [
        &config_map.metadata.owner_references,
        &receiver.metadata.owner_references,
        &worker.metadata.owner_references,
        &service.metadata.owner_references,
    ] {
        assert_eq!(owners.as_ref().unwrap()[0].uid, connection.uid().unwrap());
    }

    let status = connection.status.unwrap();
    assert_eq!(
        status.config_hash.as_deref(),
        Some(pod_hash(&receiver).as_str())
    );
    assert_eq!(
        (status.touchpoints, status.worker_replicas, status.backlog),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(
        condition(&status.conditions, "Ready"),
        ("False".into(), "RollingOut".into())
    );

    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    let status = touchpoint.status.unwrap();
    assert_eq!(
        status.endpoint_url.as_deref(),
        Some("https://hooks.example.com/hooks/acme/shopify/orders")
    );
    assert_eq!(
        condition(&status.conditions, "Published"),
        ("True".into(), "Published".into())
    );
    assert_eq!(status.observed_generation, Some(1));

    let events = harness.cluster.events().await;
    assert!(
        events.contains(&(CONNECTION.into(), "Normal".into(), "Applied".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("shopify-orders".into(), "Normal".into(), "Published".into())),
        "{events:?}"
    );
    assert!(
        harness
            .metrics
            .render()
            .contains("hookplane_operator_reconciles_total{controller=\"connection\"} 1")
    );
}

#[tokio::test]
async fn a_second_reconcile_of_an_unchanged_world_writes_nothing() {
    let harness = Harness::examples().await;
    let first = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(
        first.iter().filter(|w| w.starts_with("patch ")).count(),
        6,
        "{first:#?}"
    );
    assert_eq!(
        first
            .iter()
            .filter(|w| w.starts_with("patch-status "))
            .count(),
        3,
        "{first:#?}"
    );

    let second = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(second, Vec::<String>::new());

    // The Deployment controller reports progress: only statuses change, once.
    roll_out(&harness, RECEIVER).await;
    roll_out(&harness, WORKER).await;
    let progress = harness.writes_of_reconcile(CONNECTION).await;
    assert!(
        progress.iter().all(|w| w.starts_with("patch-status ")),
        "{progress:#?}"
    );
    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    assert_eq!(
        condition(&connection.status.unwrap().conditions, "Ready"),
        ("True".into(), "Running".into())
    );

    harness.clock.advance(Duration::from_secs(600));
    let later = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(
        later,
        Vec::<String>::new(),
        "a later poll of the same world writes nothing"
    );
    let (_, orphan_check) = harness
        .writes_during(harness.reconcile_touchpoint("shopify-orders"))
        .await;
    assert_eq!(orphan_check, Vec::<String>::new());
}

#[tokio::test]
async fn a_touchpoint_change_rolls_the_config_hash() {
    let harness = Harness::examples().await;
    harness.reconcile_connection(CONNECTION).await.unwrap();
    let before = pod_hash(&deployment(&harness, RECEIVER).await);

    let touchpoints = harness.cluster.api::<Touchpoint>();
    touchpoints
        .patch(
            "shopify-orders",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"filter": ".test == false and .total_price != \"0.00\""}}),
            ),
        )
        .await
        .unwrap();
    let writes = harness.writes_of_reconcile(CONNECTION).await;
    let applied: Vec<_> = writes.iter().filter(|w| w.starts_with("patch ")).collect();
    assert_eq!(
        applied,
        [
            &format!("patch ConfigMap {NAMESPACE}/{CONFIG}"),
            &format!("patch Deployment {NAMESPACE}/{RECEIVER}"),
            &format!("patch Deployment {NAMESPACE}/{WORKER}"),
        ],
        "the Service did not change"
    );
    let receiver = deployment(&harness, RECEIVER).await;
    assert_ne!(pod_hash(&receiver), before);
    assert_eq!(
        pod_hash(&deployment(&harness, WORKER).await),
        pod_hash(&receiver)
    );
    let config: ConfigMap = harness.cluster.api().get(CONFIG).await.unwrap();
    assert!(config.data.unwrap()[CONFIG_KEY].contains("total_price != \\\"0.00\\\""));
    let touchpoint: Touchpoint = touchpoints.get("shopify-orders").await.unwrap();
    assert_eq!(
        touchpoint.status.unwrap().observed_generation,
        touchpoint.metadata.generation
    );

    // A deleted touchpoint leaves the configuration too.
    touchpoints
        .delete("partner-shipments", &DeleteParams::default())
        .await
        .unwrap();
    harness.reconcile_connection(CONNECTION).await.unwrap();
    let config: ConfigMap = harness.cluster.api().get(CONFIG).await.unwrap();
    let config = RenderedConfig::from_json(&config.data.unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(config.touchpoints.len(), 1);
}

#[tokio::test]
async fn workers_follow_the_backlog_between_min_and_max_and_scale_down_after_the_window() {
    let harness = Harness::examples().await;
    let shopify = uid_of(&harness, "shopify-orders").await;
    let partner = uid_of(&harness, "partner-shipments").await;
    let set = |a: i64, b: i64| {
        harness
            .backlog
            .set(HashMap::from([(shopify.clone(), a), (partner.clone(), b)]))
    };

    set(0, 0);
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        replicas(&deployment(&harness, WORKER).await),
        1,
        "backlog 0 -> minReplicas"
    );

    set(450, 100); // 550 events, 200 per worker
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(replicas(&deployment(&harness, WORKER).await), 3);

    set(90_000, 10_000);
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        replicas(&deployment(&harness, WORKER).await),
        6,
        "backlog high -> maxReplicas"
    );
    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    let status = connection.status.unwrap();
    assert_eq!(status.backlog, Some(100_000));
    assert_eq!(
        condition(&status.conditions, "Degraded"),
        ("True".into(), "BacklogAboveCapacity".into())
    );
    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    assert_eq!(touchpoint.status.unwrap().backlog, Some(90_000));

    set(0, 0);
    harness.clock.advance(Duration::from_secs(120));
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        replicas(&deployment(&harness, WORKER).await),
        6,
        "within the 300 s window"
    );
    harness.clock.advance(Duration::from_secs(181));
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        replicas(&deployment(&harness, WORKER).await),
        1,
        "after the window"
    );
    assert_eq!(
        replicas(&deployment(&harness, RECEIVER).await),
        2,
        "receivers never follow"
    );
    let events = harness.cluster.events().await;
    assert!(
        events.contains(&(CONNECTION.into(), "Normal".into(), "Scaled".into())),
        "{events:?}"
    );

    harness.backlog.fail("the API is down");
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        replicas(&deployment(&harness, WORKER).await),
        1,
        "kept while the backlog is unknown"
    );
    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    assert_eq!(
        condition(&connection.status.unwrap().conditions, "Degraded").1,
        "BacklogUnavailable"
    );
}

#[tokio::test]
async fn workers_scale_to_zero_when_min_is_zero_and_receivers_do_not() {
    let harness = Harness::examples().await;
    harness
        .cluster
        .api::<Connection>()
        .patch(
            CONNECTION,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"worker": {"minReplicas": 0}, "receiver": {"replicas": 1}}}),
            ),
        )
        .await
        .unwrap();
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(replicas(&deployment(&harness, WORKER).await), 0);
    assert_eq!(replicas(&deployment(&harness, RECEIVER).await), 1);
}

#[tokio::test]
async fn a_touchpoint_without_its_connection_says_so_and_waits() {
    let mut orphan = example_documents()
        .into_iter()
        .find(|d| d["metadata"]["name"] == "shopify-orders")
        .unwrap();
    orphan["spec"]["connectionRef"] = "no-such-connection".into();
    let harness = Harness::new(Cluster::with(vec![orphan]).await);

    let action = harness
        .reconcile_touchpoint("shopify-orders")
        .await
        .unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "no requeue loop: the Connection's creation wakes it"
    );
    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    let status = touchpoint.status.unwrap();
    assert_eq!(
        condition(&status.conditions, "Ready"),
        ("False".into(), "ConnectionNotFound".into())
    );
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Published")
        .unwrap()
        .message;
    assert!(
        message.contains("\"no-such-connection\"") && message.contains("create it"),
        "{message}"
    );
    let events = harness.cluster.events().await;
    assert!(events.contains(&(
        "shopify-orders".into(),
        "Warning".into(),
        "ConnectionNotFound".into()
    )));

    let (_, again) = harness
        .writes_during(harness.reconcile_touchpoint("shopify-orders"))
        .await;
    assert_eq!(again, Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_secret_keeps_one_touchpoint_out_until_it_exists() {
    let documents: Vec<_> = example_documents()
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("Connection" | "Touchpoint" | "Secret")
            )
        })
        .filter(|d| d["metadata"]["name"] != "shopify-webhooks")
        .collect();
    let harness = Harness::new(Cluster::with(documents).await);
    let action = harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let config: ConfigMap = harness.cluster.api().get(CONFIG).await.unwrap();
    let config = RenderedConfig::from_json(&config.data.unwrap()[CONFIG_KEY]).unwrap();
    let names: Vec<_> = config.touchpoints.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["partner-shipments"]);
    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    assert_eq!(
        condition(&touchpoint.status.unwrap().conditions, "Published"),
        ("False".into(), "SecretNotFound".into())
    );
    let again = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(
        again,
        Vec::<String>::new(),
        "no churn while it stays missing"
    );

    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "shopify-webhooks", "namespace": NAMESPACE},
        "data": {"secret": "c2VjcmV0"}
    }))
    .unwrap();
    harness
        .cluster
        .api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    harness.reconcile_connection(CONNECTION).await.unwrap();
    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    assert_eq!(
        condition(&touchpoint.status.unwrap().conditions, "Published").0,
        "True"
    );
}

#[tokio::test]
async fn an_invalid_connection_creates_nothing_and_reports_on_its_touchpoints() {
    let documents: Vec<_> = example_documents()
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("Connection" | "Touchpoint" | "Secret")
            )
        })
        .filter(|d| d["metadata"]["name"] != "erp-api")
        .collect();
    let harness = Harness::new(Cluster::with(documents).await);
    let (action, writes) = harness
        .writes_during(harness.reconcile_connection(CONNECTION))
        .await;
    assert_eq!(action.unwrap(), Action::await_change());
    assert!(
        writes.iter().all(|w| w.starts_with("patch-status ")),
        "{writes:#?}"
    );
    assert!(
        harness
            .cluster
            .api::<ConfigMap>()
            .get_opt(CONFIG)
            .await
            .unwrap()
            .is_none()
    );

    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    assert_eq!(
        condition(&connection.status.unwrap().conditions, "Ready"),
        ("False".into(), "SecretNotFound".into())
    );
    let touchpoint: Touchpoint = harness
        .cluster
        .api()
        .get("partner-shipments")
        .await
        .unwrap();
    assert_eq!(
        condition(&touchpoint.status.unwrap().conditions, "Published"),
        ("False".into(), "ConnectionInvalid".into())
    );
    let again = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(again, Vec::<String>::new());
}

#[tokio::test]
async fn deleting_the_connection_deletes_what_it_ran_and_unneeded_objects_are_pruned() {
    let harness = Harness::examples().await;
    harness.reconcile_connection(CONNECTION).await.unwrap();

    // An object labelled for this connection that the operator no longer builds.
    let mut legacy = deployment(&harness, WORKER).await;
    legacy.metadata = kube::api::ObjectMeta {
        name: Some("hookplane-shop-to-erp-legacy".into()),
        namespace: Some(NAMESPACE.into()),
        labels: legacy.metadata.labels.clone(),
        owner_references: legacy.metadata.owner_references.clone(),
        ..Default::default()
    };
    legacy.status = None;
    let deployments = harness.cluster.api::<Deployment>();
    deployments
        .create(&PostParams::default(), &legacy)
        .await
        .unwrap();
    let writes = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(
        writes,
        [format!("delete {NAMESPACE}/hookplane-shop-to-erp-legacy")]
    );

    harness
        .cluster
        .api::<Connection>()
        .delete(CONNECTION, &DeleteParams::default())
        .await
        .unwrap();
    assert!(deployments.get_opt(RECEIVER).await.unwrap().is_none());
    assert!(deployments.get_opt(WORKER).await.unwrap().is_none());
    assert!(
        harness
            .cluster
            .api::<Service>()
            .get_opt(RECEIVER)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        harness
            .cluster
            .api::<ConfigMap>()
            .get_opt(CONFIG)
            .await
            .unwrap()
            .is_none()
    );

    // Its touchpoints are now orphans, and say so.
    harness
        .reconcile_touchpoint("shopify-orders")
        .await
        .unwrap();
    let touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    assert_eq!(
        condition(&touchpoint.status.unwrap().conditions, "Ready").1,
        "ConnectionNotFound"
    );
}

#[tokio::test]
async fn a_failed_write_is_an_error_to_retry_counted_by_category() {
    let harness = Harness::examples().await;
    harness.reconcile_connection(CONNECTION).await.unwrap();
    harness.cluster.fail_patches_of(WORKER);
    let shopify = uid_of(&harness, "shopify-orders").await;
    harness.backlog.set(HashMap::from([(shopify, 1_000)]));
    let error = harness
        .reconcile_connection(CONNECTION)
        .await
        .expect_err("the worker cannot be scaled");
    assert_eq!(error.category(), "apply");
    assert_eq!(error.to_string(), format!("applying Deployment {WORKER}"));
    assert!(
        harness
            .metrics
            .render()
            .contains("category=\"apply\",controller=\"connection\"} 1")
    );
    let events = harness.cluster.events().await;
    assert!(
        events.contains(&(
            CONNECTION.into(),
            "Warning".into(),
            "ReconcileFailed".into()
        )),
        "{events:?}"
    );
}

/// What a real API server stores differs from what was applied: it drops fields at their
/// zero value (`readOnly: false`) and writes quantities canonically (`cpu: 0.5` -> `500m`,
/// `memory: 1.5Gi` -> `1536Mi`). The "up to date?" check must see through both, or every
/// reconcile re-applies both Deployments, for ever. The harness's cluster stores what the
/// operator applies that way (`Cluster::store_as_a_server_would`, after every reconcile of
/// every test); here the worker's resources are written non-canonically on purpose.
#[tokio::test]
async fn a_world_the_api_server_normalized_is_left_alone() {
    let documents = example_documents()
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("Connection" | "Touchpoint" | "Secret")
            )
        })
        .map(|mut d| {
            if d["kind"] == "Connection" {
                d["spec"]["worker"]["resources"] = json!({
                    "requests": { "cpu": "0.5", "memory": "1.5Gi" },
                    "limits": { "cpu": "1", "memory": "2048Mi" }
                });
            }
            d
        })
        .collect();
    let harness = Harness::new(Cluster::with(documents).await);
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert!(
        harness.cluster.normalized() >= 3,
        "the fixture exercises readOnly: false and non-canonical quantities ({} changes)",
        harness.cluster.normalized()
    );

    let again = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(again, Vec::<String>::new(), "nothing to apply again");
}

/// Failures back off per object: a Touchpoint and a Connection that share a name keep separate
/// counts (the key once had no kind, so one's failures lengthened the other's wait).
#[tokio::test]
async fn a_touchpoint_and_a_connection_of_one_name_back_off_separately() {
    let harness = Harness::examples().await;
    let mut touchpoint: Touchpoint = harness.cluster.api().get("shopify-orders").await.unwrap();
    touchpoint.metadata.name = Some("same".into());
    let mut connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    connection.metadata.name = Some("same".into());
    let error = || hookplane_operator::reconcile::Error::Read {
        what: "a test object".into(),
        source: kube::Error::TlsRequired,
    };
    let delay = |action: Action| format!("{action:?}");
    let touchpoint = std::sync::Arc::new(touchpoint);
    let first = hookplane_operator::reconcile::error_policy(
        touchpoint.clone(),
        &error(),
        harness.ctx.clone(),
    );
    let second =
        hookplane_operator::reconcile::error_policy(touchpoint, &error(), harness.ctx.clone());
    assert_ne!(
        delay(first.clone()),
        delay(second),
        "a second failure waits longer"
    );
    let other = hookplane_operator::reconcile::error_policy(
        std::sync::Arc::new(connection),
        &error(),
        harness.ctx.clone(),
    );
    assert_eq!(
        delay(other),
        delay(first),
        "the connection's first failure waits as a first"
    );
}

/// Many Touchpoints over many Connections: every one reconciles, and a second pass over the
/// same world writes nothing. 20 Connections of 10 Touchpoints here; the 1,000 over
/// 100 with `HOOKPLANE_RECONCILE_CONNECTIONS=100` (bench/RESULTS.md keeps that figure: each
/// pass's time is printed, and a test does not judge speed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_touchpoints_over_many_connections_reconcile_once() {
    let connections: usize = std::env::var("HOOKPLANE_RECONCILE_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    const PER_CONNECTION: usize = 10;
    let examples = example_documents();
    let of_kind = |kind: &str, name: &str| {
        examples
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("the example {kind} {name}"))
    };
    let mut documents: Vec<serde_json::Value> = examples
        .iter()
        .filter(|d| d["kind"] == "Secret")
        .cloned()
        .collect();
    for c in 0..connections {
        let mut connection = of_kind("Connection", CONNECTION);
        connection["metadata"]["name"] = json!(format!("conn-{c}"));
        documents.push(connection);
        for t in 0..PER_CONNECTION {
            let mut touchpoint = of_kind("Touchpoint", "shopify-orders");
            touchpoint["metadata"]["name"] = json!(format!("tp-{c}-{t}"));
            touchpoint["spec"]["connectionRef"] = json!(format!("conn-{c}"));
            touchpoint["spec"]["source"]["endpoint"] = json!(format!("shop/c{c}/t{t}"));
            documents.push(touchpoint);
        }
    }
    let harness = Harness::new(Cluster::with(documents).await);
    let pass = || async {
        let started = std::time::Instant::now();
        for c in 0..connections {
            harness
                .reconcile_connection(&format!("conn-{c}"))
                .await
                .expect("a connection reconciles");
        }
        for c in 0..connections {
            for t in 0..PER_CONNECTION {
                harness
                    .reconcile_touchpoint(&format!("tp-{c}-{t}"))
                    .await
                    .expect("a touchpoint reconciles");
            }
        }
        started.elapsed()
    };
    let (first, writes) = harness.writes_during(pass()).await;
    assert!(
        writes.len() >= connections * 4,
        "each connection's objects were written: {} writes",
        writes.len()
    );
    let (second, again) = harness.writes_during(pass()).await;
    eprintln!(
        "reconcile of {} touchpoints over {connections} connections: first pass {first:?} ({} writes), second pass {second:?} ({} writes)",
        connections * PER_CONNECTION,
        writes.len(),
        again.len()
    );
    assert_eq!(again, Vec::<String>::new(), "a second pass writes nothing");

    // As the operator runs: reading the controllers' caches instead of listing.
    harness.read_from_caches().await;
    let lists = harness.cluster.lists();
    let (cached, written) = harness.writes_during(pass()).await;
    eprintln!(
        "the same pass from the caches: {cached:?} ({} writes, {} LISTs)",
        written.len(),
        harness.cluster.lists() - lists
    );
    assert_eq!(written, Vec::<String>::new());
    assert_eq!(harness.cluster.lists(), lists);
}

#[tokio::test]
async fn each_connection_gets_the_database_url_in_a_secret_of_its_own() {
    let harness = Harness::examples().await;
    harness.reconcile_connection(CONNECTION).await.unwrap();
    let secrets: kube::Api<Secret> = harness.cluster.api();
    let name = "hookplane-shop-to-erp-database";
    let secret = secrets.get(name).await.unwrap();
    assert_eq!(
        secret.data.as_ref().unwrap()["url"].0,
        support::DATABASE_URL.as_bytes(),
        "the URL the operator runs with"
    );
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Connection", CONNECTION),
        "deleted with its Connection"
    );
    let worker = deployment(&harness, WORKER).await;
    let env = serde_json::to_value(&worker.spec.unwrap().template.spec.unwrap().containers[0].env)
        .unwrap();
    assert_eq!(env[0]["valueFrom"]["secretKeyRef"]["name"], name);

    // The URL never shows in an Event.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = harness.cluster.api();
    for event in events.list(&Default::default()).await.unwrap() {
        let note = event.note.unwrap_or_default();
        assert!(!note.contains("s3cret"), "{note}");
    }

    // Deleted by hand, it is made again; unchanged, it is left alone.
    secrets.delete(name, &Default::default()).await.unwrap();
    let writes = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(writes, [format!("patch Secret shop/{name}")]);
    let writes = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(writes, Vec::<String>::new());
}

#[tokio::test]
async fn the_receiver_ingress_follows_the_touchpoints_and_goes_when_turned_off() {
    let asked = hookplane_operator::settings::Settings {
        receiver_ingress: Some(hookplane_operator::build::ReceiverIngress::default()),
        ..support::settings()
    };
    let harness = Harness::with_settings(Cluster::examples().await, asked);
    harness.reconcile_connection(CONNECTION).await.unwrap();
    let ingresses: kube::Api<k8s_openapi::api::networking::v1::Ingress> = harness.cluster.api();
    let paths = |ingress: k8s_openapi::api::networking::v1::Ingress| -> Vec<String> {
        ingress.spec.unwrap().rules.unwrap()[0]
            .http
            .clone()
            .unwrap()
            .paths
            .into_iter()
            .map(|p| p.path.unwrap())
            .collect()
    };
    let name = "hookplane-shop-to-erp-receiver";
    assert_eq!(
        paths(ingresses.get(name).await.unwrap()),
        [
            "/hooks/acme/partner/shipments",
            "/hooks/acme/shopify/orders"
        ]
    );
    let writes = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(writes, Vec::<String>::new(), "unchanged: nothing written");

    // A deleted touchpoint leaves the Ingress.
    let touchpoints: kube::Api<Touchpoint> = harness.cluster.api();
    touchpoints
        .delete("partner-shipments", &DeleteParams::default())
        .await
        .unwrap();
    harness.reconcile_connection(CONNECTION).await.unwrap();
    assert_eq!(
        paths(ingresses.get(name).await.unwrap()),
        ["/hooks/acme/shopify/orders"]
    );

    // An operator told to make none removes the ones it made.
    let off = Harness::with_settings(harness.cluster, support::settings());
    off.reconcile_connection(CONNECTION).await.unwrap();
    assert!(ingresses.get_opt(name).await.unwrap().is_none());
}

/// An operator on the harness's cluster, clock and backlog, claiming with the Lease
/// `ops/<lease>` and running `image`.
fn claiming_operator(harness: &Harness, lease: &str, image: &str) -> Arc<Context> {
    let settings = hookplane_operator::settings::Settings {
        image: image.into(),
        ..support::settings()
    };
    Arc::new(
        Context::new(
            harness.cluster.client.clone(),
            settings,
            harness.backlog.clone(),
            harness.metrics.clone(),
            harness.clock.clone(),
            Some(lease.into()),
        )
        .claiming(Claim {
            lease_namespace: "ops".into(),
            lease_name: lease.into(),
        }),
    )
}

/// The Lease `ops/<lease>` held, renewed now (by the harness's clock), for 15 s.
async fn hold_lease(harness: &Harness, lease: &str) {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(harness.cluster.client.clone(), "ops");
    let renewed = harness.clock.wall().to_string();
    let object = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": lease, "namespace": "ops"},
        "spec": {"holderIdentity": format!("{lease}-pod"), "leaseDurationSeconds": 15, "renewTime": renewed},
    });
    leases
        .patch(
            lease,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
}

async fn reconcile_as(harness: &Harness, ctx: &Arc<Context>) {
    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    hookplane_operator::reconcile::connection::reconcile(Arc::new(connection), ctx.clone())
        .await
        .unwrap();
}

async fn claimed_by(harness: &Harness) -> Option<String> {
    let connection: Connection = harness.cluster.api().get(CONNECTION).await.unwrap();
    connection.annotations().get(CLAIM_ANNOTATION).cloned()
}

async fn worker_image(harness: &Harness) -> String {
    deployment(harness, WORKER)
        .await
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test]
async fn two_operators_never_fight_over_a_connection() {
    let harness = Harness::examples().await;
    let a = claiming_operator(&harness, "a", "registry.example.com/hookplane:a");
    let b = claiming_operator(&harness, "b", "registry.example.com/hookplane:b");
    hold_lease(&harness, "a").await;
    hold_lease(&harness, "b").await;

    reconcile_as(&harness, &a).await;
    assert_eq!(claimed_by(&harness).await.as_deref(), Some("ops/a"));
    assert_eq!(
        worker_image(&harness).await,
        "registry.example.com/hookplane:a"
    );

    // B would run another image: while A's Lease is live, B changes nothing.
    for _ in 0..3 {
        let (_, writes) = harness.writes_during(reconcile_as(&harness, &b)).await;
        assert_eq!(writes, Vec::<String>::new());
    }
    assert_eq!(
        worker_image(&harness).await,
        "registry.example.com/hookplane:a"
    );
    let events = harness.cluster.events().await;
    assert!(
        events.contains(&(
            CONNECTION.into(),
            "Warning".into(),
            "ClaimedByAnotherOperator".into()
        )),
        "{events:?}"
    );
    // A keeps reconciling its own.
    reconcile_as(&harness, &a).await;
    assert_eq!(claimed_by(&harness).await.as_deref(), Some("ops/a"));

    // A stops renewing (uninstalled): after its Lease's 15 s and the skew allowance, B takes
    // the Connection over, and A, back with B's Lease live, leaves it to B.
    harness.clock.advance(Duration::from_secs(46));
    hold_lease(&harness, "b").await;
    reconcile_as(&harness, &b).await;
    assert_eq!(claimed_by(&harness).await.as_deref(), Some("ops/b"));
    assert_eq!(
        worker_image(&harness).await,
        "registry.example.com/hookplane:b"
    );
    let (_, writes) = harness.writes_during(reconcile_as(&harness, &a)).await;
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(
        worker_image(&harness).await,
        "registry.example.com/hookplane:b"
    );
}

#[tokio::test]
async fn with_the_controllers_caches_a_reconcile_lists_nothing() {
    let harness = Harness::examples().await;
    harness.reconcile_connection(CONNECTION).await.unwrap();
    harness.read_from_caches().await;
    let lists = harness.cluster.lists();
    let writes = harness.writes_of_reconcile(CONNECTION).await;
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "the cached world is up to date"
    );
    assert_eq!(
        harness.cluster.lists(),
        lists,
        "no LIST: the caches answered"
    );

    // What the caches hold is what the reconcile acts on: a worker Deployment missing from
    // them is applied again.
    let partial = Harness::new(Cluster::examples().await);
    partial.reconcile_connection(CONNECTION).await.unwrap();
    let mut caches = partial.cluster.caches().await;
    let (reader, mut writer) = kube::runtime::reflector::store();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    for deployment in caches.deployments.state() {
        if deployment.metadata.name.as_deref() != Some(WORKER) {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::InitApply(
                Deployment::clone(&deployment),
            ));
        }
    }
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    caches.deployments = reader;
    partial.ctx.caches.set(caches).ok().unwrap();
    let writes = partial.writes_of_reconcile(CONNECTION).await;
    assert_eq!(writes, [format!("patch Deployment {NAMESPACE}/{WORKER}")]);
    drop(writer);
}
