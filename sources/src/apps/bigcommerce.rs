//! BigCommerce: signed by the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), keyed with the app's client secret. BigCommerce's signing secret is
//! the base64 of the client secret, so the HMAC key is the client secret's bytes; a value
//! entered in `whsec_…` form is decoded like any Standard Webhooks secret.
//!
//! De-duplication: `webhook-id` (the same on every retry), else the body's `hash` (SHA-1 of
//! the event data, which BigCommerce documents as the way to detect duplicates) together with
//! `created_at`, so two separate events with equal data are not merged; else the body hash.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use serde_json::Value;

use crate::{
    app::{AppInfo, FieldInfo, SourceApp, body_hash_key, id_key, str_field},
    apps::{fields, require_secret},
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    receive::Verified,
    verify::{VerifyError, standard},
};

/// BigCommerce.
pub struct BigCommerce;

impl crate::app::sealed::Sealed for BigCommerce {}

impl SourceApp for BigCommerce {
    fn id(&self) -> &'static str {
        "bigcommerce"
    }

    fn info(&self) -> AppInfo {
        const FIELDS: &[FieldInfo] = &[
            FieldInfo {
                label: "App client secret",
                help: "The client secret of the app that created the webhook (Developer \
                     Portal), or its whsec_ signing secret.",
                ..fields::SECRET.required()
            },
            fields::PREVIOUS_SECRET,
            fields::TOLERANCE,
        ];
        AppInfo {
            id: self.id(),
            display_name: "BigCommerce",
            verification: "Standard Webhooks signature (webhook-id, webhook-timestamp, \
                 webhook-signature) keyed with the app's client secret; 5-minute replay window.",
            schemes: &[],
            fields: FIELDS,
            headers: &["webhook-id", "webhook-timestamp", "webhook-signature"],
            dedupe: "webhook-id, else the body's hash and created_at",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        require_secret(spec)
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let keys = cfg
            .signing_secrets()?
            .into_iter()
            .map(signing_key)
            .collect::<Result<Vec<_>, _>>()?;
        standard::verify(req, &keys, now, cfg.tolerance_seconds())
    }

    fn dedupe_key(&self, req: &Verified<'_>, payload: &Value) -> String {
        let req = req.request();
        if let Some(id) = req.header(standard::ID_HEADERS).filter(|id| !id.is_empty()) {
            return id_key("webhook-id", id);
        }
        match (str_field(payload, "hash"), payload.get("created_at")) {
            (Some(hash), Some(created)) => id_key("bigcommerce-hash", &format!("{hash}@{created}")),
            (Some(hash), None) => id_key("bigcommerce-hash", hash),
            _ => body_hash_key(req.body),
        }
    }

    fn topic(&self, _req: &Verified<'_>, payload: &Value) -> Option<String> {
        str_field(payload, "scope").map(str::to_owned)
    }
}

/// The HMAC key for a configured secret.
fn signing_key(secret: &[u8]) -> Result<Vec<u8>, ConfigError> {
    if secret.starts_with(b"whsec_") {
        standard::key_from_secret(secret)
    } else if secret.trim_ascii().is_empty() {
        Err(ConfigError::SecretInvalid {
            what: "BigCommerce",
            reason: "empty",
        })
    } else {
        Ok(secret.trim_ascii().to_vec())
    }
}
