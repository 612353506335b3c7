//! The rendered configuration: the contract between the operator and a connection's data plane
//! (`hookplane receiver` and `hookplane worker`) on Kubernetes.
//!
//! For each Connection the operator writes one [`RenderedConfig`] as JSON into the ConfigMap
//! `hookplane-<connection>-config` under the key [`CONFIG_KEY`], and runs two Deployments
//! from one image that mount it at [`CONFIG_PATH`]:
//!
//! ```text
//! hookplane receiver --config /etc/hookplane/config/hookplane.json --listen 0.0.0.0:8080
//! hookplane worker   --config /etc/hookplane/config/hookplane.json --listen 0.0.0.0:8080
//! ```
//!
//! What the data plane may rely on:
//!
//! - **Only valid, published touchpoints are in the file.** The operator leaves out a touchpoint
//!   whose source app, verification, mapping, filter or secrets are invalid or missing (it
//!   reports why in the touchpoint's `Published` condition). Each `spec` is the running
//!   ("published") spec; there are no drafts in a rendered configuration.
//! - **Ids.** A touchpoint's `uid` is its id in the Hookplane database
//!   ([`crate::identity::hookplane_id`]: the `hookplane.io/id` annotation the portal sets on
//!   what it publishes, otherwise the Kubernetes `metadata.uid`, a UUID either way): events,
//!   logs and the backlog the operator reads from the GraphQL API (`touchpoints { id }`) are
//!   keyed by it. A touchpoint not yet in the database is created under that id when the data
//!   plane loads the file. `generation` is the published generation
//!   ([`crate::identity::published_generation`]: the portal's generation when the portal
//!   published it, otherwise `metadata.generation`). The connection's `uid` follows the same
//!   id rule.
//! - **Order.** Touchpoints are sorted by name; endpoints are unique within the file.
//! - **Secrets** are never in the file. Every [`SecretKeyRef`] in it (verification secrets of
//!   the touchpoints, credentials of the connection) can be read from the file
//!   [`secret_path`]`(reference)` = `/etc/hookplane/secrets/<secret name>/<key>`: each
//!   referenced Secret is mounted read-only at `/etc/hookplane/secrets/<secret name>`. The
//!   operator has checked that each referenced key exists. Kubernetes updates mounted files
//!   in place when a Secret changes; the operator also rolls the pods then.
//! - **Database.** The shared PostgreSQL URL is in the environment variable
//!   [`DATABASE_URL_ENV`] (`HOOKPLANE_DATABASE_URL`), from a Secret named in the operator's
//!   flags. The operator itself never reads the database.
//! - **Changes.** Any change to the file changes its SHA-256, which the operator writes to the
//!   pod template annotation [`CONFIG_HASH_ANNOTATION`], so pods roll onto a new file
//!   ("Update Configuration"). The file may also be replaced in place before a pod is
//!   replaced (Kubernetes refreshes ConfigMap volumes by swapping a symlink), so reloading on
//!   change is safe: every version of the file is complete and valid.
//! - **Roles.** The receiver serves `POST /hooks/{organization}/{endpoint}` for the
//!   touchpoints in the file, plus `/healthz` and `/readyz` (used as probes) and `/metrics`.
//!   `{organization}` is the environment variable `HOOKPLANE_ORGANIZATION` when the operator
//!   sets it (its `--organization`), otherwise the connection's namespace.
//!   The worker processes UNPROCESSED events of the touchpoints in the file whose `autoSync`
//!   is on, with `connection.spec.worker.concurrency` deliveries at a time, sends each
//!   credential of `connection.spec.credentials` as a header, and serves `/healthz`,
//!   `/readyz` and `/metrics` on its `--listen` address.
//! - **Compatibility.** [`RenderedConfig::version`] is [`FORMAT_VERSION`]; a data plane that
//!   reads a higher version refuses to start rather than guess.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConnectionSpec, SecretKeyRef, TouchpointSpec};

/// Key of the rendered configuration in its ConfigMap.
pub const CONFIG_KEY: &str = "hookplane.json";
/// Where the ConfigMap is mounted in receiver and worker pods.
pub const CONFIG_DIR: &str = "/etc/hookplane/config";
/// The rendered configuration file in receiver and worker pods.
pub const CONFIG_PATH: &str = "/etc/hookplane/config/hookplane.json";
/// Where referenced Secrets are mounted, one directory per Secret.
pub const SECRETS_DIR: &str = "/etc/hookplane/secrets";
/// Pod template annotation holding the SHA-256 (lower-case hex) of the rendered JSON.
pub const CONFIG_HASH_ANNOTATION: &str = "hookplane.io/config-hash";
/// Environment variable holding the PostgreSQL URL in receiver and worker pods.
pub const DATABASE_URL_ENV: &str = "HOOKPLANE_DATABASE_URL";
/// The port receivers and workers listen on inside their pods.
pub const LISTEN_PORT: u16 = 8080;
/// The current version of the rendered configuration format.
pub const FORMAT_VERSION: u32 = 1;

/// The configuration of one connection's data plane; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedConfig {
    /// Format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// The connection.
    pub connection: RenderedConnection,
    /// Its valid, published touchpoints, sorted by name.
    pub touchpoints: Vec<RenderedTouchpoint>,
}

/// The connection a configuration is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedConnection {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Kubernetes name (the touchpoints' `connectionRef`).
    pub name: String,
    /// Its Hookplane id ([`crate::identity::hookplane_id`], a UUID).
    pub uid: String,
    /// The connection spec.
    pub spec: ConnectionSpec,
}

/// One published touchpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedTouchpoint {
    /// Kubernetes namespace (the connection's).
    pub namespace: String,
    /// Kubernetes name.
    pub name: String,
    /// Its Hookplane id ([`crate::identity::hookplane_id`], a UUID).
    pub uid: String,
    /// The published generation ([`crate::identity::published_generation`]).
    pub generation: i64,
    /// The published spec.
    pub spec: TouchpointSpec,
}

impl RenderedConfig {
    /// The JSON written to the ConfigMap. Deterministic: the same configuration always gives
    /// the same bytes, so its hash changes exactly when the configuration does.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a rendered configuration serializes to JSON")
    }

    /// Parse the file the operator wrote.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Every Secret key the configuration refers to, sorted and without duplicates.
    pub fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        let credentials = self.connection.spec.secret_refs();
        let touchpoints = self.touchpoints.iter().flat_map(|t| t.spec.secret_refs());
        let mut refs: Vec<_> = credentials.chain(touchpoints).collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

/// The file holding the value of `reference` in receiver and worker pods.
pub fn secret_path(reference: &SecretKeyRef) -> PathBuf {
    [SECRETS_DIR, &reference.name, &reference.key]
        .iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CredentialSpec, SourceSpec, VerificationSpec};

    fn reference(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn secret_refs_cover_credentials_and_verification_once() {
        let touchpoint = |secret: SecretKeyRef| RenderedTouchpoint {
            namespace: "shop".into(),
            name: "orders".into(),
            uid: "0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b".into(),
            generation: 1,
            spec: TouchpointSpec {
                source: SourceSpec {
                    verification: Some(VerificationSpec {
                        secret_ref: Some(secret),
                        ..VerificationSpec::default()
                    }),
                    ..SourceSpec::default()
                },
                ..TouchpointSpec::default()
            },
        };
        let config = RenderedConfig {
            version: FORMAT_VERSION,
            connection: RenderedConnection {
                namespace: "shop".into(),
                name: "erp".into(),
                uid: "uid".into(),
                spec: ConnectionSpec {
                    credentials: vec![CredentialSpec {
                        name: "token".into(),
                        header: "Authorization".into(),
                        prefix: Some("Bearer ".into()),
                        secret_key_ref: reference("erp", "token"),
                    }],
                    ..ConnectionSpec::default()
                },
            },
            touchpoints: vec![
                touchpoint(reference("shopify", "secret")),
                touchpoint(reference("shopify", "secret")),
            ],
        };
        assert_eq!(
            config.secret_refs(),
            [&reference("erp", "token"), &reference("shopify", "secret")]
        );
        assert_eq!(
            secret_path(&reference("shopify", "secret")),
            PathBuf::from("/etc/hookplane/secrets/shopify/secret")
        );
        assert_eq!(
            RenderedConfig::from_json(&config.to_json()).unwrap(),
            config
        );
    }
}
