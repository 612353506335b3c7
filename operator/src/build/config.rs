//! The ConfigMap holding a connection's [`RenderedConfig`], annotated with its hash.

use std::collections::BTreeMap;

use hookplane_crds::config::{
    CONFIG_HASH_ANNOTATION, CONFIG_KEY, FORMAT_VERSION, RenderedConfig, RenderedConnection,
    RenderedTouchpoint,
};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{metadata, names, sha256_hex};
use crate::validate::Validated;

/// The data plane's configuration for `connection`: its spec and its valid touchpoints.
pub fn rendered_config(connection: &Validated) -> RenderedConfig {
    RenderedConfig {
        version: FORMAT_VERSION,
        connection: RenderedConnection {
            namespace: connection.namespace().to_owned(),
            name: connection.name().to_owned(),
            uid: connection.id().to_owned(),
            spec: connection.spec().clone(),
        },
        touchpoints: connection
            .touchpoints()
            .iter()
            .map(|t| RenderedTouchpoint {
                namespace: connection.namespace().to_owned(),
                name: t.name.clone(),
                uid: t.id.clone(),
                generation: t.published_generation,
                spec: t.touchpoint.spec().clone(),
            })
            .collect(),
    }
}

/// The ConfigMap `hookplane-<connection>-config`, its content hash in
/// `hookplane.io/config-hash`.
pub fn config_map(connection: &Validated) -> ConfigMap {
    let json = rendered_config(connection).to_json();
    let hash = sha256_hex(json.as_bytes());
    let mut metadata = metadata(connection, names::config_map(connection.name()), "config");
    metadata.annotations = Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), hash)]));
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), json)])),
        ..ConfigMap::default()
    }
}
