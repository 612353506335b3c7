//! The destination: an HTTP server in the bench process that records when each mapped order
//! arrives (first arrival only: delivery is at least once) and answers 200.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, Result};
use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::workload::seq_of_mapped;

#[derive(Default)]
struct Arrivals {
    first: HashMap<u64, Instant>,
    requests: u64,
}

#[derive(Clone)]
pub struct Sink {
    pub address: SocketAddr,
    arrivals: Arc<Mutex<Arrivals>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Sink {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the sink")?;
        let address = listener.local_addr().context("the sink's address")?;
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let app = Router::new()
            .route("/erp/orders", post(record))
            .with_state(Arc::clone(&arrivals));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            arrivals,
            task: Arc::new(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/erp/orders", self.address)
    }

    /// When order `seq` first arrived.
    pub fn arrival(&self, seq: u64) -> Option<Instant> {
        self.lock().first.get(&seq).copied()
    }

    /// Distinct orders received.
    pub fn distinct(&self) -> usize {
        self.lock().first.len()
    }

    /// Requests received, repeats included.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arrivals> {
        // A poisoned lock only means a handler panicked mid-insert; the map is still usable.
        self.arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

async fn record(State(arrivals): State<Arc<Mutex<Arrivals>>>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Some(seq) = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(seq_of_mapped)
    else {
        return StatusCode::BAD_REQUEST;
    };
    let mut arrivals = arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    arrivals.requests += 1;
    arrivals.first.entry(seq).or_insert(now);
    StatusCode::OK
}
