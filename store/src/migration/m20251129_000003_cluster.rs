//! Cluster mode (issue 5): connections and touchpoints remember the Kubernetes resource they
//! are mirrored from or published to.
//!
//! - `kube_namespace`, `kube_name`: the Connection or Touchpoint resource (null: none), unique
//!   together so one resource maps to one row.
//! - `managed_outside`: the resource's spec is owned by a field manager other than the API
//!   (kubectl, a GitOps tool); the portal shows such rows read-only.
//!
//! SQLite alters one column per statement, so every column is its own `ALTER TABLE`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index) in [
            (Resource::Connections, "ux_connections_kube"),
            (Resource::Touchpoints, "ux_touchpoints_kube"),
        ] {
            for column in [
                text_null(Resource::KubeNamespace),
                text_null(Resource::KubeName),
                boolean(Resource::ManagedOutside).default(false).take(),
            ] {
                manager
                    .alter_table(Table::alter().table(table).add_column(column).to_owned())
                    .await?;
            }
            manager
                .create_index(
                    Index::create()
                        .name(index)
                        .table(table)
                        .col(Resource::KubeNamespace)
                        .col(Resource::KubeName)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index) in [
            (Resource::Touchpoints, "ux_touchpoints_kube"),
            (Resource::Connections, "ux_connections_kube"),
        ] {
            manager
                .drop_index(Index::drop().name(index).table(table).to_owned())
                .await?;
            for column in [
                Resource::ManagedOutside,
                Resource::KubeName,
                Resource::KubeNamespace,
            ] {
                manager
                    .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                    .await?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Resource {
    Connections,
    Touchpoints,
    KubeNamespace,
    KubeName,
    ManagedOutside,
}
