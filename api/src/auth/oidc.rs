//! OpenID Connect: bearer JWTs from a configured issuer, verified against the issuer's JWKS
//! and mapped to roles per organization by a claim.
//!
//! A JWT is accepted when its signature verifies with a key of the issuer's JWKS (found by
//! `kid`; RS256/384/512, PS256/384/512, ES256/384 or EdDSA, never `none` or HMAC), `iss` is
//! the configured issuer, `aud` contains the configured audience and `exp` (required) has not
//! passed (30 s of leeway, and `nbf` honoured). Roles come from the roles claim (default
//! `hookplane_roles`): an object `{"<organization slug>": "<role>"}` or a list of
//! `"<organization slug>:<role>"` strings, roles `viewer`, `operator` or `admin`. Unknown
//! organizations and roles are ignored; a JWT gives no instance-owner rights.
//!
//! The JWKS is fetched at most once per `refresh_floor` (a token with an unknown `kid`
//! triggers a refetch, so key rotation needs no restart, but a flood of made-up `kid`s
//! costs one request a minute by default), with a 5 s timeout and a 1 MiB cap.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation, decode, decode_header,
    jwk::{Jwk, JwkSet},
};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{AuthError, Principal, Role};

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The algorithms a JWT may be signed with: asymmetric only, so a public key can never be
/// used as an HMAC secret.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// `--oidc-*` settings.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer (`iss`), e.g. `https://login.example.com/realms/acme`.
    pub issuer: String,
    /// The audience (`aud`) a JWT must be for.
    pub audience: String,
    /// Where the keys are; default: the issuer's discovery document's `jwks_uri`.
    pub jwks_url: Option<String>,
    /// The claim holding roles per organization.
    pub roles_claim: String,
    /// The shortest time between two fetches of the keys.
    pub refresh_floor: Duration,
}

/// A configured issuer and its cached keys.
pub struct Oidc {
    config: OidcConfig,
    client: reqwest::Client,
    keys: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// What a verified JWT says: who, until when, and roles by organization slug.
struct Claims {
    subject: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    roles: Vec<(String, Role)>,
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            config,
            client,
            keys: Mutex::new(Keys::default()),
        })
    }

    /// Whether `token` looks like a JWT (three base64url parts), so it is this module's to
    /// check rather than an API token's.
    pub fn claims_token(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// The principal behind a JWT, its organizations looked up by slug in `store`.
    pub async fn authenticate(
        &self,
        token: &str,
        store: &hookplane_store::Store,
    ) -> Result<Principal, AuthError> {
        let claims = self.verify(token).await?;
        let mut roles = Vec::new();
        for (slug, role) in claims.roles {
            let organization = store
                .organization_by_slug(&slug)
                .await
                .map_err(|error| AuthError::Unavailable(error.into()))?;
            if let Some(organization) = organization {
                roles.push((organization.id, role));
            }
        }
        Ok(Principal {
            actor: format!("oidc:{}", claims.subject),
            token_id: None,
            owner: false,
            roles,
            expires_at: claims.expires_at,
        })
    }

    async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Invalid)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Invalid);
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::Invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data =
            decode::<Value>(token, &key, &validation).map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        let subject = claims["sub"].as_str().ok_or(AuthError::Invalid)?.to_owned();
        let expires_at = claims["exp"]
            .as_i64()
            .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0));
        Ok(Claims {
            subject,
            expires_at,
            roles: roles_of(&claims[self.config.roles_claim.as_str()]),
        })
    }

    /// The key `kid` names (any key of a one-key set when the JWT names none), refetching
    /// the set when the key is unknown and the last fetch is old enough.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk, AuthError> {
        let mut keys = self.keys.lock().await;
        if let Some(jwk) = keys.set.as_ref().and_then(|set| find(set, kid)) {
            return Ok(jwk);
        }
        if keys
            .fetched
            .is_some_and(|fetched| fetched.elapsed() < self.config.refresh_floor)
        {
            return Err(AuthError::Invalid);
        }
        keys.fetched = Some(Instant::now());
        let set = self.fetch_keys().await.map_err(AuthError::Unavailable)?;
        let found = find(&set, kid);
        keys.set = Some(set);
        found.ok_or(AuthError::Invalid)
    }

    async fn fetch_keys(&self) -> anyhow::Result<JwkSet> {
        let url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let document: Value = self.get_json(&discovery).await?;
                document["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("{discovery} has no jwks_uri"))?
                    .to_owned()
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&url).await?)?;
        tracing::info!(
            url,
            keys = set.keys.len(),
            "fetched the OpenID Connect keys"
        );
        Ok(set)
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let mut response = self.client.get(url).send().await?.error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() <= MAX_DOCUMENT_BYTES,
                "{url} is larger than 1 MiB"
            );
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

fn find(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// Roles from the roles claim: `{"acme": "admin"}` or `["acme:admin"]`. Pure.
fn roles_of(claim: &Value) -> Vec<(String, Role)> {
    let pairs: Vec<(String, String)> = match claim {
        Value::Object(object) => object
            .iter()
            .filter_map(|(slug, role)| Some((slug.clone(), role.as_str()?.to_owned())))
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|item| {
                let (slug, role) = item.as_str()?.rsplit_once(':')?;
                Some((slug.to_owned(), role.to_owned()))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<(String, Role)> = pairs
        .into_iter()
        .filter_map(|(slug, role)| Some((slug, role.parse().ok()?)))
        .collect();
    // The highest role wins when an organization is named twice.
    roles.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    roles.dedup_by(|a, b| a.0 == b.0);
    roles
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_come_from_an_object_or_a_list_and_unknown_roles_are_ignored() {
        assert_eq!(
            roles_of(&json!({"acme": "admin", "beta": "viewer", "gamma": "root"})),
            vec![
                ("acme".to_owned(), Role::Admin),
                ("beta".to_owned(), Role::Viewer)
            ]
        );
        assert_eq!(
            roles_of(&json!(["acme:viewer", "acme:operator", "nocolon", 7])),
            vec![("acme".to_owned(), Role::Operator)]
        );
        assert!(roles_of(&json!("acme:admin")).is_empty());
        assert!(roles_of(&Value::Null).is_empty());
    }

    #[test]
    fn only_three_part_tokens_are_jwts() {
        assert!(Oidc::claims_token("a.b.c"));
        assert!(!Oidc::claims_token("hpt_abc"));
        assert!(!Oidc::claims_token("a.b"));
    }
}
