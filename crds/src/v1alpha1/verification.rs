//! Source verification settings: which secret, header, algorithm and tolerance a source app's
//! verifier uses. Secrets are references, never values.
//!
//! Which fields apply depends on the source app (`hookplane-sources` checks them when a
//! touchpoint is published and lists them per app for the portal). String-valued choices
//! (`scheme`, `algorithm`, `encoding`) are validated there, so a typo is a publish error with a
//! stable code rather than a silently different verifier.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Verification settings. Which fields apply depends on the source app; secrets are references.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    /// Verification scheme. For `generic` sources (required): `none`, `hmac`,
    /// `standardWebhooks`, `token`, `basic` or `bearer`. For `shift4shop` and `prestashop`:
    /// `token` (default) or `hmac`. Other apps have a fixed scheme and ignore this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = VERIFICATION_SCHEMES))]
    pub scheme: Option<String>,
    /// The signing secret (or token, or password for `basic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A previous signing secret still accepted during rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_ref: Option<SecretKeyRef>,
    /// More secrets accepted at the same time (rotation across several senders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_secret_refs: Vec<SecretKeyRef>,
    /// Header carrying the signature or token (generic HMAC, token schemes, Zoho CRM workflow
    /// webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter of the endpoint URL carrying the token (token schemes; Zoho CRM,
    /// Shift4Shop, PrestaShop, Salesforce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<String>,
    /// HMAC digest for the `hmac` scheme: `sha256` (default) or `sha1` (legacy senders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// How the `hmac` signature is written in its header: `hex` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Text in front of the `hmac` signature in its header, such as `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What the `hmac` signature covers, as a template over `{body}` (the raw request body),
    /// `{timestamp}` (the value of `timestampHeader`) and `{id}` (the value of `idHeader`);
    /// for example `{timestamp}.{body}`. Default `{body}`. Must contain `{body}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_content: Option<String>,
    /// Header carrying the signing time as Unix seconds (or milliseconds). When set, deliveries
    /// older or newer than `toleranceSeconds` are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Header carrying a unique delivery id, used for de-duplication (and `{id}` in
    /// `signedContent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// Accepted clock skew for signed timestamps, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u32>,
    /// User name for the `basic` scheme; the password is `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Salesforce organization id (15 or 18 characters) every outbound message must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Salesforce outbound message (workflow action) ids accepted; empty accepts any action of
    /// the organization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_ids: Vec<String>,
}

impl VerificationSpec {
    /// Every secret the spec refers to, in the order verifiers try them: `secretRef`,
    /// `previousSecretRef`, then `additionalSecretRefs`. Whoever verifies resolves these.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretKeyRef> {
        self.secret_ref
            .iter()
            .chain(self.previous_secret_ref.iter())
            .chain(self.additional_secret_refs.iter())
    }
}

/// A reference to one key of a secret.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the secret.
    pub name: String,
    /// Key within the secret.
    pub key: String,
}

/// Every verification scheme any app accepts, as `verification.scheme` takes them (which
/// ones an app accepts is its own: the `apps` query lists them).
pub const VERIFICATION_SCHEMES: [&str; 6] = [
    "none",
    "hmac",
    "standardWebhooks",
    "token",
    "basic",
    "bearer",
];
