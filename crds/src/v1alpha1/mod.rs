//! `hookplane.io/v1alpha1`: the Touchpoint and Connection resources.
//!
//! The `///` docs here become the CRD descriptions (`kubectl explain touchpoint.spec`), so they
//! are written for users. Secrets never appear in a spec: a spec names a secret and a key, and
//! the value lives in a Kubernetes Secret (cluster) or the write-only secret store (embedded).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod verification;

pub use verification::{SecretKeyRef, VerificationSpec};

/// A webhook endpoint and what happens to every webhook it receives: verification of the
/// source app's signature, a mapping to the destination's shape and delivery to the destination.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hookplane.io",
    version = "v1alpha1",
    kind = "Touchpoint",
    namespaced,
    shortname = "tp",
    status = "TouchpointStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct TouchpointSpec {
    /// The Connection (source app + destination app) this touchpoint belongs to.
    pub connection_ref: String,
    /// Display name shown in the portal and the agent.
    pub name: String,
    /// Link to the touchpoint's help document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_url: Option<String>,
    /// Show the touchpoint in the agent ("Show in Agent").
    #[serde(default = "default_true")]
    pub show_in_agent: bool,
    /// Where webhooks arrive and how they are verified and parsed.
    pub source: SourceSpec,
    /// Where the mapped output is delivered.
    pub destination: DestinationSpec,
    /// How a source payload becomes the destination payload.
    #[serde(default)]
    pub mapping: MappingSpec,
    /// A jq expression evaluated against the source payload; `false` or `null` marks the event
    /// SKIPPED instead of delivering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Process events as they arrive ("Auto-sync"). When off, events wait as UNPROCESSED.
    #[serde(default)]
    pub auto_sync: bool,
    /// Retries and timeouts for delivery.
    #[serde(default)]
    pub delivery: DeliveryPolicy,
}

/// The source side of a touchpoint: the app that sends webhooks and the endpoint they go to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Source app from the catalog (`shopify`, `woocommerce`, `bigcommerce`, `salesforce`,
    /// `zohocrm`, `shift4shop`, `prestashop` or `generic`). The app decides how webhooks are
    /// verified and de-duplicated.
    #[serde(default = "default_app")]
    pub app: String,
    /// The editable part of the endpoint URL: webhooks are received at
    /// `<registered URL>/hooks/<organization>/<endpoint>`.
    pub endpoint: String,
    /// Name of the source schema (entity) the payload is validated against, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Body format the source sends.
    #[serde(default)]
    pub format: PayloadFormat,
    /// Verification settings for the source app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSpec>,
}

/// The destination side of a touchpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// HTTP method used to deliver.
    #[serde(default)]
    pub method: HttpMethod,
    /// Destination URL. A relative URL is resolved against the connection's destination
    /// base URL.
    pub url: String,
    /// Body format the destination receives.
    #[serde(default)]
    pub format: PayloadFormat,
    /// Extra headers sent with every delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSpec>,
}

/// One HTTP header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSpec {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// How the source payload becomes the destination payload. Rules build an object field by
/// field; a program is one whole jq program. When both are given, the program's output (an
/// object) is the base and each rule, evaluated against the source payload, sets its field on
/// it. With neither, the source payload is delivered as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingSpec {
    /// Field rules, as a portal's mapping grid edits them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<MappingRule>,
    /// A whole jq program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

/// One mapping rule: the destination field `target` gets the value of the jq expression
/// `expr` evaluated against the source payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingRule {
    /// Destination field; dots make nested objects (`Address.City`).
    pub target: String,
    /// jq expression, e.g. `.customer.id | tostring`.
    pub expr: String,
}

/// Retries and timeouts for delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPolicy {
    /// Attempts before an event is FAILED (including the first).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; doubles with each attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Request timeout, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u32,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_seconds: default_timeout_seconds(),
        }
    }
}

/// Body formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PayloadFormat {
    /// `application/json`
    #[default]
    Json,
    /// `application/xml`
    Xml,
    /// `application/x-www-form-urlencoded`
    Form,
}

/// HTTP methods a destination accepts deliveries with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// POST
    #[default]
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
}

impl HttpMethod {
    /// The method as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

/// Observed state of a touchpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TouchpointStatus {
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Full URL the source app posts webhooks to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Events waiting to be processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
}

/// A source app and a destination app with their credentials. Touchpoints belong to a
/// connection.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hookplane.io",
    version = "v1alpha1",
    kind = "Connection",
    namespaced,
    shortname = "conn",
    status = "ConnectionStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// Display name.
    pub name: String,
    /// Source app from the catalog.
    pub source_app: String,
    /// Destination app from the catalog.
    pub destination_app: String,
    /// Base URL that relative destination URLs of its touchpoints resolve against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_base_url: Option<String>,
    /// Show the connection in the agent's sync panel ("Show in Sync Panel").
    #[serde(default = "default_true")]
    pub show_in_sync_panel: bool,
}

/// Observed state of a connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn default_true() -> bool {
    true
}

fn default_app() -> String {
    "generic".to_owned()
}

fn default_max_attempts() -> u32 {
    5
}

fn default_initial_backoff_ms() -> u64 {
    1_000
}

fn default_max_backoff_ms() -> u64 {
    300_000
}

fn default_timeout_seconds() -> u32 {
    30
}
