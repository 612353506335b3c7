//! Connections: a source app and a destination app, stored as their spec (JSON text), and
//! whether delivery is paused.
//!
//! Pausing holds delivery only: receivers keep storing events (UNPROCESSED), claims and
//! [`Store::next_due_at`] skip the events of every touchpoint of a paused connection, and
//! unpausing lets the worker drain them.

use chrono::{DateTime, Utc};
use hookplane_crds::ConnectionSpec;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{KubeResource, Store, StoreError, entity::connection};

/// A stored connection.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Its id (the `connectionRef` of its touchpoints).
    pub id: Uuid,
    /// The organization it belongs to (with its touchpoints, their events and logs). `None`
    /// only for rows no organization could be found for.
    pub organization_id: Option<Uuid>,
    /// What it connects.
    pub spec: ConnectionSpec,
    /// Whether delivery of its touchpoints' events is on hold (intake continues).
    pub paused: bool,
    /// The Kubernetes resource it is mirrored from or published to (cluster mode).
    pub resource: Option<KubeResource>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<connection::Model> for Connection {
    type Error = StoreError;

    fn try_from(row: connection::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            organization_id: row.organization_id,
            spec: serde_json::from_str(&row.spec)
                .map_err(|error| StoreError::invalid_row("connections", error))?,
            paused: row.paused,
            resource: KubeResource::from_columns(
                row.kube_namespace,
                row.kube_name,
                row.managed_outside,
            ),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl Store {
    /// Creates a connection in an organization.
    pub async fn create_connection(
        &self,
        organization_id: Uuid,
        spec: ConnectionSpec,
    ) -> Result<Connection, StoreError> {
        let now = self.now();
        let row = connection::ActiveModel {
            id: Set(Uuid::now_v7()),
            spec: Set(spec_json(&spec)),
            created_at: Set(now),
            updated_at: Set(now),
            paused: Set(false),
            kube_namespace: Set(None),
            kube_name: Set(None),
            managed_outside: Set(false),
            organization_id: Set(Some(organization_id)),
        }
        .insert(self.db())
        .await
        .map_err(StoreError::SaveConnection)?;
        Connection::try_from(row)
    }

    /// The connection with this id.
    pub async fn connection(&self, id: Uuid) -> Result<Option<Connection>, StoreError> {
        connection::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::read("a connection"))?
            .map(Connection::try_from)
            .transpose()
    }

    /// Pauses (`true`) or resumes delivery for a connection's touchpoints.
    /// [`StoreError::ConnectionNotFound`] for an unknown id.
    pub async fn set_connection_paused(
        &self,
        id: Uuid,
        paused: bool,
    ) -> Result<Connection, StoreError> {
        let rows = connection::Entity::update_many()
            .col_expr(connection::Column::Paused, Expr::val(paused))
            .col_expr(connection::Column::UpdatedAt, Expr::val(self.now()))
            .filter(connection::Column::Id.eq(id))
            .exec_with_returning(self.db())
            .await
            .map_err(StoreError::SaveConnection)?;
        let row = rows
            .into_iter()
            .next()
            .ok_or(StoreError::ConnectionNotFound)?;
        Connection::try_from(row)
    }

    /// Every connection, oldest first.
    pub async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        connection::Entity::find()
            .order_by_asc(connection::Column::Id)
            .all(self.db())
            .await
            .map_err(StoreError::read("connections"))?
            .into_iter()
            .map(Connection::try_from)
            .collect()
    }
}

/// A spec as stored: its JSON text.
pub(crate) fn spec_json(spec: &impl Serialize) -> String {
    // Cannot fail: specs are plain structs with string keys.
    serde_json::to_string(spec).expect("a spec serializes to JSON")
}
