//! Reconcile a Touchpoint whose Connection does not exist.
//!
//! A Touchpoint is deployed by its Connection's reconcile, which also writes its status. When
//! the Connection does not exist there is no such reconcile, so this one says so on the
//! touchpoint (`Ready` and `Published` False, reason `ConnectionNotFound`) and waits: the
//! Connection's creation wakes it (and the Connection's reconcile takes over).

use std::sync::Arc;

use hookplane_crds::{Connection, Touchpoint};
use kube::{Api, ResourceExt, runtime::controller::Action};

use super::{Context, Error, key, observed, report::write_touchpoint_status};
use crate::{status, validate};

/// Reconcile one Touchpoint; the entry point the controller calls.
pub async fn reconcile(touchpoint: Arc<Touchpoint>, ctx: Arc<Context>) -> Result<Action, Error> {
    let reconcile = reconcile_touchpoint(&touchpoint, &ctx);
    observed("touchpoint", touchpoint.as_ref(), &ctx, reconcile).await
}

#[tracing::instrument(skip_all, fields(touchpoint = %key(touchpoint)))]
async fn reconcile_touchpoint(touchpoint: &Touchpoint, ctx: &Context) -> Result<Action, Error> {
    let Some(namespace) = touchpoint.namespace() else {
        return Ok(Action::await_change());
    };
    if touchpoint.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let connections: Api<Connection> = Api::namespaced(ctx.client.clone(), &namespace);
    let connection = connections
        .get_opt(&touchpoint.spec.connection_ref)
        .await
        .map_err(|source| Error::Read {
            what: format!("Connection {}", touchpoint.spec.connection_ref),
            source,
        })?;
    if connection.is_some() {
        return Ok(Action::await_change());
    }
    let problem = validate::connection_not_found(touchpoint);
    let current = touchpoint.status.as_ref();
    let new = status::rejected_touchpoint(
        current,
        touchpoint.metadata.generation,
        &problem,
        ctx.clock.wall(),
    );
    write_touchpoint_status(touchpoint, new, ctx).await?;
    Ok(Action::await_change())
}
