//! The worker end to end on a SQLite store, against real destinations on `127.0.0.1:0`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{any, post},
};
use hookplane_crds::{
    ConnectionSpec, DeliveryPolicy, DestinationLimits, DestinationSpec, OAuth2Spec, PayloadFormat,
    SecretKeyRef, SourceSpec, TouchpointSpec, VerificationSpec,
};
use hookplane_mapping::{Sandbox, SandboxConfig};
use hookplane_store::{Event, EventStatus, NewEvent, Store, StoreOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Worker, WorkerConfig, test_server::serve};
use crate::{runtime::Runtime, telemetry::Metrics};

struct Env {
    store: Store,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    worker: Option<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("sync.db").display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        Self {
            // Every mapping here is the identity: nothing reaches an evaluator process.
            runtime: Arc::new(Runtime::new(
                store.clone(),
                Sandbox::new(SandboxConfig {
                    program: "/nonexistent/hookplane-evaluator".into(),
                    args: Vec::new(),
                    processes: 1,
                    defaults: hookplane_mapping::Limits::default(),
                    max: hookplane_mapping::Limits::default(),
                }),
            )),
            store,
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
            worker: None,
            _dir: dir,
        }
    }

    fn start(&mut self, concurrency: usize) {
        let worker = Worker::new(
            self.store.clone(),
            Arc::clone(&self.runtime),
            Arc::clone(&self.metrics),
            Arc::clone(&self.wake),
            WorkerConfig {
                concurrency,
                idle_poll: Duration::from_millis(200),
                ..WorkerConfig::default()
            },
        );
        self.worker = Some(tokio::spawn(worker.run(self.shutdown.clone())));
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(worker) = self.worker.take() {
            worker.await.expect("the worker ends cleanly");
        }
    }

    async fn connection(&self, spec: ConnectionSpec) -> Uuid {
        let organization = match self.store.organization_by_slug("acme").await.expect("read") {
            Some(organization) => organization.id,
            None => {
                self.store
                    .create_organization("acme", "https://hooks.acme.test")
                    .await
                    .expect("create the organization")
                    .id
            }
        };
        self.store
            .create_connection(organization, spec)
            .await
            .expect("create a connection")
            .id
    }

    /// A running touchpoint of `connection` delivering to `url` (a template).
    async fn touchpoint(
        &self,
        connection: Uuid,
        endpoint: &str,
        destination: DestinationSpec,
        delivery: DeliveryPolicy,
    ) -> Uuid {
        let spec = TouchpointSpec {
            connection_ref: connection.to_string(),
            name: endpoint.into(),
            source: SourceSpec {
                app: "generic".into(),
                endpoint: endpoint.into(),
                verification: Some(no_verification()),
                ..SourceSpec::default()
            },
            destination,
            auto_sync: true,
            delivery,
            ..TouchpointSpec::default()
        };
        let id = self.store.create_touchpoint(spec).await.expect("create").id;
        self.store.publish_touchpoint(id).await.expect("publish");
        self.store.set_auto_sync(id, true).await.expect("auto-sync");
        self.runtime.reload().await.expect("reload");
        id
    }

    async fn append(
        &self,
        touchpoint: Uuid,
        payloads: impl IntoIterator<Item = Value>,
    ) -> Vec<Uuid> {
        let events = payloads
            .into_iter()
            .map(|payload| received(touchpoint, &payload))
            .collect();
        let appended = self.store.append_events(events).await.expect("append");
        self.wake.notify_one();
        appended.iter().map(|a| a.event().id).collect()
    }

    async fn event(&self, id: Uuid) -> Event {
        self.store.event(id).await.expect("read").expect("exists")
    }

    /// Wait until every event in `ids` is no longer UNPROCESSED.
    async fn settled(&self, ids: &[Uuid], within: Duration) -> Vec<Event> {
        let deadline = Instant::now() + within;
        loop {
            let mut events = Vec::new();
            for id in ids {
                events.push(self.event(*id).await);
            }
            if events.iter().all(|e| e.status != EventStatus::Unprocessed) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "not settled in {within:?}: {:?}",
                events
                    .iter()
                    .map(|e| (e.status, e.attempts, e.last_error.clone()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn throttled(&self, reason: &str) -> u64 {
        self.metrics
            .delivery_throttled
            .with_label_values(&[reason])
            .get()
    }
}

/// The generic app's explicit "accept anything": what the test touchpoints publish, and what
/// their events are received with.
fn no_verification() -> VerificationSpec {
    VerificationSpec {
        scheme: Some("none".into()),
        ..VerificationSpec::default()
    }
}

/// `payload` as intake stores it: a JSON body with a fresh `webhook-id`, through a real
/// `hookplane_sources::receive` (the `generic` app, verification `none`).
fn received(touchpoint: Uuid, payload: &Value) -> NewEvent {
    hookplane_store::testing::received_event(touchpoint, payload, &Uuid::now_v7().to_string())
}

fn connection(limits: DestinationLimits) -> ConnectionSpec {
    ConnectionSpec {
        name: "erp".into(),
        source_app: "generic".into(),
        destination_app: "generic".into(),
        limits,
        ..ConnectionSpec::default()
    }
}

fn destination(url: String) -> DestinationSpec {
    DestinationSpec {
        url,
        ..DestinationSpec::default()
    }
}

fn quick_retries(max_attempts: u32) -> DeliveryPolicy {
    DeliveryPolicy {
        max_attempts,
        initial_backoff_ms: 10,
        max_backoff_ms: 50,
        timeout_seconds: 10,
        retry_client_errors: false,
    }
}

/// Counts concurrent requests and remembers the most seen at once.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_destination_never_delays_other_touchpoints() {
    async fn slow(State(gauge): State<Gauge>) -> StatusCode {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        gauge.now.fetch_sub(1, Ordering::SeqCst);
        gauge.served.fetch_add(1, Ordering::SeqCst);
        StatusCode::OK
    }
    let gauge = Gauge::default();
    let slow_base = serve(
        Router::new()
            .route("/slow", post(slow))
            .with_state(gauge.clone()),
    )
    .await;
    let fast_base = serve(Router::new().route("/fast", post(|| async { StatusCode::OK }))).await;

    let mut env = Env::new().await;
    let slow_connection = env
        .connection(connection(DestinationLimits {
            max_concurrency: 2,
            requests_per_second: None,
        }))
        .await;
    let fast_connection = env
        .connection(connection(DestinationLimits::default()))
        .await;
    let slow_tp = env
        .touchpoint(
            slow_connection,
            "slow",
            destination(format!("{slow_base}/slow")),
            quick_retries(3),
        )
        .await;
    let fast_tp = env
        .touchpoint(
            fast_connection,
            "fast",
            destination(format!("{fast_base}/fast")),
            quick_retries(3),
        )
        .await;
    // The slow destination's backlog is older, so a plain oldest-first claim would fill the
    // worker with it.
    let slow_events = env.append(slow_tp, (0..8).map(|n| json!({"n": n}))).await;
    env.start(4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let fast_events = env.append(fast_tp, (0..20).map(|n| json!({"n": n}))).await;
    let fast = env.settled(&fast_events, Duration::from_secs(5)).await;
    let fast_took = started.elapsed();
    assert!(fast.iter().all(|e| e.status == EventStatus::Success));
    assert!(
        fast_took < Duration::from_millis(1000),
        "the fast touchpoint waited {fast_took:?} behind the slow one"
    );
    let slow = env.settled(&slow_events, Duration::from_secs(10)).await;
    assert!(slow.iter().all(|e| e.status == EventStatus::Success));
    assert_eq!(gauge.most.load(Ordering::SeqCst), 2, "maxConcurrency held");
    assert_eq!(
        gauge.served.load(Ordering::SeqCst),
        8,
        "each slow event sent once"
    );
    let handed_back = env.throttled("concurrency");
    assert!(
        handed_back <= 4,
        "{handed_back} hand-backs: only the round that found the backlog should hand back"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_held_and_recorded() {
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<Instant>>>);
    async fn throttle(State(seen): State<Seen>) -> Response {
        let mut times = seen.0.lock().unwrap();
        times.push(Instant::now());
        if times.len() == 1 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response()
        } else {
            (StatusCode::CREATED, "ok").into_response()
        }
    }
    let seen = Seen::default();
    let base = serve(
        Router::new()
            .route("/orders", post(throttle))
            .with_state(seen.clone()),
    )
    .await;
    let mut env = Env::new().await;
    let conn = env
        .connection(connection(DestinationLimits::default()))
        .await;
    let tp = env
        .touchpoint(
            conn,
            "orders",
            destination(format!("{base}/orders")),
            quick_retries(3),
        )
        .await;
    let ids = env.append(tp, [json!({"id": 1})]).await;
    env.start(4);
    let events = env.settled(&ids, Duration::from_secs(5)).await;
    assert_eq!(events[0].status, EventStatus::Success);
    assert_eq!(events[0].attempts, 2);
    let times = seen.0.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_millis(990),
        "retried after {:?}, before Retry-After",
        times[1] - times[0]
    );
    let attempts = env.store.attempts(ids[0]).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].response_status, Some(429));
    assert_eq!(attempts[0].response_snippet.as_deref(), Some("slow down"));
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("answered 429")
    );
    assert_eq!(attempts[1].response_status, Some(201));
    assert_eq!(attempts[1].error, None);
    assert_eq!(env.throttled("destination_429"), 1);
    assert_eq!(env.throttled("retry_after_hold"), 1);
    assert_eq!(env.metrics.delivery_retries.get(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_fail_at_once_and_redirects_are_not_followed() {
    async fn refuse(uri: Uri) -> Response {
        match uri.path() {
            "/orders/moved" => (StatusCode::FOUND, [("location", "/new")]).into_response(),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "bad CardCode").into_response(),
        }
    }
    let base = serve(Router::new().route("/orders/{id}", any(refuse))).await;
    let mut env = Env::new().await;
    let conn = env
        .connection(connection(DestinationLimits::default()))
        .await;
    let tp = env
        .touchpoint(
            conn,
            "orders",
            destination(format!("{base}/orders/{{.id}}")),
            quick_retries(5),
        )
        .await;
    let ids = env
        .append(
            tp,
            [
                json!({"id": "7"}),
                json!({"id": "moved"}),
                json!({"other": 1}),
            ],
        )
        .await;
    env.start(4);
    let events = env.settled(&ids, Duration::from_secs(5)).await;
    assert_eq!(events[0].status, EventStatus::Failed);
    assert_eq!(events[0].attempts, 1, "422 is permanent");
    assert_eq!(events[0].response_status, Some(422));
    assert_eq!(
        events[0].last_error.as_deref(),
        Some("the destination answered 422: bad CardCode")
    );
    assert_eq!(events[1].status, EventStatus::Failed);
    assert_eq!(
        events[1].last_error.as_deref(),
        Some("the destination answered 302 (redirects are not followed; it points to /new)")
    );
    assert_eq!(events[2].status, EventStatus::Failed);
    assert_eq!(
        events[2].last_error.as_deref(),
        Some("the URL placeholder {.id} has no value in the mapped output")
    );
    assert!(
        env.store.attempts(ids[2]).await.unwrap().is_empty(),
        "no request was made"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_tokens_are_fetched_once_and_refreshed_on_401() {
    #[derive(Clone, Default)]
    struct Tokens {
        issued: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<(String, String, String)>>>,
    }
    async fn token(State(tokens): State<Tokens>) -> Response {
        let n = tokens.issued.fetch_add(1, Ordering::SeqCst) + 1;
        axum::Json(
            json!({"access_token": format!("tok-{n}"), "token_type": "bearer", "expires_in": 3600}),
        )
        .into_response()
    }
    async fn orders(State(tokens): State<Tokens>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let authorization = headers["authorization"].to_str().unwrap().to_owned();
        let content_type = headers["content-type"].to_str().unwrap().to_owned();
        let body = String::from_utf8(body.to_vec()).unwrap();
        tokens
            .seen
            .lock()
            .unwrap()
            .push((authorization.clone(), content_type, body));
        // The first token was revoked early.
        if authorization == "Bearer tok-1" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        }
    }
    let tokens = Tokens::default();
    let base = serve(
        Router::new()
            .route("/token", post(token))
            .route("/orders", post(orders))
            .with_state(tokens.clone()),
    )
    .await;
    let mut env = Env::new().await;
    env.store
        .put_secret("erp", "client-secret", "s3cret")
        .await
        .expect("secret");
    let conn = env
        .connection(ConnectionSpec {
            oauth2: Some(OAuth2Spec {
                token_url: format!("{base}/token"),
                client_id: "hookplane".into(),
                client_secret_ref: SecretKeyRef {
                    name: "erp".into(),
                    key: "client-secret".into(),
                },
                scopes: vec!["orders".into()],
            }),
            ..connection(DestinationLimits::default())
        })
        .await;
    let tp = env
        .touchpoint(
            conn,
            "orders",
            DestinationSpec {
                url: format!("{base}/orders"),
                format: PayloadFormat::Form,
                ..DestinationSpec::default()
            },
            quick_retries(3),
        )
        .await;
    let first = env.append(tp, [json!({"id": "1"})]).await;
    env.start(4);
    let events = env.settled(&first, Duration::from_secs(5)).await;
    assert_eq!(events[0].status, EventStatus::Success);
    assert_eq!(
        events[0].attempts, 1,
        "the refresh is part of the same attempt"
    );
    let more = env
        .append(tp, (2..6).map(|n| json!({"id": n.to_string()})))
        .await;
    let events = env.settled(&more, Duration::from_secs(5)).await;
    assert!(events.iter().all(|e| e.status == EventStatus::Success));
    assert_eq!(
        tokens.issued.load(Ordering::SeqCst),
        2,
        "one refresh, then the cache"
    );
    let seen = tokens.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0].0, "Bearer tok-1");
    assert!(seen[1..].iter().all(|(auth, _, _)| auth == "Bearer tok-2"));
    assert_eq!(seen[1].1, "application/x-www-form-urlencoded");
    assert_eq!(seen[1].2, "id=1");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spaces_requests() {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let recorded = Arc::clone(&times);
    let base = serve(Router::new().route(
        "/orders",
        post(move || {
            let recorded = Arc::clone(&recorded);
            async move {
                recorded.lock().unwrap().push(Instant::now());
                StatusCode::OK
            }
        }),
    ))
    .await;
    let mut env = Env::new().await;
    let conn = env
        .connection(connection(DestinationLimits {
            max_concurrency: 10,
            requests_per_second: Some(5),
        }))
        .await;
    let tp = env
        .touchpoint(
            conn,
            "orders",
            destination(format!("{base}/orders")),
            quick_retries(3),
        )
        .await;
    let ids = env.append(tp, (0..10).map(|n| json!({"n": n}))).await;
    env.start(8);
    let started = Instant::now();
    env.settled(&ids, Duration::from_secs(5)).await;
    let took = started.elapsed();
    // A burst of 5, then 5 more at 5 per second.
    assert!(
        took >= Duration::from_millis(900),
        "10 requests at 5/s took {took:?}"
    );
    assert_eq!(times.lock().unwrap().len(), 10, "nothing sent twice");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_events_whose_request_has_not_started() {
    let base = serve(Router::new().route(
        "/token",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            StatusCode::SERVICE_UNAVAILABLE
        }),
    ))
    .await;
    let mut env = Env::new().await;
    env.store
        .put_secret("erp", "secret", "s")
        .await
        .expect("secret");
    let conn = env
        .connection(ConnectionSpec {
            oauth2: Some(OAuth2Spec {
                token_url: format!("{base}/token"),
                client_id: "c".into(),
                client_secret_ref: SecretKeyRef {
                    name: "erp".into(),
                    key: "secret".into(),
                },
                scopes: Vec::new(),
            }),
            ..connection(DestinationLimits::default())
        })
        .await;
    let tp = env
        .touchpoint(
            conn,
            "orders",
            destination(format!("{base}/orders")),
            quick_retries(3),
        )
        .await;
    let ids = env.append(tp, [json!({"id": 1}), json!({"id": 2})]).await;
    env.start(4);
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.event(ids[1]).await.lease_until.is_none() {
        assert!(Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    env.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "waited for the token endpoint"
    );
    for id in ids {
        let event = env.event(id).await;
        assert_eq!(event.status, EventStatus::Unprocessed);
        assert_eq!(event.attempts, 0);
        assert_eq!(
            event.lease_until, None,
            "handed back, not left to its lease"
        );
    }
}

/// A full destination gets events claimed ahead, waiting at the worker for a slot: they are
/// sent oldest first and never beyond `maxConcurrency`, and when the destination starts
/// holding (`Retry-After`), those still waiting are handed back to the store at once, not
/// kept leased through the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_events_are_handed_back_when_their_destination_holds() {
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<Value>>>);
    async fn hold(State(seen): State<Seen>, body: Bytes) -> Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let first = {
            let mut bodies = seen.0.lock().unwrap();
            bodies.push(body);
            bodies.len() == 1
        };
        if first {
            tokio::time::sleep(Duration::from_millis(300)).await;
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "30")],
                "later",
            )
                .into_response()
        } else {
            StatusCode::OK.into_response()
        }
    }
    let seen = Seen::default();
    let base = serve(
        Router::new()
            .route("/orders", post(hold))
            .with_state(seen.clone()),
    )
    .await;
    let mut env = Env::new().await;
    let conn = env
        .connection(connection(DestinationLimits {
            max_concurrency: 1,
            requests_per_second: None,
        }))
        .await;
    let tp = env
        .touchpoint(
            conn,
            "orders",
            destination(format!("{base}/orders")),
            quick_retries(3),
        )
        .await;
    let ids = env.append(tp, (0..3).map(|n| json!({"n": n}))).await;
    env.start(4);
    // The first request is in flight; the second event waits at the worker, leased.
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.event(ids[1]).await.lease_until.is_none() {
        assert!(
            Instant::now() < deadline,
            "the next event was never claimed ahead"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.0.lock().unwrap().len(), 1, "one request at a time");
    // The 503 starts a 30 s hold: the waiting event goes back to the store, unleased.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let first = env.event(ids[0]).await;
        let waiting = env.event(ids[1]).await;
        if first.attempts == 1 && first.lease_until.is_none() && waiting.lease_until.is_none() {
            assert_eq!(waiting.status, EventStatus::Unprocessed);
            assert_eq!(waiting.attempts, 0, "never sent");
            break;
        }
        assert!(Instant::now() < deadline, "the waiting event stayed leased");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.0.lock().unwrap().clone(), vec![json!({"n": 0})]);
    env.stop().await;
}
