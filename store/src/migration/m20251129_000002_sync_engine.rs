//! The sync engine's schema (issue 4): attempt history, lease tokens, per-key ordering,
//! paused connections, the dedupe window, retention and JSON schemas.
//!
//! - `events` gains `lease_id` (the token of the claim holding it), `ordering_key` and
//!   `parked` (a FAILED event that stepped aside for its key), `retired_dedupe_key` (a key
//!   moved out of the unique index when its dedupe window ended), `last_attempt_at` and
//!   `resynced_at`; indexes for the per-key rule and for retention.
//! - `connections` gains `paused`.
//! - `attempts`: one row per delivery attempt, cascading with its event.
//! - `schemas`: JSON Schemas of source entities, by unique name.
//!
//! SQLite alters one column per statement, so every column is its own `ALTER TABLE`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            uuid_null(Events::LeaseId),
            text_null(Events::OrderingKey),
            boolean(Events::Parked).default(false).take(),
            text_null(Events::RetiredDedupeKey),
            timestamp_with_time_zone_null(Events::LastAttemptAt),
            timestamp_with_time_zone_null(Events::ResyncedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Events::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for index in [
            // The per-key rule: earlier (and leased) events of the same key.
            Index::create()
                .name("idx_events_ordering")
                .table(Events::Table)
                .col(Events::TouchpointId)
                .col(Events::OrderingKey)
                .col(Events::Id)
                .to_owned(),
            // Retention: terminal events by age.
            Index::create()
                .name("idx_events_status_updated")
                .table(Events::Table)
                .col(Events::Status)
                .col(Events::UpdatedAt)
                .to_owned(),
            Index::create()
                .name("idx_logs_time")
                .table(Logs::Table)
                .col(Logs::Time)
                .to_owned(),
        ] {
            manager.create_index(index).await?;
        }

        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(boolean(Connections::Paused).default(false))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .col(pk_uuid(Attempts::Id))
                    .col(uuid(Attempts::EventId))
                    .col(uuid(Attempts::TouchpointId))
                    .col(integer(Attempts::Number))
                    .col(timestamp_with_time_zone(Attempts::StartedAt))
                    .col(big_integer(Attempts::DurationMs))
                    .col(integer_null(Attempts::ResponseStatus))
                    .col(text_null(Attempts::Error))
                    .col(text_null(Attempts::ResponseSnippet))
                    .col(big_integer(Attempts::Generation))
                    .col(string_len(Attempts::Trigger, 16))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attempts_event")
                            .from(Attempts::Table, Attempts::EventId)
                            .to(Events::Table, Events::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_attempts_event_number")
                    .table(Attempts::Table)
                    .col(Attempts::EventId)
                    .col(Attempts::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Schemas::Table)
                    .col(pk_uuid(Schemas::Id))
                    .col(text_uniq(Schemas::Name))
                    .col(json_binary(Schemas::Document))
                    .col(timestamp_with_time_zone(Schemas::CreatedAt))
                    .col(timestamp_with_time_zone(Schemas::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Schemas::Table.into_iden(), Attempts::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .drop_column(Connections::Paused)
                    .to_owned(),
            )
            .await?;
        for (name, table) in [
            ("idx_logs_time", Logs::Table.into_iden()),
            ("idx_events_status_updated", Events::Table.into_iden()),
            ("idx_events_ordering", Events::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for column in [
            Events::ResyncedAt,
            Events::LastAttemptAt,
            Events::RetiredDedupeKey,
            Events::Parked,
            Events::OrderingKey,
            Events::LeaseId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Events::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    TouchpointId,
    Status,
    UpdatedAt,
    LeaseId,
    OrderingKey,
    Parked,
    RetiredDedupeKey,
    LastAttemptAt,
    ResyncedAt,
}

#[derive(DeriveIden)]
enum Logs {
    Table,
    Time,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Paused,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Id,
    EventId,
    TouchpointId,
    Number,
    StartedAt,
    DurationMs,
    ResponseStatus,
    Error,
    ResponseSnippet,
    Generation,
    Trigger,
}

#[derive(DeriveIden)]
enum Schemas {
    Table,
    Id,
    Name,
    Document,
    CreatedAt,
    UpdatedAt,
}
