//! JSON Schemas of source entities (`Order`, `Customer`, ...), by name, unique in each organization: imported or
//! inferred through the API, and used to validate payloads of touchpoints that name one.
//!
//! The store keeps documents as given; checking that one is a valid JSON Schema is the API's
//! job. A put replaces the document of a name and keeps its id and creation time.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::OnConflict,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{Store, StoreError, entity::schema};

/// A stored JSON Schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    /// Its id (kept across puts).
    pub id: Uuid,
    /// The organization it belongs to.
    pub organization_id: Option<Uuid>,
    /// The entity it describes, e.g. `Order`; unique in its organization.
    pub name: String,
    /// The JSON Schema document.
    pub document: Value,
    /// When the name was first stored.
    pub created_at: DateTime<Utc>,
    /// When the document last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<schema::Model> for Schema {
    fn from(row: schema::Model) -> Self {
        Self {
            id: row.id,
            organization_id: row.organization_id,
            name: row.name,
            document: row.document,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl Store {
    /// Stores an organization's schema `name`, or replaces its document.
    pub async fn put_schema(
        &self,
        organization_id: Uuid,
        name: &str,
        document: Value,
    ) -> Result<Schema, StoreError> {
        let now = self.now();
        let row = schema::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(Some(organization_id)),
            name: Set(name.to_owned()),
            document: Set(document),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // `insert_many` of one row: RETURNING gives the row whichever way the upsert went.
        let stored = schema::Entity::insert_many([row])
            .on_conflict(
                OnConflict::columns([schema::Column::OrganizationId, schema::Column::Name])
                    .update_columns([schema::Column::Document, schema::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_with_returning(self.db())
            .await
            .map_err(StoreError::SaveSchema)?
            .pop()
            .ok_or(StoreError::SaveSchema(sea_orm::DbErr::RecordNotInserted))?;
        Ok(stored.into())
    }

    /// An organization's schema `name`.
    pub async fn schema(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<Option<Schema>, StoreError> {
        let row = schema::Entity::find()
            .filter(schema::Column::OrganizationId.eq(organization_id))
            .filter(schema::Column::Name.eq(name))
            .one(self.db())
            .await
            .map_err(StoreError::read("a schema"))?;
        Ok(row.map(Schema::from))
    }

    /// Every schema of an organization, by name.
    pub async fn schemas(&self, organization_id: Uuid) -> Result<Vec<Schema>, StoreError> {
        let rows = schema::Entity::find()
            .filter(schema::Column::OrganizationId.eq(organization_id))
            .order_by_asc(schema::Column::Name)
            .all(self.db())
            .await
            .map_err(StoreError::read("schemas"))?;
        Ok(rows.into_iter().map(Schema::from).collect())
    }

    /// Deletes an organization's schema `name`; `false` if there was none.
    pub async fn delete_schema(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError> {
        let deleted = schema::Entity::delete_many()
            .filter(schema::Column::OrganizationId.eq(organization_id))
            .filter(schema::Column::Name.eq(name))
            .exec(self.db())
            .await
            .map_err(StoreError::DeleteSchema)?;
        Ok(deleted.rows_affected > 0)
    }
}
