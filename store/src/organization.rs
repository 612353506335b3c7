//! The organization: one per installation, holding the registered URL every endpoint URL
//! starts with.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use crate::{Backend, Store, StoreError, entity::organization};

/// The installation's organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Its id.
    pub id: Uuid,
    /// The `{org}` path segment of every endpoint URL.
    pub slug: String,
    /// The public base URL (the domain part of every endpoint URL).
    pub registered_url: String,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<organization::Model> for Organization {
    fn from(row: organization::Model) -> Self {
        Self {
            id: row.id,
            slug: row.slug,
            registered_url: row.registered_url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl Store {
    /// The organization, if a URL has been registered.
    pub async fn organization(&self) -> Result<Option<Organization>, StoreError> {
        let row = organization::Entity::find()
            .order_by_asc(organization::Column::Id)
            .one(self.db())
            .await
            .map_err(StoreError::read("the organization"))?;
        Ok(row.map(Organization::from))
    }

    /// Registers the organization's slug and URL, creating the organization the first time.
    pub async fn register_url(
        &self,
        slug: &str,
        registered_url: &str,
    ) -> Result<Organization, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveOrganization)?;
        if self.backend() == Backend::Postgres {
            // Two first registrations at once must not create two organizations. (SQLite's
            // BEGIN IMMEDIATE already excludes other writers.)
            txn.execute_unprepared("LOCK TABLE organizations IN EXCLUSIVE MODE")
                .await
                .map_err(StoreError::SaveOrganization)?;
        }
        let existing = organization::Entity::find()
            .order_by_asc(organization::Column::Id)
            .one(&txn)
            .await
            .map_err(StoreError::SaveOrganization)?;
        let now = self.now();
        let saved = match existing {
            Some(row) => {
                let mut row: organization::ActiveModel = row.into();
                row.slug = Set(slug.to_owned());
                row.registered_url = Set(registered_url.to_owned());
                row.updated_at = Set(now);
                row.update(&txn).await
            }
            None => {
                organization::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    slug: Set(slug.to_owned()),
                    registered_url: Set(registered_url.to_owned()),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await
            }
        }
        .map_err(StoreError::SaveOrganization)?;
        txn.commit().await.map_err(StoreError::SaveOrganization)?;
        Ok(saved.into())
    }
}
