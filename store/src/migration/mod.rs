//! Schema migrations: one set for SQLite and PostgreSQL, written with sea-query so each
//! backend gets its own column types (`timestamptz`/`jsonb`/`bytea`/`uuid` on PostgreSQL,
//! text, text, blob and 16-byte blobs on SQLite).

use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20251129_000001_initial;
mod m20251129_000002_sync_engine;
mod m20251129_000003_cluster;
mod m20261203_000004_tenancy;
mod m20261204_000005_claim_index;

/// All migrations, oldest first.
pub(crate) struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20251129_000001_initial::Migration),
            Box::new(m20251129_000002_sync_engine::Migration),
            Box::new(m20251129_000003_cluster::Migration),
            Box::new(m20261203_000004_tenancy::Migration),
            Box::new(m20261204_000005_claim_index::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::{
        EventStatus, Store, StoreOptions,
        entity::{connection, event, touchpoint},
        testing,
    };

    /// A database at the initial schema with one row per table the later migrations alter,
    /// written with only the initial columns (what an older release left behind).
    async fn seed_initial(store: &Store) -> (Uuid, Uuid) {
        let db = store.db();
        Migrator::up(db, Some(1)).await.expect("initial migration");
        let now = store.now();
        let connection_id = Uuid::now_v7();
        let old_connection = connection::ActiveModel {
            id: Set(connection_id),
            spec: Set(
                json!({"name": "old", "sourceApp": "shopify", "destinationApp": "generic"})
                    .to_string(),
            ),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        connection::Entity::insert(old_connection)
            .exec_without_returning(db)
            .await
            .expect("old connection");
        let touchpoint_id = Uuid::now_v7();
        let old_touchpoint = touchpoint::ActiveModel {
            id: Set(touchpoint_id),
            connection_id: Set(connection_id),
            spec: Set(json!({
                "connectionRef": connection_id.to_string(),
                "name": "old",
                "source": {"app": "shopify", "endpoint": "old"},
                "destination": {"url": "/x"}
            })
            .to_string()),
            endpoint: Set("old".into()),
            generation: Set(1),
            published_spec: Set(None),
            published_endpoint: Set(None),
            published_generation: Set(None),
            published_at: Set(None),
            auto_sync: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        touchpoint::Entity::insert(old_touchpoint)
            .exec_without_returning(db)
            .await
            .expect("old touchpoint");
        let event_id = Uuid::now_v7();
        let old_event = event::ActiveModel {
            id: Set(event_id),
            touchpoint_id: Set(touchpoint_id),
            received_at: Set(now),
            headers: Set(json!({})),
            raw_body: Set(b"{}".to_vec()),
            payload: Set(json!({})),
            dedupe_key: Set(Some("d-1".into())),
            duplicates: Set(0),
            status: Set("UNPROCESSED".into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            mapped_output: Set(None),
            last_error: Set(None),
            response_status: Set(None),
            published_generation: Set(None),
            updated_at: Set(now),
            ..Default::default()
        };
        event::Entity::insert(old_event)
            .exec_without_returning(db)
            .await
            .expect("old event");
        (connection_id, event_id)
    }

    async fn upgrade_keeps_rows(url: &str) {
        let store = Store::open(url, StoreOptions::default())
            .await
            .expect("open");
        let (connection_id, event_id) = seed_initial(&store).await;
        store.migrate().await.expect("upgrade");
        store.check_ready().await.expect("ready");
        let connection = store
            .connection(connection_id)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(connection.spec.name, "old");
        // A connection of a release without organizations gets one, made for it.
        let organization = connection.organization_id.expect("an organization");
        let organization = store
            .organization(organization)
            .await
            .expect("read")
            .expect("created by the migration");
        assert_eq!(organization.slug, "default");
        let event = store.event(event_id).await.expect("read").expect("kept");
        assert_eq!(event.status, EventStatus::Unprocessed);
        assert_eq!(event.dedupe_key.as_deref(), Some("d-1"));

        // Reversible: down to the initial schema (rows kept) and up again.
        Migrator::down(store.db(), Some(1)).await.expect("down one");
        assert!(store.check_ready().await.is_err(), "one migration pending");
        store.migrate().await.expect("up again");
        assert!(store.event(event_id).await.expect("read").is_some());
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_upgrade_keeps_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        upgrade_keeps_rows(&dir.path().join("old.db").display().to_string()).await;
    }

    #[tokio::test]
    async fn postgres_upgrade_keeps_rows() {
        let Some(url) = testing::postgres_url().await else {
            return;
        };
        upgrade_keeps_rows(&url).await;
        testing::drop_postgres_database(&url).await;
    }
}
