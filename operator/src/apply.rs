//! Writing to the cluster, only when something differs.
//!
//! [`apply`] server-side applies an object with the field manager `hookplane-operator` unless
//! the cluster already holds it: every field the operator sets has the same value, and the
//! object carries the hash of exactly this intent (so a field the operator stopped setting is
//! noticed too). Fields the API server or others add do not count, nor what a real server does
//! to what it stores (zero values left out, quantities made canonical; see [`contains`]).
//! [`status`] writes a status only when it changed. A reconcile of an unchanged world
//! therefore writes nothing.

use std::fmt::Debug;

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::build::{MANAGER, sha256_hex};

/// Annotation holding the SHA-256 of the operator's last applied intent for an object.
pub const APPLIED_HASH_ANNOTATION: &str = "hookplane.io/applied-hash";

/// What [`apply`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied<K> {
    /// The cluster already held the object.
    Unchanged(K),
    /// The object was applied; the cluster's answer.
    Applied(K),
}

impl<K> Applied<K> {
    pub fn object(&self) -> &K {
        match self {
            Self::Unchanged(object) | Self::Applied(object) => object,
        }
    }

    pub fn changed(&self) -> bool {
        matches!(self, Self::Applied(_))
    }
}

/// Server-side apply `desired` unless `current` (the cluster's copy) already matches it.
pub async fn apply<K>(
    api: &Api<K>,
    desired: &K,
    current: Option<&K>,
) -> Result<Applied<K>, kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let intent = intent(desired);
    if let Some(current) = current {
        let held = serde_json::to_value(current).expect("a Kubernetes object serializes");
        if contains(&held, &intent) {
            return Ok(Applied::Unchanged(current.clone()));
        }
    }
    let params = PatchParams::apply(MANAGER).force();
    let applied = api
        .patch(&desired.name_any(), &params, &Patch::Apply(&intent))
        .await?;
    Ok(Applied::Applied(applied))
}

/// `desired` as JSON with the hash of itself in [`APPLIED_HASH_ANNOTATION`].
fn intent<K: Serialize>(desired: &K) -> Value {
    let mut intent = serde_json::to_value(desired).expect("a Kubernetes object serializes");
    strip_nulls(&mut intent);
    let hash = sha256_hex(intent.to_string().as_bytes());
    let metadata = intent
        .as_object_mut()
        .expect("an object serializes to a JSON object")
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let annotations = metadata
        .as_object_mut()
        .expect("metadata is a JSON object")
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    annotations
        .as_object_mut()
        .expect("annotations are a JSON object")
        .insert(APPLIED_HASH_ANNOTATION.into(), Value::String(hash));
    intent
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Whether `held` has every field of `wanted` with the same value, as an API server returns
/// it: objects may have more keys, arrays must match element by element. Two things a real
/// server does to what it stores are not differences: it leaves out a field whose value is its
/// type's zero (`readOnly: false`, `0`, `""`, an empty list or map; Go's `omitempty`), and it
/// writes resource quantities in canonical form (`cpu: 0.5` comes back as `500m`, `1.5Gi` as
/// `1536Mi`), so quantities under `resources`, `sizeLimit` and `overhead` compare by value.
pub fn contains(held: &Value, wanted: &Value) -> bool {
    contains_at(held, wanted, false)
}

fn contains_at(held: &Value, wanted: &Value, quantities: bool) -> bool {
    match (held, wanted) {
        (Value::Object(held), Value::Object(wanted)) => wanted.iter().all(|(key, value)| {
            let quantities =
                quantities || matches!(key.as_str(), "resources" | "sizeLimit" | "overhead");
            match held.get(key) {
                Some(held) => contains_at(held, value, quantities),
                None => is_zero(value),
            }
        }),
        (Value::Array(held), Value::Array(wanted)) => {
            held.len() == wanted.len()
                && held
                    .iter()
                    .zip(wanted)
                    .all(|(h, w)| contains_at(h, w, quantities))
        }
        (Value::Number(held), Value::Number(wanted)) => held.as_f64() == wanted.as_f64(),
        (Value::String(held), Value::String(wanted)) if quantities && held != wanted => {
            match (quantity(held), quantity(wanted)) {
                (Some(held), Some(wanted)) => {
                    (held - wanted).abs() <= 1e-9 * held.abs().max(wanted.abs())
                }
                _ => false,
            }
        }
        (held, wanted) => held == wanted,
    }
}

/// A value Go's `omitempty` leaves out of what the server returns.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Null => true,
    }
}

/// A Kubernetes quantity (`500m`, `0.5`, `1.5Gi`, `1e3`, `2k`) as a number; `None` for text
/// that is not one.
fn quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(number * scale)
}

/// Delete those of `existing` (the objects labelled for a connection) whose names are not in
/// `keep` and that are not already going; their names.
pub async fn prune<K>(
    api: &Api<K>,
    existing: &[K],
    keep: &[&str],
) -> Result<Vec<String>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut deleted = Vec::new();
    for object in existing {
        let name = object.name_any();
        if keep.contains(&name.as_str()) || object.meta().deletion_timestamp.is_some() {
            continue;
        }
        api.delete(&name, &DeleteParams::background()).await?;
        deleted.push(name);
    }
    Ok(deleted)
}

/// The objects of kind `K` labelled with `selector`.
pub async fn list<K>(api: &Api<K>, selector: &str) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Write `status` to the object `name` unless `current` already is that status. A JSON merge
/// patch: top-level fields the new status no longer has are removed.
pub async fn status<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    status: &S,
) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let mut patch = serde_json::to_value(status).expect("a status serializes");
    if let (Some(Value::Object(old)), Value::Object(new)) = (
        current.map(|c| serde_json::to_value(c).expect("a status serializes")),
        &mut patch,
    ) {
        for key in old.keys() {
            new.entry(key.clone()).or_insert(Value::Null);
        }
    }
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_status(
        name,
        &params,
        &Patch::Merge(serde_json::json!({ "status": patch })),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn contains_ignores_fields_others_add_but_not_changed_values() {
        let wanted = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let held = json!({
            "spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}], "paused": false},
            "status": {"readyReplicas": 1}
        });
        assert!(contains(&held, &wanted));
        assert!(!contains(&held, &json!({"spec": {"replicas": 3}})));
        assert!(!contains(
            &held,
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(!contains(&held, &json!({"spec": {"missing": 1}})));
        assert!(contains(&json!({"n": 1.0}), &json!({"n": 1})));
    }

    #[test]
    fn contains_sees_through_what_a_server_does_to_stored_objects() {
        // Zero values left out (Go's omitempty), quantities canonical.
        let wanted = json!({"spec": {"volumeMounts": [{"name": "tmp", "readOnly": false}],
            "resources": {"requests": {"cpu": "0.5", "memory": "1.5Gi"}, "limits": {"memory": "1e3"}}}});
        let held = json!({"spec": {"volumeMounts": [{"name": "tmp"}],
            "resources": {"requests": {"cpu": "500m", "memory": "1536Mi"}, "limits": {"memory": "1k"}}}});
        assert!(contains(&held, &wanted));
        // Real differences still count.
        let more_cpu = json!({"spec": {"resources": {"requests": {"cpu": "600m"}}}});
        assert!(!contains(&held, &more_cpu));
        let read_only = json!({"spec": {"volumeMounts": [{"name": "tmp", "readOnly": true}]}});
        assert!(!contains(&held, &read_only));
        // Only resource quantities compare by value; other text compares as text.
        assert!(!contains(&json!({"env": "500m"}), &json!({"env": "0.5"})));
        assert!(!contains(
            &held,
            &json!({"spec": {"resources": {"requests": {"cpu": "lots"}}}})
        ));
    }

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        for (text, value) in [
            ("500m", 0.5),
            ("0.5", 0.5),
            ("2", 2.0),
            ("1.5Gi", 1.5 * 1024.0 * 1024.0 * 1024.0),
            ("1536Mi", 1536.0 * 1024.0 * 1024.0),
            ("1e3", 1000.0),
            ("1E3", 1000.0),
            ("2k", 2000.0),
            ("1E", 1e18),
            ("100n", 1e-7),
        ] {
            let parsed = quantity(text).unwrap_or(f64::NAN);
            assert!(
                (parsed - value).abs() <= 1e-9 * value.abs(),
                "{text}: {parsed}"
            );
        }
        for text in ["", "Gi", "lots", "1.5Xi", "1e", "--1"] {
            assert_eq!(quantity(text), None, "{text}");
        }
    }

    #[test]
    fn the_intent_hash_changes_when_a_field_is_dropped() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let mut config = ConfigMap::default();
        config.metadata.name = Some("c".into());
        config.data = Some([("a".to_owned(), "1".to_owned())].into());
        let with_data = intent(&config);
        config.data = None;
        let without = intent(&config);
        let hash = |v: &Value| v["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].clone();
        assert_ne!(hash(&with_data), hash(&without));
        // The old object still "contains" the new intent's fields but not its hash.
        assert!(!contains(&with_data, &without));
    }
}
