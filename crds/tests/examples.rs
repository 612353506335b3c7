//! The examples under `crds/examples/` against the generated CRDs, the way `kubectl apply`
//! meets them (`hookplane-admission`: schema defaults, openAPIV3Schema, CEL rules). Then each
//! example must deserialize into its Rust type.

use std::path::{Path, PathBuf};

use hookplane_admission as admission;
use hookplane_crds::{Connection, Touchpoint, manifest};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every document of every example file, with its file name.
fn examples() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .expect("crds/examples exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("readable example");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
            docs.into_iter().map(move |doc| (name.clone(), doc))
        })
        .collect()
}

fn crd_for(kind: &str) -> CustomResourceDefinition {
    admission::crd_for(kind).unwrap_or_else(|| panic!("no CRD for kind {kind}"))
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    admission::schema_of(crd)
}

fn admit(object: &Value, old: Option<&Value>) -> Vec<String> {
    admission::admit(object, old)
}

fn example(kind: &str, name: &str) -> Value {
    examples()
        .into_iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no example {kind} {name}"))
}

#[test]
fn examples_are_admitted_and_deserialize() {
    let mut seen = 0;
    for (file, doc) in examples() {
        if doc["apiVersion"] != "hookplane.io/v1alpha1" {
            continue;
        }
        seen += 1;
        let errors = admit(&doc, None);
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        let typed = match doc["kind"].as_str() {
            Some("Connection") => serde_json::from_value::<Connection>(doc.clone()).map(drop),
            Some("Touchpoint") => serde_json::from_value::<Touchpoint>(doc.clone()).map(drop),
            other => panic!("{file}: unexpected kind {other:?}"),
        };
        typed.unwrap_or_else(|e| panic!("{file}: does not deserialize: {e}"));
    }
    assert!(
        seen >= 3,
        "expected a Connection and two Touchpoints, saw {seen}"
    );
}

#[test]
fn cel_rules_compile() {
    for crd in manifest::crds() {
        let compiled = kube_cel::compile_schema(&schema_of(&crd));
        assert!(
            !compiled.has_errors(),
            "{:?}: {:?}",
            crd.metadata.name,
            compiled.compilation_errors()
        );
    }
}

/// Each case breaks one rule; each must be rejected with a message naming it.
#[test]
fn invalid_specs_are_rejected() {
    let connection = example("Connection", "shop-to-erp");
    let touchpoint = example("Touchpoint", "shopify-orders");
    let with = |base: &Value, pointer: &str, value: Value| {
        let mut changed = base.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let parent = changed
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{pointer}"));
        parent[key] = value;
        changed
    };
    let cases = [
        (
            with(&connection, "/spec/worker/minReplicas", json!(7)),
            "minReplicas must not exceed maxReplicas",
        ),
        (
            with(&connection, "/metadata/name", json!("Shop.To.ERP")),
            "DNS label",
        ),
        (
            with(&connection, "/spec/receiver/replicas", json!(0)),
            "minimum",
        ),
        (
            with(&connection, "/spec/worker/surprise", json!(1)),
            "surprise",
        ),
        (
            with(&touchpoint, "/spec/source/endpoint", json!("../etc")),
            "does not match",
        ),
        (
            with(&touchpoint, "/spec/source/endpoint", json!("a//b")),
            "does not match",
        ),
        (
            with(&touchpoint, "/spec/source/app", json!("shopfy")),
            "shopfy",
        ),
        (
            with(&touchpoint, "/spec/destination/method", json!("GET")),
            "GET",
        ),
        (
            with(&touchpoint, "/spec/delivery/maxAttempts", json!(0)),
            "minimum",
        ),
        (
            with(
                &touchpoint,
                "/spec/delivery/initialBackoffMs",
                json!(700_000),
            ),
            "initialBackoffMs must not exceed maxBackoffMs",
        ),
        (
            with(&touchpoint, "/spec/connectionRef", json!("Shop")),
            "does not match",
        ),
    ];
    for (object, expected) in cases {
        let errors = admit(&object, None);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?}, got {errors:#?}"
        );
    }
}

#[test]
fn connection_ref_is_immutable() {
    let old = example("Touchpoint", "shopify-orders");
    let mut moved = old.clone();
    moved["spec"]["connectionRef"] = json!("another-connection");
    let errors = admit(&moved, Some(&old));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("connectionRef is immutable")),
        "{errors:#?}"
    );

    let mut renamed = old.clone();
    renamed["spec"]["name"] = json!("Renamed");
    assert_eq!(admit(&renamed, Some(&old)), Vec::<String>::new());
}

#[test]
fn defaults_fill_a_minimal_connection() {
    let minimal = json!({
        "apiVersion": "hookplane.io/v1alpha1",
        "kind": "Connection",
        "metadata": {"name": "minimal", "namespace": "default"},
        "spec": {"name": "Minimal", "sourceApp": "generic", "destinationApp": "generic"}
    });
    assert_eq!(admit(&minimal, None), Vec::<String>::new());
    let schema = schema_of(&crd_for("Connection"));
    let defaulted = kube_cel::apply_defaults(&schema, &minimal);
    let connection: Connection = serde_json::from_value(defaulted).unwrap();
    assert_eq!(connection.spec.worker, Default::default());
    assert_eq!(connection.spec.receiver.replicas, 2);
}
