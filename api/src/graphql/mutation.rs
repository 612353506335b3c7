//! Mutations: register the URL, create connections and touchpoints, publish, auto-sync,
//! resync. Each validates fully before it writes, so a rejected mutation changes nothing.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use hookplane_crds::{ConnectionSpec, TouchpointSpec};
use hookplane_dataplane::schemas::{self, SourceSchema};
use hookplane_spec as spec;
use hookplane_store::{EventQuery, LogLevel, NewLog};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::{
    ApiContext,
    error::{ApiError, ApiResult, parse_id},
    inputs::{
        CreateConnectionInput, CreateTouchpointInput, RegisterUrlInput, SecretWrites,
        UpdateTouchpointInput,
    },
    types::{BucketEntry, Connection, EventStatus, Organization, SchemaDocument, Touchpoint},
};
use crate::cluster::{
    Cluster, ClusterError,
    publish::{Publication, PublishError},
};

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
        let api = ctx.data_unchecked::<ApiContext>();
        let slug = input.organization.trim();
        let slug_ok = (1..=63).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if !slug_ok {
            return Err(ApiError::invalid(
                "INVALID_ORGANIZATION",
                "the organization is 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ));
        }
        let url = Url::parse(input.url.trim())
            .ok()
            .filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
            })
            .ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_URL",
                    "the registered URL must be an absolute http(s) URL without query or fragment",
                )
            })?;
        let registered = url.as_str().trim_end_matches('/');
        let organization = api.store.register_url(slug, registered).await?;
        api.runtime.reload().await?;
        Ok(Organization(organization))
    }

    /// Create a connection: a source app and a destination app.
    async fn create_connection(
        &self,
        ctx: &Context<'_>,
        input: CreateConnectionInput,
    ) -> ApiResult<Connection> {
        let api = ctx.data_unchecked::<ApiContext>();
        let mut secrets = SecretWrites::default();
        let secret_name = format!("connection-{}", Uuid::now_v7());
        let spec = input.into_spec(&secret_name, &mut secrets);
        spec::validate_connection(&spec)?;
        let connection = api.store.create_connection(spec).await?;
        if let Err(error) = write_secrets(api, secrets).await {
            // Nothing refers to the new connection yet: take it back.
            api.store.delete_unused_connection(connection.id).await?;
            return Err(error);
        }
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
        let api = ctx.data_unchecked::<ApiContext>();
        check_schema_name(&name)?;
        SourceSchema::compile(&name, &document.0)
            .map_err(|error| ApiError::invalid("INVALID_SCHEMA", error))?;
        let schema = api.store.put_schema(&name, document.0).await?;
        api.runtime.reload().await?;
        Ok(SchemaDocument(schema))
    }

    /// Infer a JSON Schema from a sample payload and store it under `name`.
    async fn infer_schema(
        &self,
        ctx: &Context<'_>,
        name: String,
        sample: Json<Value>,
    ) -> ApiResult<SchemaDocument> {
        let api = ctx.data_unchecked::<ApiContext>();
        check_schema_name(&name)?;
        let document = schemas::infer(&name, &sample.0);
        let schema = api.store.put_schema(&name, document).await?;
        api.runtime.reload().await?;
        Ok(SchemaDocument(schema))
    }

    /// Delete a schema no touchpoint uses.
    async fn delete_schema(&self, ctx: &Context<'_>, name: String) -> ApiResult<bool> {
        let api = ctx.data_unchecked::<ApiContext>();
        let users: Vec<String> = api
            .store
            .touchpoints(None)
            .await?
            .into_iter()
            .filter(|t| {
                t.spec.source.schema.as_deref() == Some(name.as_str())
                    || t.published
                        .as_ref()
                        .and_then(|p| p.spec.source.schema.as_deref())
                        == Some(name.as_str())
            })
            .map(|t| t.spec.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::invalid(
                "SCHEMA_IN_USE",
                format!("touchpoints use this schema: {}", users.join(", ")),
            ));
        }
        if !api.store.delete_schema(&name).await? {
            return Err(ApiError::invalid(
                "SCHEMA_NOT_FOUND",
                format!("no schema {name:?}"),
            ));
        }
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
        let api = ctx.data_unchecked::<ApiContext>();
        let id = parse_id(&id, "connection")?;
        let connection = api.store.set_connection_paused(id, paused).await?;
        let state = if paused { "paused" } else { "resumed" };
        for touchpoint in api.store.touchpoints(Some(id)).await? {
            log(
                api,
                touchpoint.id,
                format!("deliveries {state} for the connection"),
            )
            .await;
        }
        api.runtime.reload().await?;
        api.wake_worker.notify_one();
        Ok(Connection(connection))
    }

    /// Create a touchpoint (all wizard steps at once). It is a draft until published.
    async fn create_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateTouchpointInput,
    ) -> ApiResult<Touchpoint> {
        let api = ctx.data_unchecked::<ApiContext>();
        let connection_id = parse_id(&input.connection_id, "connection")?;
        let connection = api
            .store
            .connection(connection_id)
            .await?
            .ok_or_else(|| connection_not_found(connection_id))?;
        let mut secrets = SecretWrites::default();
        let secret_name = format!("touchpoint-{}", Uuid::now_v7());
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
        };
        check_spec(&spec, &connection.spec)?;
        let touchpoint = api.store.create_touchpoint(spec).await?;
        if let Err(error) = write_secrets(api, secrets).await {
            // Nothing was received for the new draft yet: take it back.
            api.store.delete_touchpoint(touchpoint.id).await?;
            return Err(error);
        }
        // The receiver knows draft endpoints too, to answer TOUCHPOINT_NOT_PUBLISHED.
        api.runtime.reload().await?;
        Ok(Touchpoint(touchpoint))
    }

    /// Edit a touchpoint's draft. What runs changes only when it is published again.
    async fn update_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateTouchpointInput,
    ) -> ApiResult<Touchpoint> {
        let api = ctx.data_unchecked::<ApiContext>();
        let id = parse_id(&input.id, "touchpoint")?;
        let (current, connection) = touchpoint_and_connection(api, id).await?;
        ensure_portal_managed(&current)?;
        let mut spec = current.spec.clone();
        let mut secrets = SecretWrites::default();
        if let Some(name) = input.name {
            spec.name = name;
        }
        if let Some(help_url) = input.help_url {
            spec.help_url = Some(help_url).filter(|u| !u.is_empty());
        }
        if let Some(show) = input.show_in_agent {
            spec.show_in_agent = show;
        }
        if let Some(source) = input.source {
            let secret_name = format!("touchpoint-{id}");
            let previous = current.spec.source.verification.as_ref();
            spec.source = source.into_spec(&secret_name, previous, &mut secrets);
        }
        if let Some(destination) = input.destination {
            spec.destination = destination.into();
        }
        if let Some(mapping) = input.mapping {
            spec.mapping = mapping.into();
        }
        if let Some(filter) = input.filter {
            spec.filter = Some(filter).filter(|f| !f.trim().is_empty());
        }
        if let Some(delivery) = input.delivery {
            spec.delivery = delivery.into_spec();
        }
        if let Some(ordering) = input.ordering {
            spec.ordering = ordering.into_spec();
        }
        check_spec(&spec, &connection.spec)?;
        // The Secret keeps its name across edits, so the draft row cannot be taken back like a
        // new one: in cluster mode, where writing it is the likelier failure, it goes first.
        let touchpoint = if api.cluster.is_some() {
            write_secrets(api, secrets).await?;
            api.store.update_touchpoint(id, spec).await?
        } else {
            let touchpoint = api.store.update_touchpoint(id, spec).await?;
            write_secrets(api, secrets).await?;
            touchpoint
        };
        api.runtime.reload().await?;
        Ok(Touchpoint(touchpoint))
    }

    /// Make the draft the running spec ("Publish"): the receiver and worker pick it up at
    /// once, without a restart.
    async fn publish_touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Touchpoint> {
        let api = ctx.data_unchecked::<ApiContext>();
        let id = parse_id(&id, "touchpoint")?;
        let (current, connection) = touchpoint_and_connection(api, id).await?;
        check_spec(&current.spec, &connection.spec)?;
        check_verification(&current.spec)?;
        if let Some(name) = current.spec.source.schema.as_deref()
            && api.store.schema(name).await?.is_none()
        {
            return Err(ApiError::invalid(
                "SCHEMA_NOT_FOUND",
                format!(
                    "source.schema names {name:?}, which is not stored (importSchema or inferSchema)"
                ),
            ));
        }
        ensure_portal_managed(&current)?;
        if let Some(cluster) = &api.cluster {
            publish_to_cluster(
                api,
                cluster,
                &current,
                &connection,
                &current.spec,
                current.generation,
            )
            .await?;
        }
        let touchpoint = api.store.publish_touchpoint(id).await?;
        api.runtime.reload().await?;
        let to = match &touchpoint.resource {
            Some(resource) => format!(" as Touchpoint {}/{}", resource.namespace, resource.name),
            None => String::new(),
        };
        log(
            api,
            id,
            format!("published generation {}{to}", touchpoint.generation),
        )
        .await;
        api.wake_worker.notify_one();
        Ok(Touchpoint(touchpoint))
    }

    /// Turn Auto-sync on or off. Off: events wait as UNPROCESSED; on: they are processed.
    async fn set_auto_sync(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> ApiResult<Touchpoint> {
        let api = ctx.data_unchecked::<ApiContext>();
        let id = parse_id(&id, "touchpoint")?;
        let (current, connection) = touchpoint_and_connection(api, id).await?;
        ensure_portal_managed(&current)?;
        if let (Some(cluster), Some(published)) = (&api.cluster, &current.published)
            && current.resource.is_some()
        {
            // The running spec lives in the resource: switch it there, same generation.
            let mut spec = published.spec.clone();
            spec.auto_sync = enabled;
            publish_to_cluster(
                api,
                cluster,
                &current,
                &connection,
                &spec,
                published.generation,
            )
            .await?;
        }
        let touchpoint = api.store.set_auto_sync(id, enabled).await?;
        api.runtime.reload().await?;
        let state = if enabled { "on" } else { "off" };
        log(api, id, format!("auto-sync turned {state}")).await;
        api.wake_worker.notify_one();
        Ok(Touchpoint(touchpoint))
    }

    /// Delete a touchpoint with its buckets. Returns the deleted id.
    async fn delete_touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let api = ctx.data_unchecked::<ApiContext>();
        let uuid = parse_id(&id, "touchpoint")?;
        let current = api
            .store
            .touchpoint(uuid)
            .await?
            .ok_or_else(|| touchpoint_not_found(uuid))?;
        ensure_portal_managed(&current)?;
        if let (Some(cluster), Some(resource)) = (&api.cluster, &current.resource) {
            cluster
                .delete_touchpoint(&resource.name)
                .await
                .map_err(cluster_error)?;
        }
        // The mirror may have deleted it first, once the resource was gone.
        api.store.delete_touchpoint(uuid).await?;
        api.runtime.reload().await?;
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
        let api = ctx.data_unchecked::<ApiContext>();
        let id = parse_id(&touchpoint_id, "touchpoint")?;
        let (touchpoint, connection) = touchpoint_and_connection(api, id).await?;
        let (spec, generation) = if published {
            let published = touchpoint.published.as_ref().ok_or_else(|| {
                ApiError::invalid(
                    "TOUCHPOINT_NOT_PUBLISHED",
                    "the touchpoint is not published",
                )
            })?;
            (published.spec.clone(), published.generation)
        } else {
            (touchpoint.spec.clone(), touchpoint.generation)
        };
        let payload = match (event_id, payload) {
            (Some(event_id), None) => {
                let event_id = parse_id(&event_id, "event")?;
                let event = api
                    .store
                    .event(event_id)
                    .await?
                    .filter(|event| event.touchpoint_id == id)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "EVENT_NOT_FOUND",
                            format!("no event {event_id} in this touchpoint's bucket"),
                        )
                    })?;
                event.payload
            }
            (None, Some(Json(payload))) => payload,
            _ => {
                return Err(ApiError::invalid(
                    "INVALID_INPUT",
                    "give either eventId or payload",
                ));
            }
        };
        let validated = spec::validate(&spec, &connection.spec)?;
        let mut preview = MappingPreview {
            generation,
            skipped: false,
            output: None,
            ordering_key: None,
            error: None,
        };
        if let Some(filter) = &validated.filter {
            match filter.matches(&payload) {
                Ok(true) => {}
                Ok(false) => {
                    preview.skipped = true;
                    return Ok(preview);
                }
                Err(error) => {
                    preview.error = Some(error.to_string());
                    return Ok(preview);
                }
            }
        }
        if let Some(key) = &validated.ordering_key {
            match key.apply(&payload) {
                Ok(key) => preview.ordering_key = Some(Json(key)),
                Err(error) => preview.error = Some(format!("ordering key: {error}")),
            }
        }
        match validated.mapping.apply(&payload) {
            Ok(output) => preview.output = Some(Json(output)),
            Err(error) => preview.error = Some(format!("mapping failed: {error}")),
        }
        Ok(preview)
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
        let api = ctx.data_unchecked::<ApiContext>();
        if ids.is_empty() || ids.len() > 1_000 {
            return Err(ApiError::invalid(
                "INVALID_INPUT",
                "give between 1 and 1000 ids",
            ));
        }
        let ids = ids
            .iter()
            .map(|id| parse_id(id, "event"))
            .collect::<ApiResult<Vec<_>>>()?;
        for id in &ids {
            if api.store.event(*id).await?.is_none() {
                return Err(ApiError::invalid(
                    "EVENT_NOT_FOUND",
                    format!("no event with id {id}"),
                ));
            }
        }
        let events = api.store.resync_events(&ids).await?;
        let logs = events
            .iter()
            .map(|event| NewLog {
                touchpoint_id: event.touchpoint_id,
                event_id: Some(event.id),
                level: LogLevel::Info,
                message: format!("resync requested by {requested_by}"),
                fields: json!({ "requestedBy": requested_by }),
            })
            .collect();
        if let Err(error) = api.store.append_logs(logs).await {
            tracing::warn!(%error, "writing resync logs");
        }
        api.wake_worker.notify_one();
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
        let api = ctx.data_unchecked::<ApiContext>();
        let touchpoint_id = super::query::existing_touchpoint(api, &touchpoint_id).await?;
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = api
                .store
                .events(EventQuery {
                    touchpoint_id,
                    status: Some(status.into()),
                    first: 500,
                    after,
                    received_from: from,
                    received_to: to,
                })
                .await?;
            after = page.items.last().map(|e| e.id);
            ids.extend(page.items.iter().map(|e| e.id));
            if !page.has_next_page {
                break;
            }
        }
        let mut count = 0;
        for chunk in ids.chunks(500) {
            count += api.store.resync_events(chunk).await?.len();
        }
        log(
            api,
            touchpoint_id,
            format!("resync of {count} {status:?} events requested by {requested_by}"),
        )
        .await;
        api.wake_worker.notify_one();
        Ok(ResyncResult { count })
    }
}

fn check_schema_name(name: &str) -> ApiResult<()> {
    let valid = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "INVALID_SCHEMA",
            "a schema name is 1-100 characters of letters, digits, '_', '-' and '.'",
        ))
    }
}

fn check_spec(spec: &TouchpointSpec, connection: &ConnectionSpec) -> ApiResult<()> {
    if hookplane_sources::app(&spec.source.app).is_none() {
        return Err(ApiError::invalid(
            "UNKNOWN_APP",
            format!(
                "source.app: {:?} is not in the app catalog",
                spec.source.app
            ),
        ));
    }
    spec::validate(spec, connection)
        .map(drop)
        .map_err(ApiError::from)
}

/// A source that needs a secret and has none is not published.
fn check_verification(spec: &TouchpointSpec) -> ApiResult<()> {
    let Some(app) = hookplane_sources::app(&spec.source.app) else {
        return Err(ApiError::invalid(
            "UNKNOWN_APP",
            "source.app is not in the app catalog",
        ));
    };
    let verification = spec.source.verification.clone().unwrap_or_default();
    app.validate(&verification)
        .map_err(|error| ApiError::invalid(error.code(), error.to_string()))
}

/// A touchpoint and its connection, or the error naming whichever is missing.
async fn touchpoint_and_connection(
    api: &ApiContext,
    id: Uuid,
) -> ApiResult<(hookplane_store::Touchpoint, hookplane_store::Connection)> {
    let touchpoint = api
        .store
        .touchpoint(id)
        .await?
        .ok_or_else(|| touchpoint_not_found(id))?;
    let connection = api
        .store
        .connection(touchpoint.connection_id)
        .await?
        .ok_or_else(|| connection_not_found(touchpoint.connection_id))?;
    Ok((touchpoint, connection))
}

/// Secrets go to the database, or in cluster mode to Kubernetes Secrets (where the
/// operator's receivers and workers read them).
async fn write_secrets(api: &ApiContext, secrets: SecretWrites) -> ApiResult<()> {
    for (reference, value) in secrets.0 {
        match &api.cluster {
            Some(cluster) => cluster
                .put_secret(&reference.name, &reference.key, &value)
                .await
                .map_err(cluster_error)?,
            None => {
                api.store
                    .put_secret(&reference.name, &reference.key, &value)
                    .await?
            }
        }
    }
    Ok(())
}

/// A touchpoint whose resource is applied outside the portal is read-only here.
fn ensure_portal_managed(touchpoint: &hookplane_store::Touchpoint) -> ApiResult<()> {
    match &touchpoint.resource {
        Some(resource) if resource.managed_outside => Err(ApiError::invalid(
            "MANAGED_OUTSIDE_PORTAL",
            format!(
                "touchpoint {:?} is the Touchpoint resource {}/{}, managed outside the portal (kubectl or GitOps); change it there",
                touchpoint.spec.name, resource.namespace, resource.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Apply a touchpoint's resources with `spec` at `generation` and record their names. A
/// Connection managed outside the portal is referenced, never applied over.
async fn publish_to_cluster(
    api: &ApiContext,
    cluster: &Cluster,
    touchpoint: &hookplane_store::Touchpoint,
    connection: &hookplane_store::Connection,
    spec: &TouchpointSpec,
    generation: i64,
) -> ApiResult<()> {
    let published = cluster
        .publish(Publication {
            connection_id: connection.id,
            connection_spec: &connection.spec,
            connection_name: connection.resource.as_ref().map(|r| r.name.as_str()),
            apply_connection: !connection
                .resource
                .as_ref()
                .is_some_and(|r| r.managed_outside),
            touchpoint_id: touchpoint.id,
            touchpoint_spec: spec,
            touchpoint_name: touchpoint.resource.as_ref().map(|r| r.name.as_str()),
            generation,
        })
        .await
        .map_err(|error| match error {
            PublishError::NameTaken { .. } => {
                ApiError::invalid("RESOURCE_NAME_TAKEN", error.to_string())
            }
            PublishError::Cluster(error) => cluster_error(error),
        })?;
    if connection.resource.is_none() {
        api.store
            .set_connection_resource(connection.id, cluster.namespace(), &published.connection)
            .await?;
    }
    api.store
        .set_touchpoint_resource(touchpoint.id, cluster.namespace(), &published.touchpoint)
        .await?;
    Ok(())
}

fn cluster_error(error: ClusterError) -> ApiError {
    tracing::warn!(%error, source = ?std::error::Error::source(&error), "Kubernetes API call failed");
    ApiError::invalid("KUBERNETES_ERROR", error.to_string())
}

async fn log(api: &ApiContext, touchpoint_id: Uuid, message: String) {
    let entry = NewLog {
        touchpoint_id,
        event_id: None,
        level: LogLevel::Info,
        message,
        fields: json!({}),
    };
    if let Err(error) = api.store.append_logs(vec![entry]).await {
        tracing::warn!(%error, "writing a touchpoint log");
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
