//! Who is calling: API tokens (and, optionally, OpenID Connect JWTs) turned into a
//! [`Principal`] with a role per organization.
//!
//! The transport (`graphql::transport`) authenticates every request with an [`Authenticator`]
//! and hands the resolvers the [`Principal`]; resolvers decide with [`Principal::role_in`]
//! and the rules in `graphql::authz`. Deny by default: a request without valid credentials
//! gets `UNAUTHENTICATED` before any resolver runs.

mod checks;
pub mod cli;
pub mod oidc;

use std::fmt;

use uuid::Uuid;

/// What a principal may do in one organization; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read buckets, logs and specs.
    Viewer,
    /// Also resync, auto-sync and pause.
    Operator,
    /// Also edit, publish, delete and manage tokens.
    Admin,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Who, as the audit log shows it: `token:<name>` or `oidc:<subject>`.
    pub actor: String,
    /// The API token used, if any (revocation ends its subscriptions).
    pub token_id: Option<Uuid>,
    /// The instance owner: creates organizations, and is admin in every one.
    pub owner: bool,
    /// Roles by organization id.
    pub roles: Vec<(Uuid, Role)>,
    /// When the credentials stop being valid (an OpenID Connect JWT's `exp`); open
    /// subscriptions end then.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Principal {
    /// The principal's role in an organization, if any.
    pub fn role_in(&self, organization: Uuid) -> Option<Role> {
        if self.owner {
            return Some(Role::Admin);
        }
        self.roles
            .iter()
            .find(|(id, _)| *id == organization)
            .map(|(_, role)| *role)
    }

    /// What per-caller limits (request rate, subscriptions) count against: the token, or the
    /// OpenID Connect subject.
    pub fn rate_key(&self) -> String {
        match self.token_id {
            Some(id) => format!("token:{id}"),
            None => self.actor.clone(),
        }
    }
}

/// Why credentials were refused: always `UNAUTHENTICATED` (HTTP 401) to the caller, the
/// reason only in the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("credentials are required")]
    Missing,
    #[error("the credentials are not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the credentials could not be checked")]
    Unavailable(#[source] anyhow::Error),
}

impl AuthError {
    /// The stable code: `UNAUTHENTICATED`, or `AUTH_UNAVAILABLE` when the check itself
    /// failed (the store is down).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "AUTH_UNAVAILABLE",
            _ => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        })
    }
}

/// API tokens start with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "hpt_";

/// Random bytes in a token: 256 bits, base64url-encoded after [`TOKEN_PREFIX`].
const TOKEN_BYTES: usize = 32;

/// Characters of a token kept in the clear (prefix included) to tell tokens apart in lists.
const SHOWN_CHARS: usize = 12;

/// How stale a token's `lastUsedAt` may get before a request records it again: one write per
/// token per minute, not one per request.
const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A token as it is handed out: the only time its secret is seen.
pub struct IssuedToken {
    /// The token itself; shown once, never stored.
    pub secret: String,
    /// What is stored of it.
    pub stored: hookplane_store::ApiToken,
}

/// What a new token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The instance owner: creates organizations, admin everywhere.
    Owner,
    /// A role in one organization.
    Member(Uuid, Role),
}

/// Make a token, store its hash, and return it (the only time the token is seen).
pub async fn issue_token(
    store: &hookplane_store::Store,
    grant: Grant,
    name: &str,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    created_by: &str,
) -> Result<IssuedToken, hookplane_store::StoreError> {
    use base64::Engine as _;
    use rand::RngCore as _;

    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let (organization_id, role) = match grant {
        Grant::Owner => (None, "owner".to_owned()),
        Grant::Member(organization, role) => (Some(organization), role.to_string()),
    };
    let stored = store
        .create_token(hookplane_store::NewToken {
            organization_id,
            name,
            role: &role,
            secret_hash: &hash(&secret),
            prefix: &secret[..SHOWN_CHARS],
            created_by,
            expires_at,
        })
        .await?;
    Ok(IssuedToken { secret, stored })
}

/// The stored form of a token: SHA-256, hex. Tokens are 256 random bits, so a fast hash
/// is enough (no password stretching needed), and lookups stay one indexed read.
fn hash(secret: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?}: viewer, operator or admin")),
        }
    }
}

/// Checks credentials against the store's API tokens, and JWTs against the OpenID Connect
/// issuer when one is configured.
#[derive(Clone)]
pub struct Authenticator {
    store: hookplane_store::Store,
    oidc: Option<std::sync::Arc<oidc::Oidc>>,
    checks: std::sync::Arc<checks::TokenChecks>,
}

impl Authenticator {
    pub fn new(store: hookplane_store::Store) -> Self {
        Self {
            store,
            oidc: None,
            checks: std::sync::Arc::default(),
        }
    }

    /// Also accept JWTs from `oidc`'s issuer.
    pub fn with_oidc(mut self, oidc: Option<std::sync::Arc<oidc::Oidc>>) -> Self {
        self.oidc = oidc;
        self
    }

    /// The principal behind an `Authorization` header value (`Bearer <token>`).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Invalid);
        }
        let token = token.trim();
        if !token.starts_with(TOKEN_PREFIX) {
            return match &self.oidc {
                Some(oidc) if oidc::Oidc::claims_token(token) => {
                    oidc.authenticate(token, &self.store).await
                }
                _ => Err(AuthError::Invalid),
            };
        }
        let stored = self
            .store
            .token_by_hash(&hash(token))
            .await
            .map_err(|error| AuthError::Unavailable(error.into()))?
            .ok_or(AuthError::Invalid)?;
        let now = self.store.now();
        check_current(&stored, now)?;
        if stored
            .last_used_at
            .is_none_or(|used| now - used >= LAST_USED_RESOLUTION)
            && let Err(error) = self.store.touch_token(stored.id, now).await
        {
            tracing::warn!(%error, token = %stored.id, "recording a token's last use");
        }
        principal_of(&stored)
    }

    /// The principal behind a WebSocket `connection_init` payload: `{"Authorization":
    /// "Bearer <token>"}` (any case of the key) or `{"token": "<token>"}`.
    pub async fn authenticate_init(
        &self,
        payload: &serde_json::Value,
    ) -> Result<Principal, AuthError> {
        let header = payload.as_object().and_then(|object| {
            object.iter().find_map(|(key, value)| {
                let value = value.as_str()?;
                if key.eq_ignore_ascii_case("authorization") {
                    Some(value.to_owned())
                } else if key == "token" {
                    Some(format!("Bearer {value}"))
                } else {
                    None
                }
            })
        });
        self.authenticate(header.as_deref()).await
    }

    /// Whether the principal's credentials still hold (its token is neither revoked nor
    /// expired). Open subscriptions are ended when this turns false; a failure to check
    /// counts as still valid (the store being down must not drop every subscriber). A token's
    /// answer is reused for a quarter of a second (`checks`), so the sockets of one token
    /// cost one read between them.
    pub async fn still_valid(&self, principal: &Principal) -> bool {
        if principal
            .expires_at
            .is_some_and(|expires| expires <= self.store.now())
        {
            return false;
        }
        let Some(id) = principal.token_id else {
            return true;
        };
        if let Some(valid) = self.checks.recent(id) {
            return valid;
        }
        let valid = match self.store.token(id).await {
            Ok(Some(stored)) => check_current(&stored, self.store.now()).is_ok(),
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, token = %id, "checking a token");
                return true;
            }
        };
        self.checks.remember(id, valid);
        valid
    }
}

fn check_current(
    stored: &hookplane_store::ApiToken,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AuthError> {
    if stored.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if stored.expires_at.is_some_and(|expires| expires <= now) {
        return Err(AuthError::Expired);
    }
    Ok(())
}

fn principal_of(stored: &hookplane_store::ApiToken) -> Result<Principal, AuthError> {
    let actor = format!("token:{} ({})", stored.name, stored.prefix);
    if stored.role == "owner" && stored.organization_id.is_none() {
        return Ok(Principal {
            actor,
            token_id: Some(stored.id),
            owner: true,
            roles: Vec::new(),
            expires_at: None,
        });
    }
    let role: Role = stored.role.parse().map_err(|_| AuthError::Invalid)?;
    let organization = stored.organization_id.ok_or(AuthError::Invalid)?;
    Ok(Principal {
        actor,
        token_id: Some(stored.id),
        owner: false,
        roles: vec![(organization, role)],
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognisable() {
        let a = hash("hpt_a");
        assert_eq!(a.len(), 64);
        assert_ne!(a, hash("hpt_b"));
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("owner".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
