//! The initial schema: organizations, connections, touchpoints, secrets, events and logs.
//!
//! Events and logs cascade with their touchpoint. Ids are UUIDv7, so `ORDER BY id` is time
//! order on both backends (PostgreSQL compares `uuid` bytewise; SQLite stores them as 16-byte
//! blobs, compared with `memcmp`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(pk_uuid(Organizations::Id))
                    .col(text(Organizations::Slug))
                    .col(text(Organizations::RegisteredUrl))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .col(timestamp_with_time_zone(Organizations::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Connections::Table)
                    .col(pk_uuid(Connections::Id))
                    .col(text(Connections::Spec))
                    .col(timestamp_with_time_zone(Connections::CreatedAt))
                    .col(timestamp_with_time_zone(Connections::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Touchpoints::Table)
                    .col(pk_uuid(Touchpoints::Id))
                    .col(uuid(Touchpoints::ConnectionId))
                    .col(text(Touchpoints::Spec))
                    .col(text_uniq(Touchpoints::Endpoint))
                    .col(big_integer(Touchpoints::Generation))
                    .col(text_null(Touchpoints::PublishedSpec))
                    .col(text_null(Touchpoints::PublishedEndpoint).unique_key())
                    .col(big_integer_null(Touchpoints::PublishedGeneration))
                    .col(timestamp_with_time_zone_null(Touchpoints::PublishedAt))
                    .col(boolean(Touchpoints::AutoSync))
                    .col(timestamp_with_time_zone(Touchpoints::CreatedAt))
                    .col(timestamp_with_time_zone(Touchpoints::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_touchpoints_connection")
                            .from(Touchpoints::Table, Touchpoints::ConnectionId)
                            .to(Connections::Table, Connections::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_touchpoints_connection")
                    .table(Touchpoints::Table)
                    .col(Touchpoints::ConnectionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Secrets::Table)
                    .col(text(Secrets::Name))
                    .col(text(Secrets::Key))
                    .col(text(Secrets::Value))
                    .col(timestamp_with_time_zone(Secrets::CreatedAt))
                    .col(timestamp_with_time_zone(Secrets::UpdatedAt))
                    .primary_key(Index::create().col(Secrets::Name).col(Secrets::Key))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(pk_uuid(Events::Id))
                    .col(uuid(Events::TouchpointId))
                    .col(timestamp_with_time_zone(Events::ReceivedAt))
                    .col(json_binary(Events::Headers))
                    .col(blob(Events::RawBody))
                    .col(json_binary(Events::Payload))
                    .col(text_null(Events::DedupeKey))
                    .col(integer(Events::Duplicates))
                    .col(string_len(Events::Status, 16))
                    .col(integer(Events::Attempts))
                    .col(timestamp_with_time_zone(Events::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Events::LeaseUntil))
                    .col(json_binary_null(Events::MappedOutput))
                    .col(text_null(Events::LastError))
                    .col(integer_null(Events::ResponseStatus))
                    .col(big_integer_null(Events::PublishedGeneration))
                    .col(timestamp_with_time_zone(Events::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_events_touchpoint")
                            .from(Events::Table, Events::TouchpointId)
                            .to(Touchpoints::Table, Touchpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for index in [
            Index::create()
                .name("ux_events_dedupe")
                .table(Events::Table)
                .col(Events::TouchpointId)
                .col(Events::DedupeKey)
                .unique()
                .to_owned(),
            Index::create()
                .name("idx_events_due")
                .table(Events::Table)
                .col(Events::Status)
                .col(Events::NextAttemptAt)
                .to_owned(),
            Index::create()
                .name("idx_events_touchpoint")
                .table(Events::Table)
                .col(Events::TouchpointId)
                .col(Events::Id)
                .to_owned(),
            Index::create()
                .name("idx_events_touchpoint_status")
                .table(Events::Table)
                .col(Events::TouchpointId)
                .col(Events::Status)
                .col(Events::Id)
                .to_owned(),
        ] {
            manager.create_index(index).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Logs::Table)
                    .col(pk_uuid(Logs::Id))
                    .col(uuid(Logs::TouchpointId))
                    .col(uuid_null(Logs::EventId))
                    .col(timestamp_with_time_zone(Logs::Time))
                    .col(small_integer(Logs::Level))
                    .col(text(Logs::Message))
                    .col(json_binary(Logs::Fields))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_logs_touchpoint")
                            .from(Logs::Table, Logs::TouchpointId)
                            .to(Touchpoints::Table, Touchpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for index in [
            Index::create()
                .name("idx_logs_touchpoint")
                .table(Logs::Table)
                .col(Logs::TouchpointId)
                .col(Logs::Id)
                .to_owned(),
            Index::create()
                .name("idx_logs_touchpoint_level")
                .table(Logs::Table)
                .col(Logs::TouchpointId)
                .col(Logs::Level)
                .col(Logs::Id)
                .to_owned(),
            Index::create()
                .name("idx_logs_event")
                .table(Logs::Table)
                .col(Logs::EventId)
                .col(Logs::Id)
                .to_owned(),
        ] {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Logs::Table.into_iden(),
            Events::Table.into_iden(),
            Secrets::Table.into_iden(),
            Touchpoints::Table.into_iden(),
            Connections::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
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
    Id,
    Spec,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Touchpoints {
    Table,
    Id,
    ConnectionId,
    Spec,
    Endpoint,
    Generation,
    PublishedSpec,
    PublishedEndpoint,
    PublishedGeneration,
    PublishedAt,
    AutoSync,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Secrets {
    Table,
    Name,
    Key,
    Value,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    TouchpointId,
    ReceivedAt,
    Headers,
    RawBody,
    Payload,
    DedupeKey,
    Duplicates,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    MappedOutput,
    LastError,
    ResponseStatus,
    PublishedGeneration,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Logs {
    Table,
    Id,
    TouchpointId,
    EventId,
    Time,
    Level,
    Message,
    Fields,
}
