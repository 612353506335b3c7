//! PrestaShop: webhook modules (`ps_webhooks` style) post JSON `{"action", "entity", "data"}`
//! (or PHP form fields, decoded with bracket nesting). Most do not sign, so the endpoint URL
//! carries a secret token (`?token=…` by default, or a configured header); modules that sign
//! use the generic HMAC (`scheme: hmac`). The topic is `entity.action`. De-duplication: the
//! body hash.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use serde_json::Value;

use crate::{
    app::{AppInfo, SourceApp, str_field},
    apps::TokenOrHmac,
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    receive::Verified,
    verify::VerifyError,
};

/// PrestaShop.
pub struct PrestaShop;

impl crate::app::sealed::Sealed for PrestaShop {}

impl SourceApp for PrestaShop {
    fn id(&self) -> &'static str {
        "prestashop"
    }

    fn info(&self) -> AppInfo {
        AppInfo {
            id: self.id(),
            display_name: "PrestaShop",
            verification: "A secret token in the endpoint URL (or a header); or an HMAC of the \
                 body for modules that sign.",
            schemes: TokenOrHmac::SCHEMES,
            fields: TokenOrHmac::FIELDS,
            headers: &[],
            dedupe: "hash of the body",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        TokenOrHmac::validate(spec)
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        TokenOrHmac::verify(req, cfg, now)
    }

    fn topic(&self, _req: &Verified<'_>, payload: &Value) -> Option<String> {
        let entity = str_field(payload, "entity")?;
        let action = str_field(payload, "action")?;
        Some(format!("{entity}.{action}"))
    }
}
