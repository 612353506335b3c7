//! `touchpoints`: the draft spec and the published spec (both JSON text), with their endpoint
//! paths in unique columns.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "touchpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub spec: String,
    #[sea_orm(column_type = "Text")]
    pub endpoint: String,
    pub generation: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub published_spec: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub published_endpoint: Option<String>,
    pub published_generation: Option<i64>,
    pub published_at: Option<DateTimeUtc>,
    pub auto_sync: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub kube_namespace: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub kube_name: Option<String>,
    pub managed_outside: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
