//! The GraphQL API: the portal model, publishing, resync, and live buckets.
//!
//! A library that axum only mounts (`routes`). Errors carry `extensions.code`; storage
//! failures are logged here and reach clients as `STORAGE_ERROR`, never as raw database text.

mod error;
mod inputs;
mod mutation;
mod query;
mod subscription;
mod types;

use async_graphql::{
    Schema,
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource},
};
use async_graphql_axum::{GraphQL, GraphQLProtocol, GraphQLWebSocket};
use axum::{Router, extract::WebSocketUpgrade, response::Html, routing::get};
use hookplane_store::Store;
use tokio_util::sync::CancellationToken;

use crate::portal::Portal;
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
/// (graphql-transport-ws and the legacy graphql-ws).
pub fn routes<S: Clone + Send + Sync + 'static>(schema: HookplaneSchema) -> Router<S> {
    let graphiql = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql/ws")
        .title("Hookplane")
        .finish();
    let subscriptions = schema.clone();
    Router::new()
        .route(
            "/graphql",
            get(move || async move { Html(graphiql) }).post_service(GraphQL::new(schema)),
        )
        .route(
            "/graphql/ws",
            get(
                move |protocol: GraphQLProtocol, upgrade: WebSocketUpgrade| {
                    let schema = subscriptions.clone();
                    async move {
                        upgrade
                            .protocols(ALL_WEBSOCKET_PROTOCOLS)
                            .read_buffer_size(WEBSOCKET_BUFFER_BYTES)
                            .write_buffer_size(WEBSOCKET_BUFFER_BYTES)
                            .on_upgrade(move |socket| {
                                GraphQLWebSocket::new(socket, schema, protocol).serve()
                            })
                    }
                },
            ),
        )
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
