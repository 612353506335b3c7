//! API tokens, as the store keeps them: a SHA-256 of the token (never the token), its name,
//! role and organization (none: the instance owner), expiry, revocation and last use.
//!
//! Making and checking tokens is the API's (`hookplane::auth`); the store only finds a token
//! by the hash it is given.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError, entity::api_token};

/// A stored API token (without its secret, which is not stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: Uuid,
    /// The organization it acts in; `None` for the instance owner's tokens.
    pub organization_id: Option<Uuid>,
    pub name: String,
    /// `viewer`, `operator`, `admin` or `owner`.
    pub role: String,
    /// The token's first characters, to tell tokens apart in lists.
    pub prefix: String,
    /// Who created it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<api_token::Model> for ApiToken {
    fn from(row: api_token::Model) -> Self {
        Self {
            id: row.id,
            organization_id: row.organization_id,
            name: row.name,
            role: row.role,
            prefix: row.prefix,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// A token to store.
#[derive(Clone, Debug)]
pub struct NewToken<'a> {
    pub organization_id: Option<Uuid>,
    pub name: &'a str,
    pub role: &'a str,
    /// The SHA-256 of the token, hex.
    pub secret_hash: &'a str,
    pub prefix: &'a str,
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a token.
    pub async fn create_token(&self, token: NewToken<'_>) -> Result<ApiToken, StoreError> {
        api_token::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(token.organization_id),
            name: Set(token.name.to_owned()),
            role: Set(token.role.to_owned()),
            secret_hash: Set(token.secret_hash.to_owned()),
            prefix: Set(token.prefix.to_owned()),
            created_by: Set(token.created_by.to_owned()),
            created_at: Set(self.now()),
            expires_at: Set(token.expires_at),
            revoked_at: Set(None),
            last_used_at: Set(None),
        }
        .insert(self.db())
        .await
        .map(ApiToken::from)
        .map_err(StoreError::SaveToken)
    }

    /// The token whose secret hashes to `secret_hash`.
    pub async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = api_token::Entity::find()
            .filter(api_token::Column::SecretHash.eq(secret_hash))
            .one(self.db())
            .await
            .map_err(StoreError::read("a token"))?;
        Ok(row.map(ApiToken::from))
    }

    /// The token with this id.
    pub async fn token(&self, id: Uuid) -> Result<Option<ApiToken>, StoreError> {
        let row = api_token::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::read("a token"))?;
        Ok(row.map(ApiToken::from))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = api_token::Entity::find()
            .order_by_asc(api_token::Column::Id)
            .all(self.db())
            .await
            .map_err(StoreError::read("tokens"))?;
        Ok(rows.into_iter().map(ApiToken::from).collect())
    }

    /// Revokes a token (a revoked one stays revoked at its first revocation time).
    /// [`StoreError::TokenNotFound`] for an unknown id.
    pub async fn revoke_token(&self, id: Uuid) -> Result<ApiToken, StoreError> {
        api_token::Entity::update_many()
            .col_expr(api_token::Column::RevokedAt, Expr::val(self.now()))
            .filter(api_token::Column::Id.eq(id))
            .filter(api_token::Column::RevokedAt.is_null())
            .exec(self.db())
            .await
            .map_err(StoreError::SaveToken)?;
        self.token(id).await?.ok_or(StoreError::TokenNotFound)
    }

    /// Records that a token was used at `at`.
    pub async fn touch_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::val(at))
            .filter(api_token::Column::Id.eq(id))
            .exec(self.db())
            .await
            .map_err(StoreError::SaveToken)?;
        Ok(())
    }

    /// Whether an instance owner token exists (revoked or not): `serve` creates the first
    /// one on a fresh database only.
    pub async fn has_owner_token(&self) -> Result<bool, StoreError> {
        let row = api_token::Entity::find()
            .filter(api_token::Column::OrganizationId.is_null())
            .one(self.db())
            .await
            .map_err(StoreError::read("tokens"))?;
        Ok(row.is_some())
    }
}
