//! Which change wakes which reconcile.
//!
//! A Connection's reconcile reads its Touchpoints, the Secrets they and it refer to, and the
//! objects it owns, so a change to any of those must wake it: owned objects through their
//! owner references, Touchpoints through `connectionRef`, Secrets through the references in
//! the specs the controllers already cache. A Connection's creation or deletion wakes the
//! Touchpoints naming it, for the `ConnectionNotFound` report.

use std::sync::Arc;

use hookplane_crds::{Connection, Touchpoint};
use kube::{Resource, ResourceExt, runtime::reflector::ObjectRef};

/// The Connection a Touchpoint belongs to.
pub fn connection_of_touchpoint(touchpoint: &Touchpoint) -> Option<ObjectRef<Connection>> {
    let namespace = touchpoint.namespace()?;
    Some(ObjectRef::new(&touchpoint.spec.connection_ref).within(&namespace))
}

/// The Touchpoints (of `touchpoints`) naming `connection`.
pub fn touchpoints_of_connection(
    connection: &Connection,
    touchpoints: &[Arc<Touchpoint>],
) -> Vec<ObjectRef<Touchpoint>> {
    let name = connection.name_any();
    let namespace = connection.namespace();
    touchpoints
        .iter()
        .filter(|t| t.spec.connection_ref == name && t.namespace() == namespace)
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// The Connections (of `connections`) whose spec, or one of whose Touchpoints (of
/// `touchpoints`), refers to `secret` (a Secret, or only its metadata). Sorted, without
/// duplicates.
pub fn connections_using_secret(
    secret: &impl Resource,
    connections: &[Arc<Connection>],
    touchpoints: &[Arc<Touchpoint>],
) -> Vec<ObjectRef<Connection>> {
    let name = secret.name_any();
    let namespace = secret.namespace();
    let by_credentials = connections
        .iter()
        .filter(|c| c.namespace() == namespace)
        .filter(|c| {
            c.spec
                .credentials
                .iter()
                .any(|credential| credential.secret_key_ref.name == name)
        })
        .map(|c| c.name_any());
    let by_touchpoints = touchpoints
        .iter()
        .filter(|t| t.namespace() == namespace)
        .filter(|t| t.spec.secret_refs().any(|r| r.name == name))
        .map(|t| t.spec.connection_ref.clone());
    let mut names: Vec<String> = by_credentials.chain(by_touchpoints).collect();
    names.sort();
    names.dedup();
    let Some(namespace) = namespace else {
        return Vec::new();
    };
    names
        .iter()
        .map(|name| ObjectRef::new(name).within(&namespace))
        .collect()
}
