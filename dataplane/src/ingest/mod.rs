//! Webhook intake: route by endpoint path, check, parse, append to the resync bucket, answer.
//!
//! Guarantee to the next step: every event in the bucket was received on a published
//! touchpoint's endpoint and parsed; a webhook is answered 2xx only after its event committed.

mod receiver;

use std::sync::Arc;

use axum::{Router, routing::post};
use hookplane_store::Store;
use tokio::sync::Notify;

pub use receiver::{IngestConfig, receive};

use crate::{runtime::Runtime, telemetry::Metrics};

/// What intake needs: cheap handles, cloned per request.
#[derive(Clone)]
pub struct IntakeState {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    /// Woken after an accepted webhook, so an idle worker claims it at once.
    pub wake_worker: Arc<Notify>,
    pub config: Arc<IngestConfig>,
}

/// `POST /hooks/{org}/{*endpoint}`, ready to merge into a process's router.
pub fn router(state: IntakeState) -> Router {
    Router::new()
        .route("/hooks/{org}/{*endpoint}", post(receive))
        .with_state(state)
}
