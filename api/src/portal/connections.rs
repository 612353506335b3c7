//! Organizations (their registered URL) and connections.

use hookplane_crds::ConnectionSpec;
use hookplane_store::{Connection, Organization};
use url::Url;
use uuid::Uuid;

use super::{Portal, PortalError, PortalResult, SecretWrites};

impl Portal {
    /// Register an organization's public base URL (the domain part of every endpoint URL):
    /// the organization `slug` is created the first time, and only its URL changes after. A
    /// slug never changes, since the endpoint URLs given to source apps contain it. Who may
    /// create or change which organization is the caller's to decide.
    pub async fn register_url(&self, organization: &str, url: &str) -> PortalResult<Organization> {
        let slug = organization.trim();
        let slug_ok = (1..=63).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if !slug_ok {
            return Err(PortalError::invalid(
                "INVALID_ORGANIZATION",
                "the organization is 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ));
        }
        let url = Url::parse(url.trim())
            .ok()
            .filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
            })
            .ok_or_else(|| {
                PortalError::invalid(
                    "INVALID_URL",
                    "the registered URL must be an absolute http(s) URL without query or fragment",
                )
            })?;
        let registered = url.as_str().trim_end_matches('/');
        let organization = match self.store.organization_by_slug(slug).await? {
            Some(existing) => {
                self.store
                    .set_registered_url(existing.id, registered)
                    .await?
            }
            None => match self.store.create_organization(slug, registered).await {
                Ok(created) => {
                    tracing::info!(organization = slug, "organization created");
                    created
                }
                // Created by a concurrent call: register the URL on it.
                Err(hookplane_store::StoreError::OrganizationTaken { .. }) => {
                    let existing = self
                        .store
                        .organization_by_slug(slug)
                        .await?
                        .ok_or(hookplane_store::StoreError::OrganizationNotFound)?;
                    self.store
                        .set_registered_url(existing.id, registered)
                        .await?
                }
                Err(error) => return Err(error.into()),
            },
        };
        Ok(organization)
    }

    /// Create a connection of an organization: a source app and a destination app, with its
    /// secret values.
    pub async fn create_connection(
        &self,
        organization: Uuid,
        spec: ConnectionSpec,
        secrets: SecretWrites,
    ) -> PortalResult<Connection> {
        hookplane_validation::validate_connection(&spec)?;
        let connection = self.store.create_connection(organization, spec).await?;
        if let Err(error) = self.write_secrets(secrets).await {
            // Nothing refers to the new connection yet: take it back.
            self.store.delete_unused_connection(connection.id).await?;
            return Err(error);
        }
        Ok(connection)
    }

    /// Pause or resume deliveries to a connection's destination. While paused, webhooks are
    /// still received and stored; resuming drains them at the configured rate.
    pub async fn set_connection_paused(&self, id: Uuid, paused: bool) -> PortalResult<Connection> {
        let connection = self.store.set_connection_paused(id, paused).await?;
        let state = if paused { "paused" } else { "resumed" };
        for touchpoint in self.store.touchpoints(Some(id)).await? {
            self.log(
                touchpoint.id,
                format!("deliveries {state} for the connection"),
            )
            .await;
        }
        // Every touchpoint of the connection changes: reload them all.
        self.runtime.reload().await?;
        self.wake_worker.notify_one();
        Ok(connection)
    }
}
