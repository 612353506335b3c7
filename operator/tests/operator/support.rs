//! Fixtures: the resources of `crds/examples/`, a stateful in-memory Kubernetes API
//! (kube-fake-client) that records every write, and a reconcile context around it.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
};

use hookplane_crds::{Connection, Touchpoint};
use hookplane_operator::{
    backlog::{BacklogSource, StaticBacklog},
    cache::Caches,
    metrics::Metrics,
    reconcile::{self, Context, ManualClock},
    settings::{DatabaseUrl, Settings},
};
use k8s_openapi::{ByteString, api::apps::v1::Deployment, api::core::v1::Secret};
use kube::{
    Api, Client,
    runtime::{
        controller::Action,
        reflector::{self, Store},
        watcher,
    },
};
use kube_fake_client::{ClientBuilder, interceptor::Funcs};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const NAMESPACE: &str = "shop";
pub const CONNECTION: &str = "shop-to-erp";
/// The database URL the operator runs with in the tests.
pub const DATABASE_URL: &str = "postgres://hookplane:s3cret@postgres.hookplane.svc:5432/hookplane";

/// Every document of `crds/examples/*.yaml`, Secrets with `stringData` turned into `data` as
/// the API server does.
pub fn example_documents() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/examples exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("a readable example");
            serde_saphyr::from_multiple::<Value>(&text).expect("examples are YAML")
        })
        .map(|mut doc| {
            if doc["kind"] == "Secret"
                && let Some(Value::Object(string_data)) =
                    doc.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let data: BTreeMap<String, ByteString> = string_data
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v.as_str().unwrap_or_default().into())))
                    .collect();
                doc["data"] = serde_json::to_value(data).expect("data serializes");
            }
            doc
        })
        .collect()
}

/// The example of `kind` named `name`, typed, with the metadata the API server would add.
pub fn example<K: DeserializeOwned>(kind: &str, name: &str) -> K {
    let mut doc = example_documents()
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no example {kind} {name}"));
    let meta = &mut doc["metadata"];
    meta["uid"] = format!("00000000-0000-4000-8000-{:0>12}", name.len()).into();
    meta["generation"] = 1.into();
    meta["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
    serde_json::from_value(doc).expect("the example deserializes")
}

pub fn connection() -> Connection {
    example("Connection", CONNECTION)
}

pub fn shopify_orders() -> Touchpoint {
    let mut touchpoint: Touchpoint = example("Touchpoint", "shopify-orders");
    touchpoint.metadata.uid = Some("0b7c6a52-4c3e-4a7e-9b8e-0d1c2e3f4a5b".into());
    touchpoint
}

pub fn partner_shipments() -> Touchpoint {
    let mut touchpoint: Touchpoint = example("Touchpoint", "partner-shipments");
    touchpoint.metadata.uid = Some("7d1e3f9a-2b4c-4d6e-8f0a-1b2c3d4e5f60".into());
    touchpoint
}

/// The example Secrets, by name.
pub fn secrets() -> BTreeMap<String, Secret> {
    example_documents()
        .into_iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| {
            let secret: Secret = serde_json::from_value(d).expect("a Secret");
            (secret.metadata.name.clone().unwrap_or_default(), secret)
        })
        .collect()
}

/// The settings the tests reconcile with.
pub fn settings() -> Settings {
    Settings {
        image: "registry.example.com/hookplane:1.2.3".into(),
        public_base_url: Some("https://hooks.example.com/".into()),
        organization: Some("acme".into()),
        database_url: Some(DatabaseUrl(DATABASE_URL.into())),
        ..Settings::default()
    }
}

/// The in-memory cluster and what was written to it.
pub struct Cluster {
    pub client: Client,
    log: Arc<Mutex<Vec<String>>>,
    failing: Arc<Mutex<Option<String>>>,
    lists: Arc<std::sync::atomic::AtomicUsize>,
    /// Set while the cluster rewrites what it stores the way a real API server would have
    /// stored it: those reads and writes are the server's, not the operator's.
    normalizing: Arc<std::sync::atomic::AtomicBool>,
    /// Fields rewritten so far by that normalization.
    normalized: Arc<std::sync::atomic::AtomicUsize>,
}

impl Cluster {
    /// A cluster holding `objects`, with the CRDs installed and status subresources on.
    pub async fn with(objects: Vec<Value>) -> Self {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let failing: Arc<Mutex<Option<String>>> = Arc::default();
        let fail = failing.clone();
        let lists: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let listed = lists.clone();
        let normalizing: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (quiet_list, quiet_replace) = (normalizing.clone(), normalizing.clone());
        let record = |verb: &'static str| {
            let log = log.clone();
            move |entry: String| {
                log.lock().unwrap().push(format!("{verb} {entry}"));
            }
        };
        let (create, update, patch, status, replace, delete) = (
            record("create"),
            record("update"),
            record("patch"),
            record("patch-status"),
            record("replace"),
            record("delete"),
        );
        let funcs = Funcs::new()
            .list(move |_| {
                if !quiet_list.load(std::sync::atomic::Ordering::SeqCst) {
                    listed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(None)
            })
            .create(move |ctx| {
                let kind = ctx.object["kind"].as_str().unwrap_or("?");
                let name = ctx.object["metadata"]["name"].as_str().unwrap_or("?");
                create(format!("{kind} {}/{name}", ctx.namespace));
                Ok(None)
            })
            .update(move |ctx| {
                update(format!("{}", ctx.object["metadata"]["name"]));
                Ok(None)
            })
            .patch(move |ctx| {
                if fail.lock().unwrap().as_deref() == Some(ctx.name) {
                    return Err(kube_fake_client::Error::Internal("injected failure".into()));
                }
                let kind = ctx.patch["kind"].as_str().unwrap_or("?");
                patch(format!("{kind} {}/{}", ctx.namespace, ctx.name));
                Ok(None)
            })
            .patch_status(move |ctx| {
                status(format!("{}/{}", ctx.namespace, ctx.name));
                Ok(None)
            })
            .replace(move |ctx| {
                if !quiet_replace.load(std::sync::atomic::Ordering::SeqCst) {
                    replace(format!("{}/{}", ctx.namespace, ctx.name));
                }
                Ok(None)
            })
            .delete(move |ctx| {
                delete(format!("{}/{}", ctx.namespace, ctx.name));
                Ok(None)
            });
        let client = ClientBuilder::new()
            .with_resource::<Connection>()
            .with_resource::<Touchpoint>()
            .with_status_subresource::<Connection>()
            .with_status_subresource::<Touchpoint>()
            .with_status_subresource::<Deployment>()
            .with_runtime_objects(objects)
            .with_interceptor_funcs(funcs)
            .build()
            .await
            .expect("the fake cluster starts");
        Self {
            client,
            log,
            failing,
            lists,
            normalizing,
            normalized: Arc::default(),
        }
    }

    /// Rewrite the Deployments the way a real API server stores what it is sent: fields at
    /// their zero value dropped (`readOnly: false`), resource quantities canonical (`0.5` ->
    /// `500m`, `1.5Gi` -> `1536Mi`). kube-fake-client stores exactly what it was sent and has no
    /// hook after its server-side apply, so the harness runs this after every reconcile; the
    /// operator then reads what a real server would return, and an "up to date?" check that
    /// compares naively re-applies for ever (the bug this catches).
    pub async fn store_as_a_server_would(&self) {
        use std::sync::atomic::Ordering;
        self.normalizing.store(true, Ordering::SeqCst);
        let deployments: Api<Deployment> = self.api();
        for held in deployments.list(&Default::default()).await.expect("a list") {
            let mut value = serde_json::to_value(&held).expect("serializes");
            let changes = as_a_server_stores_it(&mut value, false);
            if changes > 0 {
                let stored: Deployment = serde_json::from_value(value).expect("a Deployment");
                let name = held.metadata.name.clone().unwrap_or_default();
                deployments
                    .replace(&name, &Default::default(), &stored)
                    .await
                    .expect("replace");
                self.normalized.fetch_add(changes, Ordering::SeqCst);
            }
        }
        self.normalizing.store(false, Ordering::SeqCst);
    }

    /// Fields [`Cluster::store_as_a_server_would`] rewrote so far.
    pub fn normalized(&self) -> usize {
        self.normalized.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// LIST requests so far.
    pub fn lists(&self) -> usize {
        self.lists.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches holding what the cluster holds now, as the controllers' reflectors would.
    pub async fn caches(&self) -> Caches {
        Caches {
            touchpoints: self.cache().await,
            config_maps: self.cache().await,
            services: self.cache().await,
            deployments: self.cache().await,
            budgets: self.cache().await,
            secrets: self.cache().await,
            ingresses: self.cache().await,
        }
    }

    async fn cache<K>(&self) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let (reader, mut writer) = reflector::store();
        let all: Api<K> = Api::all(self.client.clone());
        writer.apply_watcher_event(&watcher::Event::Init);
        for object in all.list(&Default::default()).await.expect("a list").items {
            writer.apply_watcher_event(&watcher::Event::InitApply(object));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        // The reader outlives the writer: the cache is frozen as listed.
        std::mem::forget(writer);
        reader
    }

    /// The example Connection, Touchpoints and Secrets.
    pub async fn examples() -> Self {
        Self::with(
            example_documents()
                .into_iter()
                .filter(|d| {
                    matches!(
                        d["kind"].as_str(),
                        Some("Connection" | "Touchpoint" | "Secret")
                    )
                })
                .collect(),
        )
        .await
    }

    /// Writes so far, Events (recorded only when something changed) left out.
    pub fn writes(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|w| !w.starts_with("create Event ") && !w.starts_with("patch Event "))
            .cloned()
            .collect()
    }

    /// Fail every patch of the object `name` (any kind) from now on.
    pub fn fail_patches_of(&self, name: &str) {
        *self.failing.lock().unwrap() = Some(name.to_owned());
    }

    /// Events recorded so far (`reason` of each).
    pub async fn events(&self) -> Vec<(String, String, String)> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NAMESPACE);
        let mut list: Vec<_> = events
            .list(&Default::default())
            .await
            .expect("events list")
            .items
            .into_iter()
            .map(|e| {
                (
                    e.regarding.and_then(|r| r.name).unwrap_or_default(),
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                )
            })
            .collect();
        list.sort();
        list
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }
}

/// A reconcile context on `cluster` with a settable backlog and a manual clock.
pub struct Harness {
    pub cluster: Cluster,
    pub backlog: Arc<StaticBacklog>,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<Metrics>,
    pub ctx: Arc<Context>,
}

impl Harness {
    pub fn new(cluster: Cluster) -> Self {
        Self::with_settings(cluster, settings())
    }

    /// A harness whose operator runs with `settings`.
    pub fn with_settings(cluster: Cluster, settings: Settings) -> Self {
        let backlog = Arc::new(StaticBacklog::default());
        Self::with_source(cluster, backlog.clone(), backlog, settings)
    }

    /// A harness whose reconciles read `source` (`backlog` then sets nothing they see).
    pub fn with_backlog(cluster: Cluster, source: Arc<dyn BacklogSource>) -> Self {
        Self::with_source(
            cluster,
            Arc::new(StaticBacklog::default()),
            source,
            settings(),
        )
    }

    fn with_source(
        cluster: Cluster,
        backlog: Arc<StaticBacklog>,
        source: Arc<dyn BacklogSource>,
        settings: Settings,
    ) -> Self {
        let clock = Arc::new(ManualClock::default());
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(Context::new(
            cluster.client.clone(),
            settings,
            source,
            metrics.clone(),
            clock.clone(),
            Some("test".into()),
        ));
        Self {
            cluster,
            backlog,
            clock,
            metrics,
            ctx,
        }
    }

    pub async fn examples() -> Self {
        Self::new(Cluster::examples().await)
    }

    /// Reconcile the connection `name` as the controller would: read it, then reconcile.
    /// What it wrote is then stored as a real API server would store it.
    pub async fn reconcile_connection(&self, name: &str) -> Result<Action, reconcile::Error> {
        let connection: Connection = self.cluster.api().get(name).await.expect("the connection");
        let result = reconcile::connection::reconcile(Arc::new(connection), self.ctx.clone()).await;
        self.cluster.store_as_a_server_would().await;
        result
    }

    /// Reconcile the touchpoint `name`.
    pub async fn reconcile_touchpoint(&self, name: &str) -> Result<Action, reconcile::Error> {
        let touchpoint: Touchpoint = self.cluster.api().get(name).await.expect("the touchpoint");
        reconcile::touchpoint::reconcile(Arc::new(touchpoint), self.ctx.clone()).await
    }

    /// Reconcile from caches of what the cluster holds now, as the running operator does.
    pub async fn read_from_caches(&self) {
        let caches = self.cluster.caches().await;
        assert!(self.ctx.caches.set(caches).is_ok(), "caches are set once");
    }

    /// Writes made by a reconcile of the connection `name` (which must succeed).
    pub async fn writes_of_reconcile(&self, name: &str) -> Vec<String> {
        let (result, writes) = self.writes_during(self.reconcile_connection(name)).await;
        result.expect("the reconcile succeeds");
        writes
    }

    /// Writes made by `f`.
    pub async fn writes_during<F: Future>(&self, f: F) -> (F::Output, Vec<String>) {
        let before = self.cluster.writes().len();
        let output = f.await;
        (output, self.cluster.writes()[before..].to_vec())
    }
}

/// Drops `false` booleans under `volumeMounts` (`readOnly`) and writes the quantities this test
/// uses canonically; the number of changes.
pub fn as_a_server_stores_it(value: &mut serde_json::Value, quantities: bool) -> usize {
    use serde_json::Value;
    let mut changes = 0;
    match value {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|key, v| !(key == "readOnly" && *v == Value::Bool(false)));
            changes += before - map.len();
            for (key, v) in map.iter_mut() {
                let quantities = quantities || key == "resources";
                changes += as_a_server_stores_it(v, quantities);
            }
        }
        Value::Array(items) => {
            for item in items {
                changes += as_a_server_stores_it(item, quantities);
            }
        }
        Value::String(text) if quantities => {
            let canonical = match text.as_str() {
                "0.5" => Some("500m"),
                "1.5Gi" => Some("1536Mi"),
                "2048Mi" => Some("2Gi"),
                _ => None,
            };
            if let Some(canonical) = canonical {
                *text = canonical.to_owned();
                changes += 1;
            }
        }
        _ => {}
    }
    changes
}
