//! The running configuration: every published touchpoint, validated and compiled.
//!
//! "Publish" makes a touchpoint's spec the running one. The receiver and the worker read an
//! immutable [`Snapshot`] that is swapped as a whole after any change, so a request or an event
//! sees one consistent generation of a touchpoint and nothing restarts.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{Arc, RwLock},
};

use hookplane_crds::{DestinationLimits, SecretKeyRef};
use hookplane_sources::{SourceApp, VerifierConfig};
use hookplane_store::{Store, StoreError};
use tracing::warn;
use uuid::Uuid;

use crate::{
    schemas::SourceSchema,
    spec::{self, ValidatedTouchpoint},
    sync::auth::ConnectionAuth,
};

/// A published touchpoint as it runs.
pub struct Running {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub generation: i64,
    pub auto_sync: bool,
    pub touchpoint: ValidatedTouchpoint,
    /// The source app that verifies, parses and acknowledges this endpoint's webhooks.
    pub app: &'static dyn SourceApp,
    /// The verification settings with their secret values resolved.
    pub verifier: VerifierConfig,
    /// The source schema payloads are validated against, if the touchpoint names one.
    pub schema: Option<SourceSchema>,
}

/// A connection's delivery settings as they run: its limits and its destination credentials
/// with their secrets resolved.
#[derive(Debug, PartialEq)]
pub struct RunningConnection {
    pub id: Uuid,
    pub limits: DestinationLimits,
    pub auth: ConnectionAuth,
}

/// One consistent view of the organization and its published touchpoints.
#[derive(Default)]
pub struct Snapshot {
    /// The organization's slug (the `{org}` part of endpoint URLs), once a URL is registered.
    pub organization: Option<String>,
    by_endpoint: HashMap<String, Arc<Running>>,
    by_id: HashMap<Uuid, Arc<Running>>,
    /// The connections of published touchpoints.
    connections: HashMap<Uuid, Arc<RunningConnection>>,
    /// Draft endpoints of touchpoints that are not published under that endpoint.
    unpublished: HashMap<String, Uuid>,
}

/// What an endpoint path leads to.
pub enum Route<'a> {
    Published(&'a Arc<Running>),
    Unpublished(Uuid),
    Unknown,
}

impl Snapshot {
    pub fn route(&self, organization: &str, endpoint: &str) -> Route<'_> {
        if self.organization.as_deref() != Some(organization) {
            return Route::Unknown;
        }
        if let Some(running) = self.by_endpoint.get(endpoint) {
            return Route::Published(running);
        }
        match self.unpublished.get(endpoint) {
            Some(id) => Route::Unpublished(*id),
            None => Route::Unknown,
        }
    }

    /// The touchpoint (published or draft) an endpoint belongs to, for logging rejections.
    pub fn touchpoint_at(&self, organization: &str, endpoint: &str) -> Option<Uuid> {
        match self.route(organization, endpoint) {
            Route::Published(running) => Some(running.id),
            Route::Unpublished(id) => Some(id),
            Route::Unknown => None,
        }
    }

    pub fn touchpoint(&self, id: Uuid) -> Option<&Arc<Running>> {
        self.by_id.get(&id)
    }

    /// Every published touchpoint.
    pub fn touchpoints(&self) -> impl Iterator<Item = &Arc<Running>> {
        self.by_id.values()
    }

    /// The connections of published touchpoints.
    pub fn connections(&self) -> impl Iterator<Item = &Arc<RunningConnection>> {
        self.connections.values()
    }

    /// The delivery settings of a published touchpoint's connection.
    pub fn connection(&self, id: Uuid) -> Option<&Arc<RunningConnection>> {
        self.connections.get(&id)
    }
}

/// Holds the current snapshot and rebuilds it from the store on demand.
pub struct Runtime {
    store: Store,
    current: RwLock<Arc<Snapshot>>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Runtime {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            current: RwLock::new(Arc::new(Snapshot::default())),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Rebuild the snapshot from the store. Reloads are serialized so an older rebuild never
    /// replaces a newer one.
    #[tracing::instrument(skip(self))]
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _guard = self.reload_lock.lock().await;
        let organization = self.store.organization().await?.map(|org| org.slug);
        let connections: HashMap<Uuid, _> = self
            .store
            .connections()
            .await?
            .into_iter()
            .map(|connection| (connection.id, connection.spec))
            .collect();
        let mut snapshot = Snapshot {
            organization,
            ..Snapshot::default()
        };
        for touchpoint in self.store.touchpoints(None).await? {
            let published = touchpoint.published.as_ref();
            let published_endpoint = published.map(|p| p.spec.source.endpoint.as_str());
            if published_endpoint != Some(touchpoint.spec.source.endpoint.as_str()) {
                snapshot
                    .unpublished
                    .insert(touchpoint.spec.source.endpoint.clone(), touchpoint.id);
            }
            let Some(published) = published else { continue };
            let Some(connection) = connections.get(&touchpoint.connection_id) else {
                warn!(touchpoint = %touchpoint.id, "published touchpoint has no connection");
                continue;
            };
            let validated = match spec::validate(&published.spec, connection) {
                Ok(validated) => validated,
                Err(errors) => {
                    warn!(touchpoint = %touchpoint.id, ?errors, "published spec no longer validates; not running it");
                    continue;
                }
            };
            let Some(app) = hookplane_sources::app(&published.spec.source.app) else {
                warn!(touchpoint = %touchpoint.id, app = %published.spec.source.app, "published touchpoint has an unknown source app; not running it");
                continue;
            };
            let verification = published
                .spec
                .source
                .verification
                .clone()
                .unwrap_or_default();
            let mut secrets = HashMap::new();
            for reference in verification.secret_refs() {
                if let Some(value) = self.store.secret(&reference.name, &reference.key).await? {
                    secrets.insert(reference.clone(), value.into_bytes());
                }
            }
            let verifier =
                VerifierConfig::resolve_with(verification, |reference: &SecretKeyRef| {
                    secrets.get(reference).cloned()
                });
            let schema = match published.spec.source.schema.as_deref() {
                None => None,
                Some(name) => match self.store.schema(name).await? {
                    Some(stored) => match SourceSchema::compile(name, &stored.document) {
                        Ok(schema) => Some(schema),
                        Err(error) => {
                            warn!(touchpoint = %touchpoint.id, schema = name, %error, "the source schema does not compile; not running the touchpoint");
                            continue;
                        }
                    },
                    None => {
                        warn!(touchpoint = %touchpoint.id, schema = name, "the source schema is missing; not running the touchpoint");
                        continue;
                    }
                },
            };
            if let Entry::Vacant(entry) = snapshot.connections.entry(touchpoint.connection_id) {
                let running = self
                    .running_connection(touchpoint.connection_id, connection)
                    .await?;
                entry.insert(Arc::new(running));
            }
            let running = Arc::new(Running {
                id: touchpoint.id,
                connection_id: touchpoint.connection_id,
                generation: published.generation,
                auto_sync: touchpoint.auto_sync,
                touchpoint: validated,
                app,
                verifier,
                schema,
            });
            snapshot
                .by_endpoint
                .insert(published.spec.source.endpoint.clone(), Arc::clone(&running));
            snapshot.by_id.insert(touchpoint.id, running);
        }
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    /// A connection's limits and credentials, its secrets read from the store. A missing
    /// secret is recorded in the credentials' problems (its deliveries fail until it exists).
    async fn running_connection(
        &self,
        id: Uuid,
        spec: &hookplane_crds::ConnectionSpec,
    ) -> Result<RunningConnection, StoreError> {
        let mut secrets = HashMap::new();
        for reference in spec.secret_refs() {
            if let Some(value) = self.store.secret(&reference.name, &reference.key).await? {
                secrets.insert(reference.clone(), value);
            }
        }
        Ok(RunningConnection {
            id,
            limits: spec.limits.clone(),
            auth: ConnectionAuth::resolve(spec, |reference| secrets.get(reference).cloned()),
        })
    }
}
