//! Write-only secrets: values arrive with a spec that refers to them and are written once the
//! spec is accepted, to the database or, in cluster mode, to Kubernetes Secrets (where the
//! operator's receivers and workers read them). They are never read back through the API.

use hookplane_crds::SecretKeyRef;
use uuid::Uuid;

use super::{Portal, PortalError, PortalResult};
use crate::cluster::ClusterError;

/// Secret values to store once the spec that references them is stored.
#[derive(Default)]
pub struct SecretWrites(pub Vec<(SecretKeyRef, String)>);

/// The Secret name for a new connection's or touchpoint's values (`kind` is `connection` or
/// `touchpoint`); an existing touchpoint keeps `touchpoint-<id>`.
pub fn new_secret_name(kind: &str) -> String {
    format!("{kind}-{}", Uuid::now_v7())
}

impl Portal {
    pub(super) async fn write_secrets(&self, secrets: SecretWrites) -> PortalResult<()> {
        for (reference, value) in secrets.0 {
            match &self.cluster {
                Some(cluster) => cluster
                    .put_secret(&reference.name, &reference.key, &value)
                    .await
                    .map_err(cluster_error)?,
                None => {
                    self.store
                        .put_secret(&reference.name, &reference.key, &value)
                        .await?
                }
            }
        }
        Ok(())
    }
}

pub(super) fn cluster_error(error: ClusterError) -> PortalError {
    tracing::warn!(%error, source = ?std::error::Error::source(&error), "Kubernetes API call failed");
    PortalError::invalid("KUBERNETES_ERROR", error.to_string())
}
