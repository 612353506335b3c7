//! Organizations are tenants (issue 12): every connection and schema belongs to one, API
//! tokens authenticate callers with a role in one organization (or as the instance owner),
//! and the audit log records who changed what.
//!
//! - `organizations.slug` becomes unique: it is the `{org}` part of endpoint URLs.
//! - `connections.organization_id`: the tenant; touchpoints, events and logs belong to their
//!   connection's. Rows an older release left behind are given the first organization, or a
//!   `default` one created for them.
//! - `schemas` is rebuilt with `organization_id` and its name unique per organization (SQLite
//!   cannot drop the old unique constraint in place; nothing references the table).
//! - `api_tokens`: the SHA-256 of each token (the token itself is never stored), its name,
//!   role and organization (null: the instance owner), expiry, revocation and last use.
//! - `audit_log`: one row per change, with the authenticated actor.

use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager
            .create_index(
                Index::create()
                    .name("ux_organizations_slug")
                    .table(Organizations::Table)
                    .col(Organizations::Slug)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(uuid_null(Connections::OrganizationId))
                    .to_owned(),
            )
            .await?;

        // Rows of an older release belong to its organization (there was at most one).
        let has_rows = |table: &'static str| async move {
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    format!("SELECT COUNT(*) AS n FROM {table}"),
                ))
                .await?;
            Ok::<_, DbErr>(row.map_or(0, |row| row.try_get::<i64>("", "n").unwrap_or(0)) > 0)
        };
        let needs_owner = has_rows("connections").await? || has_rows("schemas").await?;
        if needs_owner && !has_rows("organizations").await? {
            let now = chrono::Utc::now();
            let insert = Query::insert()
                .into_table(Organizations::Table)
                .columns([
                    Organizations::Id,
                    Organizations::Slug,
                    Organizations::RegisteredUrl,
                    Organizations::CreatedAt,
                    Organizations::UpdatedAt,
                ])
                .values([
                    uuid::Uuid::now_v7().into(),
                    "default".into(),
                    "".into(),
                    now.into(),
                    now.into(),
                ])
                .map_err(|error| DbErr::Migration(error.to_string()))?
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        let first_organization = Query::select()
            .column(Organizations::Id)
            .from(Organizations::Table)
            .order_by(Organizations::Id, Order::Asc)
            .limit(1)
            .to_owned();
        manager
            .exec_stmt(
                Query::update()
                    .table(Connections::Table)
                    .value(
                        Connections::OrganizationId,
                        SimpleExpr::SubQuery(
                            None,
                            Box::new(first_organization.clone().into_sub_query_statement()),
                        ),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SchemasV2::Table)
                    .col(pk_uuid(Schemas::Id))
                    .col(uuid_null(Schemas::OrganizationId))
                    .col(text(Schemas::Name))
                    .col(json_binary(Schemas::Document))
                    .col(timestamp_with_time_zone(Schemas::CreatedAt))
                    .col(timestamp_with_time_zone(Schemas::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SchemasV2::Table)
                    .columns([
                        Schemas::Id,
                        Schemas::OrganizationId,
                        Schemas::Name,
                        Schemas::Document,
                        Schemas::CreatedAt,
                        Schemas::UpdatedAt,
                    ])
                    .select_from(
                        Query::select()
                            .column(Schemas::Id)
                            .expr(SimpleExpr::SubQuery(
                                None,
                                Box::new(first_organization.into_sub_query_statement()),
                            ))
                            .columns([
                                Schemas::Name,
                                Schemas::Document,
                                Schemas::CreatedAt,
                                Schemas::UpdatedAt,
                            ])
                            .from(Schemas::Table)
                            .to_owned(),
                    )
                    .map_err(|error| DbErr::Migration(error.to_string()))?
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Schemas::Table).to_owned())
            .await?;
        manager
            .rename_table(
                Table::rename()
                    .table(SchemasV2::Table, Schemas::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_schemas_organization_name")
                    .table(Schemas::Table)
                    .col(Schemas::OrganizationId)
                    .col(Schemas::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(pk_uuid(ApiTokens::Id))
                    .col(uuid_null(ApiTokens::OrganizationId))
                    .col(text(ApiTokens::Name))
                    .col(string_len(ApiTokens::Role, 16))
                    .col(text_uniq(ApiTokens::SecretHash))
                    .col(text(ApiTokens::Prefix))
                    .col(text(ApiTokens::CreatedBy))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_uuid(AuditLog::Id))
                    .col(uuid_null(AuditLog::OrganizationId))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::Actor))
                    .col(text(AuditLog::Action))
                    .col(text_null(AuditLog::Target))
                    .col(json_binary(AuditLog::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_organization")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrganizationId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [AuditLog::Table.into_iden(), ApiTokens::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ux_schemas_organization_name")
                    .table(Schemas::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Schemas::Table)
                    .drop_column(Schemas::OrganizationId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .drop_column(Connections::OrganizationId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_organizations_slug")
                    .table(Organizations::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Slug,
    RegisteredUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    OrganizationId,
}

#[derive(DeriveIden)]
enum Schemas {
    Table,
    Id,
    OrganizationId,
    Name,
    Document,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SchemasV2 {
    #[sea_orm(iden = "schemas_v2")]
    Table,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    OrganizationId,
    Name,
    Role,
    SecretHash,
    Prefix,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    OrganizationId,
    At,
    Actor,
    Action,
    Target,
    Detail,
}
