//! Touchpoints: create and edit drafts, publish, switch Auto-sync, delete.
//!
//! A draft is checked with `hookplane_validation::check_draft`; publishing needs the full
//! verdict (`validate_touchpoint`: verification complete too) and the source schema it names.
//! A touchpoint whose resource is managed outside the portal (kubectl, GitOps) is read-only
//! here. In cluster mode the resources are applied before the database changes.

use hookplane_crds::TouchpointSpec;
use hookplane_store::{Connection, Touchpoint};
use hookplane_validation::{
    ValidatedConnection, check_draft, validate_connection, validate_touchpoint,
};
use uuid::Uuid;

use super::{Portal, PortalError, PortalResult, SecretWrites, secrets::cluster_error};
use crate::cluster::publish::{Publication, PublishError};

impl Portal {
    /// Create a touchpoint draft (all wizard steps at once), with its secret values.
    pub async fn create_touchpoint(
        &self,
        spec: TouchpointSpec,
        secrets: SecretWrites,
    ) -> PortalResult<Touchpoint> {
        let connection_id = Uuid::parse_str(&spec.connection_ref)
            .map_err(|_| PortalError::invalid("INVALID_ID", "connectionRef is not an id"))?;
        let connection = self
            .store
            .connection(connection_id)
            .await?
            .ok_or_else(|| PortalError::connection_not_found(connection_id))?;
        check_draft(&spec, &validated(&connection)?)?;
        let touchpoint = self.store.create_touchpoint(spec).await?;
        if let Err(error) = self.write_secrets(secrets).await {
            // Nothing was received for the new draft yet: take it back.
            self.store.delete_touchpoint(touchpoint.id).await?;
            return Err(error);
        }
        // The receiver knows draft endpoints too, to answer TOUCHPOINT_NOT_PUBLISHED.
        self.runtime.reload_touchpoint(touchpoint.id).await?;
        Ok(touchpoint)
    }

    /// Edit a touchpoint's draft: `edit` changes a copy of the current draft and adds the
    /// secret values it brings. What runs changes only when it is published again.
    pub async fn update_touchpoint(
        &self,
        id: Uuid,
        edit: impl FnOnce(&mut TouchpointSpec, &mut SecretWrites),
    ) -> PortalResult<Touchpoint> {
        let (current, connection) = self.touchpoint_and_connection(id).await?;
        ensure_portal_managed(&current)?;
        let mut spec = current.spec.clone();
        let mut secrets = SecretWrites::default();
        edit(&mut spec, &mut secrets);
        check_draft(&spec, &validated(&connection)?)?;
        // The Secret keeps its name across edits, so the draft row cannot be taken back like a
        // new one: in cluster mode, where writing it is the likelier failure, it goes first.
        let touchpoint = if self.cluster.is_some() {
            self.write_secrets(secrets).await?;
            self.store.update_touchpoint(id, spec).await?
        } else {
            let touchpoint = self.store.update_touchpoint(id, spec).await?;
            self.write_secrets(secrets).await?;
            touchpoint
        };
        self.runtime.reload_touchpoint(id).await?;
        Ok(touchpoint)
    }

    /// Make the draft the running spec ("Publish"): the receiver and worker pick it up at
    /// once, without a restart.
    pub async fn publish_touchpoint(&self, id: Uuid) -> PortalResult<Touchpoint> {
        let (current, connection) = self.touchpoint_and_connection(id).await?;
        validate_touchpoint(&current.spec, &validated(&connection)?)?;
        if let Some(name) = current.spec.source.schema.as_deref()
            && match connection.organization_id {
                Some(organization) => self.store.schema(organization, name).await?.is_none(),
                None => true,
            }
        {
            return Err(PortalError::invalid(
                "SCHEMA_NOT_FOUND",
                format!(
                    "source.schema names {name:?}, which is not stored (importSchema or inferSchema)"
                ),
            ));
        }
        ensure_portal_managed(&current)?;
        if self.cluster.is_some() {
            self.publish_to_cluster(&current, &connection, &current.spec, current.generation)
                .await?;
        }
        let touchpoint = self.store.publish_touchpoint(id).await?;
        self.runtime.reload_touchpoint(id).await?;
        let to = match &touchpoint.resource {
            Some(resource) => format!(" as Touchpoint {}/{}", resource.namespace, resource.name),
            None => String::new(),
        };
        tracing::info!(
            touchpoint = %id,
            endpoint = %touchpoint.spec.source.endpoint,
            "published {:?} generation {}{to}",
            touchpoint.spec.name,
            touchpoint.generation
        );
        self.log(
            id,
            format!("published generation {}{to}", touchpoint.generation),
        )
        .await;
        self.wake_worker.notify_one();
        Ok(touchpoint)
    }

    /// Turn Auto-sync on or off. Off: events wait as UNPROCESSED; on: they are processed.
    pub async fn set_auto_sync(&self, id: Uuid, enabled: bool) -> PortalResult<Touchpoint> {
        let (current, connection) = self.touchpoint_and_connection(id).await?;
        ensure_portal_managed(&current)?;
        if let (true, Some(published)) = (self.cluster.is_some(), &current.published)
            && current.resource.is_some()
        {
            // The running spec lives in the resource: switch it there, same generation.
            let mut spec = published.spec.clone();
            spec.auto_sync = enabled;
            self.publish_to_cluster(&current, &connection, &spec, published.generation)
                .await?;
        }
        let touchpoint = self.store.set_auto_sync(id, enabled).await?;
        self.runtime.reload_touchpoint(id).await?;
        let state = if enabled { "on" } else { "off" };
        self.log(id, format!("auto-sync turned {state}")).await;
        self.wake_worker.notify_one();
        Ok(touchpoint)
    }

    /// Delete a touchpoint with its buckets.
    pub async fn delete_touchpoint(&self, id: Uuid) -> PortalResult<()> {
        let current = self
            .store
            .touchpoint(id)
            .await?
            .ok_or_else(|| PortalError::touchpoint_not_found(id))?;
        ensure_portal_managed(&current)?;
        if let (Some(cluster), Some(resource)) = (&self.cluster, &current.resource) {
            cluster
                .delete_touchpoint(&resource.name)
                .await
                .map_err(cluster_error)?;
        }
        // The mirror may have deleted it first, once the resource was gone.
        self.store.delete_touchpoint(id).await?;
        self.runtime.reload_touchpoint(id).await?;
        Ok(())
    }

    /// A touchpoint and its connection, or the error naming whichever is missing.
    pub(super) async fn touchpoint_and_connection(
        &self,
        id: Uuid,
    ) -> PortalResult<(Touchpoint, Connection)> {
        let touchpoint = self
            .store
            .touchpoint(id)
            .await?
            .ok_or_else(|| PortalError::touchpoint_not_found(id))?;
        let connection = self
            .store
            .connection(touchpoint.connection_id)
            .await?
            .ok_or_else(|| PortalError::connection_not_found(touchpoint.connection_id))?;
        Ok((touchpoint, connection))
    }

    /// Apply a touchpoint's resources with `spec` at `generation` and record their names. A
    /// Connection managed outside the portal is referenced, never applied over.
    async fn publish_to_cluster(
        &self,
        touchpoint: &Touchpoint,
        connection: &Connection,
        spec: &TouchpointSpec,
        generation: i64,
    ) -> PortalResult<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let published = cluster
            .publish(Publication {
                connection_id: connection.id,
                connection_spec: &connection.spec,
                connection_name: connection.resource.as_ref().map(|r| r.name.as_str()),
                apply_connection: !connection
                    .resource
                    .as_ref()
                    .is_some_and(|r| r.managed_outside),
                touchpoint_id: touchpoint.id,
                touchpoint_spec: spec,
                touchpoint_name: touchpoint.resource.as_ref().map(|r| r.name.as_str()),
                generation,
            })
            .await
            .map_err(|error| match error {
                PublishError::NameTaken { .. } => {
                    PortalError::invalid("RESOURCE_NAME_TAKEN", error.to_string())
                }
                PublishError::Cluster(error) => cluster_error(error),
            })?;
        if connection.resource.is_none() {
            self.store
                .set_connection_resource(connection.id, cluster.namespace(), &published.connection)
                .await?;
        }
        self.store
            .set_touchpoint_resource(touchpoint.id, cluster.namespace(), &published.touchpoint)
            .await?;
        Ok(())
    }
}

/// The stored connection through the one validation.
fn validated(connection: &Connection) -> PortalResult<ValidatedConnection> {
    Ok(validate_connection(&connection.spec)?)
}

/// A touchpoint whose resource is applied outside the portal is read-only here.
fn ensure_portal_managed(touchpoint: &Touchpoint) -> PortalResult<()> {
    match &touchpoint.resource {
        Some(resource) if resource.managed_outside => Err(PortalError::invalid(
            "MANAGED_OUTSIDE_PORTAL",
            format!(
                "touchpoint {:?} is the Touchpoint resource {}/{}, managed outside the portal (kubectl or GitOps); change it there",
                touchpoint.spec.name, resource.namespace, resource.name
            ),
        )),
        _ => Ok(()),
    }
}
