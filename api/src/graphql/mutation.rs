//! Mutations: each parses its input, calls one use case of the portal (`crate::portal`) and
//! shapes the answer.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use hookplane_crds::TouchpointSpec;
use serde_json::{Value, json};

use super::{
    authz, context,
    error::{ApiError, ApiResult, parse_id},
    inputs::{
        CreateConnectionInput, CreateTokenInput, CreateTouchpointInput, DestinationInput,
        RegisterUrlInput, UpdateTouchpointInput,
    },
    types::{
        ApiToken, BucketEntry, Connection, CreatedToken, EventStatus, Organization, SchemaDocument,
        Touchpoint,
    },
};
use crate::{
    auth::{self, Grant, Role},
    portal::{Preview, PreviewInput, SecretWrites, new_secret_name},
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
    /// Its code: `MAPPING_LIMIT_EXCEEDED` (an expression exceeded its limits) or
    /// `MAPPING_FAILED`.
    error_code: Option<String>,
    /// Where in the spec the error is, named as validation errors (`extensions.errors`)
    /// name fields: `filter`, `ordering.key`, `mapping.program`, `mapping.rules[2].expr`, or
    /// `mapping` when no one part is to blame.
    error_field: Option<String>,
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
            error_field,
        } = preview;
        Self {
            generation,
            skipped,
            output: output.map(Json),
            ordering_key: ordering_key.map(Json),
            error,
            error_code: error_code.map(str::to_owned),
            error_field,
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
    /// Register an organization's public base URL (the domain part of every endpoint URL).
    /// The instance owner creates the organization the first time; after that its admins
    /// may change the URL. The slug never changes: endpoint URLs given to source apps
    /// contain it (create another organization for another slug).
    async fn register_url(
        &self,
        ctx: &Context<'_>,
        input: RegisterUrlInput,
    ) -> ApiResult<Organization> {
        let api = context(ctx)?;
        let slug = input.organization.trim();
        match api.store.organization_by_slug(slug).await? {
            Some(existing) => {
                authz::require(
                    ctx,
                    Some(existing.id),
                    Role::Admin,
                    authz::organization_not_found,
                )?;
            }
            None => {
                if !authz::principal(ctx)?.owner {
                    return Err(authz::organization_not_found());
                }
            }
        }
        let organization = api.portal.register_url(slug, &input.url).await?;
        record(
            ctx,
            Some(organization.id),
            "registerUrl",
            Some(organization.id.to_string()),
            json!({ "slug": organization.slug, "url": organization.registered_url }),
        )
        .await;
        Ok(Organization(organization))
    }

    /// Create a connection: a source app and a destination app (admin).
    async fn create_connection(
        &self,
        ctx: &Context<'_>,
        input: CreateConnectionInput,
    ) -> ApiResult<Connection> {
        let api = context(ctx)?;
        let organization =
            authz::organization(ctx, input.organization_id.as_ref(), Role::Admin).await?;
        let mut secrets = SecretWrites::default();
        let spec = input.into_spec(&new_secret_name("connection"), &mut secrets);
        let connection = api
            .portal
            .create_connection(organization.id, spec, secrets)
            .await?;
        record(
            ctx,
            Some(organization.id),
            "createConnection",
            Some(connection.id.to_string()),
            json!({ "name": connection.spec.name }),
        )
        .await;
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
        organization_id: Option<ID>,
    ) -> ApiResult<SchemaDocument> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Admin).await?;
        let schema = api
            .portal
            .import_schema(organization.id, &name, document.0)
            .await?;
        record(
            ctx,
            Some(organization.id),
            "importSchema",
            Some(name),
            json!({}),
        )
        .await;
        Ok(SchemaDocument(schema))
    }

    /// Infer a JSON Schema from a sample payload and store it under `name`.
    async fn infer_schema(
        &self,
        ctx: &Context<'_>,
        name: String,
        sample: Json<Value>,
        organization_id: Option<ID>,
    ) -> ApiResult<SchemaDocument> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Admin).await?;
        let schema = api
            .portal
            .infer_schema(organization.id, &name, &sample.0)
            .await?;
        record(
            ctx,
            Some(organization.id),
            "inferSchema",
            Some(name),
            json!({}),
        )
        .await;
        Ok(SchemaDocument(schema))
    }

    /// Delete a schema no touchpoint uses.
    async fn delete_schema(
        &self,
        ctx: &Context<'_>,
        name: String,
        organization_id: Option<ID>,
    ) -> ApiResult<bool> {
        let api = context(ctx)?;
        let organization = authz::organization(ctx, organization_id.as_ref(), Role::Admin).await?;
        api.portal.delete_schema(organization.id, &name).await?;
        record(
            ctx,
            Some(organization.id),
            "deleteSchema",
            Some(name),
            json!({}),
        )
        .await;
        Ok(true)
    }

    /// Pause or resume deliveries to a connection's destination (operator). While paused,
    /// webhooks are still received and stored; resuming drains them at the configured rate.
    async fn set_connection_paused(
        &self,
        ctx: &Context<'_>,
        id: ID,
        paused: bool,
    ) -> ApiResult<Connection> {
        let api = context(ctx)?;
        let id = parse_id(&id, "connection")?;
        let connection = authz::connection(ctx, id, Role::Operator).await?;
        let changed = api.portal.set_connection_paused(id, paused).await?;
        record(
            ctx,
            connection.organization_id,
            "setConnectionPaused",
            Some(id.to_string()),
            json!({ "paused": paused }),
        )
        .await;
        Ok(Connection(changed))
    }

    /// Create a touchpoint (all wizard steps at once; admin). It is a draft until published.
    async fn create_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateTouchpointInput,
    ) -> ApiResult<Touchpoint> {
        let api = context(ctx)?;
        let connection_id = parse_id(&input.connection_id, "connection")?;
        let connection = authz::connection(ctx, connection_id, Role::Admin).await?;
        refuse_missing_secret_values(&input.destination, None)?;
        let mut secrets = SecretWrites::default();
        let secret_name = new_secret_name("touchpoint");
        let spec = TouchpointSpec {
            connection_ref: connection_id.to_string(),
            name: input.name,
            help_url: input.help_url,
            show_in_agent: input.show_in_agent,
            source: input.source.into_spec(&secret_name, None, &mut secrets),
            destination: input
                .destination
                .into_spec(&secret_name, None, &mut secrets),
            mapping: input.mapping.map(Into::into).unwrap_or_default(),
            filter: input.filter.filter(|f| !f.trim().is_empty()),
            auto_sync: input.auto_sync,
            delivery: input.delivery.map(|d| d.into_spec()).unwrap_or_default(),
            ordering: input.ordering.and_then(|o| o.into_spec()),
            expression_limits: input.expression_limits.and_then(|l| l.into_spec()),
        };
        let touchpoint = api.portal.create_touchpoint(spec, secrets).await?;
        record(
            ctx,
            connection.organization_id,
            "createTouchpoint",
            Some(touchpoint.id.to_string()),
            json!({ "name": touchpoint.spec.name, "endpoint": touchpoint.spec.source.endpoint }),
        )
        .await;
        Ok(Touchpoint(touchpoint))
    }

    /// Edit a touchpoint's draft (admin). What runs changes only when it is published again.
    async fn update_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateTouchpointInput,
    ) -> ApiResult<Touchpoint> {
        let api = context(ctx)?;
        let id = parse_id(&input.id, "touchpoint")?;
        let (current, _) = authz::touchpoint(ctx, id, Role::Admin).await?;
        let organization = authz::organization_of_connection(ctx, current.connection_id).await?;
        if let Some(destination) = &input.destination {
            refuse_missing_secret_values(destination, Some(&current.spec.destination))?;
        }
        let touchpoint = api
            .portal
            .update_touchpoint(id, |spec, secrets| input.apply(id, spec, secrets))
            .await?;
        record(
            ctx,
            organization,
            "updateTouchpoint",
            Some(id.to_string()),
            json!({ "generation": touchpoint.generation }),
        )
        .await;
        Ok(Touchpoint(touchpoint))
    }

    /// Make the draft the running spec ("Publish"; admin): the receiver and worker pick it up
    /// at once, without a restart.
    async fn publish_touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Touchpoint> {
        let api = context(ctx)?;
        let id = parse_id(&id, "touchpoint")?;
        let organization = touchpoint_organization(ctx, id, Role::Admin).await?;
        let touchpoint = api.portal.publish_touchpoint(id).await?;
        record(
            ctx,
            organization,
            "publishTouchpoint",
            Some(id.to_string()),
            json!({ "generation": touchpoint.generation }),
        )
        .await;
        Ok(Touchpoint(touchpoint))
    }

    /// Turn Auto-sync on or off (operator). Off: events wait as UNPROCESSED; on: they are
    /// processed.
    async fn set_auto_sync(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> ApiResult<Touchpoint> {
        let api = context(ctx)?;
        let id = parse_id(&id, "touchpoint")?;
        let organization = touchpoint_organization(ctx, id, Role::Operator).await?;
        let touchpoint = api.portal.set_auto_sync(id, enabled).await?;
        record(
            ctx,
            organization,
            "setAutoSync",
            Some(id.to_string()),
            json!({ "enabled": enabled }),
        )
        .await;
        Ok(Touchpoint(touchpoint))
    }

    /// Delete a touchpoint with its buckets (admin). Returns the deleted id.
    async fn delete_touchpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let api = context(ctx)?;
        let uuid = parse_id(&id, "touchpoint")?;
        let organization = touchpoint_organization(ctx, uuid, Role::Admin).await?;
        api.portal.delete_touchpoint(uuid).await?;
        record(
            ctx,
            organization,
            "deleteTouchpoint",
            Some(uuid.to_string()),
            json!({}),
        )
        .await;
        Ok(id)
    }

    /// Apply a touchpoint's filter and mapping to a stored event or a pasted payload and
    /// return the result without delivering (a portal's mapping preview; operator). Uses the
    /// draft spec unless `published` is true.
    async fn preview_mapping(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        event_id: Option<ID>,
        payload: Option<Json<Value>>,
        #[graphql(default = false)] published: bool,
    ) -> ApiResult<MappingPreview> {
        let portal = &context(ctx)?.portal;
        let id = authz::touchpoint_id(ctx, &touchpoint_id, Role::Operator).await?;
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
    /// SUCCESS alike; operator). All ids must exist, or nothing changes. Each resync is
    /// logged with the caller as its requester.
    async fn resync_events(&self, ctx: &Context<'_>, ids: Vec<ID>) -> ApiResult<Vec<BucketEntry>> {
        let api = context(ctx)?;
        let ids = ids
            .iter()
            .map(|id| parse_id(id, "event"))
            .collect::<ApiResult<Vec<_>>>()?;
        // Every id is checked before anything changes (the portal caps how many there are):
        // one of another organization is as missing as one that does not exist.
        let mut organizations = std::collections::BTreeMap::new();
        if ids.len() <= crate::portal::MAX_RESYNC_IDS {
            for id in &ids {
                let not_found =
                    || ApiError::invalid("EVENT_NOT_FOUND", format!("no event with id {id}"));
                let event = api.store.event(*id).await?.ok_or_else(not_found)?;
                if organizations.contains_key(&event.touchpoint_id) {
                    continue;
                }
                let organization =
                    match touchpoint_organization(ctx, event.touchpoint_id, Role::Operator).await {
                        Err(error) if error.code().ends_with("_NOT_FOUND") => {
                            return Err(not_found());
                        }
                        other => other?,
                    };
                organizations.insert(event.touchpoint_id, organization);
            }
        }
        let organizations: std::collections::BTreeSet<_> = organizations.into_values().collect();
        let actor = authz::principal(ctx)?.actor.clone();
        let events = api.portal.resync_events(&ids, &actor).await?;
        for organization in organizations {
            record(
                ctx,
                organization,
                "resyncEvents",
                None,
                json!({ "events": events.iter().map(|e| e.id.to_string()).collect::<Vec<_>>() }),
            )
            .await;
        }
        Ok(events.into_iter().map(BucketEntry::from).collect())
    }

    /// Resync every event of a touchpoint with a status, optionally received within a time
    /// range (operator).
    async fn resync_matching(
        &self,
        ctx: &Context<'_>,
        touchpoint_id: ID,
        status: EventStatus,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> ApiResult<ResyncResult> {
        let api = context(ctx)?;
        let touchpoint_id = parse_id(&touchpoint_id, "touchpoint")?;
        let organization = touchpoint_organization(ctx, touchpoint_id, Role::Operator).await?;
        let actor = authz::principal(ctx)?.actor.clone();
        let count = api
            .portal
            .resync_matching(touchpoint_id, status.into(), from, to, &actor)
            .await?;
        record(
            ctx,
            organization,
            "resyncMatching",
            Some(touchpoint_id.to_string()),
            json!({ "status": format!("{status:?}"), "count": count }),
        )
        .await;
        Ok(ResyncResult { count })
    }

    /// Create an organization (instance owner only). Same as `registerUrl` for a new slug.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: RegisterUrlInput,
    ) -> ApiResult<Organization> {
        let api = context(ctx)?;
        authz::require_owner(ctx)?;
        let slug = input.organization.trim();
        if api.store.organization_by_slug(slug).await?.is_some() {
            return Err(ApiError::invalid(
                "ORGANIZATION_TAKEN",
                format!("the organization {slug:?} already exists"),
            ));
        }
        let organization = api.portal.register_url(slug, &input.url).await?;
        record(
            ctx,
            Some(organization.id),
            "createOrganization",
            Some(organization.id.to_string()),
            json!({ "slug": organization.slug, "url": organization.registered_url }),
        )
        .await;
        Ok(Organization(organization))
    }

    /// Create an API token with a role in an organization (admin). Its secret is in the
    /// answer, once: it is stored only as a hash.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        input: CreateTokenInput,
    ) -> ApiResult<CreatedToken> {
        let api = context(ctx)?;
        let organization =
            authz::organization(ctx, input.organization_id.as_ref(), Role::Admin).await?;
        let name = input.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(ApiError::invalid(
                "INVALID_INPUT",
                "a token's name is 1-100 characters",
            ));
        }
        if input.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ApiError::invalid(
                "INVALID_INPUT",
                "expiresAt is in the past",
            ));
        }
        let actor = authz::principal(ctx)?.actor.clone();
        let issued = auth::issue_token(
            &api.store,
            Grant::Member(organization.id, input.role.into()),
            name,
            input.expires_at,
            &actor,
        )
        .await?;
        record(
            ctx,
            Some(organization.id),
            "createToken",
            Some(issued.stored.id.to_string()),
            json!({ "name": issued.stored.name, "role": issued.stored.role }),
        )
        .await;
        Ok(CreatedToken {
            secret: issued.secret,
            token: ApiToken(issued.stored),
        })
    }

    /// Revoke an API token (admin of its organization; the owner's tokens: the owner). Its
    /// open subscriptions end within seconds.
    async fn revoke_token(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiToken> {
        let api = context(ctx)?;
        let uuid = parse_id(&id, "token")?;
        let not_found = || ApiError::invalid("TOKEN_NOT_FOUND", format!("no token with id {uuid}"));
        let token = api.store.token(uuid).await?.ok_or_else(not_found)?;
        match token.organization_id {
            Some(organization) => {
                authz::require(ctx, Some(organization), Role::Admin, not_found)?;
            }
            None => {
                if !authz::principal(ctx)?.owner {
                    return Err(not_found());
                }
            }
        }
        let revoked = api.store.revoke_token(uuid).await?;
        record(
            ctx,
            token.organization_id,
            "revokeToken",
            Some(uuid.to_string()),
            json!({ "name": revoked.name }),
        )
        .await;
        Ok(ApiToken(revoked))
    }
}

/// The organization of a touchpoint the caller may act on with `needed`.
async fn touchpoint_organization(
    ctx: &Context<'_>,
    id: uuid::Uuid,
    needed: Role,
) -> ApiResult<Option<uuid::Uuid>> {
    let (touchpoint, _) = authz::touchpoint(ctx, id, needed).await?;
    authz::organization_of_connection(ctx, touchpoint.connection_id).await
}

/// A secret destination header needs a value, given now or kept from the draft.
fn refuse_missing_secret_values(
    destination: &DestinationInput,
    previous: Option<&hookplane_crds::DestinationSpec>,
) -> ApiResult<()> {
    let missing = destination.missing_secret_values(previous);
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        "INVALID_INPUT",
        format!(
            "secret destination header {} needs a value (it has none to keep)",
            missing.join(", ")
        ),
    ))
}

/// Record a change in the audit log with the authenticated caller as its actor. The change
/// has happened by now: a failure to record it is logged as an error, not undone.
async fn record(
    ctx: &Context<'_>,
    organization: Option<uuid::Uuid>,
    action: &str,
    target: Option<String>,
    detail: Value,
) {
    let (Ok(api), Ok(principal)) = (context(ctx), authz::principal(ctx)) else {
        return;
    };
    tracing::info!(actor = %principal.actor, action, target = target.as_deref().unwrap_or(""), "audit");
    if let Err(error) = api
        .store
        .record_audit(hookplane_store::NewAudit {
            organization_id: organization,
            actor: &principal.actor,
            action,
            target,
            detail,
        })
        .await
    {
        tracing::error!(%error, action, "recording an audit entry");
    }
}
