//! How Hookplane is deployed for a scenario: `hookplane serve` (one process, set up through
//! GraphQL), or the data plane (`hookplane receiver` and N `hookplane worker` processes on one
//! database, configured by the file the operator renders, with the secret in a mounted file).

use std::path::Path;

use anyhow::{Context, Result};
use hookplane_crds::{
    ConnectionSpec, DestinationSpec, SecretKeyRef, SourceSpec, TouchpointSpec, VerificationSpec,
    config::{FORMAT_VERSION, RenderedConfig, RenderedConnection, RenderedTouchpoint},
};

use super::Database;
use crate::{
    child::Server,
    workload::{self, ENDPOINT, ORGANIZATION, SECRET, hook_path, twenty_rules},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Serve,
    DataPlane { workers: usize },
}

impl Topology {
    pub fn describe(self) -> String {
        match self {
            Self::Serve => "one `hookplane serve` process (receiver, worker and API)".to_owned(),
            Self::DataPlane { workers } => format!(
                "`hookplane receiver` and {workers} `hookplane worker` processes on one database"
            ),
        }
    }
}

/// Running processes; webhooks go to `front`.
pub struct Deployed {
    pub front: Server,
    pub others: Vec<Server>,
    _config_dir: Option<tempfile::TempDir>,
}

impl Deployed {
    pub async fn stop(self) -> Result<()> {
        self.front.stop().await?;
        for server in self.others {
            server.stop().await?;
        }
        Ok(())
    }
}

/// Start Hookplane as `topology` with the benchmark touchpoint published, delivering to
/// `destination`, with Auto-sync `auto_sync`.
pub async fn deploy(
    binary: &Path,
    database: &Database,
    topology: Topology,
    destination: &str,
    auto_sync: bool,
) -> Result<Deployed> {
    match topology {
        Topology::Serve => {
            let server = Server::hookplane(binary, database.url()).await?;
            workload::setup_touchpoint(&server, destination, auto_sync).await?;
            Ok(Deployed {
                front: server,
                others: Vec::new(),
                _config_dir: None,
            })
        }
        Topology::DataPlane { workers } => {
            let dir = tempfile::tempdir().context("a configuration directory")?;
            let secrets = dir.path().join("secrets");
            std::fs::create_dir_all(secrets.join("shopify")).context("the secrets directory")?;
            std::fs::write(secrets.join("shopify").join("clientSecret"), SECRET)
                .context("writing the secret")?;
            let config = dir.path().join("hookplane.json");
            std::fs::write(&config, rendered(destination, auto_sync).to_json())
                .context("writing the configuration")?;
            let args = [
                "--config".to_owned(),
                config.display().to_string(),
                "--secrets-dir".to_owned(),
                secrets.display().to_string(),
                "--organization".to_owned(),
                ORGANIZATION.to_owned(),
            ];
            // The receiver migrates the database before the workers open it.
            let front = Server::role(binary, "receiver", database.url(), &args).await?;
            let mut others = Vec::with_capacity(workers);
            // Workers are strict by default; the benchmark's destination is local.
            let mut worker_args = args.to_vec();
            worker_args.extend(["--destination-allow".to_owned(), "127.0.0.0/8".to_owned()]);
            for _ in 0..workers {
                others.push(Server::role(binary, "worker", database.url(), &worker_args).await?);
            }
            // Webhooks reach the same path as on `serve`.
            debug_assert_eq!(hook_path(), format!("/hooks/{ORGANIZATION}/{ENDPOINT}"));
            Ok(Deployed {
                front,
                others,
                _config_dir: Some(dir),
            })
        }
    }
}

/// The operator's rendered configuration of one connection with the benchmark touchpoint.
fn rendered(destination: &str, auto_sync: bool) -> RenderedConfig {
    let spec = TouchpointSpec {
        connection_ref: "shop-to-erp".into(),
        name: "Orders to ERP".into(),
        show_in_agent: true,
        auto_sync,
        source: SourceSpec {
            app: "shopify".into(),
            endpoint: ENDPOINT.into(),
            verification: Some(VerificationSpec {
                secret_ref: Some(SecretKeyRef {
                    name: "shopify".into(),
                    key: "clientSecret".into(),
                }),
                ..VerificationSpec::default()
            }),
            ..SourceSpec::default()
        },
        destination: DestinationSpec {
            url: destination.into(),
            ..DestinationSpec::default()
        },
        mapping: twenty_rules(),
        ..TouchpointSpec::default()
    };
    RenderedConfig {
        version: FORMAT_VERSION,
        connection: RenderedConnection {
            namespace: ORGANIZATION.into(),
            name: "shop-to-erp".into(),
            uid: uuid::Uuid::now_v7().to_string(),
            spec: ConnectionSpec {
                name: "Shop to ERP".into(),
                source_app: "shopify".into(),
                destination_app: "generic".into(),
                ..ConnectionSpec::default()
            },
        },
        touchpoints: vec![RenderedTouchpoint {
            namespace: ORGANIZATION.into(),
            name: "orders".into(),
            uid: uuid::Uuid::now_v7().to_string(),
            generation: 1,
            spec,
        }],
    }
}
