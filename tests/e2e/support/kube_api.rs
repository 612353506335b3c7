//! A stateful in-memory Kubernetes API server over real HTTP, so that the real
//! `hookplane api --kubernetes` binary (and `kubectl`-like clients in tests) can run against it.
//!
//! Everything about the objects is real and comes from `kube-fake-client`: the state,
//! create/get/list/update/patch/delete, server-side apply with `managedFields` and 409
//! conflicts, `uid`, `generation`, `resourceVersion` (one global counter), the status
//! subresource, label and field selectors on LIST and the `Status` bodies of errors.
//!
//! This front adds what the fake lacks:
//! - HTTP: an axum server on `127.0.0.1:<free port>` that hands every request it does not
//!   answer itself to the fake with `Client::send`; status, headers and body pass through.
//! - A journal: every successful POST, PUT, PATCH and DELETE is recorded as a watch event of its
//!   collection, from the object the fake answered with: ADDED when the name did not exist,
//!   MODIFIED otherwise, DELETED for objects that a DELETE made disappear (cascades to
//!   dependents and deletecollection included, found by listing every collection the journal
//!   knows). The fake does not bump the resourceVersion on delete; a DELETED event gets a fresh
//!   one by applying a hidden `ConfigMap` (`kube-system/fake-kube-api-clock`), so every event
//!   has a resourceVersion above all earlier ones, as on a real API server, and a watch resumed
//!   from any event's resourceVersion misses nothing.
//! - LIST: the fake always answers `resourceVersion: "1"`; the list gets the highest
//!   resourceVersion recorded so far, so a watch from it follows on exactly. `limit` is dropped:
//!   the whole list comes in one page (the fake would cut it without a `continue` token).
//! - WATCH (`?watch=true` or `?watch=1`): newline-delimited JSON events of the journal, live from
//!   a broadcast channel, for `resourceVersion`s above the one asked for; without one (or `0`,
//!   or with `sendInitialEvents=true`) first an ADDED per current object, then a BOOKMARK
//!   annotated `k8s.io/initial-events-end` when `sendInitialEvents` and `allowWatchBookmarks`
//!   ask for it. `timeoutSeconds` (default 290) ends the stream; a subscriber that falls more
//!   than 1024 events behind gets a 410 `Expired` ERROR event and relists.
//!   `labelSelector` and `fieldSelector` (`=`, `==`, `!=` on any field path) filter events; an
//!   object that stops matching arrives as DELETED and one that starts matching as ADDED.
//!
//! Mutations, lists and watch starts take one lock, so the journal's order is the fake's order.
//!
//! Where the fake differs from a real API server, tests see the fake: every write bumps
//! `resourceVersion` (and every non-status write `generation`) even when nothing changed, so a
//! no-op apply is a MODIFIED event; server-side apply merges the applied fields in and never
//! removes fields a manager stopped applying; DELETE removes at once, ignoring finalizers.
//!
//! kube-rs's `watcher` with the default `watcher::Config` sends a LIST with `limit=500` and no
//! `resourceVersion`, then a WATCH with `resourceVersion=<the list's>`, `timeoutSeconds=290` and
//! `allowWatchBookmarks=true`; with `streaming_lists()` it sends one WATCH with
//! `sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0` and waits for
//! the initial-events-end bookmark. Both work.

use std::{collections::BTreeMap, convert::Infallible, path::Path, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{self, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::stream::{self, StreamExt};
use hookplane_crds::{Connection, Touchpoint};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    api::{Patch, PatchParams},
    client::Body as KubeBody,
};
use kube_fake_client::label_selector;
use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{
    sync::{Mutex, broadcast, broadcast::error::RecvError},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use url::form_urlencoded;

/// Namespace of the hidden `ConfigMap` whose applies give DELETED events a fresh resourceVersion.
const CLOCK_NAMESPACE: &str = "kube-system";
/// Name of that `ConfigMap`.
const CLOCK_NAME: &str = "fake-kube-api-clock";
/// Journal events a watch may fall behind before it is ended with 410 `Expired`.
const BROADCAST_CAPACITY: usize = 1024;
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(290);
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// The server, its kubeconfig file, and clients for it. Dropping it stops the server and ends
/// every watch.
pub struct FakeKubeApi {
    url: String,
    namespace: String,
    kubeconfig: std::path::PathBuf,
    _dir: TempDir,
    shutdown: CancellationToken,
}

impl FakeKubeApi {
    /// Starts on 127.0.0.1:<free port>, knowing Touchpoint and Connection (both with the status
    /// subresource) and Secret.
    pub async fn start(namespace: &str) -> FakeKubeApi {
        let fake = kube_fake_client::ClientBuilder::new()
            .with_resource::<Touchpoint>()
            .with_status_subresource::<Touchpoint>()
            .with_resource::<Connection>()
            .with_status_subresource::<Connection>()
            .with_resource::<Secret>()
            .with_return_managed_fields()
            .build()
            .await
            .expect("building the fake Kubernetes client");
        let shutdown = CancellationToken::new();
        let front = Front {
            fake,
            journal: Arc::new(Mutex::new(Journal::new())),
            shutdown: shutdown.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Kubernetes API");
        let address = listener.local_addr().expect("local address");
        let app = Router::new().fallback(handle).with_state(front);
        let server =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tokio::spawn(async move { server.await });

        let url = format!("http://{address}");
        let dir = tempfile::tempdir().expect("a temporary directory for the kubeconfig");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url, namespace))
            .expect("writing the kubeconfig");
        FakeKubeApi {
            url,
            namespace: namespace.to_owned(),
            kubeconfig,
            _dir: dir,
            shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The default namespace of [`Self::client`] and of the kubeconfig's context.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kubeconfig file: one cluster (`server: <url>`), one user without credentials and one
    /// context with `namespace: <namespace>`, the current one.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A real kube client talking HTTP to this server, default namespace [`Self::namespace`].
    pub async fn client(&self) -> kube::Client {
        install_crypto_provider();
        let url = self.url.parse().expect("the server URL is a valid URI");
        let mut config = kube::Config::new(url);
        config.default_namespace = self.namespace.clone();
        kube::Client::try_from(config).expect("building a kube client for the fake API")
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// kube's TLS stack needs a process-wide crypto provider once more than one is compiled in.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn kubeconfig_yaml(url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: {url}
users:
  - name: fake
    user: {{}}
contexts:
  - name: fake
    context:
      cluster: fake
      user: fake
      namespace: {namespace}
current-context: fake
"
    )
}

/// What one request addresses, parsed from its path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Collection {
    /// `api/v1` or `apis/<group>/<version>`.
    api: String,
    resource: String,
    /// `None` for cluster-scoped resources and for lists across all namespaces.
    namespace: Option<String>,
}

impl Collection {
    fn path(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("/{}/namespaces/{namespace}/{}", self.api, self.resource),
            None => format!("/{}/{}", self.api, self.resource),
        }
    }

    /// Whether a watch on `self` sees events of `other` (a namespace or all of them).
    fn contains(&self, other: &Collection) -> bool {
        self.api == other.api
            && self.resource == other.resource
            && (self.namespace.is_none() || self.namespace == other.namespace)
    }
}

enum Target {
    Collection(Collection),
    /// One object, or its subresource (`status`).
    Object(Collection),
}

impl Target {
    fn parse(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return None;
        }
        let (api, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => (format!("api/{version}"), rest),
            ["apis", group, version, rest @ ..] => (format!("apis/{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, resource, rest) = match rest {
            ["namespaces", namespace, resource, rest @ ..] => (Some(*namespace), *resource, rest),
            [resource, rest @ ..] => (None, *resource, rest),
            [] => return None,
        };
        let collection = Collection {
            api,
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
        };
        match rest {
            [] => Some(Target::Collection(collection)),
            [_name] | [_name, _] => Some(Target::Object(collection)),
            _ => None,
        }
    }

    fn collection(&self) -> &Collection {
        match self {
            Target::Collection(collection) | Target::Object(collection) => collection,
        }
    }
}

/// The decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        Query(pairs.into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn without(&self, keys: &[&str]) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (key, value) in self
            .0
            .iter()
            .filter(|(key, _)| !keys.contains(&key.as_str()))
        {
            serializer.append_pair(key, value);
        }
        serializer.finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Added,
    Modified,
    Deleted,
}

/// One journal entry: an object as it was after a change.
struct Recorded {
    collection: Collection,
    change: Change,
    object: Value,
    /// The object before a MODIFIED change, to tell selector entries and exits apart.
    previous: Option<Value>,
    resource_version: u64,
}

/// Every change so far, the last state of every existing object, and the live feed of changes.
struct Journal {
    events: Vec<Arc<Recorded>>,
    objects: BTreeMap<Collection, BTreeMap<String, Value>>,
    highest: u64,
    live: broadcast::Sender<Arc<Recorded>>,
}

impl Journal {
    fn new() -> Journal {
        Journal {
            events: Vec::new(),
            objects: BTreeMap::new(),
            highest: 0,
            live: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Recorded>> {
        self.live.subscribe()
    }

    fn since(&self, resource_version: u64) -> impl Iterator<Item = &Arc<Recorded>> {
        self.events
            .iter()
            .filter(move |event| event.resource_version > resource_version)
    }

    /// Collections with at least one existing object, and those objects' names.
    fn existing(&self) -> Vec<(Collection, Vec<String>)> {
        let names = |(collection, objects): (&Collection, &BTreeMap<String, Value>)| {
            (!objects.is_empty()).then(|| (collection.clone(), objects.keys().cloned().collect()))
        };
        self.objects.iter().filter_map(names).collect()
    }

    fn record_write(&mut self, collection: Collection, object: Value) {
        let Some(name) = object_name(&object).map(str::to_owned) else {
            return;
        };
        let resource_version = resource_version(&object).unwrap_or(self.highest);
        let objects = self.objects.entry(collection.clone()).or_default();
        let previous = objects.insert(name, object.clone());
        let change = if previous.is_some() {
            Change::Modified
        } else {
            Change::Added
        };
        self.publish(Recorded {
            collection,
            change,
            object,
            previous,
            resource_version,
        });
    }

    fn record_delete(&mut self, collection: &Collection, name: &str, resource_version: u64) {
        let removed = self
            .objects
            .get_mut(collection)
            .and_then(|objects| objects.remove(name));
        let Some(mut object) = removed else {
            return;
        };
        set_resource_version(&mut object, resource_version);
        self.publish(Recorded {
            collection: collection.clone(),
            change: Change::Deleted,
            object,
            previous: None,
            resource_version,
        });
    }

    fn publish(&mut self, recorded: Recorded) {
        self.highest = self.highest.max(recorded.resource_version);
        let recorded = Arc::new(recorded);
        self.events.push(Arc::clone(&recorded));
        // No subscribers is fine: later watches replay `events`.
        let _ = self.live.send(recorded);
    }
}

#[derive(Clone)]
struct Front {
    fake: kube::Client,
    journal: Arc<Mutex<Journal>>,
    shutdown: CancellationToken,
}

/// A buffered answer of the fake.
struct Answer {
    parts: http::response::Parts,
    body: Bytes,
}

impl Answer {
    fn into_response(self) -> Response {
        Response::from_parts(self.parts, Body::from(self.body))
    }
}

/// The current objects of a collection, as the fake lists them.
struct Listed {
    api_version: String,
    kind: String,
    items: Vec<Value>,
}

async fn handle(State(front): State<Front>, request: Request) -> Response {
    let Some(target) = Target::parse(request.uri().path()) else {
        let message = format!(
            "the server could not find the requested resource ({})",
            request.uri().path()
        );
        return failure(StatusCode::NOT_FOUND, "NotFound", message);
    };
    let query = Query::parse(request.uri().query());
    match (request.method().clone(), target) {
        (Method::GET, Target::Collection(collection)) if query.flag("watch") => {
            front.watch(collection, &query).await
        }
        (Method::GET, Target::Collection(_)) => front.list(request, &query).await,
        (Method::GET, Target::Object(_)) => front.forward(request).await,
        (Method::POST | Method::PUT | Method::PATCH | Method::DELETE, target) => {
            front.mutate(target, request).await
        }
        (method, _) => failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("method {method} is not supported"),
        ),
    }
}

impl Front {
    /// Streams the fake's answer back as it is.
    async fn forward(&self, request: Request) -> Response {
        let request = match into_kube_request(request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        match self.fake.send(request).await {
            Ok(answer) => answer.map(Body::new),
            Err(error) => bad_request(&error),
        }
    }

    async fn send_buffered(&self, request: http::Request<KubeBody>) -> Result<Answer, Response> {
        let answer = self
            .fake
            .send(request)
            .await
            .map_err(|error| bad_request(&error))?;
        let (parts, body) = answer.into_parts();
        let body = body
            .collect_bytes()
            .await
            .map_err(|error| bad_request(&error))?;
        Ok(Answer { parts, body })
    }

    async fn list(&self, request: Request, query: &Query) -> Response {
        let (mut parts, body) = request.into_parts();
        let path_and_query = format!(
            "{}?{}",
            parts.uri.path(),
            query.without(&["limit", "continue"])
        );
        parts.uri = match path_and_query.parse() {
            Ok(uri) => uri,
            Err(_) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "invalid query string",
                );
            }
        };
        let request = match into_kube_request(Request::from_parts(parts, body)).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        let journal = self.journal.lock().await;
        let mut answer = match self.send_buffered(request).await {
            Ok(answer) => answer,
            Err(response) => return response,
        };
        if answer.parts.status.is_success()
            && let Ok(mut list) = serde_json::from_slice::<Value>(&answer.body)
        {
            set_resource_version(&mut list, journal.highest);
            answer.body = Bytes::from(list.to_string());
            answer.parts.headers.remove(header::CONTENT_LENGTH);
        }
        answer.into_response()
    }

    async fn list_objects(&self, collection: &Collection) -> Result<Listed, Response> {
        let request = http::Request::get(collection.path())
            .body(KubeBody::empty())
            .expect("a GET of a collection path is a valid request");
        let answer = self.send_buffered(request).await?;
        if !answer.parts.status.is_success() {
            return Err(answer.into_response());
        }
        let mut list: Value = serde_json::from_slice(&answer.body).map_err(|error| {
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                error.to_string(),
            )
        })?;
        let text = |key: &str| {
            list.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let kind = kind.strip_suffix("List").unwrap_or(&kind).to_owned();
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok(Listed {
            api_version,
            kind,
            items,
        })
    }

    /// Forwards a POST, PUT, PATCH or DELETE and records what it changed.
    async fn mutate(&self, target: Target, request: Request) -> Response {
        let method = request.method().clone();
        let request = match into_kube_request(request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        let mut journal = self.journal.lock().await;
        let answer = match self.send_buffered(request).await {
            Ok(answer) => answer,
            Err(response) => return response,
        };
        if answer.parts.status.is_success() {
            if method == Method::DELETE {
                self.record_deletions(&mut journal).await;
            } else if let Ok(object) = serde_json::from_slice::<Value>(&answer.body) {
                record_write(&mut journal, &target, object);
            }
        }
        answer.into_response()
    }

    /// Records a DELETED event for every known object the fake no longer lists: the one deleted
    /// and whatever went with it (dependents, the rest of a deleted collection).
    async fn record_deletions(&self, journal: &mut Journal) {
        for (collection, names) in journal.existing() {
            let Ok(listed) = self.list_objects(&collection).await else {
                continue;
            };
            let remaining: Vec<&str> = listed.items.iter().filter_map(object_name).collect();
            for name in names
                .iter()
                .filter(|name| !remaining.contains(&name.as_str()))
            {
                let resource_version = self.tick_clock(journal).await;
                journal.record_delete(&collection, name, resource_version);
            }
        }
    }

    /// Takes a fresh resourceVersion from the fake's global counter by applying the clock.
    async fn tick_clock(&self, journal: &Journal) -> u64 {
        let clock: Api<ConfigMap> = Api::namespaced(self.fake.clone(), CLOCK_NAMESPACE);
        let tick = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": CLOCK_NAME },
            "data": { "tick": journal.events.len().to_string() },
        });
        let params = PatchParams::apply("fake-kube-api").force();
        let applied = clock
            .patch(CLOCK_NAME, &params, &Patch::Apply(&tick))
            .await
            .expect("the fake applies a ConfigMap");
        applied
            .metadata
            .resource_version
            .and_then(|version| version.parse().ok())
            .expect("the fake gives every write a numeric resourceVersion")
    }

    async fn watch(&self, collection: Collection, query: &Query) -> Response {
        let watch = match Watch::parse(collection, query) {
            Ok(watch) => watch,
            Err(message) => return failure(StatusCode::BAD_REQUEST, "BadRequest", message),
        };
        let journal = self.journal.lock().await;
        // Listing also answers 404 for a resource the fake does not know.
        let listed = match self.list_objects(&watch.collection).await {
            Ok(listed) => listed,
            Err(response) => return response,
        };
        let receiver = journal.subscribe();
        let (lines, after) = match watch.resource_version {
            Some(version) if !watch.send_initial_events => {
                (watch.replay(&journal, version), version)
            }
            _ => (
                watch.initial_events(&listed, journal.highest),
                journal.highest,
            ),
        };
        drop(journal);
        let live = Live {
            receiver,
            deadline: Instant::now() + watch.timeout,
            shutdown: self.shutdown.clone(),
            watch,
            after,
            ended: false,
        };
        let live = stream::unfold(live, |mut live| async move {
            live.next_line().await.map(|line| (line, live))
        });
        let body = stream::iter(lines).chain(live).map(Ok::<_, Infallible>);
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response()
    }
}

fn record_write(journal: &mut Journal, target: &Target, object: Value) {
    if object.get("kind").and_then(Value::as_str) == Some("Status") {
        return;
    }
    let mut collection = target.collection().clone();
    if let Some(namespace) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        collection.namespace = Some(namespace.to_owned());
    }
    journal.record_write(collection, object);
}

/// One WATCH request's parameters.
struct Watch {
    collection: Collection,
    /// `None` when absent, empty or `0`: start with the current objects.
    resource_version: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
    send_initial_events: bool,
    labels: Option<String>,
    fields: Vec<FieldRequirement>,
}

impl Watch {
    /// The parameters, or why they are invalid.
    fn parse(collection: Collection, query: &Query) -> Result<Watch, String> {
        let resource_version = match query.get("resourceVersion") {
            None | Some("" | "0") => None,
            Some(version) => Some(
                version
                    .parse()
                    .map_err(|_| format!("invalid resourceVersion {version:?}"))?,
            ),
        };
        let timeout = match query.get("timeoutSeconds") {
            None => DEFAULT_WATCH_TIMEOUT,
            Some(seconds) => Duration::from_secs(
                seconds
                    .parse()
                    .map_err(|_| format!("invalid timeoutSeconds {seconds:?}"))?,
            ),
        };
        let labels = query
            .get("labelSelector")
            .filter(|selector| !selector.is_empty());
        if let Some(selector) = labels {
            label_selector::parse_label_selector(selector)?;
        }
        let fields = FieldRequirement::parse_all(query.get("fieldSelector").unwrap_or_default())?;
        Ok(Watch {
            collection,
            resource_version,
            timeout,
            bookmarks: query.flag("allowWatchBookmarks"),
            send_initial_events: query.flag("sendInitialEvents"),
            labels: labels.map(str::to_owned),
            fields,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let labels_match = self.labels.as_deref().is_none_or(|selector| {
            let labels = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect();
            label_selector::matches_label_selector(&labels, selector).unwrap_or(false)
        });
        labels_match && self.fields.iter().all(|field| field.matches(object))
    }

    /// An ADDED event per current object, then the initial-events-end bookmark if asked for.
    fn initial_events(&self, listed: &Listed, resource_version: u64) -> Vec<Bytes> {
        let mut lines: Vec<Bytes> = listed
            .items
            .iter()
            .filter(|object| self.matches(object))
            .map(|object| watch_line("ADDED", object))
            .collect();
        if self.send_initial_events && self.bookmarks {
            let bookmark = json!({
                "apiVersion": listed.api_version,
                "kind": listed.kind,
                "metadata": {
                    "resourceVersion": resource_version.to_string(),
                    "annotations": { "k8s.io/initial-events-end": "true" },
                },
            });
            lines.push(watch_line("BOOKMARK", &bookmark));
        }
        lines
    }

    fn replay(&self, journal: &Journal, resource_version: u64) -> Vec<Bytes> {
        journal
            .since(resource_version)
            .filter_map(|event| self.line(event))
            .collect()
    }

    /// The line a watcher with this scope and these selectors gets for `event`, if any.
    fn line(&self, event: &Recorded) -> Option<Bytes> {
        if !self.collection.contains(&event.collection) {
            return None;
        }
        let now = self.matches(&event.object);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|previous| self.matches(previous));
        let kind = match (event.change, before, now) {
            (Change::Added, _, true) | (Change::Modified, false, true) => "ADDED",
            (Change::Modified, true, true) => "MODIFIED",
            (Change::Deleted, _, true) | (Change::Modified, true, false) => "DELETED",
            (_, _, false) => return None,
        };
        Some(watch_line(kind, &event.object))
    }
}

/// The live part of a watch: journal events as they are recorded, until the timeout.
struct Live {
    receiver: broadcast::Receiver<Arc<Recorded>>,
    deadline: Instant,
    shutdown: CancellationToken,
    watch: Watch,
    /// Events at or below this resourceVersion were sent already or not asked for.
    after: u64,
    ended: bool,
}

impl Live {
    async fn next_line(&mut self) -> Option<Bytes> {
        while !self.ended {
            let received = tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = self.shutdown.cancelled() => return None,
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(event) if event.resource_version > self.after => {
                    if let Some(line) = self.watch.line(&event) {
                        return Some(line);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    self.ended = true;
                    return Some(watch_line("ERROR", &expired()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
        None
    }
}

/// One `fieldSelector` requirement: `path=value`, `path==value` or `path!=value`.
struct FieldRequirement {
    path: Vec<String>,
    value: String,
    equal: bool,
}

impl FieldRequirement {
    fn parse_all(selector: &str) -> Result<Vec<FieldRequirement>, String> {
        selector
            .split(',')
            .filter(|requirement| !requirement.trim().is_empty())
            .map(FieldRequirement::parse)
            .collect()
    }

    fn parse(requirement: &str) -> Result<FieldRequirement, String> {
        let (field, value, equal) = if let Some((field, value)) = requirement.split_once("!=") {
            (field, value, false)
        } else if let Some((field, value)) = requirement
            .split_once("==")
            .or_else(|| requirement.split_once('='))
        {
            (field, value, true)
        } else {
            return Err(format!(
                "invalid field selector requirement {requirement:?}"
            ));
        };
        Ok(FieldRequirement {
            path: field.trim().split('.').map(str::to_owned).collect(),
            value: value.trim().to_owned(),
            equal,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let actual = match self
            .path
            .iter()
            .try_fold(object, |value, key| value.get(key))
        {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        (actual == self.value) == self.equal
    }
}

#[derive(Serialize)]
struct WatchLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&WatchLine { kind, object }).expect("a JSON value serializes");
    line.push(b'\n');
    Bytes::from(line)
}

fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    })
}

fn expired() -> Value {
    status(
        StatusCode::GONE,
        "Expired",
        "the watch fell too far behind; list again",
    )
}

fn failure(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    (code, Json(status(code, reason, message))).into_response()
}

/// The fake fails requests it cannot parse (a bad path or a body that is not JSON) with an error
/// instead of an answer.
fn bad_request(error: &kube::Error) -> Response {
    failure(StatusCode::BAD_REQUEST, "BadRequest", error.to_string())
}

async fn into_kube_request(request: Request) -> Result<http::Request<KubeBody>, Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .map_err(|error| {
            failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                error.to_string(),
            )
        })?;
    Ok(http::Request::from_parts(parts, KubeBody::from(body)))
}

fn object_name(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

fn resource_version(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

fn set_resource_version(object: &mut Value, resource_version: u64) {
    if let Some(object) = object.as_object_mut() {
        let metadata = object.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert(
                "resourceVersion".to_owned(),
                json!(resource_version.to_string()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{pin::Pin, time::Duration};

    use futures::{Stream, StreamExt};
    use hookplane_crds::Touchpoint;
    use k8s_openapi::{ByteString, api::core::v1::Secret};
    use kube::{
        Api, Client, Resource, ResourceExt,
        api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
        config::{KubeConfigOptions, Kubeconfig},
        runtime::watcher,
    };
    use serde_json::{Value, json};

    use super::FakeKubeApi;

    const WAIT: Duration = Duration::from_secs(10);

    type Events<K> = Pin<Box<dyn Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send>>;

    fn touchpoint(name: &str, display_name: &str) -> Value {
        json!({
            "apiVersion": "hookplane.io/v1alpha1",
            "kind": "Touchpoint",
            "metadata": { "name": name },
            "spec": {
                "connectionRef": "shop-to-erp",
                "name": display_name,
                "source": { "app": "generic", "endpoint": name },
                "destination": { "method": "POST", "url": format!("/{name}") },
                "autoSync": true,
            },
        })
    }

    async fn apply(
        api: &Api<Touchpoint>,
        manager: &str,
        force: bool,
        object: &Value,
    ) -> kube::Result<Touchpoint> {
        let mut params = PatchParams::apply(manager);
        params.force = force;
        let name = object["metadata"]["name"]
            .as_str()
            .expect("fixtures have a name");
        api.patch(name, &params, &Patch::Apply(object)).await
    }

    fn watch<K>(api: Api<K>) -> Events<K>
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        watcher(api, watcher::Config::default()).boxed()
    }

    async fn next_event<K>(events: &mut Events<K>) -> watcher::Event<K> {
        tokio::time::timeout(WAIT, events.next())
            .await
            .expect("a watcher event within the wait")
            .expect("the watcher does not end")
            .expect("the watcher does not fail")
    }

    /// Drains the initial list up to `InitDone`.
    async fn initial_objects<K>(events: &mut Events<K>) -> Vec<K> {
        let mut objects = Vec::new();
        loop {
            match next_event(events).await {
                watcher::Event::Init => {}
                watcher::Event::InitApply(object) => objects.push(object),
                watcher::Event::InitDone => return objects,
                _ => panic!("unexpected event before InitDone"),
            }
        }
    }

    async fn applied<K>(events: &mut Events<K>) -> K {
        match next_event(events).await {
            watcher::Event::Apply(object) => object,
            _ => panic!("expected an Apply event"),
        }
    }

    async fn deleted<K>(events: &mut Events<K>) -> K {
        match next_event(events).await {
            watcher::Event::Delete(object) => object,
            _ => panic!("expected a Delete event"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_apply_watch_conflict_and_delete() {
        let server = FakeKubeApi::start("shop").await;
        let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
        let created = apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders"),
        )
        .await
        .expect("applying");
        assert_eq!(created.namespace().as_deref(), Some("shop"));

        let mut events = watch(touchpoints.clone());
        let initial = initial_objects(&mut events).await;
        assert_eq!(
            initial
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>(),
            ["orders"]
        );

        apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders v2"),
        )
        .await
        .expect("applying a change");
        let changed = applied(&mut events).await;
        assert_eq!(changed.spec.name, "Orders v2");
        assert!(
            changed.metadata.generation > created.metadata.generation,
            "generation bumps on a spec change"
        );

        let conflict = apply(
            &touchpoints,
            "portal",
            false,
            &touchpoint("orders", "Orders v3"),
        )
        .await;
        match conflict {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
            other => panic!("expected a 409 conflict, got {other:?}"),
        }

        let fetched = touchpoints.get("orders").await.expect("getting");
        let managers: Vec<_> = fetched
            .managed_fields()
            .iter()
            .filter_map(|entry| entry.manager.clone())
            .collect();
        assert_eq!(managers, ["kubectl"]);
        assert_eq!(
            fetched.spec.name, "Orders v2",
            "the conflicting apply changed nothing"
        );

        touchpoints
            .delete("orders", &DeleteParams::default())
            .await
            .expect("deleting");
        let gone = deleted(&mut events).await;
        assert_eq!(gone.name_any(), "orders");
        let version = |tp: &Touchpoint| {
            tp.resource_version()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("numeric")
        };
        assert!(
            version(&gone) > version(&changed),
            "a DELETED event has a fresh resourceVersion"
        );
        assert!(
            touchpoints
                .get_opt("orders")
                .await
                .expect("getting")
                .is_none()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_watch_sees_objects_created_later() {
        let server = FakeKubeApi::start("shop").await;
        let client = server.client().await;
        let touchpoints: Api<Touchpoint> = Api::default_namespaced(client.clone());
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        let mut touchpoint_events = watch(touchpoints.clone());
        let mut secret_events = watch(secrets.clone());
        assert!(initial_objects(&mut touchpoint_events).await.is_empty());
        assert!(initial_objects(&mut secret_events).await.is_empty());

        let mut secret = Secret::default();
        secret.metadata.name = Some("shop-signing".into());
        secret.data = Some([("secret".to_owned(), ByteString(b"s3cret".to_vec()))].into());
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("creating a secret");
        let seen = applied(&mut secret_events).await;
        assert_eq!(seen.name_any(), "shop-signing");
        assert_eq!(seen.data, secret.data);

        apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders"),
        )
        .await
        .expect("applying");
        assert_eq!(applied(&mut touchpoint_events).await.name_any(), "orders");

        let status = json!({ "status": { "endpointUrl": "http://hooks/shop/orders" } });
        touchpoints
            .patch_status("orders", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("patching the status");
        let with_status = applied(&mut touchpoint_events).await;
        let endpoint = with_status.status.and_then(|status| status.endpoint_url);
        assert_eq!(endpoint.as_deref(), Some("http://hooks/shop/orders"));

        secrets
            .delete("shop-signing", &DeleteParams::default())
            .await
            .expect("deleting the secret");
        assert_eq!(deleted(&mut secret_events).await.name_any(), "shop-signing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_cascading_delete_is_watched() {
        let server = FakeKubeApi::start("shop").await;
        let client = server.client().await;
        let touchpoints: Api<Touchpoint> = Api::default_namespaced(client.clone());
        let secrets: Api<Secret> = Api::default_namespaced(client);
        let owner = apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders"),
        )
        .await
        .expect("applying");
        let mut secret = Secret::default();
        secret.metadata.name = Some("orders-signing".into());
        secret.metadata.owner_references =
            Some(vec![owner.controller_owner_ref(&()).expect("a uid")]);
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("creating an owned secret");
        let mut secret_events = watch(secrets.clone());
        assert_eq!(initial_objects(&mut secret_events).await.len(), 1);

        touchpoints
            .delete("orders", &DeleteParams::default())
            .await
            .expect("deleting the owner");
        assert_eq!(
            deleted(&mut secret_events).await.name_any(),
            "orders-signing"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_drop_ends_watches() {
        let server = FakeKubeApi::start("shop").await;
        let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
        let events = touchpoints
            .watch(&WatchParams::default(), "0")
            .await
            .expect("starting a watch");
        drop(server);
        tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
            .await
            .expect("the watch ends when the server is dropped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_kubeconfig_reaches_the_server() {
        let server = FakeKubeApi::start("tenant-a").await;
        assert!(
            server.url().starts_with("http://127.0.0.1:"),
            "{}",
            server.url()
        );
        let kubeconfig =
            Kubeconfig::read_from(server.kubeconfig()).expect("reading the kubeconfig");
        let cluster = kubeconfig.clusters[0].cluster.as_ref().expect("a cluster");
        assert_eq!(cluster.server.as_deref(), Some(server.url()));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("a config from the kubeconfig");
        let client = Client::try_from(config).expect("a client from the kubeconfig");
        assert_eq!(client.default_namespace(), server.namespace());

        let touchpoints: Api<Touchpoint> = Api::default_namespaced(client);
        apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders"),
        )
        .await
        .expect("applying");
        let listed = touchpoints
            .list(&Default::default())
            .await
            .expect("listing");
        assert_eq!(listed.items.len(), 1);
        let other: Api<Touchpoint> = Api::default_namespaced(server.client().await);
        assert_eq!(
            other
                .get("orders")
                .await
                .expect("getting")
                .namespace()
                .as_deref(),
            Some("tenant-a")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_watch_resumes_after_a_resource_version_and_times_out() {
        let server = FakeKubeApi::start("shop").await;
        let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
        apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders"),
        )
        .await
        .expect("applying orders");
        let refunds = apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("refunds", "Refunds"),
        )
        .await
        .expect("applying refunds");
        apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("orders", "Orders v2"),
        )
        .await
        .expect("changing orders");
        touchpoints
            .delete("refunds", &DeleteParams::default())
            .await
            .expect("deleting refunds");

        let since = refunds.resource_version().expect("a resourceVersion");
        let resumed = collect_watch(&touchpoints, &since).await;
        assert_eq!(resumed, ["MODIFIED orders", "DELETED refunds"]);

        let from_start = collect_watch(&touchpoints, "0").await;
        assert_eq!(from_start, ["ADDED orders"]);

        let list = touchpoints
            .list(&Default::default())
            .await
            .expect("listing");
        let list_version = list
            .metadata
            .resource_version
            .expect("a list resourceVersion");
        assert!(
            collect_watch(&touchpoints, &list_version).await.is_empty(),
            "nothing after the list's version"
        );
    }

    /// The events of a one-second watch from `version`, as `TYPE name`.
    async fn collect_watch(api: &Api<Touchpoint>, version: &str) -> Vec<String> {
        let events = api
            .watch(&WatchParams::default().timeout(1), version)
            .await
            .expect("starting a watch");
        let events = tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
            .await
            .expect("the watch ends after its timeout");
        events
            .into_iter()
            .map(|event| match event.expect("a watch event") {
                WatchEvent::Added(tp) => format!("ADDED {}", tp.name_any()),
                WatchEvent::Modified(tp) => format!("MODIFIED {}", tp.name_any()),
                WatchEvent::Deleted(tp) => format!("DELETED {}", tp.name_any()),
                WatchEvent::Bookmark(_) => "BOOKMARK".to_owned(),
                WatchEvent::Error(status) => format!("ERROR {status:?}"),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_streaming_list_and_label_selector() {
        let server = FakeKubeApi::start("shop").await;
        let touchpoints: Api<Touchpoint> = Api::default_namespaced(server.client().await);
        let mut labelled = touchpoint("orders", "Orders");
        labelled["metadata"]["labels"] = json!({ "tier": "gold" });
        apply(&touchpoints, "kubectl", true, &labelled)
            .await
            .expect("applying orders");
        apply(
            &touchpoints,
            "kubectl",
            true,
            &touchpoint("refunds", "Refunds"),
        )
        .await
        .expect("applying refunds");

        let config = watcher::Config::default()
            .streaming_lists()
            .labels("tier=gold");
        let mut events: Events<Touchpoint> = watcher(touchpoints.clone(), config).boxed();
        let initial = initial_objects(&mut events).await;
        assert_eq!(
            initial
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>(),
            ["orders"]
        );

        labelled["metadata"]["labels"] = json!({ "tier": "silver" });
        apply(&touchpoints, "kubectl", true, &labelled)
            .await
            .expect("relabelling orders");
        assert_eq!(
            deleted(&mut events).await.name_any(),
            "orders",
            "leaving the selector is a delete"
        );

        let mut refunds = touchpoint("refunds", "Refunds");
        refunds["metadata"]["labels"] = json!({ "tier": "gold" });
        apply(&touchpoints, "kubectl", true, &refunds)
            .await
            .expect("relabelling refunds");
        assert_eq!(
            applied(&mut events).await.name_any(),
            "refunds",
            "entering the selector is an add"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kube_api_answers_bad_requests_with_a_status() {
        let server = FakeKubeApi::start("shop").await;
        let client = server.client().await;
        let get = |path: &str| http_request("GET", path, Vec::new());
        let (code, body) = send(&client, get("/not/a/kubernetes/path")).await;
        assert_eq!(
            (code, body["kind"].as_str(), body["code"].as_u64()),
            (404, Some("Status"), Some(404))
        );

        let (code, body) = send(
            &client,
            get("/apis/hookplane.io/v1alpha1/namespaces/shop/widgets"),
        )
        .await;
        assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));

        let post = http_request(
            "POST",
            "/apis/hookplane.io/v1alpha1/namespaces/shop/touchpoints",
            b"{not json".to_vec(),
        );
        let (code, body) = send(&client, post).await;
        assert_eq!((code, body["kind"].as_str()), (400, Some("Status")));

        let watch = get(
            "/apis/hookplane.io/v1alpha1/namespaces/shop/touchpoints?watch=true&resourceVersion=abc",
        );
        assert_eq!(send(&client, watch).await.0, 400);
    }

    fn http_request(
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> axum::http::Request<kube::client::Body> {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.into())
            .expect("a valid request")
    }

    async fn send(
        client: &Client,
        request: axum::http::Request<kube::client::Body>,
    ) -> (u16, Value) {
        let response = client.send(request).await.expect("an answer");
        let code = response.status().as_u16();
        let body = response.into_body().collect_bytes().await.expect("a body");
        (code, serde_json::from_slice(&body).expect("a JSON body"))
    }
}
