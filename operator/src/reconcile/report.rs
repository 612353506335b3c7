//! Report on Connections and Touchpoints: write their statuses when they changed, and record
//! an Event when a condition that users act on changes.

use hookplane_crds::{Connection, ConnectionStatus, Touchpoint, TouchpointStatus, condition};
use kube::{Api, ResourceExt};

use super::{Context, Error};
use crate::{
    apply, status,
    validate::{self, Problem},
};

/// Report an invalid connection on it and on every touchpoint naming it.
pub(super) async fn report_invalid(
    connection: &Connection,
    touchpoints: &[Touchpoint],
    problem: &Problem,
    ctx: &Context,
) -> Result<(), Error> {
    let now = ctx.clock.wall();
    let new = status::invalid_connection(
        connection.status.as_ref(),
        connection.metadata.generation,
        problem,
        now,
    );
    write_connection_status(connection, new, ctx).await?;
    let touchpoint_problem = validate::connection_invalid(&connection.name_any(), problem);
    for touchpoint in live(touchpoints) {
        let new = status::rejected_touchpoint(
            touchpoint.status.as_ref(),
            touchpoint.metadata.generation,
            &touchpoint_problem,
            now,
        );
        write_touchpoint_status(touchpoint, new, ctx).await?;
    }
    Ok(())
}

pub(super) async fn write_connection_status(
    connection: &Connection,
    new: ConnectionStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let name = connection.name_any();
    let namespace = connection.namespace().unwrap_or_default();
    let current = connection.status.as_ref();
    let written = apply::status(
        &Api::<Connection>::namespaced(ctx.client.clone(), &namespace),
        &name,
        current,
        &new,
    )
    .await
    .map_err(|source| Error::WriteStatus {
        kind: "Connection",
        name: name.clone(),
        source,
    })?;
    if written {
        ctx.metrics.wrote("Connection", "status");
        let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        if let Some(ready) = status::transitioned(old, &new.conditions, condition::READY) {
            let warning = ready.status == "False" && ready.reason != "RollingOut";
            ctx.event(
                connection,
                warning,
                &ready.reason,
                "Reconcile",
                ready.message.clone(),
            )
            .await;
        }
    }
    Ok(())
}

pub(super) async fn write_touchpoint_status(
    touchpoint: &Touchpoint,
    new: TouchpointStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let name = touchpoint.name_any();
    let namespace = touchpoint.namespace().unwrap_or_default();
    let current = touchpoint.status.as_ref();
    let written = apply::status(
        &Api::<Touchpoint>::namespaced(ctx.client.clone(), &namespace),
        &name,
        current,
        &new,
    )
    .await
    .map_err(|source| Error::WriteStatus {
        kind: "Touchpoint",
        name: name.clone(),
        source,
    })?;
    if written {
        ctx.metrics.wrote("Touchpoint", "status");
        publish_transition(touchpoint, current, &new, ctx).await;
    }
    Ok(())
}

/// An Event when a touchpoint's `Published` condition changes.
async fn publish_transition(
    touchpoint: &Touchpoint,
    current: Option<&TouchpointStatus>,
    new: &TouchpointStatus,
    ctx: &Context,
) {
    let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    if let Some(published) = status::transitioned(old, &new.conditions, condition::PUBLISHED) {
        let warning = published.status == "False";
        ctx.event(
            touchpoint,
            warning,
            &published.reason,
            "Publish",
            published.message.clone(),
        )
        .await;
    }
}

/// The touchpoints not being deleted.
pub(super) fn live(touchpoints: &[Touchpoint]) -> impl Iterator<Item = &Touchpoint> {
    touchpoints
        .iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none())
}
