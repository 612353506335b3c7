//! Build the objects a validated connection runs as: a ConfigMap with the rendered
//! configuration, the receiver Deployment with its Service and PodDisruptionBudget, the
//! worker Deployment, the Secret with the database URL both read, and optionally an Ingress
//! routing the touchpoints' webhook paths to the receivers.
//!
//! No I/O and no clock: the same [`Validated`] connection and replica count always build the
//! same objects, byte for byte, so comparing them with what the cluster holds says whether
//! anything needs applying. Every object carries the labels [`selector`] finds them by and a
//! controller owner reference to its Connection, so deleting the Connection deletes them.

mod config;
mod ingress;
mod workload;

use std::collections::BTreeMap;

use hookplane_crds::{Connection, config::CONFIG_HASH_ANNOTATION};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service},
        networking::v1::Ingress,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::Resource;
use sha2::{Digest, Sha256};

pub use config::{config_map, rendered_config};
pub use ingress::{ReceiverIngress, receiver_ingress};
pub use workload::{receiver_budget, receiver_deployment, receiver_service, worker_deployment};

use crate::{
    settings::{DATABASE_SECRET_KEY, DatabaseUrl, Settings},
    validate::Validated,
};

/// The field manager of every server-side apply, and the `managed-by` label value.
pub const MANAGER: &str = "hookplane-operator";
/// Label naming the Connection an object belongs to.
pub const CONNECTION_LABEL: &str = "hookplane.io/connection";
/// Label naming an object's part (`config`, `receiver`, `worker`).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Label saying who manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Pod template annotation holding the SHA-256 of the referenced Secrets' data, so a rotated
/// secret rolls the pods.
pub const SECRETS_HASH_ANNOTATION: &str = "hookplane.io/secrets-hash";

/// Every object a connection runs as.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub receiver: Deployment,
    pub service: Service,
    /// The receivers' PodDisruptionBudget.
    pub receiver_budget: PodDisruptionBudget,
    pub worker: Deployment,
    /// The database URL for the pods (built only when the operator knows the URL).
    pub database: Option<Secret>,
    /// The route to the receivers (when the operator makes Ingresses).
    pub receiver_ingress: Option<Ingress>,
    /// SHA-256 (hex) of the rendered configuration.
    pub config_hash: String,
}

/// Build everything `connection` runs as, with `workers` worker replicas.
pub fn desired(connection: &Validated, settings: &Settings, workers: i32) -> Desired {
    let config_map = config_map(connection);
    let config_hash = config_map
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        .cloned()
        .expect("config_map annotates its hash");
    Desired {
        receiver: receiver_deployment(connection, settings, &config_hash),
        service: receiver_service(connection),
        receiver_budget: receiver_budget(connection),
        worker: worker_deployment(connection, settings, &config_hash, workers),
        receiver_ingress: receiver_ingress(connection, settings),
        database: settings
            .database_url
            .as_ref()
            .map(|url| database_secret(connection, url)),
        config_map,
        config_hash,
    }
}

/// Names of the objects of the connection `connection`.
pub mod names {
    pub fn config_map(connection: &str) -> String {
        format!("hookplane-{connection}-config")
    }

    pub fn receiver(connection: &str) -> String {
        format!("hookplane-{connection}-receiver")
    }

    pub fn worker(connection: &str) -> String {
        format!("hookplane-{connection}-worker")
    }

    /// The Secret holding the database URL the connection's pods read.
    pub fn database(connection: &str) -> String {
        format!("hookplane-{connection}-database")
    }
}

/// The label selector of every object the operator made for the connection `connection`.
pub fn selector(connection: &str) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER},{CONNECTION_LABEL}={connection}")
}

fn selector_labels(connection: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONNECTION_LABEL.to_owned(), connection.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

fn labels(connection: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(connection, component);
    labels.insert("app.kubernetes.io/name".into(), "hookplane".into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels
}

fn metadata(connection: &Validated, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(connection.namespace().to_owned()),
        labels: Some(labels(connection.name(), component)),
        owner_references: Some(vec![owner_reference(connection)]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(connection: &Validated) -> OwnerReference {
    OwnerReference {
        api_version: Connection::api_version(&()).into_owned(),
        kind: Connection::kind(&()).into_owned(),
        name: connection.name().to_owned(),
        uid: connection.uid().to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The connection's copy of the database URL, as the API server stores it (`data`, type
/// `Opaque`), so an unchanged one compares equal.
pub fn database_secret(connection: &Validated, url: &DatabaseUrl) -> Secret {
    Secret {
        metadata: metadata(connection, names::database(connection.name()), "database"),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            DATABASE_SECRET_KEY.to_owned(),
            k8s_openapi::ByteString(url.0.clone().into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
