//! Who may do what. Every resolver that reads or changes an organization's data asks here
//! first, with the role it needs:
//!
//! | role       | may                                                                |
//! |------------|--------------------------------------------------------------------|
//! | `viewer`   | read specs, buckets, logs and schemas of its organization          |
//! | `operator` | also resync, switch Auto-sync, pause, preview mappings, see response snippets |
//! | `admin`    | also create, edit, publish and delete; schemas, tokens, audit log  |
//! | owner      | admin in every organization; creates organizations                 |
//!
//! An object of an organization the caller has no role in answers exactly as a missing one
//! (`null`, or the `*_NOT_FOUND` code), so ids cannot be probed across organizations; a role
//! too low answers `FORBIDDEN`. The transport refuses requests without a principal before
//! any resolver runs; [`principal`] still answers `UNAUTHENTICATED` should one get through.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::{Context, ID};
use hookplane_store::{Connection, Event, Organization, Touchpoint};
use uuid::Uuid;

use super::{
    context,
    error::{ApiError, ApiResult, parse_id},
};
use crate::auth::{Principal, Role};

/// `None` for a missing object (or one of another organization), for queries that answer
/// `null` then; every other error stays an error.
pub fn found<T>(result: ApiResult<T>) -> ApiResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.code().ends_with("_NOT_FOUND") => Ok(None),
        Err(error) => Err(error),
    }
}

/// The caller, as the transport authenticated it.
pub fn principal<'a>(ctx: &Context<'a>) -> ApiResult<&'a Principal> {
    ctx.data::<Principal>()
        .map_err(|_| ApiError::invalid("UNAUTHENTICATED", "credentials are required"))
}

/// The principal's role in `organization`, if it has one.
pub fn role(ctx: &Context<'_>, organization: Option<Uuid>) -> ApiResult<Option<Role>> {
    let principal = principal(ctx)?;
    Ok(organization.and_then(|organization| principal.role_in(organization)))
}

/// Requires `needed` in `organization`: `not_found` when the caller has no role there (or the
/// object has no organization), `FORBIDDEN` when its role is lower.
pub fn require(
    ctx: &Context<'_>,
    organization: Option<Uuid>,
    needed: Role,
    not_found: impl FnOnce() -> ApiError,
) -> ApiResult<Role> {
    match role(ctx, organization)? {
        None => Err(not_found()),
        Some(role) if role < needed => Err(forbidden(needed)),
        Some(role) => Ok(role),
    }
}

pub fn forbidden(needed: Role) -> ApiError {
    ApiError::invalid(
        "FORBIDDEN",
        format!("this needs the {needed} role in the organization"),
    )
}

/// Requires the instance owner.
pub fn require_owner(ctx: &Context<'_>) -> ApiResult<()> {
    if principal(ctx)?.owner {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "FORBIDDEN",
            "only the instance owner may do this",
        ))
    }
}

fn connection_not_found(id: Uuid) -> ApiError {
    ApiError::invalid(
        "CONNECTION_NOT_FOUND",
        format!("no connection with id {id}"),
    )
}

fn touchpoint_not_found(id: Uuid) -> ApiError {
    ApiError::invalid(
        "TOUCHPOINT_NOT_FOUND",
        format!("no touchpoint with id {id}"),
    )
}

fn event_not_found(id: Uuid) -> ApiError {
    ApiError::invalid("EVENT_NOT_FOUND", format!("no event with id {id}"))
}

pub fn organization_not_found() -> ApiError {
    ApiError::invalid(
        "ORGANIZATION_NOT_FOUND",
        "no such organization (or not one of yours)",
    )
}

/// A connection the caller may act on with `needed`.
pub async fn connection(ctx: &Context<'_>, id: Uuid, needed: Role) -> ApiResult<Connection> {
    let api = context(ctx)?;
    let connection = api
        .store
        .connection(id)
        .await?
        .ok_or_else(|| connection_not_found(id))?;
    require(ctx, connection.organization_id, needed, || {
        connection_not_found(id)
    })?;
    Ok(connection)
}

/// A touchpoint the caller may act on with `needed`, and the caller's role.
pub async fn touchpoint(
    ctx: &Context<'_>,
    id: Uuid,
    needed: Role,
) -> ApiResult<(Touchpoint, Role)> {
    let api = context(ctx)?;
    let touchpoint = api
        .store
        .touchpoint(id)
        .await?
        .ok_or_else(|| touchpoint_not_found(id))?;
    let organization = organization_of_connection(ctx, touchpoint.connection_id).await?;
    let role = require(ctx, organization, needed, || touchpoint_not_found(id))?;
    Ok((touchpoint, role))
}

/// A touchpoint id (parsed) the caller may act on with `needed`.
pub async fn touchpoint_id(ctx: &Context<'_>, id: &ID, needed: Role) -> ApiResult<Uuid> {
    let id = parse_id(id, "touchpoint")?;
    touchpoint(ctx, id, needed).await?;
    Ok(id)
}

/// The caller's role over a touchpoint's data, `None` when it has none (or the touchpoint is
/// gone).
pub async fn role_over_touchpoint(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Role>> {
    let api = context(ctx)?;
    let Some(touchpoint) = api.store.touchpoint(id).await? else {
        return Ok(None);
    };
    let organization = organization_of_connection(ctx, touchpoint.connection_id).await?;
    role(ctx, organization)
}

/// An event the caller may act on with `needed`.
pub async fn event(ctx: &Context<'_>, id: Uuid, needed: Role) -> ApiResult<Event> {
    let api = context(ctx)?;
    let event = api
        .store
        .event(id)
        .await?
        .ok_or_else(|| event_not_found(id))?;
    match role_over_touchpoint(ctx, event.touchpoint_id).await? {
        None => Err(event_not_found(id)),
        Some(role) if role < needed => Err(forbidden(needed)),
        Some(_) => Ok(event),
    }
}

/// The organization a call acts in: the one named, or else the caller's only one (for the
/// owner: the instance's only one). `ORGANIZATION_REQUIRED` when that is ambiguous.
pub async fn organization(
    ctx: &Context<'_>,
    named: Option<&ID>,
    needed: Role,
) -> ApiResult<Organization> {
    let api = context(ctx)?;
    if let Some(id) = named {
        let id = parse_id(id, "organization")?;
        require(ctx, Some(id), needed, organization_not_found)?;
        return api
            .store
            .organization(id)
            .await?
            .ok_or_else(organization_not_found);
    }
    let mut visible = visible_organizations(ctx).await?;
    match visible.len() {
        0 => Err(ApiError::invalid(
            "ORGANIZATION_REQUIRED",
            "there is no organization yet: register one with registerUrl",
        )),
        1 => {
            let organization = visible.remove(0);
            require(ctx, Some(organization.id), needed, organization_not_found)?;
            Ok(organization)
        }
        _ => Err(ApiError::invalid(
            "ORGANIZATION_REQUIRED",
            "you belong to several organizations: name one with organizationId",
        )),
    }
}

/// The organizations the caller has a role in (every one, for the owner).
pub async fn visible_organizations(ctx: &Context<'_>) -> ApiResult<Vec<Organization>> {
    let api = context(ctx)?;
    let principal = principal(ctx)?;
    Ok(api
        .store
        .organizations()
        .await?
        .into_iter()
        .filter(|organization| principal.role_in(organization.id).is_some())
        .collect())
}

/// The organization of a connection. Connections never move between organizations, so the
/// answer is remembered (per server; bounded).
pub async fn organization_of_connection(
    ctx: &Context<'_>,
    connection: Uuid,
) -> ApiResult<Option<Uuid>> {
    let cache = ctx.data::<Arc<ConnectionOrganizations>>().ok();
    if let Some(known) = cache.and_then(|cache| cache.get(connection)) {
        return Ok(Some(known));
    }
    let api = context(ctx)?;
    let organization = api
        .store
        .connection(connection)
        .await?
        .and_then(|connection| connection.organization_id);
    if let (Some(cache), Some(organization)) = (cache, organization) {
        cache.put(connection, organization);
    }
    Ok(organization)
}

/// Connection id to organization id, remembered. Cleared whole when it holds
/// [`ConnectionOrganizations::CAPACITY`] entries.
#[derive(Default)]
pub struct ConnectionOrganizations(Mutex<HashMap<Uuid, Uuid>>);

impl ConnectionOrganizations {
    const CAPACITY: usize = 100_000;

    fn get(&self, connection: Uuid) -> Option<Uuid> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&connection)
            .copied()
    }

    fn put(&self, connection: Uuid, organization: Uuid) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(connection, organization);
    }
}
