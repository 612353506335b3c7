//! Touchpoints defined outside the portal: on Kubernetes, Touchpoint and Connection resources
//! rendered by the operator into a data plane's configuration. The data plane upserts them
//! here under their given ids (the resources' `metadata.uid`), already published, so events,
//! logs and the backlog are keyed the same way in the database and in the cluster.

use hookplane_crds::{ConnectionSpec, TouchpointSpec};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use uuid::Uuid;

use crate::{
    Store, StoreError,
    connections::spec_json,
    entity::{connection, touchpoint},
    touchpoints::{ensure_endpoint_free, save_error},
};

/// A published touchpoint as a rendered configuration gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalTouchpoint {
    /// Its id (on Kubernetes, the resource's uid).
    pub id: Uuid,
    /// The published generation (the resource's `metadata.generation`).
    pub generation: i64,
    /// The published spec.
    pub spec: TouchpointSpec,
}

impl Store {
    /// Upsert a connection and its published touchpoints, in one transaction. A touchpoint's
    /// draft and published spec both become `spec`, its `auto_sync` follows `spec.autoSync`,
    /// and `spec.connectionRef` is stored as the connection's id. Touchpoints not listed are
    /// left alone (the operator deletes resources; their events stay until retention).
    pub async fn apply_external(
        &self,
        connection_id: Uuid,
        connection_spec: &ConnectionSpec,
        touchpoints: &[ExternalTouchpoint],
    ) -> Result<(), StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        let now = self.now();
        let existing = connection::Entity::find_by_id(connection_id)
            .one(&txn)
            .await
            .map_err(StoreError::SaveConnection)?;
        match existing {
            Some(row) => {
                let mut update: connection::ActiveModel = row.into();
                update.spec = Set(spec_json(connection_spec));
                update.updated_at = Set(now);
                update
                    .update(&txn)
                    .await
                    .map_err(StoreError::SaveConnection)?;
            }
            None => {
                connection::ActiveModel {
                    id: Set(connection_id),
                    spec: Set(spec_json(connection_spec)),
                    paused: Set(false),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await
                .map_err(StoreError::SaveConnection)?;
            }
        }
        for external in touchpoints {
            let mut spec = external.spec.clone();
            spec.connection_ref = connection_id.to_string();
            let endpoint = spec.source.endpoint.clone();
            ensure_endpoint_free(&txn, &endpoint, Some(external.id)).await?;
            let json = spec_json(&spec);
            let row = touchpoint::Entity::find_by_id(external.id)
                .one(&txn)
                .await
                .map_err(StoreError::SaveTouchpoint)?;
            let result = match row {
                Some(row)
                    if row.published_generation == Some(external.generation)
                        && row.published_spec.as_deref() == Some(json.as_str()) =>
                {
                    continue;
                }
                Some(row) => {
                    let mut update: touchpoint::ActiveModel = row.into();
                    update.connection_id = Set(connection_id);
                    update.spec = Set(json.clone());
                    update.endpoint = Set(endpoint.clone());
                    update.generation = Set(external.generation);
                    update.published_spec = Set(Some(json));
                    update.published_endpoint = Set(Some(endpoint.clone()));
                    update.published_generation = Set(Some(external.generation));
                    update.published_at = Set(Some(now));
                    update.auto_sync = Set(spec.auto_sync);
                    update.updated_at = Set(now);
                    update.update(&txn).await.map(drop)
                }
                None => touchpoint::ActiveModel {
                    id: Set(external.id),
                    connection_id: Set(connection_id),
                    spec: Set(json.clone()),
                    endpoint: Set(endpoint.clone()),
                    generation: Set(external.generation),
                    published_spec: Set(Some(json)),
                    published_endpoint: Set(Some(endpoint.clone())),
                    published_generation: Set(Some(external.generation)),
                    published_at: Set(Some(now)),
                    auto_sync: Set(spec.auto_sync),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await
                .map(drop),
            };
            result.map_err(|error| save_error(error, &endpoint))?;
        }
        txn.commit().await.map_err(StoreError::SaveTouchpoint)
    }
}
