//! Writing to the cluster, only when something differs.
//!
//! [`apply`] server-side applies an object with the field manager `hookplane-operator` unless
//! the cluster already holds it: every field the operator sets has the same value, and the
//! object carries the hash of exactly this intent (so a field the operator stopped setting is
//! noticed too). Fields the API server or others add do not count. [`status`] writes a status
//! only when it changed. A reconcile of an unchanged world therefore writes nothing.

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

/// Whether `held` has every field of `wanted` with the same value: objects may have more keys,
/// arrays must match element by element.
pub fn contains(held: &Value, wanted: &Value) -> bool {
    match (held, wanted) {
        (Value::Object(held), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| held.get(key).is_some_and(|h| contains(h, value))),
        (Value::Array(held), Value::Array(wanted)) => {
            held.len() == wanted.len() && held.iter().zip(wanted).all(|(h, w)| contains(h, w))
        }
        (Value::Number(held), Value::Number(wanted)) => held.as_f64() == wanted.as_f64(),
        (held, wanted) => held == wanted,
    }
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
