//! The portal's use cases: one function per thing a user does (register the URL, create a
//! connection or a touchpoint, edit, publish, switch Auto-sync, resync, delete, preview a
//! mapping, manage schemas). The GraphQL resolvers parse their input, call one of these and
//! shape the answer; every rule about what a change may do lives here, where authorization
//! will pass too.
//!
//! Guarantees: each use case validates fully before it writes (a refused call changes
//! nothing); spec validity is decided by `hookplane_validation` alone; a change to what runs
//! reaches the running snapshot before the call returns, recompiling only the touchpoint it
//! concerns; in cluster mode the Kubernetes resources change first, and a failure there
//! leaves the database as it was.

mod connections;
mod error;
mod preview;
mod resync;
mod schemas;
mod secrets;
mod touchpoints;

use std::sync::Arc;

use hookplane_dataplane::runtime::Runtime;
use hookplane_store::{LogLevel, NewLog, Store};
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

pub use error::{PortalError, PortalResult};
pub use preview::{Preview, PreviewInput};
pub use resync::MAX_RESYNC_IDS;
pub use secrets::{SecretWrites, new_secret_name};

use crate::cluster::Cluster;

/// The handles every use case needs; cheap to clone.
#[derive(Clone)]
pub struct Portal {
    store: Store,
    runtime: Arc<Runtime>,
    wake_worker: Arc<Notify>,
    /// Cluster mode: publishing applies resources, secrets become Kubernetes Secrets.
    cluster: Option<Cluster>,
}

impl Portal {
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        wake_worker: Arc<Notify>,
        cluster: Option<Cluster>,
    ) -> Self {
        Self {
            store,
            runtime,
            wake_worker,
            cluster,
        }
    }

    /// An INFO entry in a touchpoint's log bucket; a failure to write it is logged, never
    /// returned (the change it describes has happened).
    async fn log(&self, touchpoint_id: Uuid, message: String) {
        let entry = NewLog {
            touchpoint_id,
            event_id: None,
            level: LogLevel::Info,
            message,
            fields: json!({}),
        };
        if let Err(error) = self.store.append_logs(vec![entry]).await {
            tracing::warn!(%error, "writing a touchpoint log");
        }
    }
}

#[cfg(test)]
mod tests;
