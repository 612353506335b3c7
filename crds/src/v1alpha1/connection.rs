//! The `Connection` resource: a source app and a destination app, the credentials the
//! destination needs, and how the connection's receivers and workers run on Kubernetes.

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// A source app and a destination app with their credentials. Touchpoints belong to a
/// connection; on Kubernetes each connection runs its own webhook receivers and sync workers.
///
/// The name becomes part of the names of the objects the operator creates
/// (`hookplane-<name>-receiver`), so it is a DNS label of at most 44 characters.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hookplane.io",
    version = "v1alpha1",
    kind = "Connection",
    namespaced,
    doc = "A Hookplane connection: a source app and a destination app; the operator runs its webhook receivers and sync workers. See `kubectl explain connection.spec`.",
    shortname = "conn",
    category = "hookplane",
    status = "ConnectionStatus",
    derive = "Default",
    derive = "PartialEq",
    validation = Rule::new(
        "size(self.metadata.name) <= 44 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')"
    ).message("the name must be a DNS label of at most 44 characters"),
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.sourceApp"),
    printcolumn(name = "Destination", type_ = "string", json_path = ".spec.destinationApp"),
    printcolumn(name = "Touchpoints", type_ = "integer", json_path = ".status.touchpoints"),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.workerReplicas"),
    printcolumn(name = "Backlog", type_ = "integer", json_path = ".status.backlog"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// Display name.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Source app from the catalog.
    #[schemars(length(min = 1), extend("enum" = crate::SOURCE_APPS))]
    pub source_app: String,
    /// Destination app from the catalog.
    #[schemars(length(min = 1), extend("enum" = crate::SOURCE_APPS))]
    pub destination_app: String,
    /// Base URL that relative destination URLs of its touchpoints resolve against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_base_url: Option<String>,
    /// Show the connection in the agent's sync panel ("Show in Sync Panel").
    #[serde(default = "default_true")]
    pub show_in_sync_panel: bool,
    /// Credentials sent to the destination app with every delivery of the connection's
    /// touchpoints, each as a header whose value is read from a Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub credentials: Vec<CredentialSpec>,
    /// HTTP basic authentication for the destination app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthSpec>,
    /// OAuth2 client credentials for the destination app: a token is fetched, cached until it
    /// expires, sent as `Authorization: Bearer`, and refreshed when the destination answers 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Spec>,
    /// How hard the destination may be driven.
    #[serde(default)]
    pub limits: DestinationLimits,
    #[serde(default)]
    pub receiver: ReceiverSpec,
    /// How the sync workers run and scale (Kubernetes only).
    #[serde(default)]
    pub worker: WorkerSpec,
}

/// A credential for the destination app: the header `header` carries `prefix` followed by the
/// value of the secret key. For example `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpec {
    /// Name of the credential, unique in the connection (shown in the portal and in logs; the
    /// value never is).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Header the credential is sent in, such as `Authorization` or `X-Api-Key`.
    #[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))]
    pub header: String,
    /// Text in front of the secret value, such as `Bearer ` or `Basic `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The Secret key holding the value.
    pub secret_key_ref: SecretKeyRef,
}

impl ConnectionSpec {
    /// Every secret key the connection refers to: credentials, basic auth, OAuth2.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretKeyRef> {
        self.credentials
            .iter()
            .map(|c| &c.secret_key_ref)
            .chain(self.basic_auth.iter().map(|b| &b.password_ref))
            .chain(self.oauth2.iter().map(|o| &o.client_secret_ref))
    }
}

/// HTTP basic authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthSpec {
    /// User name.
    #[schemars(length(min = 1))]
    pub username: String,
    /// The Secret key holding the password.
    pub password_ref: SecretKeyRef,
}

/// OAuth2 client credentials grant (RFC 6749 section 4.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Spec {
    /// Token endpoint.
    #[schemars(length(min = 1))]
    pub token_url: String,
    /// Client id.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// The Secret key holding the client secret.
    pub client_secret_ref: SecretKeyRef,
    /// Scopes requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Limits on deliveries to the destination app, shared by all touchpoints of the connection.
/// On 429 or 503 the rate is halved (and `Retry-After` honoured); it recovers gradually after
/// successes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationLimits {
    /// Requests in flight at once, 1 to 1000.
    #[serde(default = "default_max_concurrency")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrency: u32,
    /// Requests per second; unset means no rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub requests_per_second: Option<u32>,
}

impl Default for DestinationLimits {
    fn default() -> Self {
        Self {
            max_concurrency: default_max_concurrency(),
            requests_per_second: None,
        }
    }
}

fn default_max_concurrency() -> u32 {
    16
}

/// How the webhook receivers of a connection run. Receivers never scale to zero: a webhook
/// must always find one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// Receiver pods, at least 1.
    #[serde(default = "default_receiver_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    /// CPU and memory requests and limits of a receiver pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ReceiverSpec {
    fn default() -> Self {
        Self {
            replicas: default_receiver_replicas(),
            resources: None,
        }
    }
}

/// How the sync workers of a connection run and scale. The operator sets the worker replicas
/// to `ceil(backlog / targetBacklogPerReplica)` clamped to `[minReplicas, maxReplicas]`, where
/// the backlog is the sum of the UNPROCESSED events of the connection's touchpoints; it scales
/// down only to the highest count it computed during the last
/// `scaleDownStabilizationSeconds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.minReplicas <= self.maxReplicas",
    "message": "minReplicas must not exceed maxReplicas"
}]))]
pub struct WorkerSpec {
    /// Fewest worker pods. 0 lets the workers scale to zero when there is no backlog.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub min_replicas: i32,
    /// Most worker pods.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Backlog (UNPROCESSED events) one worker pod is expected to handle.
    #[serde(default = "default_target_backlog")]
    #[schemars(range(min = 1))]
    pub target_backlog_per_replica: i64,
    /// Events a worker pod delivers concurrently.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 1024))]
    pub concurrency: u32,
    /// How long a lower backlog must last before workers are removed, in seconds.
    #[serde(default = "default_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: u32,
    /// CPU and memory requests and limits of a worker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_backlog_per_replica: default_target_backlog(),
            concurrency: default_concurrency(),
            scale_down_stabilization_seconds: default_stabilization(),
            resources: None,
        }
    }
}

/// Observed state of a connection, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Touchpoints in the running configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touchpoints: Option<i32>,
    /// Events waiting to be processed, over all its touchpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// Receiver pods ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Worker pods the operator asks for (the scaling decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_replicas: Option<i32>,
    /// Worker pods ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_workers: Option<i32>,
    /// SHA-256 of the running configuration (`hookplane.io/config-hash` on the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// `Ready` (the receivers and workers run the current configuration; `False` says why
    /// not) and `Degraded` (running, but the backlog is above what the maximum workers handle
    /// or receivers are missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

fn default_true() -> bool {
    true
}

fn default_receiver_replicas() -> i32 {
    2
}

fn default_min_replicas() -> i32 {
    1
}

fn default_max_replicas() -> i32 {
    4
}

fn default_target_backlog() -> i64 {
    100
}

fn default_concurrency() -> u32 {
    32
}

fn default_stabilization() -> u32 {
    300
}
