//! One operator per Connection. Two installations that watch the same namespace (two Helm
//! releases watching every namespace, or one watching all and one watching `shop`) would
//! otherwise both apply each Connection's objects, each undoing the other's worker count.
//!
//! The first operator to reconcile a Connection claims it: the annotation
//! [`CLAIM_ANNOTATION`] names its leader-election Lease (`<namespace>/<name>`), written with
//! the Connection's `resourceVersion` as a precondition so that of two racing operators one
//! wins. Another operator leaves a Connection alone while the claiming Lease is held and
//! renewed, records a `ClaimedByAnotherOperator` Event, and looks again after its poll
//! interval; once that Lease is released, deleted or has expired (its operator uninstalled or
//! gone), it takes the Connection over.

use std::time::Duration;

use hookplane_crds::Connection;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{Context, Error};

/// The annotation naming the Lease of the operator that reconciles a Connection.
pub const CLAIM_ANNOTATION: &str = "hookplane.io/operator";

/// Clock skew between operators tolerated before a silent Lease counts as expired.
const SKEW: Duration = Duration::from_secs(30);

/// The leader-election Lease this operator holds while it reconciles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub lease_namespace: String,
    pub lease_name: String,
}

impl Claim {
    /// The annotation's value: `<namespace>/<name>` of the Lease.
    pub fn holder(&self) -> String {
        format!("{}/{}", self.lease_namespace, self.lease_name)
    }
}

/// Who reconciles a Connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This operator (it claimed the Connection now, or had before).
    Ours,
    /// The operator of this Lease, which is live.
    Elsewhere(String),
}

/// Claim `connection` for `claim` unless a live operator holds it.
pub async fn claim(
    connection: &Connection,
    claim: &Claim,
    ctx: &Context,
) -> Result<Verdict, Error> {
    let ours = claim.holder();
    let previous = connection.annotations().get(CLAIM_ANNOTATION).cloned();
    match &previous {
        Some(holder) if *holder == ours => return Ok(Verdict::Ours),
        Some(holder) if lease_is_live(holder, ctx).await? => {
            return Ok(Verdict::Elsewhere(holder.clone()));
        }
        _ => {}
    }
    let name = connection.name_any();
    let namespace = connection.namespace().unwrap_or_default();
    let api: Api<Connection> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({"metadata": {
        "resourceVersion": connection.resource_version(),
        "annotations": {CLAIM_ANNOTATION: ours},
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.wrote("Connection", "claim");
            let note = match previous {
                Some(previous) => format!("taken over from {previous}, whose Lease is not held"),
                None => format!("reconciled by the operator of Lease {ours}"),
            };
            ctx.event(connection, false, "Claimed", "Claim", note).await;
            Ok(Verdict::Ours)
        }
        // Another operator claimed it since it was read: the next reconcile sees whom.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(Verdict::Elsewhere("another operator".into()))
        }
        Err(source) => Err(Error::Apply {
            kind: "Connection",
            name,
            source,
        }),
    }
}

/// Whether the Lease `holder` (`<namespace>/<name>`) is held and was renewed within its
/// duration (plus [`SKEW`]).
async fn lease_is_live(holder: &str, ctx: &Context) -> Result<bool, Error> {
    let Some((namespace, name)) = holder.split_once('/') else {
        return Ok(false);
    };
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), namespace);
    let lease = api.get_opt(name).await.map_err(|source| Error::Read {
        what: format!("Lease {holder}"),
        source,
    })?;
    let Some(spec) = lease.and_then(|lease| lease.spec) else {
        return Ok(false);
    };
    let held = spec.holder_identity.is_some_and(|h| !h.is_empty());
    let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds) else {
        return Ok(false);
    };
    let valid_for = Duration::from_secs(u64::try_from(seconds).unwrap_or(0)) + SKEW;
    Ok(held && renewed.0 + valid_for > ctx.clock.wall())
}
