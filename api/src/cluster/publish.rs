//! Portal to cluster: what publishing, auto-sync, secrets and deletion write to Kubernetes.
//!
//! Every write is a server-side apply with the field manager
//! [`API_FIELD_MANAGER`](hookplane_crds::identity::API_FIELD_MANAGER), so the API owns exactly
//! the fields it sets and a kubectl edit of the same fields shows up as another manager (the
//! mirror then marks the resource as managed outside the portal).

use std::collections::BTreeMap;

use hookplane_crds::{
    Connection, ConnectionSpec, Touchpoint, TouchpointSpec,
    identity::{API_FIELD_MANAGER, ID_ANNOTATION, PUBLISHED_GENERATION_ANNOTATION, hookplane_id},
};
use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use uuid::Uuid;

use super::{Cluster, ClusterError};

/// Longest Connection name the operator accepts (`hookplane-<name>-receiver` must fit a
/// 63-character DNS label; see the operator's `MAX_CONNECTION_NAME`).
pub const CONNECTION_NAME_MAX: usize = 44;
/// Longest Touchpoint name (a DNS label).
pub const TOUCHPOINT_NAME_MAX: usize = 63;

/// Label on every object the API creates.
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The resource name the portal gives a connection or touchpoint on its first publish:
/// `<display name as a DNS label>-<last 8 hex digits of the id>`, at most `max` characters.
/// Stable afterwards (it is stored), so renaming in the portal does not rename the resource.
pub fn resource_name(display: &str, id: Uuid, max: usize) -> String {
    let hex = id.simple().to_string();
    let suffix = &hex[hex.len() - 8..];
    let mut slug = String::new();
    for c in display.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.truncate(max.saturating_sub(suffix.len() + 1));
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        format!("hp-{suffix}")
    } else {
        format!("{slug}-{suffix}")
    }
}

/// The outcome of [`Cluster::publish`]: the resource names used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedResources {
    pub connection: String,
    pub touchpoint: String,
}

/// What to publish: the rows' ids and names, and the spec and generation to run.
pub struct Publication<'a> {
    pub connection_id: Uuid,
    pub connection_spec: &'a ConnectionSpec,
    /// The connection's resource name, when it has one already.
    pub connection_name: Option<&'a str>,
    /// False when the Connection is managed outside the portal: it is referenced only.
    pub apply_connection: bool,
    pub touchpoint_id: Uuid,
    pub touchpoint_spec: &'a TouchpointSpec,
    /// The touchpoint's resource name, when it has one already.
    pub touchpoint_name: Option<&'a str>,
    /// The portal generation being published.
    pub generation: i64,
}

impl Cluster {
    /// Apply the Connection, then the Touchpoint. A new name that an unrelated resource
    /// already holds is refused rather than taken over.
    pub async fn publish(
        &self,
        publication: Publication<'_>,
    ) -> Result<PublishedResources, PublishError> {
        let connection_name = self
            .name_for::<Connection>(
                publication.connection_name,
                &publication.connection_spec.name,
                publication.connection_id,
                CONNECTION_NAME_MAX,
            )
            .await?;
        let touchpoint_name = self
            .name_for::<Touchpoint>(
                publication.touchpoint_name,
                &publication.touchpoint_spec.name,
                publication.touchpoint_id,
                TOUCHPOINT_NAME_MAX,
            )
            .await?;
        if publication.apply_connection {
            let connection = Connection {
                metadata: self.metadata(&connection_name, publication.connection_id, None),
                spec: publication.connection_spec.clone(),
                status: None,
            };
            self.apply(&connection_name, &connection, "applying the Connection")
                .await?;
        }
        let mut spec = publication.touchpoint_spec.clone();
        spec.connection_ref = connection_name.clone();
        let touchpoint = Touchpoint {
            metadata: self.metadata(
                &touchpoint_name,
                publication.touchpoint_id,
                Some(publication.generation),
            ),
            spec,
            status: None,
        };
        self.apply(&touchpoint_name, &touchpoint, "applying the Touchpoint")
            .await?;
        Ok(PublishedResources {
            connection: connection_name,
            touchpoint: touchpoint_name,
        })
    }

    /// Store a secret value as key `key` of the Secret `name` (other keys are kept).
    pub async fn put_secret(&self, name: &str, key: &str, value: &str) -> Result<(), ClusterError> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    API_FIELD_MANAGER.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        self.apply(name, &secret, "writing a Secret").await
    }

    /// Delete a Touchpoint resource; one already gone is fine.
    pub async fn delete_touchpoint(&self, name: &str) -> Result<(), ClusterError> {
        let api: Api<Touchpoint> = Api::namespaced(self.client(), &self.namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(error) => Err(ClusterError::new("deleting the Touchpoint", error)),
        }
    }

    fn metadata(&self, name: &str, id: Uuid, generation: Option<i64>) -> ObjectMeta {
        let mut annotations = BTreeMap::from([(ID_ANNOTATION.to_owned(), id.to_string())]);
        if let Some(generation) = generation {
            annotations.insert(
                PUBLISHED_GENERATION_ANNOTATION.to_owned(),
                generation.to_string(),
            );
        }
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            annotations: Some(annotations),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                API_FIELD_MANAGER.to_owned(),
            )])),
            ..ObjectMeta::default()
        }
    }

    async fn apply<K>(&self, name: &str, object: &K, action: &str) -> Result<(), ClusterError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Clone
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client(), &self.namespace);
        let params = PatchParams::apply(API_FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map(drop)
            .map_err(|error| ClusterError::new(action, error))
    }

    /// The recorded resource name, or a new one from `display` that no other resource holds.
    async fn name_for<K>(
        &self,
        recorded: Option<&str>,
        display: &str,
        id: Uuid,
        max: usize,
    ) -> Result<String, PublishError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + serde::de::DeserializeOwned
            + Clone
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        if let Some(name) = recorded {
            return Ok(name.to_owned());
        }
        let name = resource_name(display, id, max);
        self.ensure_free::<K>(&name, id).await?;
        Ok(name)
    }

    /// Fails when `name` exists and belongs to another Hookplane id.
    async fn ensure_free<K>(&self, name: &str, id: Uuid) -> Result<(), PublishError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + serde::de::DeserializeOwned
            + Clone
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client(), &self.namespace);
        let existing = api
            .get_opt(name)
            .await
            .map_err(|error| ClusterError::new("reading a resource", error))?;
        match existing {
            Some(object) if hookplane_id(object.meta()) != Some(id.to_string()) => {
                Err(PublishError::NameTaken {
                    kind: K::kind(&K::DynamicType::default()).into_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Why a publish did not reach the cluster.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "a {kind} named {name:?} already exists in the cluster and is not this one; rename it or delete that resource"
    )]
    NameTaken { kind: String, name: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_dns_labels_with_the_id_suffix() {
        let id = Uuid::parse_str("0193a8f2-7c4e-7d3a-9b1c-2d3e4f5a6b7c").unwrap();
        assert_eq!(
            resource_name("Orders to ERP", id, 63),
            "orders-to-erp-4f5a6b7c"
        );
        assert_eq!(
            resource_name("  Über Größe!! ", id, 63),
            "ber-gr-e-4f5a6b7c"
        );
        assert_eq!(resource_name("???", id, 63), "hp-4f5a6b7c");
        let long = resource_name(&"Shopify orders ".repeat(10), id, CONNECTION_NAME_MAX);
        assert!(long.len() <= CONNECTION_NAME_MAX, "{long}");
        assert!(
            long.ends_with("-4f5a6b7c") && !long.contains("--"),
            "{long}"
        );
        for name in [long, resource_name("a-b", id, 12)] {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !name.starts_with('-'),
                "{name}"
            );
        }
    }
}
