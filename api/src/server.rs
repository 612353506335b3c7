//! `hookplane serve`: the API, the receiver and the sync worker in one process.
//!
//! Start-up order: open the store, migrate, load the running snapshot, bind, then serve. On
//! shutdown the listener stops accepting, in-flight requests finish (so every acknowledged
//! webhook has committed), the worker finishes its in-flight deliveries, and the store's
//! writer drains before the process exits.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use hookplane_mapping::{Sandbox, SandboxConfig};
use hookplane_store::{Store, StoreOptions};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use hookplane_dataplane::{
    http_error::HttpError,
    ingest::{self, IngestConfig, IntakeState},
    retention::{RetentionConfig, purge_periodically},
    runtime::{ReloadError, RenderedSource, Runtime, Source, watch_rendered},
    sync::{Worker, WorkerConfig, wake_on_new_work},
    telemetry::{Metrics, log_summaries},
};

use crate::{
    cluster::{self, Cluster},
    graphql,
    portal::Portal,
};

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    pub wake_worker: Arc<Notify>,
    pub ingest: Arc<IngestConfig>,
    pub shutdown: CancellationToken,
    pub cluster: Option<Cluster>,
    pub api_limits: Arc<graphql::ApiLimits>,
    /// The OpenID Connect issuer whose JWTs the API accepts, if any.
    pub oidc: Option<Arc<crate::auth::oidc::Oidc>>,
}

/// What a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything: the GraphQL API, the receiver and the worker (`hookplane serve`).
    All,
    /// Only webhook intake for one rendered configuration (`hookplane receiver`).
    Receiver,
    /// Only the sync worker for one rendered configuration (`hookplane worker`).
    Worker,
    /// Only the GraphQL API over the shared store (`hookplane api`, on Kubernetes beside the
    /// operator's receivers and workers).
    Api,
}

/// Everything `serve` needs to know.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub role: Role,
    /// The operator's rendered configuration, for the receiver and worker roles.
    pub rendered: Option<RenderedSource>,
    pub listen: SocketAddr,
    pub database_url: String,
    /// How long a delivery id keeps absorbing repeats of a webhook.
    pub dedupe_window: std::time::Duration,
    pub ingest: IngestConfig,
    pub worker: WorkerConfig,
    pub retention: RetentionConfig,
    /// Evaluator processes for the jq users write, and their limits.
    pub sandbox: SandboxConfig,
    /// Cluster mode for the API role (`hookplane api --kubernetes`).
    pub cluster: Option<Cluster>,
    /// How often a one-line traffic summary is logged while traffic flows (zero: never).
    pub log_summary: Duration,
    /// The API's limits (API roles).
    pub api_limits: graphql::ApiLimits,
    /// How many connections are served at once, and how long their headers may take.
    pub connection_limits: crate::connections::ConnectionLimits,
    /// The key file write-only secrets are encrypted with; `None`: beside a SQLite database
    /// (`<file>.key`), none for PostgreSQL (secrets stored in clear, with a warning).
    pub secret_key_file: Option<std::path::PathBuf>,
    /// Accept JWTs from this OpenID Connect issuer (API roles).
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening the database")]
    OpenStore(#[source] hookplane_store::StoreError),
    #[error("applying migrations")]
    Migrate(#[source] hookplane_store::StoreError),
    #[error("loading the running configuration")]
    LoadRuntime(#[source] ReloadError),
    #[error("loading the key secrets are encrypted with")]
    SecretKey(#[source] hookplane_store::SecretKeyError),
    #[error("creating the instance owner's token")]
    OwnerToken(#[source] hookplane_store::StoreError),
    #[error("listening on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

/// The key secrets are encrypted with at rest: from `file`, else beside a SQLite database.
fn secret_key(
    file: Option<std::path::PathBuf>,
    database_url: &str,
) -> Result<Option<hookplane_store::SecretKey>, ServeError> {
    let path = match file {
        Some(path) => path,
        None => match hookplane_store::sqlite_file(database_url) {
            Some(database) => {
                let mut name = database.into_os_string();
                name.push(".key");
                name.into()
            }
            None => {
                if !database_url.starts_with("sqlite:") {
                    tracing::warn!(
                        "no --secret-key-file: secrets set through the API are stored in the database in clear"
                    );
                }
                return Ok(None);
            }
        },
    };
    hookplane_store::SecretKey::load_or_create(&path)
        .map(Some)
        .map_err(ServeError::SecretKey)
}

/// The HTTP surface of a role: intake for the receiver, the GraphQL API for the whole
/// process, health and metrics for all.
pub fn router(state: AppState, role: Role) -> Router {
    let mut router = Router::new();
    if matches!(role, Role::All | Role::Api) {
        let limits = state.api_limits.as_ref().clone();
        let schema = graphql::schema_limited(
            graphql::ApiContext {
                portal: Portal::new(
                    state.store.clone(),
                    Arc::clone(&state.runtime),
                    Arc::clone(&state.wake_worker),
                    state.cluster.clone(),
                ),
                store: state.store.clone(),
                shutdown: state.shutdown.clone(),
            },
            &limits,
        );
        router = router.merge(graphql::routes(
            schema,
            crate::auth::Authenticator::new(state.store.clone()).with_oidc(state.oidc.clone()),
            limits.http,
            limits.websockets,
            &limits.cors_origins,
            graphql::shared::Gauges::registered(state.metrics.registry()),
        ));
        router = router.merge(crate::web::routes(Arc::clone(&state.metrics)));
    }
    let mut router: Router = router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    if matches!(role, Role::All | Role::Receiver) {
        router = router.merge(ingest::router(IntakeState {
            store: state.store.clone(),
            runtime: Arc::clone(&state.runtime),
            metrics: Arc::clone(&state.metrics),
            wake_worker: Arc::clone(&state.wake_worker),
            config: Arc::clone(&state.ingest),
        }));
    }
    router
        .fallback(|| async {
            hookplane_dataplane::http_error::HttpError::new(
                axum::http::StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "nothing is served at this path",
            )
        })
        .layer(middleware::from_fn_with_state(state, observe))
}

/// Run until `shutdown` is cancelled. `on_listening` learns the bound address (useful with
/// port 0).
pub async fn serve(
    config: ServeConfig,
    shutdown: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let ServeConfig {
        role,
        rendered,
        listen,
        database_url,
        dedupe_window,
        ingest,
        worker,
        retention,
        sandbox,
        cluster,
        log_summary,
        api_limits,
        connection_limits,
        secret_key_file,
        oidc,
    } = config;
    let options = StoreOptions {
        dedupe_window,
        secret_key: secret_key(secret_key_file, &database_url)?,
        ..StoreOptions::default()
    };
    let store = Store::open(&database_url, options)
        .await
        .map_err(ServeError::OpenStore)?;
    store.migrate().await.map_err(ServeError::Migrate)?;
    if matches!(role, Role::All | Role::Api) {
        create_owner_token(&store).await?;
    }
    let source = match rendered {
        Some(rendered) => Source::Rendered(rendered),
        None => Source::Store,
    };
    let runtime = Arc::new(Runtime::with_source(
        store.clone(),
        source,
        Sandbox::new(sandbox),
    ));
    runtime.reload().await.map_err(ServeError::LoadRuntime)?;
    let watcher = tokio::spawn(watch_rendered(
        Arc::clone(&runtime),
        Duration::from_secs(2),
        shutdown.clone(),
    ));
    let state = AppState {
        store: store.clone(),
        runtime: Arc::clone(&runtime),
        metrics: Arc::new(Metrics::new()),
        wake_worker: Arc::new(Notify::new()),
        ingest: Arc::new(ingest),
        shutdown: shutdown.clone(),
        cluster: cluster.clone(),
        api_limits: Arc::new(api_limits),
        oidc: oidc.map(crate::auth::oidc::Oidc::new),
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind(listen, source))?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind(listen, source))?;
    // Deliveries never reach this process's own listener.
    let mut worker = worker;
    worker.destinations.own_listeners.push(local);

    let worker_shutdown = CancellationToken::new();
    let mut background = Vec::new();
    if matches!(role, Role::All | Role::Worker) {
        let worker = Worker::new(
            store.clone(),
            Arc::clone(&runtime),
            Arc::clone(&state.metrics),
            Arc::clone(&state.wake_worker),
            worker,
        );
        background.push(tokio::spawn(worker.run(worker_shutdown.clone())));
        background.push(tokio::spawn(wake_on_new_work(
            store.clone(),
            Arc::clone(&runtime),
            Arc::clone(&state.wake_worker),
            worker_shutdown.clone(),
        )));
        background.push(tokio::spawn(purge_periodically(
            store.clone(),
            Arc::clone(&state.metrics),
            retention,
            shutdown.clone(),
        )));
    }
    background.push(watcher);
    background.push(tokio::spawn(log_summaries(
        Arc::clone(&state.metrics),
        log_summary,
        shutdown.clone(),
    )));
    if let Some(cluster) = cluster {
        info!(
            namespace = cluster.namespace(),
            "cluster mode: publishing to and mirroring from Kubernetes"
        );
        background.push(tokio::spawn(cluster::mirror::run(
            cluster,
            store.clone(),
            Arc::clone(&runtime),
            Arc::clone(&state.metrics),
            shutdown.clone(),
        )));
    }

    on_listening(local);
    let app = router(state, role);
    crate::connections::serve(listener, app, connection_limits, shutdown.clone()).await;
    info!("stopped accepting; finishing in-flight deliveries");
    // The worker stops after the listener so in-flight webhooks still wake it.
    worker_shutdown.cancel();
    for task in background {
        if let Err(error) = task.await {
            error!(%error, "a background task ended abnormally");
        }
    }
    store.close().await;
    info!("shut down cleanly");
    Ok(())
}

/// On a database without one, create the instance owner's token and print it: the only time
/// it is shown (it is stored as a hash). `hookplane token create --owner` makes another.
async fn create_owner_token(store: &Store) -> Result<(), ServeError> {
    if store
        .has_owner_token()
        .await
        .map_err(ServeError::OwnerToken)?
    {
        return Ok(());
    }
    let issued = crate::auth::issue_token(store, crate::auth::Grant::Owner, "owner", None, "serve")
        .await
        .map_err(ServeError::OwnerToken)?;
    println!("Owner token (shown once, keep it): {}", issued.secret);
    info!(token = %issued.stored.prefix, "created the instance owner's token");
    Ok(())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if let Some(cluster) = &state.cluster
        && !cluster.is_synced()
    {
        return HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CLUSTER_NOT_SYNCED",
            "the Touchpoint and Connection resources have not been mirrored yet",
        )
        .into_response();
    }
    match state.store.check_ready().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error.code(),
            error.to_string(),
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.store.count_events_by_status_all().await {
        Ok(counts) => {
            for (status, count) in [
                ("UNPROCESSED", counts.unprocessed),
                ("SUCCESS", counts.success),
                ("FAILED", counts.failed),
                ("SKIPPED", counts.skipped),
            ] {
                state
                    .metrics
                    .bucket_events
                    .with_label_values(&[status])
                    .set(count);
            }
        }
        Err(error) => tracing::warn!(%error, "counting bucket events for /metrics"),
    }
    state.metrics.observe_writer(&state.store.writer_stats());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// A span and a duration sample for every request.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!("request", %method, %route, status = tracing::field::Empty);
    let started = Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status();
    span.record("status", status.as_u16());
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .http_request_duration
        .with_label_values(&[route.as_str(), method.as_str(), class])
        .observe(started.elapsed().as_secs_f64());
    response
}
