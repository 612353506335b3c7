//! Queries: the portal model and the two buckets, with cursor pagination.

use async_graphql::{Context, ID, Object, connection::Connection as Page};
use chrono::{DateTime, Utc};
use hookplane_store::{EventQuery, LogQuery};

use super::{
    authz, context,
    error::{ApiResult, parse_id},
    types::{
        ApiToken, App, AuditEntry, BucketEntry, Connection, EventStatus, LogEntry, LogLevel,
        Organization, SchemaDocument, Touchpoint, page_connection, parse_cursor,
    },
};
use crate::auth::Role;

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// An organization of yours by slug, or (without one) your only organization; null
    /// when there is none (or it is not yours).
    async fn organization(
        &self,
        ctx: &Context<'_>,
        slug: Option<String>,
    ) -> ApiResult<Option<Organization>> {
        let mut visible = authz::visible_organizations(ctx).await?;
        Ok(match slug {
            Some(slug) => visible.into_iter().find(|org| org.slug == slug),
            None if visible.len() == 1 => visible.pop(),
            None => None,
        }
        .map(Organization))
    }

    /// Every organization you have a role in (every one, for the instance owner).
    async fn organizations(&self, ctx: &Context<'_>) -> ApiResult<Vec<Organization>> {
        Ok(authz::visible_organizations(ctx)
            .await?
            .into_iter()
            .map(Organization)
            .collect())
    }

    /// Who you are: the actor the audit log records for your changes.
    async fn viewer(&self, ctx: &Context<'_>) -> ApiResult<String> {
        Ok(authz::principal(ctx)?.actor.clone())
    }

    /// An organization's API tokens (admin); their secrets are never shown again.
    async fn tokens(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
    ) -> ApiResult<Vec<ApiToken>> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Admin).await?;
        Ok(api
            .store
            .tokens()
            .await?
            .into_iter()
            .filter(|token| token.organization_id == Some(organization.id))
            .map(ApiToken)
            .collect())
    }

    /// Who changed what in an organization, newest first (admin).
    #[graphql(complexity = "(first as usize).saturating_mul(child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: u64,
        after: Option<String>,
    ) -> ApiResult<Page<String, AuditEntry>> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Admin).await?;
        let after = parse_cursor(after)?;
        let page = api
            .store
            .audit_log(Some(organization.id), first, after)
            .await?;
        Ok(page_connection(page, after.is_some(), |e| e.id, AuditEntry))
    }

    /// The app catalog: every source app with the verification fields it needs.
    async fn apps(&self) -> Vec<App> {
        hookplane_sources::catalog()
            .iter()
            .map(|app| App::from(app.info()))
            .collect()
    }

    /// Every stored source schema of an organization (yours, when you have one).
    async fn schemas(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
    ) -> ApiResult<Vec<SchemaDocument>> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Viewer).await?;
        Ok(api
            .store
            .schemas(organization.id)
            .await?
            .into_iter()
            .map(SchemaDocument)
            .collect())
    }

    async fn schema(
        &self,
        ctx: &Context<'_>,
        name: String,
        organization_id: Option<ID>,
    ) -> ApiResult<Option<SchemaDocument>> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Viewer).await?;
        Ok(api
            .store
            .schema(organization.id, &name)
            .await?
            .map(SchemaDocument))
    }

    /// The connections of every organization you have a role in.
    async fn connections(&self, ctx: &Context<'_>) -> ApiResult<Vec<Connection>> {
        let api = context(ctx)?;
        let principal = authz::principal(ctx)?;
        Ok(api
            .store
            .connections()
            .await?
            .into_iter()
            .filter(|c| {
                c.organization_id
                    .and_then(|o| principal.role_in(o))
                    .is_some()
            })
            .map(Connection)
            .collect())
    }

    async fn connection(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Connection>> {
        let id = parse_id(&id, "connection")?;
        Ok(authz::found(authz::connection(ctx, id, Role::Viewer).await)?.map(Connection))
    }

    async fn touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Touchpoint>> {
        let id = parse_id(&id, "touchpoint")?;
        Ok(
            authz::found(authz::touchpoint(ctx, id, Role::Viewer).await)?
                .map(|(touchpoint, _)| Touchpoint(touchpoint)),
        )
    }

    /// Every touchpoint of your organizations, or those of one connection.
    async fn touchpoints(
        &self,
        ctx: &Context<'_>,
        connection_id: Option<ID>,
    ) -> ApiResult<Vec<Touchpoint>> {
        let api = context(ctx)?;
        let principal = authz::principal(ctx)?;
        let connection_id = connection_id
            .map(|id| parse_id(&id, "connection"))
            .transpose()?;
        let mine: std::collections::HashSet<uuid::Uuid> = api
            .store
            .connections()
            .await?
            .into_iter()
            .filter(|c| {
                c.organization_id
                    .and_then(|o| principal.role_in(o))
                    .is_some()
            })
            .map(|c| c.id)
            .collect();
        let touchpoints = api.store.touchpoints(connection_id).await?;
        Ok(touchpoints
            .into_iter()
            .filter(|t| mine.contains(&t.connection_id))
            .map(Touchpoint)
            .collect())
    }

    /// One resync-bucket entry.
    async fn bucket_entry(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<BucketEntry>> {
        let id = parse_id(&id, "event")?;
        Ok(authz::found(authz::event(ctx, id, Role::Viewer).await)?.map(BucketEntry::from))
    }

    /// A touchpoint's resync bucket, newest first, optionally only events received within
    /// `[from, to]`.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "(first as usize).saturating_mul(child_complexity)")]
    async fn resync_bucket(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        status: Option<EventStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(validator(max_length = 512))] search: Option<String>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 1000))] first: u64,
        after: Option<String>,
    ) -> ApiResult<Page<String, BucketEntry>> {
        let api = context(ctx)?;
        let touchpoint_id = authz::touchpoint_id(ctx, &touchpoint_id, Role::Viewer).await?;
        let after = parse_cursor(after)?;
        let page = api
            .store
            .events(EventQuery {
                touchpoint_id,
                status: status.map(Into::into),
                first,
                after,
                received_from: from,
                received_to: to,
                search,
            })
            .await?;
        Ok(page_connection(
            page,
            after.is_some(),
            |e| e.id,
            BucketEntry::from,
        ))
    }

    /// A touchpoint's log bucket, newest first; `level` keeps entries at that level or above.
    #[graphql(complexity = "(first as usize).saturating_mul(child_complexity)")]
    async fn log_bucket(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        level: Option<LogLevel>,
        event_id: Option<ID>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: u64,
        after: Option<String>,
    ) -> ApiResult<Page<String, LogEntry>> {
        let api = context(ctx)?;
        let touchpoint_id = authz::touchpoint_id(ctx, &touchpoint_id, Role::Viewer).await?;
        let event_id = event_id.map(|id| parse_id(&id, "event")).transpose()?;
        let after = parse_cursor(after)?;
        let page = api
            .store
            .logs(LogQuery {
                touchpoint_id,
                level: level.map(Into::into),
                event_id,
                first,
                after,
            })
            .await?;
        Ok(page_connection(page, after.is_some(), |e| e.id, LogEntry))
    }
}
