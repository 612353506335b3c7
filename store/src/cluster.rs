//! Connections and touchpoints that live as Kubernetes resources.
//!
//! Two writers keep them here, keyed by the resources' Hookplane ids
//! (`hookplane_crds::identity`), so events, logs and the backlog are keyed the same way in the
//! database and in the cluster:
//!
//! - the data plane ([`Store::apply_external`]) upserts what its rendered configuration runs;
//! - the API in cluster mode ([`Store::mirror_connection`], [`Store::mirror_touchpoint`])
//!   mirrors every resource into the portal model, with the resource's name and whether it is
//!   managed outside the portal.
//!
//! Both follow one rule for a touchpoint's published spec: a configuration older than what is
//! recorded (a lower published generation) changes nothing, so a pod that restarts on an old
//! file never rolls a publish back; the same generation with another spec (auto-sync turned
//! on or off, a kubectl edit) replaces it. The draft follows the published spec unless the
//! draft is ahead of it (a portal edit not yet published), or always when the resource is
//! managed outside the portal (the cluster wins: the portal cannot edit such a touchpoint).

use hookplane_crds::{ConnectionSpec, TouchpointSpec};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Store, StoreError,
    connections::spec_json,
    entity::{connection, organization, touchpoint},
    touchpoints::{ensure_endpoint_free, save_error},
};

/// The Kubernetes resource a connection or touchpoint is mirrored from or published to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeResource {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its spec is owned by a field manager other than the API (kubectl, a GitOps tool).
    pub managed_outside: bool,
}

impl KubeResource {
    pub(crate) fn from_columns(
        namespace: Option<String>,
        name: Option<String>,
        managed_outside: bool,
    ) -> Option<Self> {
        Some(Self {
            namespace: namespace?,
            name: name?,
            managed_outside,
        })
    }
}

/// A published touchpoint as a rendered configuration or a resource gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalTouchpoint {
    /// Its Hookplane id.
    pub id: Uuid,
    /// The published generation.
    pub generation: i64,
    /// The published spec.
    pub spec: TouchpointSpec,
}

/// A touchpoint [`Store::apply_external`] left out: another touchpoint holds its endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clash {
    /// The touchpoint left out.
    pub id: Uuid,
    /// The endpoint another touchpoint holds.
    pub endpoint: String,
}

/// Whether a mirror call changed the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mirrored {
    /// The row was created.
    Created,
    /// The row changed.
    Updated,
    /// The row already said this.
    Unchanged,
}

impl Store {
    /// Upsert a connection and its published touchpoints, in one transaction (the data plane
    /// loading its rendered configuration). Touchpoints not listed are left alone (the
    /// operator deletes resources; their events stay until retention, or until the API in
    /// cluster mode sees the resource gone).
    ///
    /// A touchpoint whose endpoint another touchpoint holds (a portal draft, say) is left
    /// out, and returned, rather than failing the rest: one clash must not keep a whole
    /// connection's receivers from starting.
    pub async fn apply_external(
        &self,
        connection_id: Uuid,
        connection_spec: &ConnectionSpec,
        organization: &str,
        touchpoints: &[ExternalTouchpoint],
    ) -> Result<Vec<Clash>, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        upsert_connection(
            &txn,
            self,
            connection_id,
            connection_spec,
            organization,
            None,
        )
        .await?;
        let mut clashes = Vec::new();
        for external in touchpoints {
            let savepoint = txn.begin().await.map_err(StoreError::SaveTouchpoint)?;
            match upsert_touchpoint(&savepoint, self, connection_id, external, None).await {
                Ok(_) => savepoint
                    .commit()
                    .await
                    .map_err(StoreError::SaveTouchpoint)?,
                Err(StoreError::EndpointTaken { endpoint }) => {
                    savepoint
                        .rollback()
                        .await
                        .map_err(StoreError::SaveTouchpoint)?;
                    clashes.push(Clash {
                        id: external.id,
                        endpoint,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        txn.commit().await.map_err(StoreError::SaveTouchpoint)?;
        Ok(clashes)
    }

    /// Mirror a Connection resource: its spec, name and management.
    pub async fn mirror_connection(
        &self,
        id: Uuid,
        spec: &ConnectionSpec,
        resource: &KubeResource,
    ) -> Result<Mirrored, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveConnection)?;
        let mirrored =
            upsert_connection(&txn, self, id, spec, &resource.namespace, Some(resource)).await?;
        txn.commit().await.map_err(StoreError::SaveConnection)?;
        Ok(mirrored)
    }

    /// Mirror a Touchpoint resource of the connection `connection_id` (see the module docs
    /// for what happens to the draft). [`StoreError::EndpointTaken`] when another touchpoint
    /// uses its endpoint; [`StoreError::ConnectionNotFound`] when the connection is not here.
    pub async fn mirror_touchpoint(
        &self,
        connection_id: Uuid,
        touchpoint: &ExternalTouchpoint,
        resource: &KubeResource,
    ) -> Result<Mirrored, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        let exists = connection::Entity::find_by_id(connection_id)
            .one(&txn)
            .await
            .map_err(StoreError::SaveTouchpoint)?
            .is_some();
        if !exists {
            return Err(StoreError::ConnectionNotFound);
        }
        let mirrored =
            upsert_touchpoint(&txn, self, connection_id, touchpoint, Some(resource)).await?;
        txn.commit().await.map_err(StoreError::SaveTouchpoint)?;
        Ok(mirrored)
    }

    /// Record the resource the portal applied for a connection (managed by the portal).
    pub async fn set_connection_resource(
        &self,
        id: Uuid,
        namespace: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        connection::Entity::update_many()
            .col_expr(connection::Column::KubeNamespace, namespace.into())
            .col_expr(connection::Column::KubeName, name.into())
            .col_expr(connection::Column::ManagedOutside, false.into())
            .filter(connection::Column::Id.eq(id))
            .exec(self.db())
            .await
            .map_err(StoreError::SaveConnection)?;
        Ok(())
    }

    /// Record the resource the portal applied for a touchpoint (managed by the portal).
    pub async fn set_touchpoint_resource(
        &self,
        id: Uuid,
        namespace: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        touchpoint::Entity::update_many()
            .col_expr(touchpoint::Column::KubeNamespace, namespace.into())
            .col_expr(touchpoint::Column::KubeName, name.into())
            .col_expr(touchpoint::Column::ManagedOutside, false.into())
            .filter(touchpoint::Column::Id.eq(id))
            .exec(self.db())
            .await
            .map_err(StoreError::SaveTouchpoint)?;
        Ok(())
    }

    /// Delete a connection that no touchpoint refers to; `false` when it does not exist or
    /// still has touchpoints.
    pub async fn delete_unused_connection(&self, id: Uuid) -> Result<bool, StoreError> {
        let txn = self
            .begin_write()
            .await
            .map_err(StoreError::SaveConnection)?;
        let used = touchpoint::Entity::find()
            .filter(touchpoint::Column::ConnectionId.eq(id))
            .one(&txn)
            .await
            .map_err(StoreError::SaveConnection)?
            .is_some();
        if used {
            return Ok(false);
        }
        let deleted = connection::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(StoreError::SaveConnection)?
            .rows_affected
            > 0;
        txn.commit().await.map_err(StoreError::SaveConnection)?;
        Ok(deleted)
    }
}

async fn upsert_connection(
    txn: &DatabaseTransaction,
    store: &Store,
    id: Uuid,
    spec: &ConnectionSpec,
    organization: &str,
    resource: Option<&KubeResource>,
) -> Result<Mirrored, StoreError> {
    let now = store.now();
    let json = spec_json(spec);
    let existing = connection::Entity::find_by_id(id)
        .one(txn)
        .await
        .map_err(StoreError::SaveConnection)?;
    // A connection keeps the organization it has (one created through the API and published
    // to this namespace stays its creator's); one seen first here gets the namespace's.
    let organization_id = match existing.as_ref().and_then(|row| row.organization_id) {
        Some(id) => Some(id),
        None => Some(organization_named(txn, store, organization).await?),
    };
    let mirrored = match existing {
        Some(row)
            if row.spec == json
                && row.organization_id == organization_id
                && resource.is_none_or(|r| same_resource(&row_resource_c(&row), r)) =>
        {
            Mirrored::Unchanged
        }
        Some(row) => {
            let mut update: connection::ActiveModel = row.into();
            update.spec = Set(json);
            update.organization_id = Set(organization_id);
            set_resource_c(&mut update, resource);
            update.updated_at = Set(now);
            update
                .update(txn)
                .await
                .map_err(StoreError::SaveConnection)?;
            Mirrored::Updated
        }
        None => {
            let mut row = connection::ActiveModel {
                id: Set(id),
                spec: Set(json),
                paused: Set(false),
                kube_namespace: Set(None),
                kube_name: Set(None),
                managed_outside: Set(false),
                organization_id: Set(organization_id),
                created_at: Set(now),
                updated_at: Set(now),
            };
            set_resource_c(&mut row, resource);
            row.insert(txn).await.map_err(StoreError::SaveConnection)?;
            Mirrored::Created
        }
    };
    Ok(mirrored)
}

async fn upsert_touchpoint(
    txn: &DatabaseTransaction,
    store: &Store,
    connection_id: Uuid,
    external: &ExternalTouchpoint,
    resource: Option<&KubeResource>,
) -> Result<Mirrored, StoreError> {
    let now = store.now();
    let mut spec = external.spec.clone();
    spec.connection_ref = connection_id.to_string();
    let endpoint = spec.source.endpoint.clone();
    let json = spec_json(&spec);
    let generation = external.generation;
    // Locked until the commit (PostgreSQL; SQLite's write transaction already excludes other
    // writers): a draft edit committed between this read and the write below would otherwise
    // be overwritten with the resource's older spec.
    let row = touchpoint::Entity::find_by_id(external.id)
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(StoreError::SaveTouchpoint)?;
    let Some(row) = row else {
        ensure_endpoint_free(txn, &endpoint, Some(external.id)).await?;
        let mut row = touchpoint::ActiveModel {
            id: Set(external.id),
            connection_id: Set(connection_id),
            spec: Set(json.clone()),
            endpoint: Set(endpoint.clone()),
            generation: Set(generation),
            published_spec: Set(Some(json)),
            published_endpoint: Set(Some(endpoint.clone())),
            published_generation: Set(Some(generation)),
            published_at: Set(Some(now)),
            auto_sync: Set(spec.auto_sync),
            kube_namespace: Set(None),
            kube_name: Set(None),
            managed_outside: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        };
        set_resource_t(&mut row, resource);
        row.insert(txn)
            .await
            .map_err(|error| save_error(error, &endpoint))?;
        return Ok(Mirrored::Created);
    };

    let stale = row.published_generation.is_some_and(|g| g > generation);
    let same = row.published_generation == Some(generation)
        && row.published_spec.as_deref() == Some(json.as_str());
    let resource_same = resource.is_none_or(|r| same_resource(&row_resource_t(&row), r));
    let cluster_wins = resource.is_some_and(|r| r.managed_outside);
    let draft_stale = cluster_wins && row.spec != json;
    if (stale || same) && resource_same && !draft_stale {
        return Ok(Mirrored::Unchanged);
    }
    let mut update: touchpoint::ActiveModel = row.clone().into();
    set_resource_t(&mut update, resource);
    if !stale {
        ensure_endpoint_free(txn, &endpoint, Some(external.id)).await?;
        update.connection_id = Set(connection_id);
        update.published_spec = Set(Some(json.clone()));
        update.published_endpoint = Set(Some(endpoint.clone()));
        update.published_generation = Set(Some(generation));
        update.published_at = Set(Some(now));
        update.auto_sync = Set(spec.auto_sync);
        if cluster_wins || row.generation <= generation {
            update.spec = Set(json);
            update.endpoint = Set(endpoint.clone());
            update.generation = Set(generation);
        } else {
            // The draft is ahead: keep it, with the auto-sync switch the cluster runs.
            let mut draft: TouchpointSpec = serde_json::from_str(&row.spec)
                .map_err(|error| StoreError::invalid_row("touchpoints", error))?;
            draft.auto_sync = spec.auto_sync;
            update.spec = Set(spec_json(&draft));
        }
    }
    update.updated_at = Set(now);
    update
        .update(txn)
        .await
        .map_err(|error| save_error(error, &endpoint))?;
    Ok(Mirrored::Updated)
}

fn same_resource(current: &Option<KubeResource>, wanted: &KubeResource) -> bool {
    current.as_ref() == Some(wanted)
}

fn row_resource_c(row: &connection::Model) -> Option<KubeResource> {
    KubeResource::from_columns(
        row.kube_namespace.clone(),
        row.kube_name.clone(),
        row.managed_outside,
    )
}

fn row_resource_t(row: &touchpoint::Model) -> Option<KubeResource> {
    KubeResource::from_columns(
        row.kube_namespace.clone(),
        row.kube_name.clone(),
        row.managed_outside,
    )
}

/// The id of the organization with this slug, created (with no registered URL) if missing:
/// in cluster mode a namespace is an organization.
async fn organization_named(
    txn: &DatabaseTransaction,
    store: &Store,
    slug: &str,
) -> Result<Uuid, StoreError> {
    if let Some(row) = organization::Entity::find()
        .filter(organization::Column::Slug.eq(slug))
        .one(txn)
        .await
        .map_err(StoreError::SaveOrganization)?
    {
        return Ok(row.id);
    }
    let now = store.now();
    let id = Uuid::now_v7();
    organization::ActiveModel {
        id: Set(id),
        slug: Set(slug.to_owned()),
        registered_url: Set(String::new()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await
    .map_err(StoreError::SaveOrganization)?;
    Ok(id)
}

fn set_resource_c(row: &mut connection::ActiveModel, resource: Option<&KubeResource>) {
    if let Some(resource) = resource {
        row.kube_namespace = Set(Some(resource.namespace.clone()));
        row.kube_name = Set(Some(resource.name.clone()));
        row.managed_outside = Set(resource.managed_outside);
    }
}

fn set_resource_t(row: &mut touchpoint::ActiveModel, resource: Option<&KubeResource>) {
    if let Some(resource) = resource {
        row.kube_namespace = Set(Some(resource.namespace.clone()));
        row.kube_name = Set(Some(resource.name.clone()));
        row.managed_outside = Set(resource.managed_outside);
    }
}
