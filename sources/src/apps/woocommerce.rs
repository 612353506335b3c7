//! WooCommerce: `X-WC-Webhook-Signature` is base64(HMAC-SHA256(webhook secret, raw body)),
//! as `WC_Webhook::generate_signature` computes it. WooCommerce's JSON escapes `/` as `\/`, so
//! only the raw bytes verify — never a re-serialized payload.
//!
//! When a webhook is saved, WooCommerce sends an unsigned ping (`WC_Webhook::deliver_ping`):
//! a form body `webhook_id=N` and none of the `X-WC-Webhook-*` headers. It must get exactly
//! 200 or WooCommerce refuses to activate the webhook; it is classified `Kind::Ping` and
//! stores nothing. Anything else without a signature fails verification.
//!
//! De-duplication: `X-WC-Webhook-Delivery-ID`, else the body hash.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use serde_json::Value;

use crate::{
    app::{AppInfo, FieldInfo, Kind, SourceApp, body_hash_key, id_key},
    apps::{fields, require_secret, verify_body_hmac_base64},
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    receive::Verified,
    verify::VerifyError,
};

const SIGNATURE: &[&str] = &["x-wc-webhook-signature"];
const DELIVERY_ID: &[&str] = &["x-wc-webhook-delivery-id"];
const TOPIC: &[&str] = &["x-wc-webhook-topic"];

/// WooCommerce.
pub struct WooCommerce;

impl crate::app::sealed::Sealed for WooCommerce {}

impl SourceApp for WooCommerce {
    fn id(&self) -> &'static str {
        "woocommerce"
    }

    fn info(&self) -> AppInfo {
        const FIELDS: &[FieldInfo] = &[
            FieldInfo {
                label: "Webhook secret",
                help: "The Secret field of the webhook (WooCommerce > Settings > Advanced > \
                     Webhooks).",
                ..fields::SECRET.required()
            },
            fields::PREVIOUS_SECRET,
        ];
        AppInfo {
            id: self.id(),
            display_name: "WooCommerce",
            verification: "Base64 HMAC-SHA256 of the raw body in X-WC-Webhook-Signature, keyed \
                 with the webhook's secret; the unsigned ping sent on save is answered 200.",
            schemes: &[],
            fields: FIELDS,
            headers: &[
                "X-WC-Webhook-Signature",
                "X-WC-Webhook-Topic",
                "X-WC-Webhook-Delivery-ID",
                "X-WC-Webhook-ID",
                "X-WC-Webhook-Source",
            ],
            dedupe: "X-WC-Webhook-Delivery-ID",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        require_secret(spec)
    }

    fn classify(&self, req: &Incoming<'_>) -> Kind {
        let unsigned = req.header(SIGNATURE).is_none();
        if unsigned && is_ping_body(req.body) {
            Kind::Ping
        } else {
            Kind::Event
        }
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        _now: SystemTime,
    ) -> Result<(), VerifyError> {
        verify_body_hmac_base64(
            req,
            SIGNATURE,
            "X-WC-Webhook-Signature",
            &cfg.signing_secrets()?,
        )
    }

    fn dedupe_key(&self, req: &Verified<'_>, _payload: &Value) -> String {
        let req = req.request();
        match req.header(DELIVERY_ID).filter(|id| !id.is_empty()) {
            Some(id) => id_key("wc-delivery", id),
            None => body_hash_key(req.body),
        }
    }

    fn topic(&self, req: &Verified<'_>, _payload: &Value) -> Option<String> {
        req.request().header(TOPIC).map(str::to_owned)
    }
}

/// Exactly `webhook_id=<digits>`, as `deliver_ping` sends.
fn is_ping_body(body: &[u8]) -> bool {
    let Some(id) = body.trim_ascii().strip_prefix(b"webhook_id=") else {
        return false;
    };
    (1..=20).contains(&id.len()) && id.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_bodies() {
        assert!(is_ping_body(b"webhook_id=12"));
        assert!(is_ping_body(b"webhook_id=0\n"));
        assert!(!is_ping_body(b"webhook_id="));
        assert!(!is_ping_body(b"webhook_id=12&x=1"));
        assert!(!is_ping_body(br#"{"webhook_id":12}"#));
    }
}
