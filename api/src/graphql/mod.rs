//! The GraphQL API: the portal model, publishing, resync, and live buckets.
//!
//! A library that axum only mounts (`routes`). Errors carry `extensions.code`; storage
//! failures are logged here and reach clients as `STORAGE_ERROR`, never as raw database text.

pub mod authz;
mod error;
mod inputs;
mod mutation;
mod query;
mod subscription;
mod types;

use async_graphql::ErrorExtensions;
use async_graphql::{
    Schema,
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::{
    Router,
    extract::WebSocketUpgrade,
    http::{HeaderMap, header},
    response::{Html, IntoResponse},
    routing::get,
};
use hookplane_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{AuthError, Authenticator, Principal},
    portal::Portal,
};
pub use error::ApiError;
use error::ApiResult;

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

/// Build the schema around its context.
pub fn schema(context: ApiContext) -> HookplaneSchema {
    Schema::build(
        query::QueryRoot,
        mutation::MutationRoot,
        subscription::SubscriptionRoot,
    )
    .data(context)
    .data(std::sync::Arc::new(
        authz::ConnectionOrganizations::default(),
    ))
    .limit_depth(16)
    .limit_complexity(5_000)
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

/// `POST /graphql`, GraphiQL at `GET /graphql`, subscriptions at `/graphql/ws`
/// (graphql-transport-ws and the legacy graphql-ws). Every request is authenticated first
/// (`Authorization: Bearer`, or the WebSocket's `connection_init` payload): without valid
/// credentials nothing runs.
pub fn routes<S: Clone + Send + Sync + 'static>(
    schema: HookplaneSchema,
    authenticator: Authenticator,
) -> Router<S> {
    let graphiql = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql/ws")
        .title("Hookplane")
        .finish();
    let subscriptions = (schema.clone(), authenticator.clone());
    Router::new()
        .route(
            "/graphql",
            get(move || async move { Html(graphiql) }).post(
                move |headers: HeaderMap, request: GraphQLRequest| {
                    let (schema, authenticator) = (schema.clone(), authenticator.clone());
                    async move {
                        let authorization = headers
                            .get(header::AUTHORIZATION)
                            .and_then(|value| value.to_str().ok());
                        match authenticator.authenticate(authorization).await {
                            Ok(principal) => GraphQLResponse::from(
                                schema.execute(request.into_inner().data(principal)).await,
                            )
                            .into_response(),
                            Err(error) => unauthenticated(&error),
                        }
                    }
                },
            ),
        )
        .route(
            "/graphql/ws",
            get(
                move |protocol: GraphQLProtocol, upgrade: WebSocketUpgrade| {
                    let (schema, authenticator) = subscriptions.clone();
                    async move {
                        upgrade
                            .protocols(ALL_WEBSOCKET_PROTOCOLS)
                            .read_buffer_size(WEBSOCKET_BUFFER_BYTES)
                            .write_buffer_size(WEBSOCKET_BUFFER_BYTES)
                            .on_upgrade(move |socket| {
                                serve_socket(socket, schema, protocol, authenticator)
                            })
                    }
                },
            ),
        )
}

/// How often an open WebSocket checks that its token still holds.
const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Serve one WebSocket: `connection_init` must carry valid credentials (else the connection
/// is refused), and the connection is dropped within [`REVOCATION_CHECK`] of its token being
/// revoked or expiring.
async fn serve_socket(
    socket: axum::extract::ws::WebSocket,
    schema: HookplaneSchema,
    protocol: GraphQLProtocol,
    authenticator: Authenticator,
) {
    let (principal_sender, mut principal) = tokio::sync::watch::channel(None::<Principal>);
    let init = authenticator.clone();
    let served = GraphQLWebSocket::new(socket, schema, protocol)
        .on_connection_init(move |payload| async move {
            let principal = init.authenticate_init(&payload).await.map_err(|error| {
                tracing::info!(reason = %error, "WebSocket connection refused");
                async_graphql::Error::new(error.to_string())
                    .extend_with(|_, extensions| extensions.set("code", error.code()))
            })?;
            let _ = principal_sender.send(Some(principal.clone()));
            let mut data = async_graphql::Data::default();
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

/// `401` with a GraphQL error body carrying the code (`503` when the check itself failed).
fn unauthenticated(error: &AuthError) -> axum::response::Response {
    let status = match error {
        AuthError::Unavailable(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
        _ => axum::http::StatusCode::UNAUTHORIZED,
    };
    if let AuthError::Unavailable(source) = error {
        tracing::error!(error = %source, "checking credentials");
    }
    let body = serde_json::json!({
        "errors": [{
            "message": error.to_string(),
            "extensions": { "code": error.code() },
        }],
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
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
