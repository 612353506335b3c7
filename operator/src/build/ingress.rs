//! One public path for every receiver: an Ingress per connection (when the operator is told
//! to make them) routing exactly its touchpoints' webhook paths, `/hooks/<organization>/
//! <endpoint>`, to its receiver Service. Ingress controllers merge the Ingresses of one host
//! across namespaces, so the user routes one host and never writes a rule per connection.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};

use super::{metadata, names};
use crate::{settings::Settings, validate::Validated};

/// The connection's Ingress, or `None` when the operator makes none or the connection has no
/// touchpoint to route (an Ingress rule needs a path).
pub fn receiver_ingress(connection: &Validated, settings: &Settings) -> Option<Ingress> {
    let ingress = settings.receiver_ingress.as_ref()?;
    let organization = settings
        .organization
        .as_deref()
        .unwrap_or(connection.namespace());
    let service = names::receiver(connection.name());
    let mut paths: Vec<String> = connection
        .touchpoints()
        .iter()
        .map(|t| {
            let endpoint = &t.touchpoint.spec().source.endpoint;
            format!("/hooks/{organization}/{endpoint}")
        })
        .collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        return None;
    }
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.clone(),
            port: Some(ServiceBackendPort {
                number: Some(80),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    };
    let mut meta = metadata(connection, service, "receiver");
    if !ingress.annotations.is_empty() {
        meta.annotations = Some(ingress.annotations.clone());
    }
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: ingress.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: ingress.host.clone(),
                http: Some(HTTPIngressRuleValue {
                    paths: paths
                        .into_iter()
                        .map(|path| HTTPIngressPath {
                            path: Some(path),
                            path_type: "Exact".into(),
                            backend: backend.clone(),
                        })
                        .collect(),
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// How the per-connection Ingresses look (`--receiver-ingress-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverIngress {
    /// `spec.ingressClassName`; none: the cluster's default class.
    pub class_name: Option<String>,
    /// The public host; none: every host.
    pub host: Option<String>,
    /// Annotations for the controller (rate limits, body size, ...).
    pub annotations: BTreeMap<String, String>,
}
