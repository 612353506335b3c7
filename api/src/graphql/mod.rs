//! The GraphQL API: the portal model, publishing, resync, and live buckets.
//!
//! A library that axum only mounts (`routes`). Errors carry `extensions.code`; storage
//! failures are logged here and reach clients as `STORAGE_ERROR`, never as raw database text.

pub mod authz;
mod error;
pub mod http;
mod inputs;
mod mutation;
mod query;
pub mod shared;
pub mod slots;
mod subscription;
mod types;

use async_graphql::ErrorExtensions;
use async_graphql::{Schema, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    Router,
    extract::WebSocketUpgrade,
    http::{HeaderMap, header},
    response::IntoResponse,
    routing::get,
};
use hookplane_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{Authenticator, Principal},
    connections::coalescing::Coalescing,
    portal::Portal,
};
pub use error::ApiError;
use error::ApiResult;
use http::GraphqlHttp;
pub use http::HttpLimits;
use std::sync::Arc;

pub type HookplaneSchema =
    Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// What resolvers reach through `ctx.data()`: the portal's use cases for every change, the
/// store for reads, and the shutdown token that ends subscriptions.
#[derive(Clone)]
pub struct ApiContext {
    pub portal: Portal,
    pub store: Store,
    pub shutdown: CancellationToken,
}

/// The context every resolver needs. The schema is only built with one ([`schema`]), so a
/// missing one is a bug in this crate, answered as `INTERNAL` rather than a panic.
fn context<'a>(ctx: &async_graphql::Context<'a>) -> ApiResult<&'a ApiContext> {
    ctx.data::<ApiContext>()
        .map_err(|_| ApiError::invalid("INTERNAL", "the API has no context"))
}

/// Every limit on the API, with its flag's default.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    pub http: HttpLimits,
    pub websockets: WebSocketLimits,
    /// Deepest query nesting (`QUERY_TOO_COMPLEX`).
    pub max_depth: usize,
    /// Largest query complexity: each field counts one, and a list field counts its
    /// children once per entry it may return (`first`), so aliases and page sizes add up
    /// (`QUERY_TOO_COMPLEX`).
    pub max_complexity: usize,
    /// Origins a browser may call `/graphql` from (CORS); empty: none (off).
    pub cors_origins: Vec<String>,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            http: HttpLimits::default(),
            websockets: WebSocketLimits::default(),
            max_depth: 16,
            max_complexity: 20_000,
            cors_origins: Vec::new(),
        }
    }
}

/// Build the schema around its context, with the default limits.
pub fn schema(context: ApiContext) -> HookplaneSchema {
    schema_limited(context, &ApiLimits::default())
}

/// Build the schema around its context, with `limits` on depth and complexity.
pub fn schema_limited(context: ApiContext, limits: &ApiLimits) -> HookplaneSchema {
    Schema::build(
        query::QueryRoot,
        mutation::MutationRoot,
        subscription::SubscriptionRoot,
    )
    .data(context)
    .data(std::sync::Arc::new(
        authz::ConnectionOrganizations::default(),
    ))
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .finish()
}

/// The schema in SDL, as committed in `api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        query::QueryRoot,
        mutation::MutationRoot,
        subscription::SubscriptionRoot,
    )
    .finish()
    .sdl()
}

/// `POST /graphql`, GraphiQL at `GET /graphql` (which runs nothing: no query, and no mutation,
/// over GET), subscriptions at `/graphql/ws` (graphql-transport-ws and the legacy graphql-ws).
/// Every request is authenticated first (`Authorization: Bearer`, or the WebSocket's
/// `connection_init` payload): without valid credentials nothing runs. A WebSocket upgrade
/// from a browser page must come from an allowed origin ([`WebSocketLimits`]).
pub fn routes<S: Clone + Send + Sync + 'static>(
    schema: HookplaneSchema,
    authenticator: Authenticator,
    limits: HttpLimits,
    websockets: WebSocketLimits,
    cors_origins: &[String],
    gauges: shared::Gauges,
) -> Router<S> {
    let slots = slots::Slots::new(websockets.subscriptions);
    let subscriptions = (
        shared::SharingExecutor::new(schema.clone(), gauges),
        authenticator.clone(),
        Arc::new(websockets),
        slots,
    );
    let http = GraphqlHttp::new(schema, authenticator, limits);
    let router = Router::new()
        .route(
            "/graphql",
            get(|headers: HeaderMap| async move { crate::web::graphiql_page(&headers) })
                .post(move |headers: HeaderMap, body: axum::body::Body| {
                    let http = http.clone();
                    async move { http.handle(headers, body).await }
                })
                .fallback(|| async {
                    http::refuse(
                        axum::http::StatusCode::METHOD_NOT_ALLOWED,
                        "METHOD_NOT_ALLOWED",
                        "/graphql takes POST (GET serves GraphiQL)",
                    )
                }),
        )
        .route(
            "/graphql/ws",
            get(
                move |headers: HeaderMap,
                      coalescing: Option<axum::Extension<Coalescing>>,
                      protocol: GraphQLProtocol,
                      upgrade: WebSocketUpgrade| {
                    let (executor, authenticator, websockets, slots) = subscriptions.clone();
                    async move {
                        if let Err(origin) = websockets.check_origin(&headers) {
                            tracing::info!(%origin, "WebSocket upgrade refused: origin not allowed");
                            return http::refuse(
                                axum::http::StatusCode::FORBIDDEN,
                                "ORIGIN_NOT_ALLOWED",
                                &format!(
                                    "WebSocket connections from {origin} are not allowed (--allowed-origins)"
                                ),
                            );
                        }
                        let Some(permit) = slots.connection() else {
                            return http::refuse(
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                "TOO_MANY_CONNECTIONS",
                                &format!(
                                    "{} WebSocket connections are open, the most allowed: try again later",
                                    slots.caps().connections
                                ),
                            );
                        };
                        upgrade
                            .protocols(ALL_WEBSOCKET_PROTOCOLS)
                            .read_buffer_size(WEBSOCKET_BUFFER_BYTES)
                            .write_buffer_size(WEBSOCKET_BUFFER_BYTES)
                            .on_upgrade(move |socket| async move {
                                // Changes stream out: let the kernel coalesce them.
                                if let Some(axum::Extension(coalescing)) = coalescing {
                                    coalescing.request();
                                }
                                serve_socket(socket, executor, protocol, authenticator, slots).await;
                                drop(permit);
                            })
                            .into_response()
                    }
                },
            ),
        );
    match cors(cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// CORS for `/graphql`, off unless origins are configured: a page of one of `origins` may
/// POST with `Authorization` and `Content-Type` headers (preflights cached 10 minutes); no
/// cookies are involved, so no credentials mode. `origins` come checked and normalized by the
/// flag's parser; one that is not a header value is left out.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<axum::http::HeaderValue> = origins
        .iter()
        .filter(|origin| !origin.is_empty())
        .filter_map(|origin| origin.parse().ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Which browser pages may open a WebSocket: an upgrade carrying an `Origin` header (every
/// browser sends one) must name the server itself (the request's `Host`) or one of
/// `allowed_origins`; clients that send no `Origin` (not browsers) are not affected.
#[derive(Clone, Debug, Default)]
pub struct WebSocketLimits {
    /// Origins allowed besides the server's own, as `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
    /// Connections and subscriptions open at once.
    pub subscriptions: slots::SubscriptionCaps,
}

impl WebSocketLimits {
    /// `Err` is the refused origin. Pure.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .unwrap_or("(unreadable)")
            .trim_end_matches('/');
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or_default();
        let same = ["http://", "https://"].iter().any(|scheme| {
            !host.is_empty() && origin.eq_ignore_ascii_case(&format!("{scheme}{host}"))
        });
        let listed = self
            .allowed_origins
            .iter()
            .any(|allowed| origin.eq_ignore_ascii_case(allowed.trim_end_matches('/')));
        if same || listed {
            Ok(())
        } else {
            Err(origin.to_owned())
        }
    }
}

/// How often an open WebSocket checks that its token still holds.
const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Serve one WebSocket: `connection_init` must carry valid credentials (else the connection
/// is refused), and the connection is dropped within [`REVOCATION_CHECK`] (and the quarter of
/// a second a token's answer is reused) of its token being revoked or expiring.
async fn serve_socket(
    socket: axum::extract::ws::WebSocket,
    executor: shared::SharingExecutor,
    protocol: GraphQLProtocol,
    authenticator: Authenticator,
    slots: Arc<slots::Slots>,
) {
    let (principal_sender, mut principal) = tokio::sync::watch::channel(None::<Principal>);
    let init = authenticator.clone();
    let served = GraphQLWebSocket::new(socket, executor, protocol)
        .on_connection_init(move |payload| async move {
            let principal = init.authenticate_init(&payload).await.map_err(|error| {
                tracing::info!(reason = %error, "WebSocket connection refused");
                async_graphql::Error::new(error.to_string())
                    .extend_with(|_, extensions| extensions.set("code", error.code()))
            })?;
            let _ = principal_sender.send(Some(principal.clone()));
            let key = principal
                .token_id
                .map_or_else(|| principal.actor.clone(), |id| id.to_string());
            let mut data = async_graphql::Data::default();
            data.insert(slots::ConnectionSlots::new(slots, key));
            data.insert(principal);
            Ok(data)
        })
        .serve();
    let revoked = async move {
        let Ok(principal) = principal.wait_for(Option::is_some).await.map(|p| p.clone()) else {
            return std::future::pending().await;
        };
        let Some(principal) = principal else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(REVOCATION_CHECK).await;
            if !authenticator.still_valid(&principal).await {
                tracing::info!(actor = %principal.actor, "closing a WebSocket: its token no longer holds");
                return;
            }
        }
    };
    tokio::select! {
        () = served => {}
        () = revoked => {}
    }
}

/// WebSocket read and write buffers per subscriber. The library default (128 KiB) made a
/// thousand idle subscribers cost about 150 MiB; bucket changes are a few KiB, and a larger
/// message still goes through (the buffer grows for it).
const WEBSOCKET_BUFFER_BYTES: usize = 8 * 1024;

#[cfg(test)]
mod tests {
    /// `api/schema.graphql` is what `hookplane sdl` prints. Regenerate with
    /// `cargo run -- sdl > api/schema.graphql` (or `HOOKPLANE_UPDATE_SNAPSHOTS=1 cargo test`).
    #[test]
    fn committed_sdl_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let current = super::sdl();
        if std::env::var_os("HOOKPLANE_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(path, &current).expect("writing api/schema.graphql");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == current,
            "api/schema.graphql is stale: run `cargo run -- sdl > api/schema.graphql`"
        );
    }
}
