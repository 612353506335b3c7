//! What the operator's flags decide about the objects it builds, as one plain value.

use std::time::Duration;

use crate::build::ReceiverIngress;

/// The key of the URL in each connection's database Secret.
pub const DATABASE_SECRET_KEY: &str = "url";

/// A PostgreSQL URL, which holds a password: it never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

/// Cluster-wide settings of the data plane the operator runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The Hookplane image receivers and workers run (`hookplane receiver|worker`).
    pub image: String,
    /// `imagePullPolicy` of their containers.
    pub image_pull_policy: String,
    /// The data plane's PostgreSQL URL. The operator copies it into a Secret of each
    /// connection ([`crate::build::names::database`], key [`DATABASE_SECRET_KEY`]), owned by
    /// the Connection, which its receivers and workers read: nobody copies the database
    /// Secret into every namespace by hand. `None` (rendering without a cluster) builds no
    /// Secret; the pods still name it.
    pub database_url: Option<DatabaseUrl>,
    /// The public base URL webhooks arrive at (the organization's registered URL), used for
    /// `status.endpointUrl`.
    pub public_base_url: Option<String>,
    /// The organization slug in endpoint URLs (`/hooks/<organization>/<endpoint>`), passed to
    /// receivers and workers as `HOOKPLANE_ORGANIZATION`; without it they use the
    /// connection's namespace.
    pub organization: Option<String>,
    /// Make an Ingress per connection for its webhook paths (none: route them yourself).
    pub receiver_ingress: Option<ReceiverIngress>,
    /// Service account of receiver and worker pods (none: the namespace's default).
    pub service_account: Option<String>,
    /// How often a connection is reconciled without a watch event, to follow its backlog.
    pub backlog_poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image: "ghcr.io/hookplane/hookplane:latest".into(),
            image_pull_policy: "IfNotPresent".into(),
            database_url: None,
            public_base_url: None,
            organization: None,
            service_account: None,
            receiver_ingress: None,
            backlog_poll: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// Where the source app posts webhooks for `endpoint` of a touchpoint in `namespace`,
    /// when the public URL is known.
    pub fn endpoint_url(&self, namespace: &str, endpoint: &str) -> Option<String> {
        let base = self.public_base_url.as_deref()?;
        let organization = self.organization.as_deref().unwrap_or(namespace);
        Some(format!(
            "{}/hooks/{organization}/{endpoint}",
            base.trim_end_matches('/')
        ))
    }
}
