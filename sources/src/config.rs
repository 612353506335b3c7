//! Verification configuration: the published `VerificationSpec` plus the secret values the
//! receiver resolved for it, and the errors that make a spec unpublishable.
//!
//! Guarantees: secret values never appear in `Debug` output or error messages; a secret the
//! spec refers to but the caller did not resolve is an error, never an empty key; every
//! `ConfigError` has a stable `code()` the API returns as `extensions.code`.

use std::{collections::BTreeMap, fmt};

use hookplane_crds::{SecretKeyRef, VerificationSpec};

use crate::body::Limits;

/// Default accepted clock skew for signed timestamps.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;

/// A secret value. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    /// The value's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Secret values for the `SecretKeyRef`s of a spec, as read from the secret store.
#[derive(Clone, Debug, Default)]
pub struct ResolvedSecrets {
    values: BTreeMap<SecretKeyRef, Secret>,
}

impl ResolvedSecrets {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the value of one reference.
    pub fn insert(&mut self, reference: SecretKeyRef, value: impl Into<Vec<u8>>) -> &mut Self {
        self.values.insert(reference, Secret::new(value));
        self
    }

    /// The value of one reference, if resolved.
    pub fn get(&self, reference: &SecretKeyRef) -> Option<&Secret> {
        self.values.get(reference)
    }
}

/// What a verifier needs: the spec and the values of the secrets it refers to.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// The published verification settings.
    pub spec: VerificationSpec,
    /// Values of the secrets `spec` refers to.
    pub secrets: ResolvedSecrets,
    /// How much of the body a verifier may read when the proof is inside it (Salesforce's
    /// organization id, Zoho's notification token).
    pub limits: Limits,
}

impl VerifierConfig {
    /// A config with default body limits.
    pub fn new(spec: VerificationSpec, secrets: ResolvedSecrets) -> Self {
        Self {
            spec,
            secrets,
            limits: Limits::default(),
        }
    }

    /// A config whose secrets are looked up with `lookup` (the receiver's secret store).
    /// References `lookup` cannot resolve stay unresolved and make verification fail with
    /// `SECRET_UNRESOLVED`, never verify with an empty key.
    pub fn resolve_with(
        spec: VerificationSpec,
        mut lookup: impl FnMut(&SecretKeyRef) -> Option<Vec<u8>>,
    ) -> Self {
        let mut secrets = ResolvedSecrets::new();
        for reference in spec.secret_refs() {
            if let Some(value) = lookup(reference) {
                secrets.insert(reference.clone(), value);
            }
        }
        Self::new(spec, secrets)
    }

    /// The value of `secretRef`. Errors when the spec has none or it is unresolved.
    pub fn primary_secret(&self) -> Result<&[u8], ConfigError> {
        let reference = self
            .spec
            .secret_ref
            .as_ref()
            .ok_or(ConfigError::SecretRequired)?;
        self.resolve(reference)
    }

    /// Every accepted secret (`secretRef`, `previousSecretRef`, `additionalSecretRefs`), in
    /// that order. Errors when there is none or any is unresolved: a rotation secret that
    /// silently disappeared would be a verifier quietly weaker than configured.
    pub fn signing_secrets(&self) -> Result<Vec<&[u8]>, ConfigError> {
        if self.spec.secret_ref.is_none() {
            return Err(ConfigError::SecretRequired);
        }
        self.spec.secret_refs().map(|r| self.resolve(r)).collect()
    }

    /// Accepted skew for signed timestamps.
    pub fn tolerance_seconds(&self) -> u64 {
        u64::from(
            self.spec
                .tolerance_seconds
                .unwrap_or(DEFAULT_TOLERANCE_SECONDS),
        )
    }

    fn resolve(&self, reference: &SecretKeyRef) -> Result<&[u8], ConfigError> {
        self.secrets
            .get(reference)
            .map(Secret::expose)
            .ok_or_else(|| ConfigError::SecretUnresolved {
                name: reference.name.clone(),
                key: reference.key.clone(),
            })
    }
}

/// Why a verification spec cannot be used. Raised by `SourceApp::validate` (publish refuses)
/// and, should an invalid spec reach a verifier anyway, by `verify`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The app needs a secret (`secretRef`) and the spec has none.
    #[error("this source needs a secret: set verification.secretRef")]
    SecretRequired,
    /// A referenced secret was not resolved by the caller.
    #[error("secret {name}/{key} is referenced but could not be read")]
    SecretUnresolved {
        /// Secret name.
        name: String,
        /// Key within the secret.
        key: String,
    },
    /// A secret value cannot be used as configured (e.g. a Standard Webhooks secret that is
    /// not base64).
    #[error("the secret for {what} is not usable: {reason}")]
    SecretInvalid {
        /// What the secret is for.
        what: &'static str,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// `generic` sources must say how they are verified (`none` is a valid, explicit choice).
    #[error("set verification.scheme to one of: {allowed}")]
    SchemeRequired {
        /// The accepted schemes, comma-separated.
        allowed: &'static str,
    },
    /// A field holds a value outside its allowed set.
    #[error("verification.{field} must be one of: {allowed}")]
    InvalidValue {
        /// The field (camelCase).
        field: &'static str,
        /// The accepted values, comma-separated.
        allowed: &'static str,
    },
    /// A field the chosen scheme needs is missing.
    #[error("verification.{field} is required {when}")]
    FieldRequired {
        /// The field (camelCase).
        field: &'static str,
        /// When it is required.
        when: &'static str,
    },
    /// `signedContent` is not a usable template.
    #[error("verification.signedContent is invalid: {reason}")]
    InvalidTemplate {
        /// Why.
        reason: &'static str,
    },
    /// A header name field is not a valid HTTP header name.
    #[error("verification.{field} is not a valid header name")]
    InvalidHeaderName {
        /// The field (camelCase).
        field: &'static str,
    },
    /// The source app is not in the catalog.
    #[error("unknown source app {0:?}")]
    UnknownApp(String),
}

impl ConfigError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SecretRequired => "SECRET_REQUIRED",
            Self::SecretUnresolved { .. } => "SECRET_UNRESOLVED",
            Self::SecretInvalid { .. } => "SECRET_INVALID",
            Self::SchemeRequired { .. } => "SCHEME_REQUIRED",
            Self::InvalidValue { .. } => "INVALID_VERIFICATION_VALUE",
            Self::FieldRequired { .. } => "VERIFICATION_FIELD_REQUIRED",
            Self::InvalidTemplate { .. } => "INVALID_SIGNED_CONTENT",
            Self::InvalidHeaderName { .. } => "INVALID_HEADER_NAME",
            Self::UnknownApp(_) => "UNKNOWN_SOURCE_APP",
        }
    }
}

/// Checks that an optional header-name field, when set, is a valid header name.
pub(crate) fn check_header_name(
    field: &'static str,
    value: Option<&String>,
) -> Result<(), ConfigError> {
    match value {
        Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_err() => {
            Err(ConfigError::InvalidHeaderName { field })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: "k".into(),
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut secrets = ResolvedSecrets::new();
        secrets.insert(reference("a"), "hunter2");
        assert!(!format!("{secrets:?}").contains("hunter2"));
    }

    #[test]
    fn unresolved_rotation_secret_is_an_error() {
        let spec = VerificationSpec {
            secret_ref: Some(reference("a")),
            previous_secret_ref: Some(reference("b")),
            ..Default::default()
        };
        let mut secrets = ResolvedSecrets::new();
        secrets.insert(reference("a"), "x");
        let cfg = VerifierConfig::new(spec, secrets);
        assert_eq!(
            cfg.signing_secrets().unwrap_err().code(),
            "SECRET_UNRESOLVED"
        );
    }

    #[test]
    fn resolve_with_looks_up_every_reference() {
        let spec = VerificationSpec {
            secret_ref: Some(reference("a")),
            additional_secret_refs: vec![reference("b")],
            ..Default::default()
        };
        let cfg = VerifierConfig::resolve_with(spec, |r| (r.name == "a").then(|| b"1".to_vec()));
        assert_eq!(cfg.primary_secret().expect("resolved"), b"1");
        assert_eq!(
            cfg.signing_secrets().unwrap_err().code(),
            "SECRET_UNRESOLVED"
        );
    }

    #[test]
    fn secrets_come_in_spec_order() {
        let spec = VerificationSpec {
            secret_ref: Some(reference("a")),
            previous_secret_ref: Some(reference("b")),
            additional_secret_refs: vec![reference("c")],
            ..Default::default()
        };
        let mut secrets = ResolvedSecrets::new();
        secrets
            .insert(reference("c"), "3")
            .insert(reference("b"), "2")
            .insert(reference("a"), "1");
        let cfg = VerifierConfig::new(spec, secrets);
        let values: Vec<&[u8]> = cfg.signing_secrets().expect("all resolved");
        assert_eq!(values, vec![b"1".as_slice(), b"2", b"3"]);
    }
}
