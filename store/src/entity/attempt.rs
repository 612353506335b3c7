//! `attempts`: the delivery attempts of an event, numbered from 1, cascading with it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: Uuid,
    pub touchpoint_id: Uuid,
    pub number: i32,
    pub started_at: DateTimeUtc,
    pub duration_ms: i64,
    pub response_status: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub response_snippet: Option<String>,
    pub generation: i64,
    pub trigger: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
