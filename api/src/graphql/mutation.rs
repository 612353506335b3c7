//! Mutations: each parses its input, calls one use case of the portal (`crate::portal`) and
//! shapes the answer.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use hookplane_crds::TouchpointSpec;
use serde_json::Value;

use super::{
    context,
    error::{ApiError, ApiResult, parse_id},
    inputs::{
        CreateConnectionInput, CreateTouchpointInput, RegisterUrlInput, UpdateTouchpointInput,
    },
    types::{BucketEntry, Connection, EventStatus, Organization, SchemaDocument, Touchpoint},
};
use crate::portal::{Preview, PreviewInput, SecretWrites, new_secret_name};

pub struct MutationRoot;

/// What a touchpoint's mapping makes of a payload, without delivering anything.
#[derive(SimpleObject)]
pub struct MappingPreview {
    /// The generation of the spec used (draft or published).
    generation: i64,
    /// True when the filter would mark the event SKIPPED.
    skipped: bool,
    /// The mapped destination payload (null when skipped or on error).
    output: Option<Json<Value>>,
    /// The ordering key the event would get, when the touchpoint orders per key.
    ordering_key: Option<Json<Value>>,
    /// The filter, mapping or ordering error, as the bucket would record it.
    error: Option<String>,
    /// Its code: `MAPPING_LIMIT_EXCEEDED` (an expression exceeded its limits) or
    /// `MAPPING_FAILED`.
    error_code: Option<String>,
}

impl From<Preview> for MappingPreview {
    fn from(preview: Preview) -> Self {
        let Preview {
            generation,
            skipped,
            output,
            ordering_key,
            error,
            error_code,
        } = preview;
        Self {
            generation,
            skipped,
            output: output.map(Json),
            ordering_key: ordering_key.map(Json),
            error,
            error_code: error_code.map(str::to_owned),
        }
    }
}

/// The result of a bulk resync.
#[derive(SimpleObject)]
pub struct ResyncResult {
    /// Events put back to UNPROCESSED.
    count: usize,
}

#[Object]
impl MutationRoot {
    /// Register the organization's public base URL and slug (the domain part of every
    /// endpoint URL). Registering again replaces both.
    async fn register_url(
        &self,
        ctx: &Context<'_>,
        input: RegisterUrlInput,
    ) -> ApiResult<Organization> {
        let portal = &context(ctx)?.portal;
        let organization = portal.register_url(&input.organization, &input.url).await?;
        Ok(Organization(organization))
    }

    /// Create a connection: a source app and a destination app.
    async fn create_connection(
        &self,
        ctx: &Context<'_>,
        input: CreateConnectionInput,
    ) -> ApiResult<Connection> {
        let portal = &context(ctx)?.portal;
        let mut secrets = SecretWrites::default();
        let spec = input.into_spec(&new_secret_name("connection"), &mut secrets);
        let connection = portal.create_connection(spec, secrets).await?;
        Ok(Connection(connection))
    }

    /// Store a JSON Schema (draft 2020-12) for a source entity; replaces one of that name.
    /// Touchpoints whose `source.schema` names it validate payloads against it once
    /// published: a payload that does not match is FAILED with the validation errors.
    async fn import_schema(
        &self,
        ctx: &Context<'_>,
        name: String,
        document: Json<Value>,
    ) -> ApiResult<SchemaDocument> {
        let portal = &context(ctx)?.portal;
        Ok(SchemaDocument(
            portal.import_schema(&name, document.0).await?,
        ))
    }

    /// Infer a JSON Schema from a sample payload and store it under `name`.
    async fn infer_schema(
        &self,
        ctx: &Context<'_>,
        name: String,
        sample: Json<Value>,
    ) -> ApiResult<SchemaDocument> {
        let portal = &context(ctx)?.portal;
        Ok(SchemaDocument(portal.infer_schema(&name, &sample.0).await?))
    }

    /// Delete a schema no touchpoint uses.
    async fn delete_schema(&self, ctx: &Context<'_>, name: String) -> ApiResult<bool> {
        context(ctx)?.portal.delete_schema(&name).await?;
        Ok(true)
    }

    /// Pause or resume deliveries to a connection's destination. While paused, webhooks are
    /// still received and stored; resuming drains them at the configured rate.
    async fn set_connection_paused(
        &self,
        ctx: &Context<'_>,
        id: ID,
        paused: bool,
    ) -> ApiResult<Connection> {
        let portal = &context(ctx)?.portal;
        let id = parse_id(&id, "connection")?;
        Ok(Connection(portal.set_connection_paused(id, paused).await?))
    }

    /// Create a touchpoint (all wizard steps at once). It is a draft until published.
    async fn create_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateTouchpointInput,
    ) -> ApiResult<Touchpoint> {
        let portal = &context(ctx)?.portal;
        let connection_id = parse_id(&input.connection_id, "connection")?;
        let mut secrets = SecretWrites::default();
        let secret_name = new_secret_name("touchpoint");
        let spec = TouchpointSpec {
            connection_ref: connection_id.to_string(),
            name: input.name,
            help_url: input.help_url,
            show_in_agent: input.show_in_agent,
            source: input.source.into_spec(&secret_name, None, &mut secrets),
            destination: input.destination.into(),
            mapping: input.mapping.map(Into::into).unwrap_or_default(),
            filter: input.filter.filter(|f| !f.trim().is_empty()),
            auto_sync: input.auto_sync,
            delivery: input.delivery.map(|d| d.into_spec()).unwrap_or_default(),
            ordering: input.ordering.and_then(|o| o.into_spec()),
            expression_limits: input.expression_limits.and_then(|l| l.into_spec()),
        };
        Ok(Touchpoint(portal.create_touchpoint(spec, secrets).await?))
    }

    /// Edit a touchpoint's draft. What runs changes only when it is published again.
    async fn update_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateTouchpointInput,
    ) -> ApiResult<Touchpoint> {
        let portal = &context(ctx)?.portal;
        let id = parse_id(&input.id, "touchpoint")?;
        let touchpoint = portal
            .update_touchpoint(id, |spec, secrets| input.apply(id, spec, secrets))
            .await?;
        Ok(Touchpoint(touchpoint))
    }

    /// Make the draft the running spec ("Publish"): the receiver and worker pick it up at
    /// once, without a restart.
    async fn publish_touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Touchpoint> {
        let portal = &context(ctx)?.portal;
        let id = parse_id(&id, "touchpoint")?;
        Ok(Touchpoint(portal.publish_touchpoint(id).await?))
    }

    /// Turn Auto-sync on or off. Off: events wait as UNPROCESSED; on: they are processed.
    async fn set_auto_sync(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> ApiResult<Touchpoint> {
        let portal = &context(ctx)?.portal;
        let id = parse_id(&id, "touchpoint")?;
        Ok(Touchpoint(portal.set_auto_sync(id, enabled).await?))
    }

    /// Delete a touchpoint with its buckets. Returns the deleted id.
    async fn delete_touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let portal = &context(ctx)?.portal;
        let uuid = parse_id(&id, "touchpoint")?;
        portal.delete_touchpoint(uuid).await?;
        Ok(id)
    }

    /// Apply a touchpoint's filter and mapping to a stored event or a pasted payload and
    /// return the result without delivering (a portal's mapping preview). Uses the draft spec
    /// unless `published` is true.
    async fn preview_mapping(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        event_id: Option<ID>,
        payload: Option<Json<Value>>,
        #[graphql(default = false)] published: bool,
    ) -> ApiResult<MappingPreview> {
        let portal = &context(ctx)?.portal;
        let id = parse_id(&touchpoint_id, "touchpoint")?;
        let input = match (event_id, payload) {
            (Some(event_id), None) => PreviewInput::Event(parse_id(&event_id, "event")?),
            (None, Some(Json(payload))) => PreviewInput::Payload(payload),
            _ => {
                return Err(ApiError::invalid(
                    "INVALID_INPUT",
                    "give either eventId or payload",
                ));
            }
        };
        Ok(portal.preview_mapping(id, input, published).await?.into())
    }

    /// Put events back to UNPROCESSED with attempts reset (works for FAILED, SKIPPED and
    /// SUCCESS alike). All ids must exist, or nothing changes. Each resync is logged with
    /// `requestedBy`.
    async fn resync_events(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        #[graphql(default_with = "\"api\".to_owned()")] requested_by: String,
    ) -> ApiResult<Vec<BucketEntry>> {
        let portal = &context(ctx)?.portal;
        let ids = ids
            .iter()
            .map(|id| parse_id(id, "event"))
            .collect::<ApiResult<Vec<_>>>()?;
        let events = portal.resync_events(&ids, &requested_by).await?;
        Ok(events.into_iter().map(BucketEntry).collect())
    }

    /// Resync every event of a touchpoint with a status, optionally received within a time
    /// range.
    async fn resync_matching(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        status: EventStatus,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default_with = "\"api\".to_owned()")] requested_by: String,
    ) -> ApiResult<ResyncResult> {
        let portal = &context(ctx)?.portal;
        let touchpoint_id = parse_id(&touchpoint_id, "touchpoint")?;
        let count = portal
            .resync_matching(touchpoint_id, status.into(), from, to, &requested_by)
            .await?;
        Ok(ResyncResult { count })
    }
}
