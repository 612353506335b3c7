//! validate, build and status on plain values: no cluster, no clock.

use std::collections::BTreeMap;

use hookplane_crds::{
    Connection, Touchpoint,
    config::{CONFIG_HASH_ANNOTATION, CONFIG_KEY, RenderedConfig, secret_path},
};
use hookplane_operator::{
    build::{self, SECRETS_HASH_ANNOTATION, names, sha256_hex},
    settings::Settings,
    status::{self, Observed, Rollout},
    validate::{self, Validated},
};
use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::util::intstr::IntOrString,
    jiff::Timestamp,
};
use serde_json::json;

use crate::support::{connection, partner_shipments, secrets, settings, shopify_orders};

fn valid() -> Validated {
    validate::validate(
        &connection(),
        &[shopify_orders(), partner_shipments()],
        &secrets(),
    )
    .expect("the examples are valid")
}

fn rejection(touchpoint: Touchpoint, secrets: &BTreeMap<String, Secret>) -> (&'static str, String) {
    let validated =
        validate::validate(&connection(), &[touchpoint], secrets).expect("a valid connection");
    assert!(validated.touchpoints().is_empty(), "expected a rejection");
    let problem = validated.rejected()[0].problem.clone();
    (problem.reason, problem.message)
}

#[test]
fn the_examples_validate_with_every_touchpoint_and_secret() {
    let validated = valid();
    let names: Vec<_> = validated
        .touchpoints()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["partner-shipments", "shopify-orders"]);
    assert!(validated.rejected().is_empty());
    let mounted: Vec<_> = validated.secrets().keys().map(String::as_str).collect();
    assert_eq!(mounted, ["erp-api", "partner-hooks", "shopify-webhooks"]);
}

#[test]
fn a_touchpoint_with_a_broken_reference_is_left_out_with_an_actionable_reason() {
    let mut missing = secrets();
    missing.remove("shopify-webhooks");
    let (reason, message) = rejection(shopify_orders(), &missing);
    assert_eq!(reason, "SecretNotFound");
    assert!(
        message.contains("\"shopify-webhooks\"") && message.contains("create it"),
        "{message}"
    );

    let mut no_key = secrets();
    no_key.get_mut("shopify-webhooks").unwrap().data = Some(BTreeMap::from([(
        "other".to_owned(),
        ByteString(b"x".to_vec()),
    )]));
    assert_eq!(rejection(shopify_orders(), &no_key).0, "SecretKeyNotFound");

    let mut unknown_app = shopify_orders();
    unknown_app.spec.source.app = "shopfy".into();
    assert_eq!(rejection(unknown_app, &secrets()).0, "UnknownSourceApp");

    let mut unverified = partner_shipments();
    unverified.spec.source.verification = None;
    let (reason, message) = rejection(unverified, &secrets());
    assert_eq!(reason, "InvalidVerification");
    assert!(message.contains("scheme"), "{message}");

    let mut mapping = shopify_orders();
    mapping.spec.mapping.program = Some("{ broken".into());
    assert_eq!(rejection(mapping, &secrets()).0, "InvalidMapping");

    let mut filter = shopify_orders();
    filter.spec.filter = Some(".a ==".into());
    assert_eq!(rejection(filter, &secrets()).0, "InvalidFilter");

    let mut relative = shopify_orders();
    relative.spec.destination.url = "ftp://erp.example.com/orders".into();
    assert_eq!(rejection(relative, &secrets()).0, "InvalidDestinationUrl");

    // What the data plane would refuse to run is never rendered as running: the operator
    // applies the same validation (`hookplane_validation::validate`).
    let mut template = shopify_orders();
    template.spec.destination.url = "/orders/{{ .id }}".into();
    let (reason, message) = rejection(template, &secrets());
    assert_eq!(reason, "InvalidDestinationUrl");
    assert!(message.contains("placeholder"), "{message}");

    let mut ordering = shopify_orders();
    ordering.spec.ordering = Some(hookplane_crds::OrderingSpec {
        key: ".id |".into(),
        ..Default::default()
    });
    assert_eq!(rejection(ordering, &secrets()).0, "InvalidOrdering");

    let mut header = shopify_orders();
    header.spec.destination.headers = vec![hookplane_crds::HeaderSpec {
        name: "Bad Header".into(),
        value: "x".into(),
        ..Default::default()
    }];
    let (reason, message) = rejection(header, &secrets());
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("destination.headers[0]"), "{message}");
}

#[test]
fn of_two_touchpoints_on_one_endpoint_the_older_keeps_it() {
    let older = shopify_orders();
    let mut newer = partner_shipments();
    newer.spec.source.endpoint = older.spec.source.endpoint.clone();
    newer.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-02-01T00:00:00Z".parse().unwrap(),
    ));
    let validated = validate::validate(&connection(), &[newer, older], &secrets()).unwrap();
    assert_eq!(validated.touchpoints()[0].name, "shopify-orders");
    assert_eq!(validated.rejected()[0].name, "partner-shipments");
    assert_eq!(validated.rejected()[0].problem.reason, "EndpointConflict");
}

#[test]
fn a_terminating_touchpoint_is_left_out_silently() {
    let mut leaving = shopify_orders();
    leaving.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
    );
    let validated = validate::validate(&connection(), &[leaving], &secrets()).unwrap();
    assert!(validated.touchpoints().is_empty() && validated.rejected().is_empty());
    assert!(
        !validated.secrets().contains_key("shopify-webhooks"),
        "its secret is not mounted"
    );
}

#[test]
fn an_invalid_connection_stops_everything_with_its_reason() {
    let reason = |connection: Connection, secrets: &BTreeMap<String, Secret>| {
        validate::validate(&connection, &[shopify_orders()], secrets)
            .expect_err("invalid")
            .reason
    };
    let mut bounds = connection();
    bounds.spec.worker.min_replicas = 9;
    assert_eq!(reason(bounds, &secrets()), "InvalidWorkerSettings");

    let mut credentials = secrets();
    credentials.remove("erp-api");
    assert_eq!(reason(connection(), &credentials), "SecretNotFound");

    let mut name = connection();
    name.metadata.name = Some("a-name-far-too-long-for-the-receiver-service-name".into());
    assert_eq!(reason(name, &secrets()), "InvalidName");

    let mut base = connection();
    base.spec.destination_base_url = Some("erp.example.com".into());
    assert_eq!(reason(base, &secrets()), "InvalidDestinationBaseUrl");
}

#[test]
fn the_config_map_holds_the_rendered_configuration_and_its_hash() {
    let validated = valid();
    let config_map = build::config_map(&validated);
    assert_eq!(
        config_map.metadata.name.as_deref(),
        Some("hookplane-shop-to-erp-config")
    );
    let json = &config_map.data.as_ref().unwrap()[CONFIG_KEY];
    let config = RenderedConfig::from_json(json).expect("the contract type parses it");
    assert_eq!(config, build::rendered_config(&validated));
    let touchpoints: Vec<_> = config
        .touchpoints
        .iter()
        .map(|t| (t.name.as_str(), t.uid.as_str(), t.generation))
        .collect();
    assert_eq!(
        touchpoints,
        [
            (
                "partner-shipments",
                "7d1e3f9a-2b4c-4d6e-8f0a-1b2c3d4e5f60",
                1
            ),
            ("shopify-orders", "0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b", 1)
        ]
    );
    assert_eq!(config.connection.spec, connection().spec);
    assert_eq!(
        config_map.metadata.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION],
        sha256_hex(json.as_bytes())
    );
    let owner = &config_map.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Connection", "shop-to-erp", Some(true))
    );
    assert_eq!(Some(owner.uid.clone()), connection().metadata.uid);
}

#[test]
fn the_receiver_deployment_runs_the_receiver_role_with_config_secrets_and_database() {
    let validated = valid();
    let desired = build::desired(&validated, &settings(), 3);
    let receiver = desired.receiver.spec.as_ref().unwrap();
    assert_eq!(
        desired.receiver.metadata.name.as_deref(),
        Some("hookplane-shop-to-erp-receiver")
    );
    assert_eq!(receiver.replicas, Some(2));
    let rolling = receiver
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(
        rolling.max_unavailable,
        Some(IntOrString::Int(0)),
        "a receiver is always up"
    );

    let template = &receiver.template;
    let annotations = template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION], desired.config_hash);
    assert!(annotations.contains_key(SECRETS_HASH_ANNOTATION));
    let selector = receiver.selector.match_labels.as_ref().unwrap();
    let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "the selector matches the pods"
    );

    let pod = template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/hookplane:1.2.3")
    );
    assert_eq!(
        container.args.as_deref().unwrap(),
        [
            "receiver",
            "--config",
            "/etc/hookplane/config/hookplane.json",
            "--listen",
            "0.0.0.0:8080"
        ]
    );
    let env = serde_json::to_value(container.env.as_ref().unwrap()).unwrap();
    assert_eq!(
        env[0],
        json!({"name": "HOOKPLANE_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "hookplane-shop-to-erp-database", "key": "url"}}})
    );
    assert_eq!(
        serde_json::to_value(container.resources.as_ref().unwrap()).unwrap(),
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "HOOKPLANE_ORGANIZATION", "value": "acme"})),
        "the receiver routes /hooks/acme/..."
    );

    // Every secret the configuration refers to is a file under a mounted Secret.
    let mounts: Vec<_> = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.clone())
        .collect();
    let config = build::rendered_config(&validated);
    assert_eq!(config.secret_refs().len(), 3);
    for reference in config.secret_refs() {
        let path = secret_path(reference);
        assert!(
            mounts.iter().any(|m| path.starts_with(m)),
            "{} is not mounted",
            path.display()
        );
    }
    assert!(mounts.contains(&"/etc/hookplane/config".to_owned()));
    let volumes = serde_json::to_value(pod.volumes.as_ref().unwrap()).unwrap();
    assert_eq!(
        volumes[0]["configMap"]["name"],
        "hookplane-shop-to-erp-config"
    );
}

#[test]
fn the_worker_deployment_and_service() {
    let desired = build::desired(&valid(), &settings(), 3);
    let worker = desired.worker.spec.as_ref().unwrap();
    assert_eq!(
        desired.worker.metadata.name.as_deref(),
        Some("hookplane-shop-to-erp-worker")
    );
    assert_eq!(worker.replicas, Some(3));
    let container = &worker.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.args.as_deref().unwrap()[0], "worker");
    assert_eq!(
        serde_json::to_value(container.resources.as_ref().unwrap()).unwrap(),
        json!({"requests": {"cpu": "200m", "memory": "128Mi"}})
    );

    let service = desired.service.spec.as_ref().unwrap();
    assert_eq!(
        desired.service.metadata.name.as_deref(),
        Some(names::receiver("shop-to-erp").as_str())
    );
    assert_eq!(service.selector, receiver_labels(&desired));
    let port = &service.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (80, Some(IntOrString::String("http".into())))
    );

    let zero = build::desired(&valid(), &settings(), 0);
    assert_eq!(
        zero.worker.spec.unwrap().replicas,
        Some(0),
        "workers may scale to zero"
    );
    assert_eq!(
        zero.receiver.spec.unwrap().replicas,
        Some(2),
        "receivers do not"
    );
}

#[test]
fn building_is_deterministic_and_only_what_changed_changes() {
    let first = build::desired(&valid(), &settings(), 1);
    assert_eq!(first, build::desired(&valid(), &settings(), 1));

    let mut rotated = secrets();
    rotated.get_mut("erp-api").unwrap().data = Some(BTreeMap::from([(
        "token".to_owned(),
        ByteString(b"new".to_vec()),
    )]));
    let validated = validate::validate(
        &connection(),
        &[shopify_orders(), partner_shipments()],
        &rotated,
    )
    .unwrap();
    let after_rotation = build::desired(&validated, &settings(), 1);
    let hash = |d: &build::Desired, key: &str| {
        d.receiver
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[key]
            .clone()
    };
    assert_eq!(
        first.config_hash, after_rotation.config_hash,
        "no secret is in the configuration"
    );
    assert_ne!(
        hash(&first, SECRETS_HASH_ANNOTATION),
        hash(&after_rotation, SECRETS_HASH_ANNOTATION),
        "a rotation rolls the pods"
    );

    let mut edited = shopify_orders();
    edited.spec.filter = Some(".test == false".into());
    edited.metadata.generation = Some(2);
    let validated =
        validate::validate(&connection(), &[edited, partner_shipments()], &secrets()).unwrap();
    assert_ne!(
        first.config_hash,
        build::desired(&validated, &settings(), 1).config_hash
    );
}

#[test]
fn a_connection_without_touchpoints_still_runs_a_receiver() {
    let validated = validate::validate(&connection(), &[], &secrets()).unwrap();
    let desired = build::desired(&validated, &Settings::default(), 1);
    let config = build::rendered_config(&validated);
    assert!(config.touchpoints.is_empty());
    assert_eq!(desired.receiver.spec.unwrap().replicas, Some(2));
}

fn observed<'a>(
    validated: &'a Validated,
    backlog: Option<&'a hookplane_operator::backlog::Backlog>,
    settings: &'a Settings,
    receivers_ready: i32,
) -> Observed<'a> {
    Observed {
        connection: validated,
        config_hash: "0123456789abcdef",
        workers: 1,
        receivers: Rollout {
            desired: 2,
            ready: receivers_ready,
            current: true,
        },
        worker_rollout: Rollout {
            desired: 1,
            ready: 1,
            current: true,
        },
        backlog,
        settings,
    }
}

#[test]
fn statuses_say_what_runs_and_keep_transition_times() {
    let validated = valid();
    let settings = settings();
    let backlog = [("0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b".to_owned(), 40)].into();
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let touchpoint = &validated.touchpoints()[1];
    let first = status::published_touchpoint(
        None,
        touchpoint,
        &observed(&validated, Some(&backlog), &settings, 0),
        t0,
    );
    let condition = |s: &hookplane_crds::TouchpointStatus, t: &str| {
        let c = s.conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        (c.status, c.reason, c.last_transition_time.0)
    };
    assert_eq!(
        first.endpoint_url.as_deref(),
        Some("https://hooks.example.com/hooks/acme/shopify/orders")
    );
    assert_eq!(first.backlog, Some(40));
    assert_eq!(
        condition(&first, "Published"),
        ("True".into(), "Published".into(), t0)
    );
    assert_eq!(
        condition(&first, "Ready"),
        ("False".into(), "ReceiversNotReady".into(), t0)
    );
    assert_eq!(
        condition(&first, "Degraded"),
        ("True".into(), "ReceiversUnavailable".into(), t0)
    );

    let t1 = t0 + std::time::Duration::from_secs(60);
    let again = status::published_touchpoint(
        Some(&first),
        touchpoint,
        &observed(&validated, Some(&backlog), &settings, 0),
        t1,
    );
    assert_eq!(again, first, "an unchanged world computes the same status");

    let serving = status::published_touchpoint(
        Some(&first),
        touchpoint,
        &observed(&validated, Some(&backlog), &settings, 2),
        t1,
    );
    assert_eq!(
        condition(&serving, "Ready"),
        ("True".into(), "Serving".into(), t1)
    );
    assert_eq!(
        condition(&serving, "Published").2,
        t0,
        "Published did not change"
    );
    assert_eq!(
        condition(&serving, "Degraded"),
        ("False".into(), "AsExpected".into(), t1)
    );

    let flood = [("0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b".to_owned(), 5_000)].into();
    let degraded = status::connection(
        None,
        Some(1),
        &observed(&validated, Some(&flood), &settings, 2),
        t1,
    );
    let reason = degraded
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(
        (reason.status.as_str(), reason.reason.as_str()),
        ("True", "BacklogAboveCapacity")
    );
    assert_eq!(degraded.backlog, Some(5_000));
    assert_eq!(degraded.touchpoints, Some(2));

    let without_organization = Settings {
        organization: None,
        ..settings.clone()
    };
    let status = status::published_touchpoint(
        None,
        touchpoint,
        &observed(&validated, None, &without_organization, 2),
        t1,
    );
    assert_eq!(
        status.endpoint_url.as_deref(),
        Some("https://hooks.example.com/hooks/shop/shopify/orders"),
        "without --organization the receivers use the namespace"
    );
}

#[test]
fn portal_published_resources_render_under_their_portal_id_and_generation() {
    use hookplane_crds::identity::{ID_ANNOTATION, PUBLISHED_GENERATION_ANNOTATION};
    let portal_connection = "0193a8f2-0000-7000-8000-00000000c0de";
    let portal_touchpoint = "0193a8f2-0000-7000-8000-0000000070b0";
    let mut connection = connection();
    connection
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(ID_ANNOTATION.into(), portal_connection.into());
    let mut orders = shopify_orders();
    orders.metadata.generation = Some(2);
    let annotations = orders.metadata.annotations.get_or_insert_default();
    annotations.insert(ID_ANNOTATION.into(), portal_touchpoint.into());
    annotations.insert(PUBLISHED_GENERATION_ANNOTATION.into(), "9".into());
    let plain = partner_shipments();
    let plain_uid = plain.metadata.uid.clone().unwrap();

    let validated = validate::validate(&connection, &[orders, plain], &secrets()).unwrap();
    let config = build::rendered_config(&validated);
    assert_eq!(config.connection.uid, portal_connection);
    let by_name = |name: &str| config.touchpoints.iter().find(|t| t.name == name).unwrap();
    assert_eq!(by_name("shopify-orders").uid, portal_touchpoint);
    assert_eq!(by_name("shopify-orders").generation, 9);
    assert_eq!(by_name("partner-shipments").uid, plain_uid);

    // Owner references still name the Kubernetes object, and status reports its generation.
    let desired = build::desired(&validated, &settings(), 1);
    let owner = &desired.receiver.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(Some(owner.uid.clone()), connection.metadata.uid);
    let orders = validated
        .touchpoints()
        .iter()
        .find(|t| t.name == "shopify-orders")
        .unwrap();
    assert_eq!((orders.generation, orders.published_generation), (2, 9));
}

#[test]
fn receivers_and_workers_spread_over_nodes_and_zones() {
    let desired = build::desired(&valid(), &settings(), 3);
    for deployment in [&desired.receiver, &desired.worker] {
        let spec = deployment.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        let spread = pod.topology_spread_constraints.as_ref().expect("spread");
        let keys: Vec<&str> = spread.iter().map(|c| c.topology_key.as_str()).collect();
        assert_eq!(
            keys,
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        );
        for constraint in spread {
            assert_eq!(constraint.max_skew, 1);
            assert_eq!(constraint.when_unsatisfiable, "ScheduleAnyway");
            assert_eq!(
                constraint.label_selector.as_ref().unwrap().match_labels,
                spec.selector.match_labels,
                "{:?} spreads its own pods",
                deployment.metadata.name
            );
        }
    }
}

#[test]
fn the_receivers_have_a_disruption_budget() {
    let desired = build::desired(&valid(), &settings(), 3);
    let budget = &desired.receiver_budget;
    assert_eq!(
        budget.metadata.name.as_deref(),
        Some("hookplane-shop-to-erp-receiver")
    );
    let spec = budget.spec.as_ref().unwrap();
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        spec.min_available, None,
        "one receiver can still be drained"
    );
    assert_eq!(
        spec.selector.as_ref().unwrap().match_labels,
        receiver_labels(&desired),
        "it selects the receivers"
    );
    assert_eq!(
        budget.metadata.owner_references, desired.receiver.metadata.owner_references,
        "owned by the Connection, like everything it runs as"
    );
}

/// The labels the receiver Deployment selects its pods by.
fn receiver_labels(desired: &build::Desired) -> Option<std::collections::BTreeMap<String, String>> {
    desired
        .receiver
        .spec
        .as_ref()
        .unwrap()
        .selector
        .match_labels
        .clone()
}

#[test]
fn receivers_get_an_ingress_with_an_exact_path_per_endpoint_when_asked() {
    assert_eq!(
        build::desired(&valid(), &settings(), 1).receiver_ingress,
        None,
        "none unless asked"
    );
    let asked = Settings {
        receiver_ingress: Some(build::ReceiverIngress {
            class_name: Some("nginx".into()),
            host: Some("hooks.example.com".into()),
            annotations: BTreeMap::from([(
                "nginx.ingress.kubernetes.io/proxy-body-size".into(),
                "1m".into(),
            )]),
        }),
        ..settings()
    };
    let ingress = build::desired(&valid(), &asked, 1)
        .receiver_ingress
        .expect("an Ingress");
    let ingress = serde_json::to_value(&ingress).unwrap();
    assert_eq!(
        ingress["metadata"]["name"],
        "hookplane-shop-to-erp-receiver"
    );
    assert_eq!(ingress["metadata"]["namespace"], "shop");
    assert_eq!(
        ingress["metadata"]["ownerReferences"][0]["kind"],
        "Connection"
    );
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
        "1m"
    );
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "hooks.example.com");
    let backend =
        json!({"service": {"name": "hookplane-shop-to-erp-receiver", "port": {"number": 80}}});
    assert_eq!(
        rule["http"]["paths"],
        json!([
            {"path": "/hooks/acme/partner/shipments", "pathType": "Exact", "backend": backend},
            {"path": "/hooks/acme/shopify/orders", "pathType": "Exact", "backend": backend},
        ]),
        "the organization's path of each touchpoint, nothing else"
    );

    // Without an organization, the namespace is the path's; without touchpoints, nothing to
    // route (an Ingress rule needs a path).
    let by_namespace = Settings {
        organization: None,
        ..asked.clone()
    };
    let ingress = build::desired(&valid(), &by_namespace, 1)
        .receiver_ingress
        .unwrap();
    let paths = &ingress.spec.unwrap().rules.unwrap()[0]
        .http
        .clone()
        .unwrap()
        .paths;
    assert_eq!(
        paths[0].path.as_deref(),
        Some("/hooks/shop/partner/shipments")
    );
    let empty = validate::validate(&connection(), &[], &secrets()).unwrap();
    assert_eq!(build::desired(&empty, &asked, 1).receiver_ingress, None);
}
