//! Zoho CRM, two kinds of delivery to one endpoint:
//! - Workflow webhooks (form parameters or a raw JSON body): the configured token arrives in
//!   the configured header or query parameter (Zoho lets a webhook add both).
//! - Notifications API callbacks: a JSON body whose `token` field is the token given when the
//!   channel was enabled, with `channel_id`, `module`, `operation` and `ids`.
//!
//! The token is looked for in the configured header, then the configured query parameter, then
//! a JSON body's `token` field; the first found must equal a configured secret. A delivery with
//! no token anywhere fails. De-duplication: the body hash (callbacks carry `server_time`, so
//! distinct notifications differ).

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use serde_json::Value;

use crate::{
    app::{AppInfo, FieldInfo, SourceApp, str_field},
    apps::{fields, require_secret},
    body::{MediaType, from_json},
    config::{ConfigError, VerifierConfig, check_header_name},
    incoming::Incoming,
    receive::Verified,
    verify::{
        VerifyError,
        token::{TokenLocation, check_token},
    },
};

/// Zoho CRM.
pub struct ZohoCrm;

impl crate::app::sealed::Sealed for ZohoCrm {}

impl SourceApp for ZohoCrm {
    fn id(&self) -> &'static str {
        "zohocrm"
    }

    fn info(&self) -> AppInfo {
        const FIELDS: &[FieldInfo] = &[
            FieldInfo {
                label: "Token",
                help: "The token the webhook sends (as a header or URL parameter), or the \
                     token given when enabling the notification channel.",
                ..fields::SECRET.required()
            },
            fields::PREVIOUS_SECRET,
            FieldInfo {
                help: "Header the workflow webhook sends the token in.",
                ..fields::HEADER
            },
            FieldInfo {
                help: "URL parameter the workflow webhook sends the token in.",
                default: None,
                ..fields::TOKEN_QUERY_PARAMETER
            },
        ];
        AppInfo {
            id: self.id(),
            display_name: "Zoho CRM",
            verification: "A shared token: in a header or URL parameter for workflow webhooks, \
                 in the body's token field for Notifications API callbacks.",
            schemes: &[],
            fields: FIELDS,
            headers: &[],
            dedupe: "hash of the body",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        require_secret(spec)?;
        check_header_name("header", spec.header.as_ref())
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        _now: SystemTime,
    ) -> Result<(), VerifyError> {
        let secrets = cfg.signing_secrets()?;
        let location = TokenLocation {
            header: cfg.spec.header.as_deref(),
            query_parameter: cfg.spec.query_parameter.as_deref(),
        };
        if let Some(token) = location.find(req) {
            return check_token(token.as_bytes(), &secrets);
        }
        let is_json = MediaType::of(req).is_ok_and(|m| m == MediaType::Json);
        let body_token = is_json
            .then(|| from_json(req.body, &cfg.limits).ok())
            .flatten()
            .and_then(|v| str_field(&v, "token").map(str::to_owned));
        match body_token {
            Some(token) => check_token(token.as_bytes(), &secrets),
            None => Err(VerifyError::TokenMissing),
        }
    }

    fn topic(&self, _req: &Verified<'_>, payload: &Value) -> Option<String> {
        let module = str_field(payload, "module")?;
        let operation = str_field(payload, "operation")?;
        Some(format!("{module}.{operation}"))
    }
}
