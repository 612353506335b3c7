//! The running configuration: every published touchpoint, validated and compiled.
//!
//! "Publish" makes a touchpoint's spec the running one. The receiver and the worker read an
//! immutable [`Snapshot`] that is swapped as a whole after any change, so a request or an event
//! sees one consistent generation of a touchpoint and nothing restarts.
//!
//! The snapshot comes from the portal model in the store (`hookplane serve`), or from a
//! configuration file the operator rendered for one connection (`hookplane receiver` and
//! `hookplane worker` on Kubernetes), which is reloaded when the file changes.

use std::{
    collections::{HashMap, hash_map::Entry},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use hookplane_crds::{
    ConnectionSpec, DestinationLimits, HeaderSpec, SecretKeyRef, TouchpointSpec,
    config::{FORMAT_VERSION, RenderedConfig},
};
use hookplane_mapping::{Limits, Sandbox};
use hookplane_sources::{Redactor, SourceApp, VerifierConfig};
use hookplane_store::{ClaimFilter, ExternalTouchpoint, Store, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use hookplane_validation::{
    ValidatedConnection, ValidatedTouchpoint, validate_connection, validate_touchpoint,
};

use crate::{schemas::SourceSchema, sync::auth::ConnectionAuth};

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
    /// Finds those secrets in what a delivery carried, to keep them out of the store.
    pub redactor: Redactor,
    /// The source schema payloads are validated against, if the touchpoint names one.
    pub schema: Option<SourceSchema>,
    /// The limits its mapping, filter and ordering key run under: its own, else the
    /// instance's defaults, never above the instance's maximum.
    pub limits: Limits,
    /// The slug of its organization: the `{org}` part of its endpoint URL.
    pub organization: Option<String>,
    /// The destination's extra headers with the values of secret ones read (a secret that
    /// is missing leaves its header out, with a warning when the touchpoint starts).
    pub destination_headers: Vec<HeaderSpec>,
}

/// The organization a touchpoint belongs to (its connection's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
}

/// A connection's delivery settings as they run: its limits and its destination credentials
/// with their secrets resolved.
#[derive(Debug, PartialEq)]
pub struct RunningConnection {
    pub id: Uuid,
    pub limits: DestinationLimits,
    pub auth: ConnectionAuth,
}

/// One consistent view of the published touchpoints of every organization. Cloning it copies
/// maps of shared handles, not compiled touchpoints.
#[derive(Clone, Default)]
pub struct Snapshot {
    by_endpoint: HashMap<String, Arc<Running>>,
    by_id: HashMap<Uuid, Arc<Running>>,
    /// The connections of published touchpoints.
    connections: HashMap<Uuid, Arc<RunningConnection>>,
    /// Draft endpoints of touchpoints that are not published under that endpoint, with the
    /// touchpoint and its organization's slug.
    unpublished: HashMap<String, (Uuid, Option<String>)>,
}

/// What an endpoint path leads to.
pub enum Route<'a> {
    Published(&'a Arc<Running>),
    Unpublished(Uuid),
    Unknown,
}

impl Snapshot {
    /// Where `/hooks/{organization}/{endpoint}` leads: only to a touchpoint of that
    /// organization.
    pub fn route(&self, organization: &str, endpoint: &str) -> Route<'_> {
        if let Some(running) = self.by_endpoint.get(endpoint)
            && running.organization.as_deref() == Some(organization)
        {
            return Route::Published(running);
        }
        match self.unpublished.get(endpoint) {
            Some((id, slug)) if slug.as_deref() == Some(organization) => Route::Unpublished(*id),
            _ => Route::Unknown,
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

    fn insert(&mut self, running: Running) {
        let running = Arc::new(running);
        let endpoint = running.touchpoint.spec().source.endpoint.clone();
        self.by_endpoint.insert(endpoint, Arc::clone(&running));
        self.by_id.insert(running.id, running);
    }

    /// Forget a touchpoint (published and draft endpoints), and its connection's settings when
    /// no other published touchpoint uses them.
    fn remove(&mut self, id: Uuid) {
        if let Some(running) = self.by_id.remove(&id) {
            self.by_endpoint.retain(|_, other| other.id != id);
            let connection = running.connection_id;
            if !self.by_id.values().any(|r| r.connection_id == connection) {
                self.connections.remove(&connection);
            }
        }
        self.unpublished.retain(|_, (other, _)| *other != id);
    }
}

/// Where the running configuration comes from.
pub enum Source {
    /// The portal model in the store (`hookplane serve`): published touchpoints, secrets
    /// from the write-only secret store.
    Store,
    /// A configuration rendered by the operator (`hookplane receiver|worker --config`): the
    /// touchpoints of one connection, secrets from mounted files, upserted into the store
    /// under their Kubernetes uids.
    Rendered(RenderedSource),
}

/// A rendered configuration file and the directory its secrets are mounted under.
#[derive(Clone, Debug)]
pub struct RenderedSource {
    pub config: PathBuf,
    pub secrets_dir: PathBuf,
    /// The `{org}` part of endpoint URLs; the connection's namespace when not given.
    pub organization: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the configuration {0}")]
    ReadConfig(PathBuf, #[source] std::io::Error),
    #[error("parsing the configuration {0}")]
    ParseConfig(PathBuf, #[source] serde_json::Error),
    #[error("the configuration has format version {0}; this build reads up to {FORMAT_VERSION}")]
    UnsupportedVersion(u32),
    #[error("the configuration's connection uid {0:?} is not a UUID")]
    InvalidUid(String),
}

/// Holds the current snapshot and rebuilds it from its source on demand.
pub struct Runtime {
    store: Store,
    source: Source,
    /// Where touchpoints' jq runs under their limits.
    sandbox: Sandbox,
    current: RwLock<Arc<Snapshot>>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Runtime {
    pub fn new(store: Store, sandbox: Sandbox) -> Self {
        Self::with_source(store, Source::Store, sandbox)
    }

    pub fn with_source(store: Store, source: Source, sandbox: Sandbox) -> Self {
        Self {
            store,
            source,
            sandbox,
            current: RwLock::new(Arc::new(Snapshot::default())),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The evaluator pool every touchpoint's jq runs in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Which events this process's worker may claim: all runnable ones embedded, only its
    /// connection's touchpoints when it runs a rendered configuration.
    pub fn claim_filter(&self) -> ClaimFilter {
        match self.source {
            Source::Store => ClaimFilter::default(),
            Source::Rendered(_) => ClaimFilter {
                only: Some(self.snapshot().by_id.keys().copied().collect()),
                exclude: Vec::new(),
            },
        }
    }

    /// The rendered configuration file, when the runtime runs one.
    pub fn rendered_source(&self) -> Option<&RenderedSource> {
        match &self.source {
            Source::Store => None,
            Source::Rendered(source) => Some(source),
        }
    }

    /// Rebuild the snapshot from its source. Reloads are serialized so an older rebuild
    /// never replaces a newer one.
    #[tracing::instrument(skip(self))]
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _guard = self.reload_lock.lock().await;
        let snapshot = match &self.source {
            Source::Store => self.load_from_store().await?,
            Source::Rendered(source) => self.load_from_rendered(source).await?,
        };
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    async fn load_from_store(&self) -> Result<Snapshot, ReloadError> {
        let tenants: HashMap<Uuid, Tenant> = self
            .store
            .organizations()
            .await?
            .into_iter()
            .map(|org| {
                (
                    org.id,
                    Tenant {
                        id: org.id,
                        slug: org.slug,
                    },
                )
            })
            .collect();
        let connections: HashMap<Uuid, _> = self
            .store
            .connections()
            .await?
            .into_iter()
            .map(|connection| {
                let tenant = connection
                    .organization_id
                    .and_then(|id| tenants.get(&id).cloned());
                (
                    connection.id,
                    (
                        validated_connection(connection.id, &connection.spec),
                        tenant,
                    ),
                )
            })
            .collect();
        let mut snapshot = Snapshot::default();
        for touchpoint in self.store.touchpoints(None).await? {
            let (connection, tenant) = match connections.get(&touchpoint.connection_id) {
                Some((connection, tenant)) => (Some(connection), tenant.as_ref()),
                None => (None, None),
            };
            self.add_from_store(&mut snapshot, touchpoint, connection, tenant)
                .await?;
        }
        Ok(snapshot)
    }

    /// Recompile one touchpoint of the portal model (after a publish, an edit, an auto-sync
    /// switch or a delete) and swap a snapshot with only that touchpoint changed, so a publish
    /// costs one compilation however many touchpoints run. A rendered configuration is
    /// reloaded whole: it is one connection's, and the file is the unit that changes.
    #[tracing::instrument(skip(self))]
    pub async fn reload_touchpoint(&self, id: Uuid) -> Result<(), ReloadError> {
        if !matches!(self.source, Source::Store) {
            return self.reload().await;
        }
        let _guard = self.reload_lock.lock().await;
        let mut snapshot = Snapshot::clone(&self.snapshot());
        snapshot.remove(id);
        if let Some(touchpoint) = self.store.touchpoint(id).await? {
            let (connection, tenant) = match self.store.connection(touchpoint.connection_id).await?
            {
                Some(connection) => {
                    let tenant = match connection.organization_id {
                        Some(id) => self.store.organization(id).await?.map(|org| Tenant {
                            id: org.id,
                            slug: org.slug,
                        }),
                        None => None,
                    };
                    (
                        Some(validated_connection(connection.id, &connection.spec)),
                        tenant,
                    )
                }
                None => (None, None),
            };
            self.add_from_store(
                &mut snapshot,
                touchpoint,
                connection.as_ref(),
                tenant.as_ref(),
            )
            .await?;
        }
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        Ok(())
    }

    /// Add one touchpoint of the portal model: its draft endpoint, and its published spec
    /// compiled when it can run. `connection` is `None` when the row is missing and
    /// `Some(None)` when its spec does not validate.
    async fn add_from_store(
        &self,
        snapshot: &mut Snapshot,
        touchpoint: hookplane_store::Touchpoint,
        connection: Option<&Option<ValidatedConnection>>,
        tenant: Option<&Tenant>,
    ) -> Result<(), ReloadError> {
        let published = touchpoint.published.as_ref();
        let published_endpoint = published.map(|p| p.spec.source.endpoint.as_str());
        if published_endpoint != Some(touchpoint.spec.source.endpoint.as_str()) {
            snapshot.unpublished.insert(
                touchpoint.spec.source.endpoint.clone(),
                (touchpoint.id, tenant.map(|tenant| tenant.slug.clone())),
            );
        }
        let Some(published) = published else {
            return Ok(());
        };
        let Some(connection) = connection else {
            warn!(touchpoint = %touchpoint.id, "published touchpoint has no connection");
            return Ok(());
        };
        let Some(connection) = connection else {
            return Ok(());
        };
        let published = Published {
            id: touchpoint.id,
            connection_id: touchpoint.connection_id,
            generation: published.generation,
            auto_sync: touchpoint.auto_sync,
            spec: &published.spec,
            connection,
            tenant,
        };
        let secrets = SecretReader::Store(&self.store);
        if let Some(running) = self.build(published, &secrets).await? {
            if let Entry::Vacant(entry) = snapshot.connections.entry(running.connection_id) {
                let resolved =
                    running_connection(running.connection_id, connection.spec(), &secrets).await?;
                entry.insert(Arc::new(resolved));
            }
            snapshot.insert(running);
        }
        Ok(())
    }

    async fn load_from_rendered(&self, source: &RenderedSource) -> Result<Snapshot, ReloadError> {
        let json = tokio::fs::read_to_string(&source.config)
            .await
            .map_err(|error| ReloadError::ReadConfig(source.config.clone(), error))?;
        let config = RenderedConfig::from_json(&json)
            .map_err(|error| ReloadError::ParseConfig(source.config.clone(), error))?;
        if config.version > FORMAT_VERSION {
            return Err(ReloadError::UnsupportedVersion(config.version));
        }
        let connection_id = Uuid::parse_str(&config.connection.uid)
            .map_err(|_| ReloadError::InvalidUid(config.connection.uid.clone()))?;
        let mut externals = Vec::with_capacity(config.touchpoints.len());
        for touchpoint in &config.touchpoints {
            match Uuid::parse_str(&touchpoint.uid) {
                Ok(id) => externals.push(ExternalTouchpoint {
                    id,
                    generation: touchpoint.generation,
                    spec: touchpoint.spec.clone(),
                }),
                Err(_) => {
                    warn!(touchpoint = %touchpoint.name, uid = %touchpoint.uid, "a touchpoint uid is not a UUID; skipping it")
                }
            }
        }
        let slug = source
            .organization
            .clone()
            .unwrap_or_else(|| config.connection.namespace.clone());
        let clashes = self
            .store
            .apply_external(connection_id, &config.connection.spec, &slug, &externals)
            .await?;
        // Routes answer under the slug this receiver was given; schemas are looked up in the
        // connection's own organization.
        let tenant = self
            .store
            .connection(connection_id)
            .await?
            .and_then(|connection| connection.organization_id)
            .map(|id| Tenant {
                id,
                slug: slug.clone(),
            });
        for clash in &clashes {
            warn!(touchpoint = %clash.id, endpoint = %clash.endpoint, "another touchpoint holds this endpoint in the database (a portal draft?); not running this one");
        }
        externals.retain(|external| !clashes.iter().any(|clash| clash.id == external.id));
        let mut snapshot = Snapshot::default();
        let secrets = SecretReader::Files(&source.secrets_dir);
        let Some(connection) = validated_connection(connection_id, &config.connection.spec) else {
            return Ok(snapshot);
        };
        let running_connection =
            running_connection(connection_id, &config.connection.spec, &secrets).await?;
        snapshot
            .connections
            .insert(connection_id, Arc::new(running_connection));
        for external in &externals {
            let published = Published {
                id: external.id,
                connection_id,
                generation: external.generation,
                auto_sync: external.spec.auto_sync,
                spec: &external.spec,
                connection: &connection,
                tenant: tenant.as_ref(),
            };
            if let Some(running) = self.build(published, &secrets).await? {
                snapshot.insert(running);
            }
        }
        Ok(snapshot)
    }

    /// Validate and compile one published touchpoint; `None` (with a warning) when it cannot
    /// run.
    async fn build(
        &self,
        published: Published<'_>,
        secrets: &SecretReader<'_>,
    ) -> Result<Option<Running>, StoreError> {
        let id = published.id;
        let spec = published.spec;
        let validated = match validate_touchpoint(spec, published.connection) {
            Ok(validated) => validated,
            Err(errors) => {
                warn!(touchpoint = %id, ?errors, "published spec no longer validates; not running it");
                return Ok(None);
            }
        };
        let Some(app) = hookplane_sources::app(&spec.source.app) else {
            warn!(touchpoint = %id, app = %spec.source.app, "unknown source app; not running it");
            return Ok(None);
        };
        let verification = spec.source.verification.clone().unwrap_or_default();
        let mut values = HashMap::new();
        for reference in verification.secret_refs() {
            if let Some(value) = secrets.read(reference).await? {
                values.insert(reference.clone(), value);
            }
        }
        let verifier = VerifierConfig::resolve_with(verification, |reference: &SecretKeyRef| {
            values.get(reference).cloned()
        });
        let mut destination_headers = Vec::with_capacity(spec.destination.headers.len());
        for header in &spec.destination.headers {
            let value = match &header.secret_key_ref {
                None => header.value.clone(),
                Some(reference) => match secrets.read(reference).await? {
                    Some(value) => String::from_utf8_lossy(&value).into_owned(),
                    None => {
                        warn!(touchpoint = %id, header = %header.name, secret = %reference.name, "a destination header's secret is missing; sending without it");
                        continue;
                    }
                },
            };
            destination_headers.push(HeaderSpec {
                name: header.name.clone(),
                value,
                secret_key_ref: None,
            });
        }
        let redactor = Redactor::new(&verifier);
        let schema = match spec.source.schema.as_deref() {
            None => None,
            Some(name) => match match published.tenant {
                Some(tenant) => self.store.schema(tenant.id, name).await?,
                None => None,
            } {
                Some(stored) => match SourceSchema::compile(name, &stored.document) {
                    Ok(schema) => Some(schema),
                    Err(error) => {
                        warn!(touchpoint = %id, schema = name, %error, "the source schema does not compile; not running the touchpoint");
                        return Ok(None);
                    }
                },
                None => {
                    warn!(touchpoint = %id, schema = name, "the source schema is missing; not running the touchpoint");
                    return Ok(None);
                }
            },
        };
        Ok(Some(Running {
            id,
            connection_id: published.connection_id,
            generation: published.generation,
            auto_sync: published.auto_sync,
            limits: limits_of(spec, &self.sandbox),
            touchpoint: validated,
            app,
            verifier,
            redactor,
            schema,
            organization: published.tenant.map(|tenant| tenant.slug.clone()),
            destination_headers,
        }))
    }
}

/// A connection's limits and credentials, its secrets read from `secrets`. A missing secret
/// is recorded in the credentials' problems (its deliveries fail until it exists).
async fn running_connection(
    id: Uuid,
    spec: &ConnectionSpec,
    secrets: &SecretReader<'_>,
) -> Result<RunningConnection, StoreError> {
    let mut values = HashMap::new();
    for reference in spec.secret_refs() {
        if let Some(value) = secrets.read(reference).await? {
            values.insert(
                reference.clone(),
                String::from_utf8_lossy(&value).into_owned(),
            );
        }
    }
    Ok(RunningConnection {
        id,
        limits: spec.limits.clone(),
        auth: ConnectionAuth::resolve(spec, |reference| values.get(reference).cloned()),
    })
}

/// A published touchpoint about to be compiled.
struct Published<'a> {
    id: Uuid,
    connection_id: Uuid,
    generation: i64,
    auto_sync: bool,
    spec: &'a TouchpointSpec,
    connection: &'a ValidatedConnection,
    tenant: Option<&'a Tenant>,
}

/// A touchpoint's own expression limits over the instance's defaults, capped at its maximum.
pub fn limits_of(spec: &TouchpointSpec, sandbox: &Sandbox) -> Limits {
    let defaults = sandbox.defaults();
    let Some(own) = &spec.expression_limits else {
        return sandbox.limits(None);
    };
    let requested = Limits {
        time: own
            .time_ms
            .map_or(defaults.time, |ms| Duration::from_millis(ms.into())),
        memory: own
            .memory_mib
            .map_or(defaults.memory, |mib| u64::from(mib) << 20),
        output: own
            .output_kib
            .map_or(defaults.output, |kib| (kib as usize) << 10),
        depth: defaults.depth,
    };
    sandbox.limits(Some(&requested))
}

/// A connection through the one validation; `None` (with a warning) when it cannot run, so
/// none of its touchpoints runs either.
fn validated_connection(id: Uuid, spec: &ConnectionSpec) -> Option<ValidatedConnection> {
    match validate_connection(spec) {
        Ok(validated) => Some(validated),
        Err(errors) => {
            warn!(connection = %id, ?errors, "the connection's spec does not validate; not running its touchpoints");
            None
        }
    }
}

/// Where secret values are read: the store's write-only secrets, or files mounted from
/// Kubernetes Secrets (`<dir>/<secret name>/<key>`).
enum SecretReader<'a> {
    Store(&'a Store),
    Files(&'a Path),
}

impl SecretReader<'_> {
    async fn read(&self, reference: &SecretKeyRef) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Store(store) => Ok(store
                .secret(&reference.name, &reference.key)
                .await?
                .map(String::into_bytes)),
            Self::Files(dir) => {
                let path = dir.join(&reference.name).join(&reference.key);
                match tokio::fs::read(&path).await {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(error) => {
                        warn!(path = %path.display(), %error, "a referenced secret file cannot be read");
                        Ok(None)
                    }
                }
            }
        }
    }
}

/// Reload the runtime whenever its rendered configuration file changes (Kubernetes swaps
/// ConfigMap volumes in place), until `shutdown`. A configuration that fails to load keeps
/// the previous snapshot running.
pub async fn watch_rendered(runtime: Arc<Runtime>, every: Duration, shutdown: CancellationToken) {
    let Some(source) = runtime.rendered_source().cloned() else {
        return;
    };
    let mut last = tokio::fs::read(&source.config).await.ok();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let current = tokio::fs::read(&source.config).await.ok();
        if current.is_some() && current != last {
            match runtime.reload().await {
                Ok(()) => {
                    tracing::info!(config = %source.config.display(), "configuration reloaded");
                    last = current;
                }
                Err(error) => {
                    warn!(%error, "the new configuration did not load; keeping the previous one");
                }
            }
        }
    }
}
