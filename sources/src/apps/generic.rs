//! Any app that can POST. The scheme is always explicit (`none` is a choice, never a default):
//! `hmac` (configurable header, digest, encoding, prefix, signed-content template, timestamp
//! window), `standardWebhooks` (`webhook-*`/`svix-*` headers, `whsec_` secrets), `token` (in
//! a header or query parameter), `basic` (username + password) or `bearer`.
//!
//! De-duplication: the configured `idHeader`, else a Standard Webhooks `webhook-id`, else the
//! body hash. Standard Webhooks payloads name their topic in `type`.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use serde_json::Value;

use crate::{
    app::{AppInfo, FieldInfo, FieldKind, SourceApp, body_hash_key, id_key, str_field},
    apps::{fields, require_secret},
    config::{ConfigError, VerifierConfig, check_header_name},
    incoming::Incoming,
    receive::Verified,
    verify::{
        VerifyError,
        hmac_scheme::HmacScheme,
        standard,
        token::{TokenLocation, verify_basic, verify_bearer, verify_token},
    },
};

/// The generic app accepts every scheme there is.
const SCHEMES: &[&str] = &hookplane_crds::VERIFICATION_SCHEMES;
const ALLOWED: &str = "none, hmac, standardWebhooks, token, basic, bearer";

/// Any app that can POST.
pub struct Generic;

impl crate::app::sealed::Sealed for Generic {}

impl SourceApp for Generic {
    fn id(&self) -> &'static str {
        "generic"
    }

    fn info(&self) -> AppInfo {
        const SIGNED: &[&str] = &["hmac", "standardWebhooks", "token", "basic", "bearer"];
        const FIELDS: &[FieldInfo] = &[
            FieldInfo::new(
                "scheme",
                "Verification",
                FieldKind::Choice,
                "How deliveries prove they come from the sender; none accepts anything.",
            )
            .required()
            .with_options(SCHEMES),
            fields::SECRET.required().for_schemes(SIGNED),
            fields::PREVIOUS_SECRET.for_schemes(SIGNED),
            fields::ADDITIONAL_SECRETS.for_schemes(SIGNED),
            fields::HEADER.required().for_schemes(&["hmac"]),
            fields::HEADER.for_schemes(&["token"]),
            FieldInfo {
                default: None,
                ..fields::TOKEN_QUERY_PARAMETER
            }
            .for_schemes(&["token"]),
            fields::ALGORITHM.for_schemes(&["hmac"]),
            fields::ENCODING.for_schemes(&["hmac"]),
            fields::PREFIX.for_schemes(&["hmac"]),
            fields::SIGNED_CONTENT.for_schemes(&["hmac"]),
            fields::TIMESTAMP_HEADER.for_schemes(&["hmac"]),
            fields::TOLERANCE.for_schemes(&["hmac", "standardWebhooks"]),
            FieldInfo::new(
                "username",
                "User name",
                FieldKind::Text,
                "Basic auth user name.",
            )
            .required()
            .for_schemes(&["basic"]),
            fields::ID_HEADER,
        ];
        AppInfo {
            id: self.id(),
            display_name: "Generic webhook",
            verification: "HMAC signature, Standard Webhooks, a shared token, Basic auth or a \
                 Bearer token, as configured.",
            schemes: SCHEMES,
            fields: FIELDS,
            headers: &[],
            dedupe: "idHeader, else webhook-id, else hash of the body",
        }
    }

    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError> {
        check_header_name("idHeader", spec.id_header.as_ref())?;
        match scheme(spec)? {
            Scheme::None => Ok(()),
            Scheme::Hmac => {
                require_secret(spec)?;
                HmacScheme::from_spec(spec).map(|_| ())
            }
            Scheme::StandardWebhooks | Scheme::Bearer => require_secret(spec),
            Scheme::Token => {
                require_secret(spec)?;
                check_header_name("header", spec.header.as_ref())?;
                if spec.header.is_none() && spec.query_parameter.is_none() {
                    return Err(ConfigError::FieldRequired {
                        field: "header",
                        when: "(or queryParameter) for the token scheme",
                    });
                }
                Ok(())
            }
            Scheme::Basic => {
                require_secret(spec)?;
                spec.username
                    .as_ref()
                    .map(|_| ())
                    .ok_or(ConfigError::FieldRequired {
                        field: "username",
                        when: "for the basic scheme",
                    })
            }
        }
    }

    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let spec = &cfg.spec;
        match scheme(spec)? {
            Scheme::None => Ok(()),
            Scheme::Hmac => HmacScheme::from_spec(spec)?.verify(req, &cfg.signing_secrets()?, now),
            Scheme::StandardWebhooks => {
                let keys = cfg
                    .signing_secrets()?
                    .into_iter()
                    .map(standard::key_from_secret)
                    .collect::<Result<Vec<_>, _>>()?;
                standard::verify(req, &keys, now, cfg.tolerance_seconds())
            }
            Scheme::Token => {
                let location = TokenLocation {
                    header: spec.header.as_deref(),
                    query_parameter: spec.query_parameter.as_deref(),
                };
                verify_token(req, location, &cfg.signing_secrets()?)
            }
            Scheme::Basic => {
                let username = spec.username.as_deref().unwrap_or_default();
                verify_basic(req, username, &cfg.signing_secrets()?)
            }
            Scheme::Bearer => verify_bearer(req, &cfg.signing_secrets()?),
        }
    }

    fn dedupe_key(&self, req: &Verified<'_>, _payload: &Value) -> String {
        let configured = req.spec().id_header.as_deref();
        let req = req.request();
        if let Some(id) = configured
            .and_then(|h| req.header(&[h]))
            .filter(|id| !id.is_empty())
        {
            return id_key("id", id);
        }
        match req.header(standard::ID_HEADERS).filter(|id| !id.is_empty()) {
            Some(id) => id_key("webhook-id", id),
            None => body_hash_key(req.body),
        }
    }

    fn topic(&self, req: &Verified<'_>, payload: &Value) -> Option<String> {
        let standard = req.spec().scheme.as_deref() == Some("standardWebhooks");
        standard
            .then(|| str_field(payload, "type").map(str::to_owned))
            .flatten()
    }
}

enum Scheme {
    None,
    Hmac,
    StandardWebhooks,
    Token,
    Basic,
    Bearer,
}

fn scheme(spec: &VerificationSpec) -> Result<Scheme, ConfigError> {
    match spec.scheme.as_deref() {
        None => Err(ConfigError::SchemeRequired { allowed: ALLOWED }),
        Some("none") => Ok(Scheme::None),
        Some("hmac") => Ok(Scheme::Hmac),
        Some("standardWebhooks") => Ok(Scheme::StandardWebhooks),
        Some("token") => Ok(Scheme::Token),
        Some("basic") => Ok(Scheme::Basic),
        Some("bearer") => Ok(Scheme::Bearer),
        Some(_) => Err(ConfigError::InvalidValue {
            field: "scheme",
            allowed: ALLOWED,
        }),
    }
}
