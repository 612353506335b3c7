//! End-to-end tests: the real `hookplane serve` binary, driven through its public interfaces
//! only (GraphQL over HTTP and WebSocket, webhooks over HTTP), delivering to a real local
//! destination, on SQLite and (when `HOOKPLANE_TEST_POSTGRES_URL` is set) PostgreSQL.

mod apps;
mod authz;
mod cluster;
mod commit;
mod crash;
mod data_plane;
mod destinations;
mod edges;
mod engine;
mod flows;
mod hostile;
mod newcomer;
mod node_client;
mod oidc;
mod operations;
mod portal;
mod readme;
mod rejections;
mod restart;
mod secrets;
mod shared;
mod spine;
mod support;
mod transport;
