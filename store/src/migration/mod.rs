//! Schema migrations: one set for SQLite and PostgreSQL, written with sea-query so each
//! backend gets its own column types (`timestamptz`/`jsonb`/`bytea`/`uuid` on PostgreSQL,
//! text, text, blob and 16-byte blobs on SQLite).

use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20251129_000001_initial;

/// All migrations, oldest first.
pub(crate) struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20251129_000001_initial::Migration)]
    }
}
