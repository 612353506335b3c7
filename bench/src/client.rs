//! The load generator: HTTP/1.1 keep-alive connections (hyper, one per worker), driven either
//! closed-loop at a fixed concurrency or open-loop at a fixed rate.
//!
//! Open loop avoids coordinated omission: send times are scheduled by the clock
//! (`start + i / rate`) whatever the server does, and latency counts from the scheduled time,
//! so a stalled server shows up as latency of everything queued behind it.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpStream,
    sync::{Mutex, mpsc},
};

use crate::stats::nanos;

/// Builds request number `seq`.
pub type RequestFactory = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// One keep-alive connection.
struct Connection {
    address: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(address: SocketAddr) -> Self {
        Self {
            address,
            sender: None,
        }
    }

    /// Send a request and read the whole response; returns its status. A failed request
    /// drops the connection, and the next one reconnects.
    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<u16> {
        let result = self.try_send(request).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_send(&mut self, request: Request<Full<Bytes>>) -> Result<u16> {
        if self.sender.is_none() {
            let stream = TcpStream::connect(self.address)
                .await
                .context("connecting")?;
            stream.set_nodelay(true).context("setting TCP_NODELAY")?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected just above");
        sender.ready().await.context("connection closed")?;
        let response = sender.send_request(request).await.context("sending")?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .context("reading the response")?;
        Ok(status)
    }
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Latency of each measured request, in nanoseconds.
    pub latencies: Vec<u64>,
    /// Requests answered 2xx within the measured window.
    pub ok: u64,
    /// Requests answered otherwise, or not answered, within the measured window.
    pub errors: u64,
    /// The first non-2xx status or error seen, to say why.
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub window: Duration,
}

impl LoadResult {
    fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Count one request that took `latency`: 2xx is ok, anything else an error (the first
    /// kept to say why). True when the request got no answer at all.
    fn record(&mut self, outcome: Result<u16>, latency: Duration) -> bool {
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                self.ok += 1;
                self.latencies.push(nanos(latency));
                false
            }
            Ok(status) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("HTTP {status}"));
                false
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{error:#}"));
                true
            }
        }
    }

    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// `concurrency` workers, each sending its next request as soon as the previous one is
/// answered, for `warmup + duration`; only requests started after the warm-up are measured.
pub async fn closed_loop(
    address: SocketAddr,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    first_seq: u64,
    make: RequestFactory,
) -> LoadResult {
    let next = Arc::new(AtomicU64::new(first_seq));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let make = Arc::clone(&make);
        workers.push(tokio::spawn(async move {
            let mut connection = Connection::new(address);
            let mut result = LoadResult::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                if sent >= end {
                    return result;
                }
                let outcome = connection.send(make(seq)).await;
                if sent < measure_from {
                    continue;
                }
                if result.record(outcome, sent.elapsed()) {
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    let mut total = merged(workers).await;
    total.window = duration;
    total
}

/// Send exactly `count` requests (sequence numbers `first_seq..first_seq + count`) over
/// `concurrency` connections, each sending its next as soon as the last is answered.
pub async fn send_count(
    address: SocketAddr,
    concurrency: usize,
    count: u64,
    first_seq: u64,
    make: RequestFactory,
) -> LoadResult {
    let next = Arc::new(AtomicU64::new(first_seq));
    let end = first_seq + count;
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let make = Arc::clone(&make);
        workers.push(tokio::spawn(async move {
            let mut connection = Connection::new(address);
            let mut result = LoadResult::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= end {
                    return result;
                }
                let sent = Instant::now();
                let outcome = connection.send(make(seq)).await;
                result.record(outcome, sent.elapsed());
            }
        }));
    }
    let mut total = merged(workers).await;
    total.window = started.elapsed();
    total
}

/// The workers' results, added up (a worker that panicked counts nothing).
async fn merged(workers: Vec<tokio::task::JoinHandle<LoadResult>>) -> LoadResult {
    let mut total = LoadResult::default();
    for worker in workers {
        if let Ok(result) = worker.await {
            total.merge(result);
        }
    }
    total
}

/// One request of an open-loop run.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub seq: u64,
    /// The HTTP status, or 0 when the request failed.
    pub status: u16,
    /// From the scheduled send time to the complete response, in nanoseconds.
    pub latency: u64,
}

/// An open-loop run's schedule and outcomes.
#[derive(Debug)]
pub struct OpenLoopResult {
    pub start: Instant,
    pub rate: f64,
    pub first_seq: u64,
    pub scheduled: u64,
    pub sent: Vec<Sent>,
    pub first_error: Option<String>,
}

impl OpenLoopResult {
    /// When request `seq` was due to be sent.
    pub fn scheduled_at(&self, seq: u64) -> Instant {
        scheduled_at(self.start, self.rate, seq - self.first_seq)
    }

    pub fn accepted(&self) -> impl Iterator<Item = &Sent> {
        self.sent.iter().filter(|s| (200..300).contains(&s.status))
    }
}

fn scheduled_at(start: Instant, rate: f64, index: u64) -> Instant {
    start + Duration::from_secs_f64(index as f64 / rate)
}

/// Send `rate` requests per second for `duration` over up to `connections` connections,
/// each at its scheduled time or, when every connection is busy, as soon as one frees up.
/// Requests still queued `grace` after the schedule ends are abandoned (not sent).
pub async fn open_loop(
    address: SocketAddr,
    rate: f64,
    duration: Duration,
    connections: usize,
    first_seq: u64,
    grace: Duration,
    make: RequestFactory,
) -> OpenLoopResult {
    let count = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = scheduled_at(start, rate, count) + grace;
    let (queue, jobs) = mpsc::unbounded_channel::<u64>();
    let jobs = Arc::new(Mutex::new(jobs));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let jobs = Arc::clone(&jobs);
        let make = Arc::clone(&make);
        workers.push(tokio::spawn(async move {
            let mut connection = Connection::new(address);
            let mut sent = Vec::new();
            let mut first_error = None;
            loop {
                let Some(index) = jobs.lock().await.recv().await else {
                    return (sent, first_error);
                };
                if Instant::now() >= deadline {
                    continue;
                }
                let seq = first_seq + index;
                let status = match connection.send(make(seq)).await {
                    Ok(status) => status,
                    Err(error) => {
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                        0
                    }
                };
                if !(200..300).contains(&status) && status != 0 {
                    first_error.get_or_insert_with(|| format!("HTTP {status}"));
                }
                sent.push(Sent {
                    seq,
                    status,
                    latency: nanos(scheduled_at(start, rate, index).elapsed()),
                });
            }
        }));
    }
    for index in 0..count {
        tokio::time::sleep_until(scheduled_at(start, rate, index).into()).await;
        if queue.send(index).is_err() {
            break;
        }
    }
    drop(queue);
    let mut result = OpenLoopResult {
        start,
        rate,
        first_seq,
        scheduled: count,
        sent: Vec::with_capacity(count as usize),
        first_error: None,
    };
    for worker in workers {
        if let Ok((sent, first_error)) = worker.await {
            result.sent.extend(sent);
            if result.first_error.is_none() {
                result.first_error = first_error;
            }
        }
    }
    result
}
