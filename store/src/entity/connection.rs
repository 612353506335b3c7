//! `connections`: a source app + a destination app; the spec is JSON text.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub spec: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub paused: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub kube_namespace: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub kube_name: Option<String>,
    pub managed_outside: bool,
    pub organization_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
