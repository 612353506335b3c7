//! Shopify: `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(app client secret, raw body)).
//! The current and the previous client secret are both accepted (Shopify keeps signing with
//! the old one for up to an hour after rotation). The un-prefixed `shopify-*` names of
//! Shopify's event deliveries are accepted too.
//!
//! De-duplication: `X-Shopify-Webhook-Id` (the same on every retry of a delivery), else
//! `shopify-event-id` with the topic (one event can trigger several topics), else the body hash.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use serde_json::Value;

use crate::{
    app::{AppInfo, FieldInfo, SourceApp, body_hash_key, id_key},
    apps::{fields, require_secret, verify_body_hmac_base64},
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    receive::Verified,
    verify::VerifyError,
};

const HMAC: &[&str] = &["x-shopify-hmac-sha256", "shopify-hmac-sha256"];
const WEBHOOK_ID: &[&str] = &["x-shopify-webhook-id", "shopify-webhook-id"];
const EVENT_ID: &[&str] = &["x-shopify-event-id", "shopify-event-id"];
const TOPIC: &[&str] = &["x-shopify-topic", "shopify-topic"];

/// Shopify.
pub struct Shopify;

impl crate::app::sealed::Sealed for Shopify {}

impl SourceApp for Shopify {
    fn id(&self) -> &'static str {
        "shopify"
    }

    fn info(&self) -> AppInfo {
        const FIELDS: &[FieldInfo] = &[
            FieldInfo {
                label: "App client secret",
                help: "The client secret of the app that created the webhook subscription.",
                ..fields::SECRET.required()
            },
            fields::PREVIOUS_SECRET,
        ];
        AppInfo {
            id: self.id(),
            display_name: "Shopify",
            verification: "Base64 HMAC-SHA256 of the raw body in X-Shopify-Hmac-Sha256, keyed \
                 with the app's client secret.",
            schemes: &[],
            fields: FIELDS,
            headers: &[
                "X-Shopify-Hmac-Sha256",
                "X-Shopify-Topic",
                "X-Shopify-Webhook-Id",
                "X-Shopify-Event-Id",
                "X-Shopify-Shop-Domain",
            ],
            dedupe: "X-Shopify-Webhook-Id, else X-Shopify-Event-Id with the topic",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        require_secret(spec)
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        _now: SystemTime,
    ) -> Result<(), VerifyError> {
        verify_body_hmac_base64(req, HMAC, "X-Shopify-Hmac-Sha256", &cfg.signing_secrets()?)
    }

    fn dedupe_key(&self, req: &Verified<'_>, _payload: &Value) -> String {
        let req = req.request();
        if let Some(id) = req.header(WEBHOOK_ID).filter(|id| !id.is_empty()) {
            return id_key("shopify-webhook", id);
        }
        if let Some(id) = req.header(EVENT_ID).filter(|id| !id.is_empty()) {
            let topic = req.header(TOPIC).unwrap_or_default();
            return id_key("shopify-event", &format!("{topic}:{id}"));
        }
        body_hash_key(req.body)
    }

    fn topic(&self, req: &Verified<'_>, _payload: &Value) -> Option<String> {
        req.request().header(TOPIC).map(str::to_owned)
    }
}
