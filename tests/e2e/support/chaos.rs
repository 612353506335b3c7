//! A destination that misbehaves on purpose, on a raw TCP socket so it can do what a polite
//! HTTP server cannot: hang past the client's timeout or reset the connection mid-request.
//! Each request's fate is drawn from a seeded RNG (or forced per request number) and
//! recorded with the request's `Idempotency-Key` and ordering fields.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the destination did with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Ok,
    ServerError,
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// Answers nothing for longer than the client waits.
    Hang,
    /// Closes the connection without answering.
    Reset,
}

impl Fate {
    /// The status the client saw, if any.
    pub fn status(self) -> Option<i64> {
        match self {
            Self::Ok => Some(200),
            Self::ServerError => Some(500),
            Self::TooManyRequests => Some(429),
            Self::Hang | Self::Reset => None,
        }
    }
}

/// One request as the destination saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub idempotency_key: String,
    pub body: Value,
    pub fate: Fate,
}

/// The odds of each fate, in percent (the rest is `Ok`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Odds {
    pub server_error: u32,
    pub too_many: u32,
    pub hang: u32,
    pub reset: u32,
}

#[derive(Clone)]
pub struct Chaos {
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Chaos {
    /// `delay` is added to every answer; `hang` is how long a hanging request waits.
    pub async fn start(seed: u64, odds: Odds, delay: Duration, hang: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding chaos");
        let address = listener.local_addr().expect("address");
        let chaos = Self {
            address,
            seen: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let server = chaos.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                let rng = Arc::clone(&rng);
                tokio::spawn(async move {
                    server.serve(socket, &rng, odds, delay, hang).await;
                });
            }
        });
        chaos
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Requests per Idempotency-Key, in arrival order.
    pub fn by_key(&self) -> HashMap<String, Vec<Seen>> {
        let mut map: HashMap<String, Vec<Seen>> = HashMap::new();
        for seen in self.seen() {
            map.entry(seen.idempotency_key.clone())
                .or_default()
                .push(seen);
        }
        map
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    async fn serve(
        &self,
        mut socket: TcpStream,
        rng: &Mutex<StdRng>,
        odds: Odds,
        delay: Duration,
        hang: Duration,
    ) {
        // Keep-alive: serve requests on this connection until it closes.
        loop {
            let Some((key, body)) = read_request(&mut socket).await else {
                return;
            };
            let fate = {
                let roll = rng.lock().expect("rng").random_range(0..100u32);
                let mut edge = odds.server_error;
                if roll < edge {
                    Fate::ServerError
                } else if roll < {
                    edge += odds.too_many;
                    edge
                } {
                    Fate::TooManyRequests
                } else if roll < {
                    edge += odds.hang;
                    edge
                } {
                    Fate::Hang
                } else if roll < edge + odds.reset {
                    Fate::Reset
                } else {
                    Fate::Ok
                }
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            self.seen.lock().expect("seen").push(Seen {
                idempotency_key: key,
                body,
                fate,
            });
            tokio::time::sleep(delay).await;
            let answer: &[u8] = match fate {
                Fate::Ok => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                Fate::ServerError => {
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops"
                }
                Fate::TooManyRequests => {
                    b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 4\r\n\r\nslow"
                }
                Fate::Hang => {
                    tokio::time::sleep(hang).await;
                    self.in_flight.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                Fate::Reset => {
                    self.in_flight.fetch_sub(1, Ordering::SeqCst);
                    // SO_LINGER 0 turns the close into a TCP reset.
                    let _ = socket.set_zero_linger();
                    return;
                }
            };
            let written = socket.write_all(answer).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if written.is_err() {
                return;
            }
        }
    }
}

/// Read one HTTP/1.1 request; returns its Idempotency-Key and JSON body.
async fn read_request(socket: &mut TcpStream) -> Option<(String, Value)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            line.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    let key = header("idempotency-key").unwrap_or_default();
    let mut body = buffer[header_end + 4..].to_vec();
    while body.len() < length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some((
        key,
        serde_json::from_slice(&body[..length]).unwrap_or(Value::Null),
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
