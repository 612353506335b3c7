//! Write-only secrets for the embedded mode (on Kubernetes they live in Secrets).
//!
//! Nothing here lists values: [`Store::secret`] reads one value, for a verifier that needs it.
//! With a [`crate::SecretKey`] configured, values are stored encrypted (see `secret_key`).

use sea_orm::{ActiveValue::Set, EntityTrait, sea_query::OnConflict};

use crate::{Store, StoreError, entity::secret};

impl Store {
    /// Stores (or replaces) the value of `key` in the secret `name`.
    pub async fn put_secret(&self, name: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let now = self.now();
        let value = match &self.inner.secret_key {
            Some(key) => key.seal(value)?,
            None => value.to_owned(),
        };
        let row = secret::ActiveModel {
            name: Set(name.to_owned()),
            key: Set(key.to_owned()),
            value: Set(value),
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
        row.map(|row| crate::secret_key::open(self.inner.secret_key.as_ref(), &row.value))
            .transpose()
            .map_err(StoreError::from)
    }
}
