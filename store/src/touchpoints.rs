//! Touchpoints: a draft spec that updates edit, and the published spec the receiver and the
//! sync worker run.
//!
//! Invariants kept here:
//! - an endpoint path belongs to at most one touchpoint, counting both its draft and its
//!   published spec (checked in the write transaction, backed by unique columns);
//! - a touchpoint stays in the connection it was created in;
//! - `generation` counts draft edits; publishing copies the draft and its generation;
//! - the `auto_sync` column is the switch, and `spec.autoSync` of the draft and the published
//!   spec always equal it. Only [`Store::create_touchpoint`] and [`Store::set_auto_sync`]
//!   change it: an update keeps the current setting whatever its spec says.

use chrono::{DateTime, Utc};
use hookplane_crds::TouchpointSpec;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    KubeResource, Store, StoreError,
    connections::spec_json,
    entity::{connection, touchpoint},
    error::is_unique_violation,
};

/// A stored touchpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Touchpoint {
    /// Its id.
    pub id: Uuid,
    /// The connection it belongs to (its `spec.connectionRef`).
    pub connection_id: Uuid,
    /// The draft spec, which updates edit.
    pub spec: TouchpointSpec,
    /// Counts draft edits, starting at 1.
    pub generation: i64,
    /// What the receiver and the worker run, once published.
    pub published: Option<Published>,
    /// Whether the worker processes its events.
    pub auto_sync: bool,
    /// The Kubernetes resource it is mirrored from or published to (cluster mode).
    pub resource: Option<KubeResource>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The published (running) version of a touchpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The spec as it was published.
    pub spec: TouchpointSpec,
    /// The draft generation that was published.
    pub generation: i64,
    /// When it was published.
    pub published_at: DateTime<Utc>,
}

impl TryFrom<touchpoint::Model> for Touchpoint {
    type Error = StoreError;

    fn try_from(row: touchpoint::Model) -> Result<Self, StoreError> {
        let published = match (
            row.published_spec,
            row.published_generation,
            row.published_at,
        ) {
            (Some(spec), Some(generation), Some(published_at)) => Some(Published {
                spec: parse_spec(&spec)?,
                generation,
                published_at,
            }),
            (None, _, _) => None,
            _ => {
                return Err(StoreError::invalid_row(
                    "touchpoints",
                    "published spec without its generation or time",
                ));
            }
        };
        Ok(Self {
            id: row.id,
            connection_id: row.connection_id,
            spec: parse_spec(&row.spec)?,
            generation: row.generation,
            published,
            auto_sync: row.auto_sync,
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
    /// Creates a touchpoint at generation 1, unpublished, with `auto_sync` from its spec.
    ///
    /// [`StoreError::ConnectionNotFound`] when `spec.connectionRef` is not the id of a
    /// connection; [`StoreError::EndpointTaken`] when another touchpoint uses the endpoint.
    pub async fn create_touchpoint(
        &self,
        mut spec: TouchpointSpec,
    ) -> Result<Touchpoint, StoreError> {
        let connection_id =
            parse_ref(&spec.connection_ref).ok_or(StoreError::ConnectionNotFound)?;
        spec.connection_ref = connection_id.to_string();
        let endpoint = spec.source.endpoint.clone();

        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        let connection = connection::Entity::find_by_id(connection_id)
            .one(&txn)
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        if connection.is_none() {
            return Err(StoreError::ConnectionNotFound);
        }
        ensure_endpoint_free(&txn, &endpoint, None).await?;
        let now = self.now();
        let row = touchpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            connection_id: Set(connection_id),
            spec: Set(spec_json(&spec)),
            endpoint: Set(endpoint.clone()),
            generation: Set(1),
            published_spec: Set(None),
            published_endpoint: Set(None),
            published_generation: Set(None),
            published_at: Set(None),
            auto_sync: Set(spec.auto_sync),
            kube_namespace: Set(None),
            kube_name: Set(None),
            managed_outside: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|error| save_error(error, &endpoint))?;
        txn.commit().await.map_err(StoreError::SaveTouchpoint)?;
        Touchpoint::try_from(row)
    }

    /// The touchpoint with this id.
    pub async fn touchpoint(&self, id: Uuid) -> Result<Option<Touchpoint>, StoreError> {
        touchpoint::Entity::find_by_id(id)
            .one(self.db())
            .await
            .map_err(StoreError::read("a touchpoint"))?
            .map(Touchpoint::try_from)
            .transpose()
    }

    /// Every touchpoint (of one connection, if given), oldest first.
    pub async fn touchpoints(
        &self,
        connection_id: Option<Uuid>,
    ) -> Result<Vec<Touchpoint>, StoreError> {
        let mut query = touchpoint::Entity::find().order_by_asc(touchpoint::Column::Id);
        if let Some(connection_id) = connection_id {
            query = query.filter(touchpoint::Column::ConnectionId.eq(connection_id));
        }
        rows_to_touchpoints(query.all(self.db()).await)
    }

    /// Every published touchpoint, oldest first: what the receiver routes to.
    pub async fn published_touchpoints(&self) -> Result<Vec<Touchpoint>, StoreError> {
        let rows = touchpoint::Entity::find()
            .filter(touchpoint::Column::PublishedSpec.is_not_null())
            .order_by_asc(touchpoint::Column::Id)
            .all(self.db())
            .await;
        rows_to_touchpoints(rows)
    }

    /// Replaces the draft spec and bumps the generation. The published spec is untouched.
    ///
    /// [`StoreError::ConnectionImmutable`] when `spec.connectionRef` names another connection,
    /// [`StoreError::EndpointTaken`] when another touchpoint uses the endpoint.
    /// `spec.autoSync` is ignored: see [`Store::set_auto_sync`].
    pub async fn update_touchpoint(
        &self,
        id: Uuid,
        mut spec: TouchpointSpec,
    ) -> Result<Touchpoint, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        let row = lock_touchpoint(&txn, id).await?;
        if parse_ref(&spec.connection_ref) != Some(row.connection_id) {
            return Err(StoreError::ConnectionImmutable);
        }
        spec.connection_ref = row.connection_id.to_string();
        spec.auto_sync = row.auto_sync;
        let endpoint = spec.source.endpoint.clone();
        ensure_endpoint_free(&txn, &endpoint, Some(id)).await?;

        let generation = row.generation + 1;
        let mut update: touchpoint::ActiveModel = row.into();
        update.spec = Set(spec_json(&spec));
        update.endpoint = Set(endpoint.clone());
        update.generation = Set(generation);
        update.updated_at = Set(self.now());
        let row = update
            .update(&txn)
            .await
            .map_err(|error| save_error(error, &endpoint))?;
        txn.commit().await.map_err(StoreError::SaveTouchpoint)?;
        Touchpoint::try_from(row)
    }

    /// Makes the draft the running spec: `published.spec = spec`,
    /// `published.generation = generation`.
    pub async fn publish_touchpoint(&self, id: Uuid) -> Result<Touchpoint, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        let row = lock_touchpoint(&txn, id).await?;
        let now = self.now();
        let endpoint = row.endpoint.clone();
        let mut update: touchpoint::ActiveModel = row.clone().into();
        update.published_spec = Set(Some(row.spec));
        update.published_endpoint = Set(Some(row.endpoint));
        update.published_generation = Set(Some(row.generation));
        update.published_at = Set(Some(now));
        update.updated_at = Set(now);
        let row = update
            .update(&txn)
            .await
            .map_err(|error| save_error(error, &endpoint))?;
        txn.commit().await.map_err(StoreError::SaveTouchpoint)?;
        Touchpoint::try_from(row)
    }

    /// Turns processing on or off, in the column and in `autoSync` of the draft and the
    /// published spec. Does not change the generation.
    pub async fn set_auto_sync(&self, id: Uuid, on: bool) -> Result<Touchpoint, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        let row = lock_touchpoint(&txn, id).await?;
        let mut spec = parse_spec(&row.spec)?;
        spec.auto_sync = on;
        let published_spec = match &row.published_spec {
            Some(published) => {
                let mut published = parse_spec(published)?;
                published.auto_sync = on;
                Some(spec_json(&published))
            }
            None => None,
        };
        let mut update: touchpoint::ActiveModel = row.into();
        update.spec = Set(spec_json(&spec));
        update.published_spec = Set(published_spec);
        update.auto_sync = Set(on);
        update.updated_at = Set(self.now());
        let row = update
            .update(&txn)
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        txn.commit().await.map_err(StoreError::SaveTouchpoint)?;
        Touchpoint::try_from(row)
    }

    /// Deletes a touchpoint with its events and log entries. `false` if it did not exist.
    pub async fn delete_touchpoint(&self, id: Uuid) -> Result<bool, StoreError> {
        let result = touchpoint::Entity::delete_by_id(id)
            .exec(self.db())
            .await
            .map_err(StoreError::DeleteTouchpoint)?;
        Ok(result.rows_affected > 0)
    }
}

/// A `connectionRef` as an id; `None` when it is not one.
fn parse_ref(connection_ref: &str) -> Option<Uuid> {
    Uuid::parse_str(connection_ref.trim()).ok()
}

fn parse_spec(json: &str) -> Result<TouchpointSpec, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::invalid_row("touchpoints", error))
}

fn rows_to_touchpoints(
    rows: Result<Vec<touchpoint::Model>, DbErr>,
) -> Result<Vec<Touchpoint>, StoreError> {
    rows.map_err(StoreError::read("touchpoints"))?
        .into_iter()
        .map(Touchpoint::try_from)
        .collect()
}

/// Loads a touchpoint for update (`FOR UPDATE` on PostgreSQL; SQLite's write transaction
/// already excludes other writers).
async fn lock_touchpoint(
    txn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<touchpoint::Model, StoreError> {
    touchpoint::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(StoreError::SaveTouchpoint)?
        .ok_or(StoreError::TouchpointNotFound)
}

/// Fails with `EndpointTaken` when a touchpoint other than `except` uses `endpoint` in its
/// draft or its published spec.
pub(crate) async fn ensure_endpoint_free(
    txn: &impl ConnectionTrait,
    endpoint: &str,
    except: Option<Uuid>,
) -> Result<(), StoreError> {
    let mut query = touchpoint::Entity::find().filter(
        Condition::any()
            .add(touchpoint::Column::Endpoint.eq(endpoint))
            .add(touchpoint::Column::PublishedEndpoint.eq(endpoint)),
    );
    if let Some(id) = except {
        query = query.filter(touchpoint::Column::Id.ne(id));
    }
    let taken = query
        .one(txn)
        .await
        .map_err(StoreError::SaveTouchpoint)?
        .is_some();
    if taken {
        Err(StoreError::EndpointTaken {
            endpoint: endpoint.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// A save error; a unique violation is a concurrent writer that took the endpoint first.
pub(crate) fn save_error(error: DbErr, endpoint: &str) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::EndpointTaken {
            endpoint: endpoint.to_owned(),
        }
    } else {
        StoreError::SaveTouchpoint(error)
    }
}
