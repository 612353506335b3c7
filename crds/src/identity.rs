//! How a Touchpoint or Connection resource maps to a row of the Hookplane database.
//!
//! Both the operator (which renders a connection's configuration, see [`crate::config`]) and
//! the API in cluster mode (which mirrors resources into the portal model) use these two
//! rules, so events, logs and the backlog are keyed the same way everywhere:
//!
//! - **Id.** A resource's Hookplane id is its [`ID_ANNOTATION`] when that is a UUID (the API
//!   sets it on what the portal publishes, whose rows existed before the resource), otherwise
//!   its `metadata.uid` (resources applied with kubectl).
//! - **Published generation.** The generation of the spec that runs is
//!   [`PUBLISHED_GENERATION_ANNOTATION`] when set (the portal's own draft counter, which the
//!   API writes when it publishes), otherwise `metadata.generation`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotation holding the Hookplane id of a resource the portal published.
pub const ID_ANNOTATION: &str = "hookplane.io/id";
/// Annotation holding the portal generation a published Touchpoint carries.
pub const PUBLISHED_GENERATION_ANNOTATION: &str = "hookplane.io/published-generation";
/// The field manager the API applies resources with; a spec field owned by any other
/// manager means the resource is managed outside the portal.
pub const API_FIELD_MANAGER: &str = "hookplane-api";

/// The Hookplane id of a resource: [`ID_ANNOTATION`] if it is a UUID, else `metadata.uid`.
pub fn hookplane_id(meta: &ObjectMeta) -> Option<String> {
    let annotated = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ID_ANNOTATION))
        .map(|id| id.trim().to_ascii_lowercase())
        .filter(|id| is_uuid(id));
    annotated.or_else(|| meta.uid.clone())
}

/// The generation of the running spec: [`PUBLISHED_GENERATION_ANNOTATION`] if it is a
/// positive integer, else `metadata.generation` (1 when absent).
pub fn published_generation(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(PUBLISHED_GENERATION_ANNOTATION))
        .and_then(|g| g.trim().parse::<i64>().ok())
        .filter(|g| *g > 0)
        .or(meta.generation)
        .unwrap_or(1)
}

/// Whether some field manager other than [`API_FIELD_MANAGER`] owns part of `spec` (the
/// status subresource does not count). A resource the API never applied is managed outside
/// the portal even when its managed fields are unknown.
pub fn managed_outside_portal(meta: &ObjectMeta) -> bool {
    let entries = meta.managed_fields.as_deref().unwrap_or_default();
    let owns_spec =
        |entry: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
            entry.subresource.as_deref().unwrap_or_default().is_empty()
                && entry
                    .fields_v1
                    .as_ref()
                    .and_then(|fields| fields.0.get("f:spec"))
                    .is_some()
        };
    let mut spec_owners = entries.iter().filter(owns_spec).peekable();
    if spec_owners.peek().is_none() {
        return true;
    }
    spec_owners.any(|entry| entry.manager.as_deref() != Some(API_FIELD_MANAGER))
}

/// A UUID in its hyphenated form (8-4-4-4-12 hexadecimal digits).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    use super::*;

    const UID: &str = "5d2c5a8e-6a47-4bde-8f1f-2f0a3b4c5d6e";
    const PORTAL_ID: &str = "0193a8f2-7c4e-7d3a-9b1c-2d3e4f5a6b7c";

    fn meta(annotations: &[(&str, &str)], generation: Option<i64>) -> ObjectMeta {
        ObjectMeta {
            uid: Some(UID.into()),
            generation,
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn entry(
        manager: &str,
        subresource: Option<&str>,
        fields: serde_json::Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            subresource: subresource.map(Into::into),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn the_id_annotation_wins_over_the_uid_only_when_it_is_a_uuid() {
        assert_eq!(hookplane_id(&meta(&[], None)).as_deref(), Some(UID));
        assert_eq!(
            hookplane_id(&meta(&[(ID_ANNOTATION, PORTAL_ID)], None)).as_deref(),
            Some(PORTAL_ID)
        );
        assert_eq!(
            hookplane_id(&meta(&[(ID_ANNOTATION, &PORTAL_ID.to_uppercase())], None)).as_deref(),
            Some(PORTAL_ID)
        );
        for bad in [
            "",
            "orders",
            "0193a8f2-7c4e-7d3a-9b1c-2d3e4f5a6b7",
            "0193a8f2x7c4e-7d3a-9b1c-2d3e4f5a6b7c",
        ] {
            assert_eq!(
                hookplane_id(&meta(&[(ID_ANNOTATION, bad)], None)).as_deref(),
                Some(UID),
                "{bad:?}"
            );
        }
        assert_eq!(hookplane_id(&ObjectMeta::default()), None);
    }

    #[test]
    fn the_published_generation_annotation_wins_over_metadata_generation() {
        assert_eq!(published_generation(&meta(&[], Some(4))), 4);
        assert_eq!(published_generation(&meta(&[], None)), 1);
        assert_eq!(
            published_generation(&meta(&[(PUBLISHED_GENERATION_ANNOTATION, "7")], Some(2))),
            7
        );
        for bad in ["0", "-3", "seven", ""] {
            assert_eq!(
                published_generation(&meta(&[(PUBLISHED_GENERATION_ANNOTATION, bad)], Some(2))),
                2,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_spec_field_owned_by_another_manager_means_managed_outside_the_portal() {
        let spec = json!({"f:spec": {"f:name": {}}});
        let status = json!({"f:status": {"f:conditions": {}}});
        let with = |entries: Vec<ManagedFieldsEntry>| ObjectMeta {
            managed_fields: Some(entries),
            ..ObjectMeta::default()
        };
        assert!(!managed_outside_portal(&with(vec![entry(
            API_FIELD_MANAGER,
            None,
            spec.clone()
        )])));
        assert!(!managed_outside_portal(&with(vec![
            entry(API_FIELD_MANAGER, None, spec.clone()),
            entry("hookplane-operator", Some("status"), status.clone()),
            entry(
                "kubectl-annotate",
                None,
                json!({"f:metadata": {"f:annotations": {}}})
            ),
        ])));
        assert!(managed_outside_portal(&with(vec![
            entry(API_FIELD_MANAGER, None, spec.clone()),
            entry("kubectl-edit", None, json!({"f:spec": {"f:filter": {}}})),
        ])));
        assert!(managed_outside_portal(&with(vec![entry(
            "kubectl", None, spec
        )])));
        assert!(managed_outside_portal(&with(vec![entry(
            "hookplane-operator",
            Some("status"),
            status
        )])));
        assert!(managed_outside_portal(&ObjectMeta::default()));
    }
}
