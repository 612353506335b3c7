//! Shift4Shop (formerly 3dcart): webhooks post the changed records (JSON or XML, by the
//! webhook's format setting) and are not signed, so the endpoint URL carries a secret token
//! (`?token=…` by default, or a configured header). Stores with a module that signs can use
//! the generic HMAC instead (`scheme: hmac`). De-duplication: the body hash.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;

use crate::{
    app::{AppInfo, SourceApp},
    apps::TokenOrHmac,
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    verify::VerifyError,
};

/// Shift4Shop / 3dcart.
pub struct Shift4Shop;

impl crate::app::sealed::Sealed for Shift4Shop {}

impl SourceApp for Shift4Shop {
    fn id(&self) -> &'static str {
        "shift4shop"
    }

    fn info(&self) -> AppInfo {
        AppInfo {
            id: self.id(),
            display_name: "Shift4Shop (3dcart)",
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
}
