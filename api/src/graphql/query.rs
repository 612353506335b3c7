//! Queries: the portal model and the two buckets, with cursor pagination.

use async_graphql::{Context, ID, Object, connection::Connection as Page};
use chrono::{DateTime, Utc};
use hookplane_store::{EventQuery, LogQuery};

use super::{
    ApiContext, context,
    error::{ApiError, ApiResult, parse_id},
    types::{
        App, BucketEntry, Connection, EventStatus, LogEntry, LogLevel, Organization,
        SchemaDocument, Touchpoint, page_connection, parse_cursor,
    },
};

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The organization and its registered URL; null until `registerUrl`.
    async fn organization(&self, ctx: &Context<'_>) -> ApiResult<Option<Organization>> {
        let api = context(ctx)?;
        Ok(api.store.organization().await?.map(Organization))
    }

    /// The app catalog: every source app with the verification fields it needs.
    async fn apps(&self) -> Vec<App> {
        hookplane_sources::catalog()
            .iter()
            .map(|app| App::from(app.info()))
            .collect()
    }

    /// Every stored source schema.
    async fn schemas(&self, ctx: &Context<'_>) -> ApiResult<Vec<SchemaDocument>> {
        let api = context(ctx)?;
        Ok(api
            .store
            .schemas()
            .await?
            .into_iter()
            .map(SchemaDocument)
            .collect())
    }

    async fn schema(&self, ctx: &Context<'_>, name: String) -> ApiResult<Option<SchemaDocument>> {
        let api = context(ctx)?;
        Ok(api.store.schema(&name).await?.map(SchemaDocument))
    }

    async fn connections(&self, ctx: &Context<'_>) -> ApiResult<Vec<Connection>> {
        let api = context(ctx)?;
        Ok(api
            .store
            .connections()
            .await?
            .into_iter()
            .map(Connection)
            .collect())
    }

    async fn connection(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Connection>> {
        let api = context(ctx)?;
        let id = parse_id(&id, "connection")?;
        Ok(api.store.connection(id).await?.map(Connection))
    }

    async fn touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Touchpoint>> {
        let api = context(ctx)?;
        let id = parse_id(&id, "touchpoint")?;
        Ok(api.store.touchpoint(id).await?.map(Touchpoint))
    }

    /// Every touchpoint, or those of one connection.
    async fn touchpoints(
        &self,
        ctx: &Context<'_>,
        connection_id: Option<ID>,
    ) -> ApiResult<Vec<Touchpoint>> {
        let api = context(ctx)?;
        let connection_id = connection_id
            .map(|id| parse_id(&id, "connection"))
            .transpose()?;
        let touchpoints = api.store.touchpoints(connection_id).await?;
        Ok(touchpoints.into_iter().map(Touchpoint).collect())
    }

    /// One resync-bucket entry.
    async fn bucket_entry(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<BucketEntry>> {
        let api = context(ctx)?;
        let id = parse_id(&id, "event")?;
        Ok(api.store.event(id).await?.map(BucketEntry))
    }

    /// A touchpoint's resync bucket, newest first, optionally only events received within
    /// `[from, to]`.
    #[allow(clippy::too_many_arguments)]
    async fn resync_bucket(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        status: Option<EventStatus>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: u64,
        after: Option<String>,
    ) -> ApiResult<Page<String, BucketEntry>> {
        let api = context(ctx)?;
        let touchpoint_id = existing_touchpoint(api, &touchpoint_id).await?;
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
            })
            .await?;
        Ok(page_connection(
            page,
            after.is_some(),
            |e| e.id,
            BucketEntry,
        ))
    }

    /// A touchpoint's log bucket, newest first; `level` keeps entries at that level or above.
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
        let touchpoint_id = existing_touchpoint(api, &touchpoint_id).await?;
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

/// Parse a touchpoint id and check that it exists.
pub async fn existing_touchpoint(api: &ApiContext, id: &ID) -> ApiResult<uuid::Uuid> {
    let id = parse_id(id, "touchpoint")?;
    match api.store.touchpoint(id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::invalid(
            "TOUCHPOINT_NOT_FOUND",
            format!("no touchpoint with id {id}"),
        )),
    }
}
