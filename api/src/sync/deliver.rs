//! One HTTP delivery to a destination: method, URL, headers, body, `Idempotency-Key`.
//!
//! No redirects are followed (a 3xx is a failed attempt), and the response body is read only
//! up to a small bound so a misbehaving destination cannot exhaust memory.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, header::HeaderValue};
use url::Url;
use uuid::Uuid;

/// Longest response snippet kept with an attempt.
const SNIPPET_BYTES: usize = 512;

/// A request to send.
pub struct Delivery<'a> {
    pub method: hookplane_crds::HttpMethod,
    pub url: &'a Url,
    pub headers: &'a [hookplane_crds::HeaderSpec],
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub idempotency_key: Uuid,
    pub timeout: Duration,
}

/// What the destination answered.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub snippet: String,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the destination did not answer within {0:?}")]
    Timeout(Duration),
    #[error("could not reach the destination: {0}")]
    Connect(String),
    #[error("the request failed: {0}")]
    Request(String),
}

/// Sends deliveries over one pooled HTTP client.
#[derive(Clone)]
pub struct Deliverer {
    client: Client,
}

impl Deliverer {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hookplane/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client })
    }

    pub async fn send(&self, delivery: Delivery<'_>) -> Result<Response, DeliveryError> {
        let method = match delivery.method {
            hookplane_crds::HttpMethod::Post => Method::POST,
            hookplane_crds::HttpMethod::Put => Method::PUT,
            hookplane_crds::HttpMethod::Patch => Method::PATCH,
        };
        let mut request = self
            .client
            .request(method, delivery.url.clone())
            .timeout(delivery.timeout)
            .header(reqwest::header::CONTENT_TYPE, delivery.content_type)
            .header("Idempotency-Key", delivery.idempotency_key.to_string());
        for header in delivery.headers {
            // Headers were validated with the spec; an invalid one is skipped, not sent broken.
            if let Ok(value) = HeaderValue::from_str(&header.value) {
                request = request.header(header.name.as_str(), value);
            }
        }
        let started = Instant::now();
        let classify = |error: reqwest::Error| {
            if error.is_timeout() {
                DeliveryError::Timeout(delivery.timeout)
            } else if error.is_connect() {
                DeliveryError::Connect(error.to_string())
            } else {
                DeliveryError::Request(error.to_string())
            }
        };
        let mut response = request.body(delivery.body).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let mut snippet = Vec::new();
        while snippet.len() < SNIPPET_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        snippet.truncate(SNIPPET_BYTES);
        Ok(Response {
            status,
            snippet: String::from_utf8_lossy(&snippet).into_owned(),
            elapsed: started.elapsed(),
        })
    }
}
