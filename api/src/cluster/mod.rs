//! Cluster mode (`hookplane api --kubernetes`): the portal model and the cluster's Touchpoint
//! and Connection resources kept in step, both ways.
//!
//! - **Portal to cluster** ([`publish`]): publishing a touchpoint server-side applies its
//!   Connection and Touchpoint resources with the field manager `hookplane-api`, annotated
//!   with their Hookplane ids and the published generation (`hookplane_crds::identity`);
//!   secrets the portal is given become Kubernetes Secrets; deleting a touchpoint deletes its
//!   resource.
//! - **Cluster to portal** ([`mirror`]): every Connection and Touchpoint in the namespace is
//!   watched and mirrored into the database, including those applied with kubectl, which are
//!   marked as managed outside the portal and are read-only there (a mutation answers
//!   `MANAGED_OUTSIDE_PORTAL`). A resource deleted from the cluster is deleted from the
//!   portal.
//!
//! The operator turns the resources into running receivers and workers; this module never
//! touches those.

pub mod mirror;
pub mod publish;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// The cluster the API publishes to and mirrors from.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    namespace: String,
    synced: Arc<AtomicBool>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("synced", &self.is_synced())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Publish to and mirror from `namespace` through `client`.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            synced: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The namespace resources live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// True once the first full list of resources has been mirrored (`/readyz` waits for it).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    fn client(&self) -> kube::Client {
        self.client.clone()
    }
}

/// A Kubernetes API call that failed, for GraphQL answers and logs.
#[derive(Debug, thiserror::Error)]
#[error("the Kubernetes API refused or failed {action}: {message}")]
pub struct ClusterError {
    action: String,
    message: String,
    #[source]
    source: kube::Error,
}

impl ClusterError {
    fn new(action: impl Into<String>, source: kube::Error) -> Self {
        let message = match &source {
            kube::Error::Api(status) => status.message.clone(),
            other => other.to_string(),
        };
        Self {
            action: action.into(),
            message,
            source,
        }
    }
}
