//! Source verification settings: which secret, header and tolerance a source app's
//! verifier uses. Secrets are references, never values.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Verification settings. Which fields apply depends on the source app; secrets are references.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    /// Verification scheme for `generic` sources: `none`, `hmac`, `standardWebhooks`, `basic`
    /// or `bearer`. Other apps have a fixed scheme and ignore this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The signing secret (or token, or password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A previous signing secret still accepted during rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_ref: Option<SecretKeyRef>,
    /// Header carrying the signature or token (generic HMAC, token schemes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Accepted clock skew for signed timestamps, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u32>,
}

/// A reference to one key of a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the secret.
    pub name: String,
    /// Key within the secret.
    pub key: String,
}
