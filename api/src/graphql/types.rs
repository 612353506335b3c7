//! Output types: the portal model as clients see it. Secrets appear only as `hasSecret`.

use async_graphql::{Context, Enum, ID, Json, Object, SimpleObject, connection};
use chrono::{DateTime, Utc};
use hookplane_store::{self as store, LogQuery};
use serde_json::Value;

use super::{
    context,
    error::{ApiError, ApiResult},
};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "hookplane_crds::PayloadFormat")]
pub enum PayloadFormat {
    Json,
    Xml,
    Form,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "hookplane_crds::HttpMethod")]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "hookplane_crds::OrderingFailure")]
pub enum OrderingFailure {
    /// Later events of the key wait until the failed one is resynced and succeeds.
    Block,
    /// The failed event is parked and the key moves on.
    Park,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "hookplane_store::EventStatus")]
pub enum EventStatus {
    Unprocessed,
    Success,
    Failed,
    Skipped,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "hookplane_store::LogLevel")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

pub struct Organization(pub store::Organization);

#[Object]
impl Organization {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The `{org}` part of every endpoint URL.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// The registered URL: the domain part of every endpoint URL.
    async fn registered_url(&self) -> &str {
        &self.0.registered_url
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Your role in it (the instance owner is admin in every organization): what a portal
    /// shows and which controls it offers. The server checks every call regardless.
    async fn role(&self, ctx: &Context<'_>) -> ApiResult<super::inputs::TokenRole> {
        super::authz::role(ctx, Some(self.0.id))?
            .map(super::inputs::TokenRole::from)
            .ok_or_else(|| ApiError::invalid("ORGANIZATION_NOT_FOUND", "no such organization"))
    }
}

/// Who manages a connection or touchpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum ManagedBy {
    /// Created and published in the portal (in cluster mode, its resource is applied by the
    /// API).
    Portal,
    /// Its Kubernetes resource is applied outside the portal (kubectl, a GitOps tool); the
    /// portal mirrors it and shows it read-only.
    External,
}

impl ManagedBy {
    fn of(resource: Option<&store::KubeResource>) -> Self {
        match resource {
            Some(resource) if resource.managed_outside => Self::External,
            _ => Self::Portal,
        }
    }
}

/// A Kubernetes resource a connection or touchpoint lives as.
#[derive(SimpleObject)]
pub struct KubernetesResource {
    pub namespace: String,
    pub name: String,
}

impl From<&store::KubeResource> for KubernetesResource {
    fn from(resource: &store::KubeResource) -> Self {
        Self {
            namespace: resource.namespace.clone(),
            name: resource.name.clone(),
        }
    }
}

pub struct Connection(pub store::Connection);

#[Object]
impl Connection {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The organization it belongs to (null only for one made before organizations
    /// existed, which only the instance owner sees).
    async fn organization_id(&self) -> Option<ID> {
        self.0.organization_id.map(|id| ID(id.to_string()))
    }
    async fn name(&self) -> &str {
        &self.0.spec.name
    }
    async fn source_app(&self) -> &str {
        &self.0.spec.source_app
    }
    async fn destination_app(&self) -> &str {
        &self.0.spec.destination_app
    }
    async fn destination_base_url(&self) -> Option<&str> {
        self.0.spec.destination_base_url.as_deref()
    }
    /// "Show in Sync Panel".
    async fn show_in_sync_panel(&self) -> bool {
        self.0.spec.show_in_sync_panel
    }
    /// While paused, webhooks are still received and stored, and wait as UNPROCESSED.
    async fn paused(&self) -> bool {
        self.0.paused
    }
    /// Who edits it: the portal, or (cluster mode) whoever applies its Connection resource.
    async fn managed_by(&self) -> ManagedBy {
        ManagedBy::of(self.0.resource.as_ref())
    }
    /// Its Connection resource (cluster mode); null until a touchpoint of it is published.
    async fn resource(&self) -> Option<KubernetesResource> {
        self.0.resource.as_ref().map(KubernetesResource::from)
    }
    /// Requests in flight at once to the destination.
    async fn max_concurrency(&self) -> u32 {
        self.0.spec.limits.max_concurrency
    }
    /// Requests per second to the destination (null: unlimited).
    async fn requests_per_second(&self) -> Option<u32> {
        self.0.spec.limits.requests_per_second
    }
    /// Names of the header credentials (their values are write-only).
    async fn credential_names(&self) -> Vec<&str> {
        self.0
            .spec
            .credentials
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }
    async fn has_basic_auth(&self) -> bool {
        self.0.spec.basic_auth.is_some()
    }
    /// The OAuth2 token URL, when the destination uses client credentials.
    async fn oauth2_token_url(&self) -> Option<&str> {
        self.0.spec.oauth2.as_ref().map(|o| o.token_url.as_str())
    }
    async fn touchpoints(&self, ctx: &Context<'_>) -> ApiResult<Vec<Touchpoint>> {
        let api = context(ctx)?;
        let touchpoints = api.store.touchpoints(Some(self.0.id)).await?;
        Ok(touchpoints.into_iter().map(Touchpoint).collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Verification settings as stored; secret values are never returned.
#[derive(SimpleObject)]
pub struct Verification {
    scheme: Option<String>,
    /// Whether a signing secret (or token, or password) is stored.
    has_secret: bool,
    /// Whether a previous secret is still accepted (rotation).
    has_previous_secret: bool,
    /// How many additional secrets are accepted.
    additional_secret_count: usize,
    header: Option<String>,
    query_parameter: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
    signed_content: Option<String>,
    timestamp_header: Option<String>,
    id_header: Option<String>,
    tolerance_seconds: Option<u32>,
    username: Option<String>,
    org_id: Option<String>,
    action_ids: Vec<String>,
}

impl From<&hookplane_crds::VerificationSpec> for Verification {
    fn from(v: &hookplane_crds::VerificationSpec) -> Self {
        Self {
            scheme: v.scheme.clone(),
            has_secret: v.secret_ref.is_some(),
            has_previous_secret: v.previous_secret_ref.is_some(),
            additional_secret_count: v.additional_secret_refs.len(),
            header: v.header.clone(),
            query_parameter: v.query_parameter.clone(),
            algorithm: v.algorithm.clone(),
            encoding: v.encoding.clone(),
            prefix: v.prefix.clone(),
            signed_content: v.signed_content.clone(),
            timestamp_header: v.timestamp_header.clone(),
            id_header: v.id_header.clone(),
            tolerance_seconds: v.tolerance_seconds,
            username: v.username.clone(),
            org_id: v.org_id.clone(),
            action_ids: v.action_ids.clone(),
        }
    }
}

/// An app in the catalog, with the source fields a portal renders for it.
#[derive(SimpleObject)]
pub struct App {
    /// Catalog id, used as `sourceApp`/`destinationApp` and `source.app`.
    id: &'static str,
    display_name: &'static str,
    /// How its webhooks are verified.
    verification: &'static str,
    /// Verification schemes it accepts (`verification.scheme`), if it has a choice.
    schemes: Vec<&'static str>,
    /// The verification fields it needs.
    fields: Vec<AppField>,
    /// Headers its deliveries carry that Hookplane reads.
    headers: Vec<&'static str>,
    /// What de-duplicates its deliveries.
    dedupe: &'static str,
}

/// One verification field of an app.
#[derive(SimpleObject)]
pub struct AppField {
    /// Field of `VerificationInput` (`secret`, `orgId`, ...).
    name: &'static str,
    label: &'static str,
    /// `SECRET`, `SECRET_LIST`, `TEXT`, `TEXT_LIST`, `HEADER`, `CHOICE` or `SECONDS`.
    kind: String,
    required: bool,
    /// The schemes this field applies to (empty: all).
    schemes: Vec<&'static str>,
    /// Choices, for `CHOICE`.
    options: Vec<&'static str>,
    default: Option<&'static str>,
    help: &'static str,
}

impl From<hookplane_sources::AppInfo> for App {
    fn from(info: hookplane_sources::AppInfo) -> Self {
        Self {
            id: info.id,
            display_name: info.display_name,
            verification: info.verification,
            schemes: info.schemes.to_vec(),
            fields: info
                .fields
                .iter()
                .map(|field| AppField {
                    name: input_field_name(field.name),
                    label: field.label,
                    kind: serde_json::to_value(field.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    required: field.required,
                    schemes: field.schemes.to_vec(),
                    options: field.options.to_vec(),
                    default: field.default,
                    help: field.help,
                })
                .collect(),
            headers: info.headers.to_vec(),
            dedupe: info.dedupe,
        }
    }
}

#[derive(SimpleObject)]
pub struct SourceConfig {
    app: String,
    endpoint: String,
    schema: Option<String>,
    format: PayloadFormat,
    verification: Option<Verification>,
}

/// A destination header. A secret one's value is write-only: `[redacted]` here.
#[derive(SimpleObject)]
pub struct Header {
    name: String,
    /// The value, or `[redacted]` when the header is secret.
    value: String,
    /// Whether the value is a credential, stored apart and never shown.
    secret: bool,
    /// Whether the header has a value (a secret header whose secret is set).
    has_value: bool,
}

#[derive(SimpleObject)]
pub struct DestinationConfig {
    method: HttpMethod,
    url: String,
    format: PayloadFormat,
    headers: Vec<Header>,
}

#[derive(SimpleObject)]
pub struct MappingRule {
    target: String,
    expr: String,
}

#[derive(SimpleObject)]
pub struct MappingConfig {
    rules: Vec<MappingRule>,
    program: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeliveryPolicy {
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    timeout_seconds: u32,
}

/// Counts of a touchpoint's resync bucket by status.
#[derive(SimpleObject)]
pub struct BucketCounts {
    unprocessed: i64,
    success: i64,
    failed: i64,
    skipped: i64,
}

/// A touchpoint's spec as clients see it (draft or published).
#[derive(SimpleObject)]
pub struct TouchpointSpec {
    name: String,
    help_url: Option<String>,
    show_in_agent: bool,
    source: SourceConfig,
    destination: DestinationConfig,
    mapping: MappingConfig,
    filter: Option<String>,
    delivery: DeliveryPolicy,
    /// Per-key ordering, when events with the same key are delivered one at a time.
    ordering: Option<Ordering>,
    /// The touchpoint's own limits on evaluating its jq, if any (see `ExpressionLimitsInput`).
    expression_limits: Option<ExpressionLimits>,
}

/// Events with the same key are delivered one at a time, in arrival order.
#[derive(SimpleObject)]
pub struct Ordering {
    /// jq expression computing the key from the source payload.
    key: String,
    on_failure: OrderingFailure,
}

/// Limits on one evaluation of a touchpoint's jq.
#[derive(SimpleObject)]
pub struct ExpressionLimits {
    time_ms: Option<u32>,
    memory_mib: Option<u32>,
    output_kib: Option<u32>,
}

impl From<&hookplane_crds::TouchpointSpec> for TouchpointSpec {
    fn from(spec: &hookplane_crds::TouchpointSpec) -> Self {
        Self {
            name: spec.name.clone(),
            help_url: spec.help_url.clone(),
            show_in_agent: spec.show_in_agent,
            ordering: spec.ordering.as_ref().map(|ordering| Ordering {
                key: ordering.key.clone(),
                on_failure: ordering.on_failure.into(),
            }),
            source: SourceConfig {
                app: spec.source.app.clone(),
                endpoint: spec.source.endpoint.clone(),
                schema: spec.source.schema.clone(),
                format: spec.source.format.into(),
                verification: spec.source.verification.as_ref().map(Verification::from),
            },
            destination: DestinationConfig {
                method: spec.destination.method.into(),
                url: spec.destination.url.clone(),
                format: spec.destination.format.into(),
                headers: spec
                    .destination
                    .headers
                    .iter()
                    .map(|h| match &h.secret_key_ref {
                        Some(_) => Header {
                            name: h.name.clone(),
                            value: hookplane_sources::REDACTED.to_owned(),
                            secret: true,
                            has_value: true,
                        },
                        None => Header {
                            name: h.name.clone(),
                            value: h.value.clone(),
                            secret: false,
                            has_value: !h.value.is_empty(),
                        },
                    })
                    .collect(),
            },
            mapping: MappingConfig {
                rules: spec
                    .mapping
                    .rules
                    .iter()
                    .map(|r| MappingRule {
                        target: r.target.clone(),
                        expr: r.expr.clone(),
                    })
                    .collect(),
                program: spec.mapping.program.clone(),
            },
            filter: spec.filter.clone(),
            delivery: DeliveryPolicy {
                max_attempts: spec.delivery.max_attempts,
                initial_backoff_ms: spec.delivery.initial_backoff_ms,
                max_backoff_ms: spec.delivery.max_backoff_ms,
                timeout_seconds: spec.delivery.timeout_seconds,
            },
            expression_limits: spec
                .expression_limits
                .as_ref()
                .map(|limits| ExpressionLimits {
                    time_ms: limits.time_ms,
                    memory_mib: limits.memory_mib,
                    output_kib: limits.output_kib,
                }),
        }
    }
}

pub struct Touchpoint(pub store::Touchpoint);

/// A touchpoint ("Realtime API"): the draft spec that updates edit, and the published one
/// that runs.
#[Object]
impl Touchpoint {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn connection_id(&self) -> ID {
        ID(self.0.connection_id.to_string())
    }
    async fn connection(&self, ctx: &Context<'_>) -> ApiResult<Option<Connection>> {
        let api = context(ctx)?;
        Ok(api
            .store
            .connection(self.0.connection_id)
            .await?
            .map(Connection))
    }
    async fn name(&self) -> &str {
        &self.0.spec.name
    }
    /// The editable part of the endpoint URL (draft).
    async fn endpoint(&self) -> &str {
        &self.0.spec.source.endpoint
    }
    /// The full URL to give the source app (registered URL + organization + endpoint); null
    /// until a URL is registered.
    async fn endpoint_url(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        let api = context(ctx)?;
        let organization =
            match super::authz::organization_of_connection(ctx, self.0.connection_id).await? {
                Some(id) => api.store.organization(id).await?,
                None => None,
            }
            .filter(|org| !org.registered_url.is_empty());
        Ok(organization.map(|org| {
            format!(
                "{}/hooks/{}/{}",
                org.registered_url.trim_end_matches('/'),
                org.slug,
                self.0.spec.source.endpoint
            )
        }))
    }
    /// "Auto-sync": events are processed only while this is on.
    async fn auto_sync(&self) -> bool {
        self.0.auto_sync
    }
    /// Who edits it: the portal, or (cluster mode) whoever applies its Touchpoint resource.
    /// EXTERNAL touchpoints are read-only here: edits, publish, auto-sync and delete answer
    /// `MANAGED_OUTSIDE_PORTAL` (resync still works).
    async fn managed_by(&self) -> ManagedBy {
        ManagedBy::of(self.0.resource.as_ref())
    }
    /// Its Touchpoint resource (cluster mode); null until published.
    async fn resource(&self) -> Option<KubernetesResource> {
        self.0.resource.as_ref().map(KubernetesResource::from)
    }
    /// The draft spec.
    async fn spec(&self) -> TouchpointSpec {
        (&self.0.spec).into()
    }
    /// The running spec; null until published.
    async fn published_spec(&self) -> Option<TouchpointSpec> {
        self.0.published.as_ref().map(|p| (&p.spec).into())
    }
    /// Draft generation; every update increments it.
    async fn generation(&self) -> i64 {
        self.0.generation
    }
    async fn published_generation(&self) -> Option<i64> {
        self.0.published.as_ref().map(|p| p.generation)
    }
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published.as_ref().map(|p| p.published_at)
    }
    /// True when the draft differs from what runs.
    async fn has_unpublished_changes(&self) -> bool {
        self.0
            .published
            .as_ref()
            .is_none_or(|p| p.generation != self.0.generation)
    }
    async fn bucket_counts(&self, ctx: &Context<'_>) -> ApiResult<BucketCounts> {
        let api = context(ctx)?;
        let counts = api.store.count_events(self.0.id).await?;
        Ok(BucketCounts {
            unprocessed: counts.unprocessed,
            success: counts.success,
            failed: counts.failed,
            skipped: counts.skipped,
        })
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One entry of a resync bucket: an event and where it stands. Shared: every subscriber of
/// a change resolves the one copy the change carries.
pub struct BucketEntry(pub std::sync::Arc<store::Event>);

impl From<store::Event> for BucketEntry {
    fn from(event: store::Event) -> Self {
        Self(std::sync::Arc::new(event))
    }
}

#[Object]
impl BucketEntry {
    /// The event id; also the `Idempotency-Key` sent to the destination.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn touchpoint_id(&self) -> ID {
        ID(self.0.touchpoint_id.to_string())
    }
    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at
    }
    async fn status(&self) -> EventStatus {
        self.0.status.into()
    }
    /// Delivery attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn next_attempt_at(&self) -> DateTime<Utc> {
        self.0.next_attempt_at
    }
    /// What de-duplicates the webhook (the app's delivery id), if it has one.
    async fn dedupe_key(&self) -> Option<&str> {
        self.0.dedupe_key.as_deref()
    }
    /// The key events are delivered in order by, when the touchpoint orders per key.
    async fn ordering_key(&self) -> Option<&str> {
        self.0.ordering_key.as_deref()
    }
    /// Set while a worker holds the event; a lease that passes without an outcome (the
    /// worker died) makes the event claimable again.
    async fn leased_until(&self) -> Option<DateTime<Utc>> {
        self.0.lease_until
    }
    /// The parsed source payload (JSON).
    async fn payload(&self) -> Json<&Value> {
        Json(&self.0.payload)
    }
    /// Request headers as received (credentials redacted).
    async fn headers(&self) -> Json<&Value> {
        Json(&self.0.headers)
    }
    /// The raw body as received (UTF-8, lossy).
    async fn raw_body(&self) -> String {
        String::from_utf8_lossy(&self.0.raw_body).into_owned()
    }
    /// The mapped destination payload of the last attempt.
    async fn mapped_output(&self) -> Option<Json<&Value>> {
        self.0.mapped_output.as_ref().map(Json)
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// HTTP status the destination answered on the last attempt.
    async fn response_status(&self) -> Option<i32> {
        self.0.response_status
    }
    /// Repeated deliveries of this webhook that were absorbed.
    async fn duplicates(&self) -> i32 {
        self.0.duplicates
    }
    /// Published generation of the touchpoint that processed it last.
    async fn published_generation(&self) -> Option<i64> {
        self.0.published_generation
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Every delivery attempt, oldest first. Response snippets are shown to operators and
    /// admins only (null for viewers): a destination's answer may hold more than the event.
    async fn attempt_history(&self, ctx: &Context<'_>) -> ApiResult<Vec<Attempt>> {
        let api = context(ctx)?;
        let snippets = super::authz::role_over_touchpoint(ctx, self.0.touchpoint_id)
            .await?
            .is_some_and(|role| role >= crate::auth::Role::Operator);
        let attempts = api.store.attempts(self.0.id).await?;
        Ok(attempts
            .into_iter()
            .map(|mut attempt| {
                if !snippets {
                    attempt.response_snippet = None;
                }
                Attempt(attempt)
            })
            .collect())
    }
    /// This event's log entries, newest first.
    #[graphql(complexity = "(first as usize).saturating_mul(child_complexity)")]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: u64,
    ) -> ApiResult<Vec<LogEntry>> {
        let api = context(ctx)?;
        let page = api
            .store
            .logs(LogQuery {
                touchpoint_id: self.0.touchpoint_id,
                level: None,
                event_id: Some(self.0.id),
                first,
                after: None,
            })
            .await?;
        Ok(page.items.into_iter().map(LogEntry).collect())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "hookplane_store::AttemptTrigger")]
pub enum AttemptTrigger {
    /// Processed as it arrived (and retried).
    Auto,
    /// Processed after a resync.
    Resync,
}

/// One delivery attempt of an event.
pub struct Attempt(pub store::Attempt);

#[Object]
impl Attempt {
    /// 1 for the first attempt; counting restarts after a resync.
    async fn number(&self) -> i32 {
        self.0.number
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    async fn duration_ms(&self) -> u64 {
        self.0.duration_ms
    }
    /// HTTP status the destination answered, if it answered.
    async fn response_status(&self) -> Option<i32> {
        self.0.response_status
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The start of the response body (operators and admins only; null for viewers).
    async fn response_snippet(&self) -> Option<&str> {
        self.0.response_snippet.as_deref()
    }
    /// The published generation of the touchpoint that made the attempt.
    async fn generation(&self) -> i64 {
        self.0.generation
    }
    async fn trigger(&self) -> AttemptTrigger {
        self.0.trigger.into()
    }
}

/// A JSON Schema for a source entity (`Order`, `Customer`, ...).
pub struct SchemaDocument(pub store::Schema);

#[Object(name = "Schema")]
impl SchemaDocument {
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The JSON Schema document.
    async fn document(&self) -> Json<&Value> {
        Json(&self.0.document)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One entry of a log bucket.
pub struct LogEntry(pub store::LogEntry);

#[Object]
impl LogEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn touchpoint_id(&self) -> ID {
        ID(self.0.touchpoint_id.to_string())
    }
    async fn event_id(&self) -> Option<ID> {
        self.0.event_id.map(|id| ID(id.to_string()))
    }
    async fn time(&self) -> DateTime<Utc> {
        self.0.time
    }
    async fn level(&self) -> LogLevel {
        self.0.level.into()
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// Structured fields (JSON).
    async fn fields(&self) -> Json<&Value> {
        Json(&self.0.fields)
    }
}

/// The catalog names verification fields as the spec does (`secretRef`); clients write them
/// through `VerificationInput` (`secret`).
fn input_field_name(spec_field: &'static str) -> &'static str {
    match spec_field {
        "secretRef" => "secret",
        "previousSecretRef" => "previousSecret",
        "additionalSecretRefs" => "additionalSecrets",
        other => other,
    }
}

/// Build a cursor connection from a store page (cursors are entry ids).
pub fn page_connection<T, N: async_graphql::OutputType>(
    page: store::Page<T>,
    has_previous: bool,
    id: impl Fn(&T) -> uuid::Uuid,
    node: impl Fn(T) -> N,
) -> connection::Connection<String, N> {
    let mut result = connection::Connection::new(has_previous, page.has_next_page);
    result.edges.extend(
        page.items
            .into_iter()
            .map(|item| connection::Edge::new(id(&item).to_string(), node(item))),
    );
    result
}

/// Parse an `after` cursor.
pub fn parse_cursor(after: Option<String>) -> ApiResult<Option<uuid::Uuid>> {
    after
        .map(|cursor| {
            uuid::Uuid::parse_str(&cursor)
                .map_err(|_| ApiError::invalid("INVALID_CURSOR", "the `after` cursor is not valid"))
        })
        .transpose()
}

/// An API token, without its secret (shown once, when created).
pub struct ApiToken(pub store::ApiToken);

#[Object]
impl ApiToken {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `viewer`, `operator`, `admin`, or `owner` (the instance owner's tokens).
    async fn role(&self) -> &str {
        &self.0.role
    }
    /// The token's first characters (`hpt_` and 8 more), to tell it apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn organization_id(&self) -> Option<ID> {
        self.0.organization_id.map(|id| ID(id.to_string()))
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// Last request made with it (recorded at most once a minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}

/// A new API token and, this once only, its secret.
#[derive(SimpleObject)]
pub struct CreatedToken {
    /// The token to send as `Authorization: Bearer <secret>`. It is not stored and cannot be
    /// shown again.
    pub secret: String,
    pub token: ApiToken,
}

/// One change recorded in the audit log.
pub struct AuditEntry(pub store::AuditEntry);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// Who: the authenticated caller (`token:<name> (<prefix>)`), never a name it gave.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// The mutation, e.g. `publishTouchpoint`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The id of what changed, when there is one.
    async fn target(&self) -> Option<&str> {
        self.0.target.as_deref()
    }
    async fn detail(&self) -> Json<&Value> {
        Json(&self.0.detail)
    }
}
