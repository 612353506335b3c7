//! What a Connection's reconcile reads, from caches the controllers' watches keep, instead of
//! six LISTs per reconcile: at 1,000 Connections polled every 30 s the API server would answer
//! 200 LISTs a second for nothing.
//!
//! The Touchpoints come from the Touchpoint controller's cache; the objects the operator owns
//! from reflectors on the same label-selected watches that wake the Connection controller.
//! The Secrets a Connection or its Touchpoints refer to are still read one GET each: their
//! data is needed (keys, the rotation hash) and caching every Secret of the cluster in full is
//! what the metadata-only watch avoids.
//!
//! A cache may lag a write by one watch event; the next reconcile (woken by that event) sees
//! it, and an apply it repeats in between is a server-side no-op.

use std::sync::Arc;

use hookplane_crds::Touchpoint;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use kube::{Resource, ResourceExt, runtime::reflector::Store};

use crate::build::{CONNECTION_LABEL, MANAGED_BY_LABEL, MANAGER};

/// Every cache a Connection's reconcile reads.
#[derive(Clone)]
pub struct Caches {
    pub touchpoints: Store<Touchpoint>,
    pub config_maps: Store<ConfigMap>,
    pub services: Store<Service>,
    pub deployments: Store<Deployment>,
    pub budgets: Store<PodDisruptionBudget>,
    /// Only the operator's own Secrets (the database URL of each connection).
    pub secrets: Store<Secret>,
    pub ingresses: Store<Ingress>,
}

impl Caches {
    /// Wait until every cache has been filled by its first list (the reconciles start before).
    pub async fn ready(&self) {
        let _ = futures::join!(
            self.touchpoints.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.services.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.budgets.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.ingresses.wait_until_ready(),
        );
    }

    /// The Touchpoints in `namespace` naming the Connection `connection`.
    pub fn touchpoints_of(&self, namespace: &str, connection: &str) -> Vec<Touchpoint> {
        self.touchpoints
            .state_filter(|t| {
                t.namespace().as_deref() == Some(namespace) && t.spec.connection_ref == connection
            })
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect()
    }
}

/// The objects of `store` in `namespace` the operator made for the Connection `connection`
/// (the labels [`crate::build::selector`] selects by).
pub fn owned<K>(store: &Store<K>, namespace: &str, connection: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state_filter(|object| {
            let labels = object.labels();
            object.namespace().as_deref() == Some(namespace)
                && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGER)
                && labels.get(CONNECTION_LABEL).map(String::as_str) == Some(connection)
        })
        .into_iter()
        .map(Arc::unwrap_or_clone)
        .collect()
}
