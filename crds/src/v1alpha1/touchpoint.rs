//! The `Touchpoint` resource: one webhook endpoint, its verification, mapping and delivery.
//!
//! The schema attributes here are what `kubectl apply` enforces before the operator sees a
//! spec (required fields, enums, patterns, ranges and CEL rules); the operator and the API
//! validate again (jq programs, secrets, verification per app) because both also accept specs
//! that never went through the API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpMethod, PayloadFormat, SecretKeyRef, VerificationSpec};

/// A webhook endpoint and what happens to every webhook it receives: verification of the
/// source app's signature, a mapping to the destination's shape and delivery to the destination.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hookplane.io",
    version = "v1alpha1",
    kind = "Touchpoint",
    namespaced,
    doc = "A Hookplane touchpoint: a webhook endpoint, its source verification, mapping and delivery to a destination. See `kubectl explain touchpoint.spec`.",
    shortname = "tp",
    category = "hookplane",
    status = "TouchpointStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Connection",
        type_ = "string",
        json_path = ".spec.connectionRef"
    ),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpointUrl"),
    printcolumn(name = "AutoSync", type_ = "boolean", json_path = ".spec.autoSync"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Backlog", type_ = "integer", json_path = ".status.backlog"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TouchpointSpec {
    /// The Connection (source app + destination app) this touchpoint belongs to: the name of a
    /// Connection in the same namespace. It cannot be changed; create a new touchpoint instead.
    #[schemars(
        length(min = 1, max = 44),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        extend("x-kubernetes-validations" = [
            {"rule": "self == oldSelf", "message": "connectionRef is immutable"}
        ])
    )]
    pub connection_ref: String,
    /// Display name shown in the portal and the agent.
    #[schemars(length(min = 1, max = 200))]
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
    /// Deliver events with the same key one at a time, in arrival order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<OrderingSpec>,
    /// Limits on evaluating this touchpoint's mapping, filter and ordering key. Each unset
    /// field takes the instance's default; a value above the instance's maximum is lowered to
    /// it. An evaluation over a limit fails its event with `MAPPING_LIMIT_EXCEEDED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_limits: Option<ExpressionLimits>,
}

/// Limits on one evaluation of a touchpoint's jq expressions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpressionLimits {
    /// CPU time of one evaluation, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub time_ms: Option<u32>,
    /// Memory one evaluation may allocate, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub memory_mib: Option<u32>,
    /// Size of a mapped output as JSON text, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub output_kib: Option<u32>,
}

/// Per-key ordering: events whose `key` evaluates to the same value are delivered one at a
/// time in arrival order; events with different keys are delivered in parallel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderingSpec {
    /// jq expression computing the ordering key from the source payload, e.g. `.id`. An event
    /// whose key is `null` is not ordered.
    #[schemars(length(min = 1))]
    pub key: String,
    /// What a FAILED event does to the events behind it with the same key.
    #[serde(default)]
    pub on_failure: OrderingFailure,
}

/// What a FAILED event does to later events with the same ordering key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OrderingFailure {
    /// Nothing overtakes it: later events of the key wait until it is resynced and succeeds
    /// (or is deleted).
    #[default]
    Block,
    /// It is parked in the bucket as FAILED and the key moves on.
    Park,
}

/// The source side of a touchpoint: the app that sends webhooks and the endpoint they go to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Source app from the catalog (`shopify`, `woocommerce`, `bigcommerce`, `salesforce`,
    /// `zohocrm`, `shift4shop`, `prestashop` or `generic`). The app decides how webhooks are
    /// verified and de-duplicated.
    #[serde(default = "default_app")]
    #[schemars(extend("enum" = SOURCE_APPS))]
    pub app: String,
    /// The editable part of the endpoint URL: webhooks are received at
    /// `<registered URL>/hooks/<organization>/<endpoint>`. Path segments of letters, digits,
    /// `-`, `_`, `.` and `~` separated by single `/` (not `.` or `..`), at most 200 characters.
    #[schemars(length(min = 1, max = 200), regex(pattern = ENDPOINT_PATTERN))]
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

/// The source app ids of the catalog, as `source.app` accepts them.
pub const SOURCE_APPS: [&str; 8] = [
    "shopify",
    "woocommerce",
    "bigcommerce",
    "salesforce",
    "zohocrm",
    "shift4shop",
    "prestashop",
    "generic",
];

/// An endpoint path: segments of `A-Za-z0-9._~-`, none of them `.` or `..`, separated by
/// single slashes. (RE2 and ECMA regexes both accept this; neither has look-ahead.)
pub const ENDPOINT_PATTERN: &str = r"^([A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+)(/([A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+))*$";

/// The destination side of a touchpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// HTTP method used to deliver.
    #[serde(default)]
    pub method: HttpMethod,
    /// Destination URL. A relative URL is resolved against the connection's destination
    /// base URL.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Body format the destination receives.
    #[serde(default)]
    pub format: PayloadFormat,
    /// Extra headers sent with every delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSpec>,
    /// Root element name when `format` is `xml` (default `payload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9._-]*$"))]
    pub xml_root: Option<String>,
}

impl TouchpointSpec {
    /// Every secret the touchpoint refers to: its verification's (in the order verifiers try
    /// them), then its secret destination headers'.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretKeyRef> {
        self.source
            .verification
            .iter()
            .flat_map(VerificationSpec::secret_refs)
            .chain(
                self.destination
                    .headers
                    .iter()
                    .filter_map(|header| header.secret_key_ref.as_ref()),
            )
    }
}

/// One HTTP header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSpec {
    /// Header name.
    #[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))]
    pub name: String,
    /// Header value (empty when it comes from `secretKeyRef`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The value, read from a secret instead: credentials such as `Authorization` or an API
    /// key. The API stores a secret header's value this way and shows only that it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
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
    #[schemars(length(min = 1))]
    pub target: String,
    /// jq expression, e.g. `.customer.id | tostring`.
    #[schemars(length(min = 1))]
    pub expr: String,
}

/// Retries and timeouts for delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.initialBackoffMs <= self.maxBackoffMs",
    "message": "initialBackoffMs must not exceed maxBackoffMs"
}]))]
pub struct DeliveryPolicy {
    /// Attempts before an event is FAILED (including the first), 1 to 100.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; doubles with each attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Request timeout, in seconds, 1 to 600.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: u32,
    /// Retry 4xx answers other than 408, 409, 425 and 429 too. By default they are permanent
    /// and the event is FAILED at once.
    #[serde(default)]
    pub retry_client_errors: bool,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_seconds: default_timeout_seconds(),
            retry_client_errors: false,
        }
    }
}

/// Observed state of a touchpoint, written by the operator.
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
    /// Receiver replicas ready to accept this touchpoint's webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// `Ready` (published and receivers are serving it), `Published` (its current generation is
    /// in the running configuration; `False` says why not) and `Degraded` (running, but not as
    /// well as it should: the backlog is above what the maximum workers handle, or receivers
    /// are missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
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
