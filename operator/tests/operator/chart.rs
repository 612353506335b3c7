//! The Helm chart, as far as it can be checked without `helm` (none can be installed here).
//!
//! The templates keep to a small subset of Helm's language, which [`render`] implements:
//! `{{ .Values.a.b }}`, `.Release.Name`, `.Release.Namespace`, `.Chart.Name`,
//! `.Chart.AppVersion`, the pipes `| quote`, `| default <value>` and `toYaml ... | nindent N`,
//! and `{{-` / `-}}` whitespace trimming. Anything else fails this test, so the chart cannot
//! drift outside what is checked. The rendered manifests must parse as Kubernetes objects;
//! `operator/validate/run.sh` also validates them against the OpenAPI schemas (set
//! `HOOKPLANE_RENDER_CHART_TO=<dir>` to write them there).

use std::path::{Path, PathBuf};

use serde_json::Value;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/hookplane")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Look up `.Values.a.b`, `.Release.Name`, ... in `scope`.
fn lookup<'a>(scope: &'a Value, path: &str) -> &'a Value {
    let mut value = scope;
    for part in path.trim_start_matches('.').split('.') {
        value = value
            .get(part)
            .unwrap_or_else(|| panic!("{path} is not defined"));
    }
    value
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn empty(value: &Value) -> bool {
    matches!(value, Value::Null)
        || value == &Value::String(String::new())
        || value.as_array().is_some_and(Vec::is_empty)
        || value.as_object().is_some_and(serde_json::Map::is_empty)
}

/// Evaluate one action (the text between `{{` and `}}`, trims removed).
fn evaluate(action: &str, scope: &Value) -> String {
    let stages: Vec<&str> = action.split('|').map(str::trim).collect();
    let (mut value, mut text) = match stages[0].split_once(' ') {
        Some(("toYaml", path)) => {
            let value = lookup(scope, path.trim()).clone();
            let yaml = serde_saphyr::to_string(&value).expect("values serialize");
            (value, yaml.trim_end().to_owned())
        }
        None if stages[0].starts_with('.') => {
            let value = lookup(scope, stages[0]).clone();
            let text = scalar(&value);
            (value, text)
        }
        _ => panic!("unsupported template action {{{{ {action} }}}}"),
    };
    for stage in &stages[1..] {
        match stage.split_once(' ').unwrap_or((stage, "")) {
            ("quote", "") => text = serde_json::to_string(&text).expect("a string serializes"),
            ("default", fallback) => {
                if empty(&value) {
                    value = if fallback.starts_with('.') {
                        lookup(scope, fallback).clone()
                    } else {
                        serde_json::from_str(fallback).expect("a JSON literal default")
                    };
                    text = scalar(&value);
                }
            }
            ("nindent", n) => {
                let indent = " ".repeat(n.parse().expect("nindent N"));
                text = text.lines().map(|l| format!("\n{indent}{l}")).collect();
            }
            _ => panic!("unsupported template pipe `{stage}` in {{{{ {action} }}}}"),
        }
    }
    text
}

/// Render `template` with `scope` (Helm's `.`).
fn render(template: &str, scope: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").expect("an unclosed {{");
        let mut action = &after[..end];
        if let Some(trimmed) = action.strip_prefix('-') {
            action = trimmed;
            out.truncate(out.trim_end().len());
        }
        let trim_after = action.ends_with('-');
        action = action.trim_end_matches('-').trim();
        out.push_str(&evaluate(action, scope));
        rest = &after[end + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    out.push_str(rest);
    out
}

/// Every manifest of the chart: its CRDs, then its rendered templates.
fn manifests() -> Vec<(String, Value)> {
    let dir = chart_dir();
    let chart = yaml(&dir.join("Chart.yaml"));
    let scope = serde_json::json!({
        "Values": yaml(&dir.join("values.yaml")),
        "Release": {"Name": "hookplane", "Namespace": "hookplane"},
        "Chart": {"Name": chart["name"], "AppVersion": chart["appVersion"]},
    });
    let mut files: Vec<PathBuf> = ["crds", "templates"]
        .iter()
        .flat_map(|sub| {
            std::fs::read_dir(dir.join(sub))
                .expect("chart directory")
                .map(|e| e.unwrap().path())
        })
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut manifests = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rendered = if file.parent().unwrap().ends_with("templates") {
            render(&text, &scope)
        } else {
            text
        };
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let documents: Vec<Value> = serde_saphyr::from_multiple(&rendered)
            .unwrap_or_else(|e| panic!("{name} does not render to YAML: {e}\n{rendered}"));
        manifests.extend(documents.into_iter().map(|d| (name.clone(), d)));
    }
    manifests
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
fn the_templates_render_to_kubernetes_objects() {
    let manifests = manifests();
    let mut kinds: Vec<String> = manifests
        .iter()
        .map(|(_, m)| {
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
            "ClusterRole hookplane-api",
            "ClusterRole hookplane-operator",
            "ClusterRoleBinding hookplane-api",
            "ClusterRoleBinding hookplane-operator",
            "CustomResourceDefinition connections.hookplane.io",
            "CustomResourceDefinition touchpoints.hookplane.io",
            "Deployment hookplane-api",
            "Deployment hookplane-operator",
            "Role hookplane-operator-leader",
            "RoleBinding hookplane-operator-leader",
            "Service hookplane-api",
            "ServiceAccount hookplane-api",
            "ServiceAccount hookplane-operator",
        ]
    );
    for (file, manifest) in &manifests {
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
    let operator = manifests
        .iter()
        .find(|(_, m)| m["metadata"]["name"] == "hookplane-operator" && m["kind"] == "Deployment")
        .unwrap();
    let container = &operator.1["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"], "ghcr.io/hookplane/hookplane-operator:0.1.0",
        "the tag defaults to appVersion"
    );
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"HOOKPLANE_API_URL") && env.contains(&"HOOKPLANE_POD_NAME"));

    // The API runs in cluster mode on the release namespace.
    let api = manifests
        .iter()
        .find(|(_, m)| m["metadata"]["name"] == "hookplane-api" && m["kind"] == "Deployment")
        .unwrap();
    let container = &api.1["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        serde_json::json!(["api", "--listen", "0.0.0.0:8080", "--kubernetes"])
    );
    let namespace = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "HOOKPLANE_NAMESPACE")
        .expect("HOOKPLANE_NAMESPACE is set");
    assert_eq!(namespace["value"], "hookplane");

    if let Some(dir) = std::env::var_os("HOOKPLANE_RENDER_CHART_TO") {
        let documents: Vec<Value> = manifests.into_iter().map(|(_, m)| m).collect();
        let yaml = serde_saphyr::to_string_multiple(&documents).unwrap();
        std::fs::write(Path::new(&dir).join("chart.yaml"), yaml).unwrap();
    }
}

/// Whether the ClusterRole `name` allows `verb` on `group`/`resource`.
fn role_allows(
    manifests: &[(String, Value)],
    name: &str,
) -> impl Fn(&str, &str, &str) -> bool + use<> {
    let role = manifests
        .iter()
        .find(|(_, m)| m["kind"] == "ClusterRole" && m["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ClusterRole {name}"))
        .1
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
    let allows = role_allows(&manifests(), "hookplane-api");
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
    let allows = role_allows(&manifests(), "hookplane-operator");
    for (group, resource, verbs) in [
        ("hookplane.io", "connections", &["get", "list", "watch"][..]),
        ("hookplane.io", "touchpoints", &["get", "list", "watch"]),
        ("hookplane.io", "connections/status", &["patch"]),
        ("hookplane.io", "touchpoints/status", &["patch"]),
        ("", "configmaps", &["list", "watch", "patch", "delete"]),
        ("", "services", &["list", "watch", "patch", "delete"]),
        ("apps", "deployments", &["list", "watch", "patch", "delete"]),
        ("", "secrets", &["get", "list", "watch"]),
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

#[test]
fn the_mini_renderer_follows_helm() {
    let scope = serde_json::json!({"Values": {"a": "", "b": {"c": 1}, "list": ["x", "z"]}, "Chart": {"AppVersion": "9"}});
    assert_eq!(
        render("v: {{ .Values.a | default .Chart.AppVersion }}", &scope),
        "v: 9"
    );
    assert_eq!(render("v: {{ .Values.b.c | quote }}", &scope), "v: \"1\"");
    assert_eq!(
        render("l:\n  {{- toYaml .Values.list | nindent 2 }}\n", &scope),
        "l:\n  - x\n  - z\n"
    );
}
