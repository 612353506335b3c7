//! Organizations: the tenants. Each holds the registered URL its endpoint URLs start with and
//! the slug that is their `{org}` path segment; connections and schemas belong to one, and
//! touchpoints, events and logs to their connection's.
//!
//! A slug never changes once created: endpoint URLs given to source apps contain it, so a
//! rename would silently break them. Registering a URL for an existing slug changes only the
//! URL.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError, entity::organization, error::is_unique_violation};

/// An organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Its id.
    pub id: Uuid,
    /// The `{org}` path segment of every endpoint URL.
    pub slug: String,
    /// The public base URL (the domain part of every endpoint URL).
    pub registered_url: String,
    /// When it was created.
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
    /// Every organization, oldest first.
    pub async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let rows = organization::Entity::find()
            .order_by_asc(organization::Column::Id)
            .all(self.db())
            .await
            .map_err(StoreError::read("organizations"))?;
        Ok(rows.into_iter().map(Organization::from).collect())
    }

    /// The organization with this id.
    pub async fn organization(&self, id: Uuid) -> Result<Option<Organization>, StoreError> {
        let row = organization::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::read("an organization"))?;
        Ok(row.map(Organization::from))
    }

    /// The organization with this slug.
    pub async fn organization_by_slug(
        &self,
        slug: &str,
    ) -> Result<Option<Organization>, StoreError> {
        let row = organization::Entity::find()
            .filter(organization::Column::Slug.eq(slug))
            .one(self.db())
            .await
            .map_err(StoreError::read("an organization"))?;
        Ok(row.map(Organization::from))
    }

    /// Creates an organization; [`StoreError::OrganizationTaken`] if the slug is in use.
    pub async fn create_organization(
        &self,
        slug: &str,
        registered_url: &str,
    ) -> Result<Organization, StoreError> {
        let now = self.now();
        organization::ActiveModel {
            id: Set(Uuid::now_v7()),
            slug: Set(slug.to_owned()),
            registered_url: Set(registered_url.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(self.db())
        .await
        .map(Organization::from)
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::OrganizationTaken {
                    slug: slug.to_owned(),
                }
            } else {
                StoreError::SaveOrganization(error)
            }
        })
    }

    /// Changes an organization's registered URL (never its slug).
    pub async fn set_registered_url(
        &self,
        id: Uuid,
        registered_url: &str,
    ) -> Result<Organization, StoreError> {
        let row = organization::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::SaveOrganization)?
            .ok_or(StoreError::OrganizationNotFound)?;
        let mut row: organization::ActiveModel = row.into();
        row.registered_url = Set(registered_url.to_owned());
        row.updated_at = Set(self.now());
        row.update(self.db())
            .await
            .map(Organization::from)
            .map_err(StoreError::SaveOrganization)
    }
}
