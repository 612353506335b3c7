//! The catalog: one module per source app, each a unit struct implementing `SourceApp`.
//!
//! Guarantees: `catalog()` lists every app once, in a stable order, by the ids `SourceSpec.app`
//! accepts; `app(id)` finds exactly those. Shared pieces (the body-HMAC check Shopify and
//! WooCommerce use, the token-or-HMAC choice of Shift4Shop and PrestaShop, the field
//! descriptions portals render) live here so each app module stays a page long.

mod bigcommerce;
mod generic;
mod prestashop;
mod salesforce;
mod shift4shop;
mod shopify;
mod woocommerce;
mod zohocrm;

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;

pub use bigcommerce::BigCommerce;
pub use generic::Generic;
pub use prestashop::PrestaShop;
pub use salesforce::Salesforce;
pub use shift4shop::Shift4Shop;
pub use shopify::Shopify;
pub use woocommerce::WooCommerce;
pub use zohocrm::ZohoCrm;

use crate::{
    app::{FieldInfo, FieldKind, SourceApp},
    config::{ConfigError, VerifierConfig, check_header_name},
    incoming::Incoming,
    verify::{
        Algorithm, VerifyError, decode_base64, hmac,
        hmac_scheme::HmacScheme,
        mac_eq,
        token::{TokenLocation, verify_token},
    },
};

static CATALOG: [&dyn SourceApp; 8] = [
    &Shopify,
    &WooCommerce,
    &BigCommerce,
    &Salesforce,
    &ZohoCrm,
    &Shift4Shop,
    &PrestaShop,
    &Generic,
];

/// Every source app.
pub fn catalog() -> &'static [&'static dyn SourceApp] {
    &CATALOG
}

/// The app with catalog id `id`.
pub fn app(id: &str) -> Option<&'static dyn SourceApp> {
    CATALOG.iter().copied().find(|a| a.id() == id)
}

/// Checks a base64 HMAC-SHA256 of the raw body, as Shopify and WooCommerce sign.
pub(crate) fn verify_body_hmac_base64(
    req: &Incoming<'_>,
    headers: &[&str],
    header_label: &'static str,
    secrets: &[&[u8]],
) -> Result<(), VerifyError> {
    let value = req.header(headers).ok_or(VerifyError::SignatureMissing {
        header: header_label,
    })?;
    let signature = decode_base64(value).ok_or(VerifyError::SignatureMalformed)?;
    let matched = secrets
        .iter()
        .any(|secret| mac_eq(&hmac(Algorithm::Sha256, secret, &[req.body]), &signature));
    if matched {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Requires `secretRef`.
pub(crate) fn require_secret(spec: &VerificationSpec) -> Result<(), ConfigError> {
    spec.secret_ref
        .as_ref()
        .map(|_| ())
        .ok_or(ConfigError::SecretRequired)
}

/// Query parameter used for a token when neither `header` nor `queryParameter` is set.
pub(crate) const DEFAULT_TOKEN_PARAMETER: &str = "token";

/// Where a token scheme looks: the configured header and/or query parameter, else the
/// `token` query parameter.
pub(crate) fn token_location(spec: &VerificationSpec) -> TokenLocation<'_> {
    let header = spec.header.as_deref();
    let query_parameter = spec.query_parameter.as_deref();
    TokenLocation {
        header,
        query_parameter: query_parameter.or(header.is_none().then_some(DEFAULT_TOKEN_PARAMETER)),
    }
}

/// The verification of apps that do not sign: a secret token in the endpoint URL or a header
/// (`scheme: token`, the default), or the generic HMAC for modules that sign (`scheme: hmac`).
pub(crate) struct TokenOrHmac;

impl TokenOrHmac {
    pub(crate) const SCHEMES: &'static [&'static str] = &["token", "hmac"];

    pub(crate) fn validate(spec: &VerificationSpec) -> Result<(), ConfigError> {
        require_secret(spec)?;
        match spec.scheme.as_deref() {
            None | Some("token") => {
                check_header_name("header", spec.header.as_ref())?;
                Ok(())
            }
            Some("hmac") => HmacScheme::from_spec(spec).map(|_| ()),
            Some(_) => Err(ConfigError::InvalidValue {
                field: "scheme",
                allowed: "token, hmac",
            }),
        }
    }

    pub(crate) fn verify(
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let secrets = cfg.signing_secrets()?;
        match cfg.spec.scheme.as_deref() {
            Some("hmac") => HmacScheme::from_spec(&cfg.spec)?.verify(req, &secrets, now),
            _ => verify_token(req, token_location(&cfg.spec), &secrets),
        }
    }

    pub(crate) const FIELDS: &'static [FieldInfo] = &[
        FieldInfo::new("scheme", "Verification", FieldKind::Choice, SCHEME_HELP)
            .with_options(Self::SCHEMES)
            .with_default("token"),
        fields::SECRET.required(),
        fields::PREVIOUS_SECRET,
        fields::ADDITIONAL_SECRETS,
        fields::TOKEN_QUERY_PARAMETER.for_schemes(&["token"]),
        fields::HEADER,
        fields::ALGORITHM.for_schemes(&["hmac"]),
        fields::ENCODING.for_schemes(&["hmac"]),
        fields::PREFIX.for_schemes(&["hmac"]),
        fields::SIGNED_CONTENT.for_schemes(&["hmac"]),
        fields::TIMESTAMP_HEADER.for_schemes(&["hmac"]),
        fields::TOLERANCE.for_schemes(&["hmac"]),
    ];
}

const SCHEME_HELP: &str = "token: the secret travels in the endpoint URL's query string or a \
     header; hmac: a module signs the body with the secret";

/// Field descriptions shared by several apps.
pub(crate) mod fields {
    use crate::app::{FieldInfo, FieldKind};

    pub(crate) const SECRET: FieldInfo = FieldInfo::new(
        "secretRef",
        "Secret",
        FieldKind::Secret,
        "The shared secret (signing key or token).",
    );
    pub(crate) const PREVIOUS_SECRET: FieldInfo = FieldInfo::new(
        "previousSecretRef",
        "Previous secret",
        FieldKind::Secret,
        "Still accepted while the sender rotates to the new secret.",
    );
    pub(crate) const ADDITIONAL_SECRETS: FieldInfo = FieldInfo::new(
        "additionalSecretRefs",
        "More secrets",
        FieldKind::SecretList,
        "Further secrets accepted at the same time.",
    );
    pub(crate) const HEADER: FieldInfo = FieldInfo::new(
        "header",
        "Header",
        FieldKind::Header,
        "Request header carrying the signature or token.",
    );
    pub(crate) const TOKEN_QUERY_PARAMETER: FieldInfo = FieldInfo::new(
        "queryParameter",
        "Query parameter",
        FieldKind::Text,
        "Query parameter of the endpoint URL carrying the token (used when no header is set).",
    )
    .with_default(super::DEFAULT_TOKEN_PARAMETER);
    pub(crate) const ALGORITHM: FieldInfo = FieldInfo::new(
        "algorithm",
        "Algorithm",
        FieldKind::Choice,
        "HMAC digest; sha1 only for legacy senders.",
    )
    .with_options(&["sha256", "sha1"])
    .with_default("sha256");
    pub(crate) const ENCODING: FieldInfo = FieldInfo::new(
        "encoding",
        "Signature encoding",
        FieldKind::Choice,
        "How the signature is written in its header.",
    )
    .with_options(&["hex", "base64"])
    .with_default("hex");
    pub(crate) const PREFIX: FieldInfo = FieldInfo::new(
        "prefix",
        "Signature prefix",
        FieldKind::Text,
        "Text before the signature, such as sha256=.",
    );
    pub(crate) const SIGNED_CONTENT: FieldInfo = FieldInfo::new(
        "signedContent",
        "Signed content",
        FieldKind::Text,
        "What is signed: a template over {body}, {timestamp} and {id}.",
    )
    .with_default("{body}");
    pub(crate) const TIMESTAMP_HEADER: FieldInfo = FieldInfo::new(
        "timestampHeader",
        "Timestamp header",
        FieldKind::Header,
        "Header with the signing time (Unix seconds); enables the replay window.",
    );
    pub(crate) const ID_HEADER: FieldInfo = FieldInfo::new(
        "idHeader",
        "Delivery id header",
        FieldKind::Header,
        "Header with a unique delivery id, used to drop redeliveries.",
    );
    pub(crate) const TOLERANCE: FieldInfo = FieldInfo::new(
        "toleranceSeconds",
        "Timestamp tolerance",
        FieldKind::Seconds,
        "Accepted clock skew for signed timestamps.",
    )
    .with_default("300");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_ids_are_unique_and_findable() {
        let ids: Vec<&str> = catalog().iter().map(|a| a.id()).collect();
        assert_eq!(
            ids,
            [
                "shopify",
                "woocommerce",
                "bigcommerce",
                "salesforce",
                "zohocrm",
                "shift4shop",
                "prestashop",
                "generic"
            ]
        );
        for id in ids {
            assert_eq!(app(id).map(|a| a.id()), Some(id));
            assert_eq!(app(id).map(|a| a.info().id), Some(id));
        }
        assert!(app("magento").is_none());
    }

    #[test]
    fn every_field_named_in_info_exists_in_the_spec() {
        let spec = serde_json::to_value(VerificationSpec {
            scheme: Some(String::new()),
            secret_ref: Some(Default::default()),
            previous_secret_ref: Some(Default::default()),
            additional_secret_refs: vec![Default::default()],
            header: Some(String::new()),
            query_parameter: Some(String::new()),
            algorithm: Some(String::new()),
            encoding: Some(String::new()),
            prefix: Some(String::new()),
            signed_content: Some(String::new()),
            timestamp_header: Some(String::new()),
            id_header: Some(String::new()),
            tolerance_seconds: Some(1),
            username: Some(String::new()),
            org_id: Some(String::new()),
            action_ids: vec![String::new()],
        })
        .expect("serializable");
        for app in catalog() {
            for field in app.info().fields {
                assert!(
                    spec.get(field.name).is_some(),
                    "{}: {}",
                    app.id(),
                    field.name
                );
            }
        }
    }

    #[test]
    fn token_location_defaults_to_query_parameter() {
        let spec = VerificationSpec::default();
        let location = token_location(&spec);
        assert_eq!(location.query_parameter, Some("token"));
        let spec = VerificationSpec {
            header: Some("X-Token".into()),
            ..Default::default()
        };
        assert_eq!(token_location(&spec).query_parameter, None);
    }
}
