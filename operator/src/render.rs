//! `hookplane-operator render`: the objects the operator would build for resources in files,
//! without a cluster. For reviewing a change, and for validating the built objects against the
//! Kubernetes OpenAPI schemas (`operator/validate/run.sh`).
//!
//! The files hold Connections, Touchpoints and the Secrets they refer to (other kinds are
//! ignored). Objects without a `metadata.uid` get one derived from their namespace and name,
//! and the backlog is taken as empty, so workers run at `minReplicas`.

use std::collections::BTreeMap;

use hookplane_crds::{Connection, Touchpoint};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::Value;

use crate::{
    build::{self, sha256_hex},
    scaling,
    settings::Settings,
    validate,
};

/// Rendering failed: a document is not a valid object of its kind.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: not a valid object")]
pub struct RenderError {
    kind: String,
    name: String,
    #[source]
    source: serde_json::Error,
}

/// The built objects for every Connection in `documents`, in order (ConfigMap, Service,
/// receiver Deployment, its PodDisruptionBudget, worker Deployment, and the receivers'
/// Ingress when asked, per connection), and one line per problem found. The database Secret
/// is never rendered (it holds the URL).
pub fn render(
    documents: &[Value],
    settings: &Settings,
) -> Result<(Vec<Value>, Vec<String>), RenderError> {
    let mut connections = Vec::new();
    let mut touchpoints = Vec::new();
    let mut secrets = Vec::new();
    for document in documents {
        match document["kind"].as_str() {
            Some("Connection") => connections.push(typed::<Connection>(document)?),
            Some("Touchpoint") => touchpoints.push(typed::<Touchpoint>(document)?),
            Some("Secret") => secrets.push(typed::<Secret>(document)?),
            _ => {}
        }
    }
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for connection in &connections {
        let namespace = connection.namespace();
        let own: Vec<Touchpoint> = touchpoints
            .iter()
            .filter(|t| {
                t.namespace() == namespace && t.spec.connection_ref == connection.name_any()
            })
            .cloned()
            .collect();
        let found: BTreeMap<String, Secret> = secrets
            .iter()
            .filter(|s| s.namespace() == namespace)
            .map(|s| (s.name_any(), s.clone()))
            .collect();
        match validate::validate(connection, &own, &found) {
            Ok(validated) => {
                for rejected in validated.rejected() {
                    problems.push(format!(
                        "Touchpoint {}: {}: {}",
                        rejected.name, rejected.problem.reason, rejected.problem.message
                    ));
                }
                let workers = scaling::recommend(0, &validated.spec().worker);
                let desired = build::desired(&validated, settings, workers);
                for object in [
                    serde_json::to_value(&desired.config_map),
                    serde_json::to_value(&desired.service),
                    serde_json::to_value(&desired.receiver),
                    serde_json::to_value(&desired.receiver_budget),
                    serde_json::to_value(&desired.worker),
                ] {
                    objects.push(object.expect("a built object serializes"));
                }
                // The database Secret is left out: it holds the URL.
                if let Some(ingress) = &desired.receiver_ingress {
                    let ingress = serde_json::to_value(ingress);
                    objects.push(ingress.expect("a built object serializes"));
                }
            }
            Err(problem) => problems.push(format!(
                "Connection {}: {}: {}",
                connection.name_any(),
                problem.reason,
                problem.message
            )),
        }
    }
    Ok((objects, problems))
}

fn typed<K: kube::Resource + serde::de::DeserializeOwned>(
    document: &Value,
) -> Result<K, RenderError> {
    let mut object: K = serde_json::from_value(document.clone()).map_err(|source| RenderError {
        kind: document["kind"].as_str().unwrap_or_default().to_owned(),
        name: document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        source,
    })?;
    let meta = object.meta_mut();
    if meta.uid.is_none() {
        let seed = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        );
        let hex = sha256_hex(seed.as_bytes());
        meta.uid = Some(format!(
            "{}-{}-4{}-8{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        ));
    }
    meta.generation.get_or_insert(1);
    Ok(object)
}
