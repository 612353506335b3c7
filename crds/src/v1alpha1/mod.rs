//! `hookplane.io/v1alpha1`: the Touchpoint and Connection resources.
//!
//! The `///` docs here become the CRD descriptions (`kubectl explain touchpoint.spec`), so they
//! are written for users. Secrets never appear in a spec: a spec names a secret and a key, and
//! the value lives in a Kubernetes Secret (cluster) or the write-only secret store (embedded).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod connection;
mod touchpoint;
mod verification;

pub use connection::{
    BasicAuthSpec, Connection, ConnectionSpec, ConnectionStatus, CredentialSpec, DestinationLimits,
    OAuth2Spec, ReceiverSpec, WorkerSpec,
};
pub use touchpoint::{
    DeliveryPolicy, DestinationSpec, ENDPOINT_PATTERN, ExpressionLimits, HeaderSpec, MappingRule,
    MappingSpec, OrderingFailure, OrderingSpec, SOURCE_APPS, SourceSpec, Touchpoint,
    TouchpointSpec, TouchpointStatus,
};
pub use verification::{SecretKeyRef, VERIFICATION_SCHEMES, VerificationSpec};

/// Condition types the operator sets on Touchpoints and Connections.
pub mod condition {
    /// The resource does what it says: a touchpoint is published and its receivers serve it;
    /// a connection's receivers and workers run its current configuration.
    pub const READY: &str = "Ready";
    /// Touchpoints only: the current generation is in the running configuration.
    pub const PUBLISHED: &str = "Published";
    /// Running, but not as well as it should (backlog above capacity, receivers missing).
    pub const DEGRADED: &str = "Degraded";
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
