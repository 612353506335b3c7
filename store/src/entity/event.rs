//! `events`: the resync bucket, which is also the work queue.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub touchpoint_id: Uuid,
    pub received_at: DateTimeUtc,
    #[sea_orm(column_type = "JsonBinary")]
    pub headers: Json,
    #[sea_orm(column_type = "Blob")]
    pub raw_body: Vec<u8>,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub dedupe_key: Option<String>,
    pub duplicates: i32,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub mapped_output: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub response_status: Option<i32>,
    pub published_generation: Option<i64>,
    pub updated_at: DateTimeUtc,
    pub lease_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub ordering_key: Option<String>,
    pub parked: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub retired_dedupe_key: Option<String>,
    pub last_attempt_at: Option<DateTimeUtc>,
    pub resynced_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
