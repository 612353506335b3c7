//! Write-only secrets for the embedded mode (on Kubernetes they live in Secrets).
//!
//! Nothing here lists values: [`Store::secret`] reads one value, for a verifier that needs it.

use sea_orm::{ActiveValue::Set, EntityTrait, sea_query::OnConflict};

use crate::{Store, StoreError, entity::secret};

impl Store {
    /// Stores (or replaces) the value of `key` in the secret `name`.
    pub async fn put_secret(&self, name: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let now = self.now();
        let row = secret::ActiveModel {
            name: Set(name.to_owned()),
            key: Set(key.to_owned()),
            value: Set(value.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        secret::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([secret::Column::Name, secret::Column::Key])
                    .update_columns([secret::Column::Value, secret::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(self.db())
            .await
            .map_err(StoreError::SaveSecret)?;
        Ok(())
    }

    /// The value of `key` in the secret `name`, for verifiers.
    pub async fn secret(&self, name: &str, key: &str) -> Result<Option<String>, StoreError> {
        let row = secret::Entity::find_by_id((name.to_owned(), key.to_owned()))
            .one(self.db())
            .await
            .map_err(StoreError::read("a secret"))?;
        Ok(row.map(|row| row.value))
    }
}
