//! Cluster to portal: watch the namespace's Connection and Touchpoint resources and mirror
//! them into the database.
//!
//! Level-based: after any watch event (debounced: 100 ms of quiet, or 1 s after the first
//! event at the latest), one pass compares every resource with what was last mirrored (its
//! generation, id, published generation and management; status updates change none of them)
//! and writes only what changed, then deletes the rows whose resource is gone. A row is deleted only after a direct read confirms its
//! resource no longer exists, so a watch that lags behind a publish never deletes anything.
//! Every few minutes a pass mirrors everything again, whatever the cache says.
//!
//! A touchpoint mirrors once its Connection exists (the operator reports the missing
//! connection on the resource meanwhile). A touchpoint whose endpoint another touchpoint
//! holds is left out, with a warning; the operator likewise runs only the oldest.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream};
use hookplane_crds::{
    Connection, Touchpoint,
    identity::{hookplane_id, managed_outside_portal, published_generation},
};
use hookplane_dataplane::{runtime::Runtime, telemetry::Metrics};
use hookplane_store::{
    ExternalTouchpoint, KubeResource, LogLevel, Mirrored, NewLog, Store, StoreError,
};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{WatchStreamExt, reflector, watcher},
};
use prometheus::{IntCounterVec, Opts};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use super::Cluster;

/// Quiet time after a watch event before a pass runs, so a burst of events costs one pass.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a pass waits after the first event, however steady the events.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// How often a pass ignores the `resourceVersion` cache.
const FULL_PASS_EVERY: Duration = Duration::from_secs(300);

/// Which kind a watch event was for.
#[derive(Clone, Copy)]
enum Kind {
    Connection,
    Touchpoint,
}

/// Watch and mirror until `shutdown`.
pub async fn run(
    cluster: Cluster,
    store: Store,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let connections: Api<Connection> = Api::namespaced(cluster.client(), cluster.namespace());
    let touchpoints: Api<Touchpoint> = Api::namespaced(cluster.client(), cluster.namespace());
    let (connection_reader, connection_writer) = reflector::store();
    let (touchpoint_reader, touchpoint_writer) = reflector::store();
    let connection_events = reflector(
        connection_writer,
        watcher(connections, watcher::Config::default()).default_backoff(),
    )
    .map(|event| (Kind::Connection, event.map(|e| is_init_done(&e))));
    let touchpoint_events = reflector(
        touchpoint_writer,
        watcher(touchpoints, watcher::Config::default()).default_backoff(),
    )
    .map(|event| (Kind::Touchpoint, event.map(|e| is_init_done(&e))));
    let mut events = std::pin::pin!(stream::select(connection_events, touchpoint_events));

    let mut mirror = Mirror {
        cluster,
        store,
        runtime,
        mirrored_total: mirrored_counter(&metrics),
        mirrored: HashMap::new(),
    };
    let (mut connections_listed, mut touchpoints_listed) = (false, false);
    // When the first unmirrored event came, and the last one.
    let mut pending: Option<(Instant, Instant)> = None;
    let mut full_pass = tokio::time::interval(FULL_PASS_EVERY);
    full_pass.tick().await;
    loop {
        let due = pending.map(|(first, last)| (last + DEBOUNCE).min(first + MAX_DELAY));
        let listed = connections_listed && touchpoints_listed;
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => match event {
                None => return,
                Some((kind, Ok(init_done))) => {
                    let now = Instant::now();
                    pending = Some((pending.map_or(now, |(first, _)| first), now));
                    if init_done {
                        match kind {
                            Kind::Connection => connections_listed = true,
                            Kind::Touchpoint => touchpoints_listed = true,
                        }
                    }
                }
                Some((_, Err(error))) => warn!(%error, "watching Hookplane resources; retrying"),
            },
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && listed => {
                pending = None;
                let (connections, touchpoints) = (connection_reader.state(), touchpoint_reader.state());
                mirror.pass(&connections, &touchpoints).instrument(info_span!("mirror")).await;
                mirror.cluster.mark_synced();
            }
            _ = full_pass.tick() => {
                mirror.mirrored.clear();
                let now = Instant::now();
                pending = Some((now, now));
            }
        }
    }
}

/// `hookplane_cluster_mirrored_total`, registered once per process (one mirror runs).
fn mirrored_counter(metrics: &Metrics) -> IntCounterVec {
    let counter = IntCounterVec::new(
        Opts::new(
            "cluster_mirrored_total",
            "Connections and touchpoints mirrored from Kubernetes resources, by kind and result",
        ),
        &["kind", "result"],
    )
    .expect("valid metric definition");
    if let Err(error) = metrics.registry().register(Box::new(counter.clone())) {
        warn!(%error, "registering the mirror's metric");
    }
    counter
}

fn is_init_done<K>(event: &watcher::Event<K>) -> bool {
    matches!(event, watcher::Event::InitDone)
}

struct Mirror {
    cluster: Cluster,
    store: Store,
    runtime: Arc<Runtime>,
    /// Rows the mirror wrote, by kind (`connection`, `touchpoint`) and result (`created`,
    /// `updated`, `deleted`, `error`).
    mirrored_total: IntCounterVec,
    /// What was last mirrored, by `metadata.uid`.
    mirrored: HashMap<String, Fingerprint>,
}

/// Everything of a resource the mirror writes from. The operator's status writes change the
/// `resourceVersion` every backlog poll but none of this, so they cost no database write.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    /// Bumped by every spec change.
    generation: Option<i64>,
    id: Option<String>,
    published_generation: i64,
    managed_outside: bool,
}

impl Fingerprint {
    fn of<K: Resource>(object: &K) -> Self {
        let meta = object.meta();
        Self {
            generation: meta.generation,
            id: hookplane_id(meta),
            published_generation: published_generation(meta),
            managed_outside: managed_outside_portal(meta),
        }
    }
}

impl Mirror {
    async fn pass(&mut self, connections: &[Arc<Connection>], all_touchpoints: &[Arc<Touchpoint>]) {
        let mut changed = false;
        let mut connection_ids = HashMap::new();
        for connection in connections {
            let Some(id) = self.id_of(connection.as_ref()) else {
                continue;
            };
            connection_ids.insert(connection.name_any(), id);
            if self.is_mirrored(connection.as_ref()) {
                continue;
            }
            let resource = self.resource_of(connection.as_ref());
            match self
                .store
                .mirror_connection(id, &connection.spec, &resource)
                .await
            {
                Ok(mirrored) => {
                    changed |= mirrored != Mirrored::Unchanged;
                    self.count("connection", mirrored);
                    self.remember(connection.as_ref());
                }
                Err(error) => {
                    self.count_result("connection", "error");
                    warn!(connection = %connection.name_any(), %error, "mirroring a Connection")
                }
            }
        }
        // Oldest first: when two resources claim one id (a copied `hookplane.io/id`), the
        // older one keeps it and the other is left out.
        let mut touchpoints: Vec<&Arc<Touchpoint>> = all_touchpoints.iter().collect();
        touchpoints.sort_by_key(|t| (t.creation_timestamp().map(|time| time.0), t.name_any()));
        let mut claimed = HashSet::new();
        for touchpoint in touchpoints {
            let Some(id) = self.id_of(touchpoint.as_ref()) else {
                continue;
            };
            if !claimed.insert(id) {
                warn!(touchpoint = %touchpoint.name_any(), %id, "another Touchpoint has this id (a copied hookplane.io/id annotation?); not mirrored");
                continue;
            }
            let Some(&connection_id) = connection_ids.get(&touchpoint.spec.connection_ref) else {
                continue;
            };
            if self.is_mirrored(touchpoint.as_ref()) {
                continue;
            }
            changed |= self
                .mirror_touchpoint(touchpoint.as_ref(), id, connection_id)
                .await;
        }
        changed |= self.delete_gone(connections, all_touchpoints).await;
        if changed && let Err(error) = self.runtime.reload().await {
            warn!(%error, "reloading after mirroring resources");
        }
    }

    async fn mirror_touchpoint(
        &mut self,
        touchpoint: &Touchpoint,
        id: Uuid,
        connection_id: Uuid,
    ) -> bool {
        let name = touchpoint.name_any();
        let generation = published_generation(&touchpoint.metadata);
        let external = ExternalTouchpoint {
            id,
            generation,
            spec: touchpoint.spec.clone(),
        };
        let resource = self.resource_of(touchpoint);
        match self
            .store
            .mirror_touchpoint(connection_id, &external, &resource)
            .await
        {
            Ok(Mirrored::Unchanged) => {
                self.remember(touchpoint);
                false
            }
            Ok(mirrored) => {
                self.remember(touchpoint);
                self.count("touchpoint", mirrored);
                if resource.managed_outside {
                    let verb = if mirrored == Mirrored::Created {
                        "appeared"
                    } else {
                        "changed"
                    };
                    let message = format!(
                        "Touchpoint {name} {verb} in the cluster, managed outside the portal; generation {generation} runs"
                    );
                    info!(touchpoint = %name, %generation, "{message}");
                    self.log(id, message, &name).await;
                }
                true
            }
            Err(StoreError::EndpointTaken { endpoint }) => {
                self.count_result("touchpoint", "error");
                warn!(touchpoint = %name, %endpoint, "not mirrored: another touchpoint uses its endpoint");
                false
            }
            Err(error) => {
                self.count_result("touchpoint", "error");
                warn!(touchpoint = %name, %error, "mirroring a Touchpoint");
                false
            }
        }
    }

    /// Delete the rows whose resource left the cluster; true if any was deleted.
    async fn delete_gone(
        &mut self,
        connections: &[Arc<Connection>],
        touchpoints: &[Arc<Touchpoint>],
    ) -> bool {
        let namespace = self.cluster.namespace().to_owned();
        let present: HashSet<String> = touchpoints.iter().map(|t| t.name_any()).collect();
        let rows = match self.store.touchpoints(None).await {
            Ok(rows) => rows,
            Err(error) => {
                warn!(%error, "listing touchpoints to find deleted resources");
                return false;
            }
        };
        let mut deleted = false;
        for row in rows {
            let Some(resource) = row.resource.filter(|r| r.namespace == namespace) else {
                continue;
            };
            if present.contains(&resource.name) || !self.gone::<Touchpoint>(&resource.name).await {
                continue;
            }
            match self.store.delete_touchpoint(row.id).await {
                Ok(true) => {
                    info!(touchpoint = %resource.name, id = %row.id, "its resource was deleted from the cluster; deleted from the portal");
                    self.count_result("touchpoint", "deleted");
                    deleted = true;
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(touchpoint = %resource.name, %error, "deleting a touchpoint whose resource is gone")
                }
            }
        }
        let present: HashSet<String> = connections.iter().map(|c| c.name_any()).collect();
        let rows = match self.store.connections().await {
            Ok(rows) => rows,
            Err(error) => {
                warn!(%error, "listing connections to find deleted resources");
                return deleted;
            }
        };
        for row in rows {
            let Some(resource) = row.resource.filter(|r| r.namespace == namespace) else {
                continue;
            };
            if present.contains(&resource.name) || !self.gone::<Connection>(&resource.name).await {
                continue;
            }
            match self.store.delete_unused_connection(row.id).await {
                Ok(true) => {
                    info!(connection = %resource.name, id = %row.id, "its resource was deleted from the cluster; deleted from the portal");
                    self.count_result("connection", "deleted");
                    deleted = true;
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(connection = %resource.name, %error, "deleting a connection whose resource is gone")
                }
            }
        }
        deleted
    }

    /// True when a direct read says the resource does not exist.
    async fn gone<K>(&self, name: &str) -> bool
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + serde::de::DeserializeOwned
            + Clone
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.cluster.client(), self.cluster.namespace());
        match api.get_opt(name).await {
            Ok(found) => found.is_none(),
            Err(error) => {
                warn!(%name, %error, "reading a resource to confirm its deletion");
                false
            }
        }
    }

    fn count(&self, kind: &str, mirrored: Mirrored) {
        match mirrored {
            Mirrored::Created => self.count_result(kind, "created"),
            Mirrored::Updated => self.count_result(kind, "updated"),
            Mirrored::Unchanged => {}
        }
    }

    fn count_result(&self, kind: &str, result: &str) {
        self.mirrored_total.with_label_values(&[kind, result]).inc();
    }

    fn id_of<K: Resource>(&self, object: &K) -> Option<Uuid> {
        let id = hookplane_id(object.meta()).and_then(|id| Uuid::parse_str(&id).ok());
        if id.is_none() {
            warn!(name = %object.meta().name.as_deref().unwrap_or_default(), "a resource without a UUID id; not mirrored");
        }
        id
    }

    fn resource_of<K: Resource>(&self, object: &K) -> KubeResource {
        KubeResource {
            namespace: self.cluster.namespace().to_owned(),
            name: object.meta().name.clone().unwrap_or_default(),
            managed_outside: managed_outside_portal(object.meta()),
        }
    }

    fn is_mirrored<K: Resource>(&self, object: &K) -> bool {
        match &object.meta().uid {
            Some(uid) => self.mirrored.get(uid) == Some(&Fingerprint::of(object)),
            None => false,
        }
    }

    fn remember<K: Resource>(&mut self, object: &K) {
        if let Some(uid) = &object.meta().uid {
            self.mirrored.insert(uid.clone(), Fingerprint::of(object));
        }
    }

    async fn log(&self, touchpoint_id: Uuid, message: String, name: &str) {
        let entry = NewLog {
            touchpoint_id,
            event_id: None,
            level: LogLevel::Info,
            message,
            fields: json!({ "resource": name, "namespace": self.cluster.namespace() }),
        };
        if let Err(error) = self.store.append_logs(vec![entry]).await {
            warn!(%error, "writing a touchpoint log");
        }
    }
}
