//! One HTTP request to a destination: method, URL, headers, credentials, body,
//! `Idempotency-Key`.
//!
//! Headers, from weakest to strongest: the rendered body's `Content-Type` (unless the
//! touchpoint sets one), the touchpoint's headers, `Idempotency-Key: <event id>` (always ours),
//! then the connection's credentials. No redirects are followed (a 3xx is the answer), and the
//! response body is read only up to [`SNIPPET_MAX_BYTES`] so a misbehaving destination cannot
//! exhaust memory.
//!
//! Every connection, to a destination or an OAuth2 token endpoint, goes through the
//! [`DestinationPolicy`] ([`super::egress`]): a refused address is
//! [`DeliveryError::Forbidden`], and no request leaves.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use hookplane_crds::{HeaderSpec, HttpMethod};
use hookplane_store::SNIPPET_MAX_BYTES;
use reqwest::{
    Client, Method,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use url::{Host, Url};
use uuid::Uuid;

use super::{
    auth::{self, AccessToken, ConnectionAuth},
    egress::{DestinationPolicy, Forbidden, GuardedResolver, forbidden_in},
    render::Rendered,
};

/// A request to send.
pub struct Delivery<'a> {
    pub method: HttpMethod,
    pub url: &'a Url,
    pub headers: &'a [HeaderSpec],
    pub body: &'a Rendered,
    pub idempotency_key: Uuid,
    pub timeout: Duration,
    pub auth: &'a ConnectionAuth,
    pub bearer: Option<&'a AccessToken>,
}

/// What the destination answered.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    /// The start of the body, lossily decoded.
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
    #[error(transparent)]
    Forbidden(Forbidden),
}

/// Sends deliveries over pooled HTTP clients that connect only where the policy allows.
#[derive(Clone)]
pub struct Deliverer {
    /// For requests to ports none of our listeners use.
    client: Client,
    /// For requests to the port of one of our own listeners: its resolver also refuses the
    /// addresses that listener answers on. (A resolver learns only the host name, so the
    /// port decides the client.)
    own_ports: Vec<(u16, Client)>,
    policy: Arc<DestinationPolicy>,
}

impl Deliverer {
    pub fn new(policy: DestinationPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let build = |port: Option<u16>| {
            Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // Through a proxy the address connected to would be the proxy's.
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver {
                    policy: Arc::clone(&policy),
                    port,
                }))
                .user_agent(concat!("hookplane/", env!("CARGO_PKG_VERSION")))
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
        };
        let client = build(None)?;
        let mut own_ports: Vec<(u16, Client)> = Vec::new();
        for port in policy.own_ports() {
            if !own_ports.iter().any(|(known, _)| *known == port) {
                own_ports.push((port, build(Some(port))?));
            }
        }
        Ok(Self {
            client,
            own_ports,
            policy,
        })
    }

    /// The client to reach `url` with (destinations and OAuth2 token endpoints alike), or
    /// the refusal when its host is an IP address the policy refuses (IP literals skip
    /// resolution, so they are checked here).
    pub fn client_for(&self, url: &Url) -> Result<&Client, Forbidden> {
        let port = url.port_or_known_default();
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) | None => None,
        };
        if let Some(ip) = literal {
            self.policy
                .check(SocketAddr::new(ip, port.unwrap_or_default()))?;
        }
        let own = port.and_then(|port| self.own_ports.iter().find(|(own, _)| *own == port));
        Ok(own.map_or(&self.client, |(_, client)| client))
    }

    pub async fn send(&self, delivery: Delivery<'_>) -> Result<Response, DeliveryError> {
        let method = match delivery.method {
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
        };
        let mut headers = HeaderMap::new();
        for header in delivery.headers {
            // Headers were validated with the spec; an invalid one is skipped, not sent broken.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.name.as_bytes()),
                HeaderValue::from_str(&header.value),
            ) {
                headers.append(name, value);
            }
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(delivery.body.content_type),
            );
        }
        headers.insert(
            "idempotency-key",
            HeaderValue::from_str(&delivery.idempotency_key.to_string())
                .expect("a UUID is a valid header value"),
        );
        let client = self
            .client_for(delivery.url)
            .map_err(DeliveryError::Forbidden)?;
        let request = client
            .request(method, delivery.url.clone())
            .timeout(delivery.timeout);
        let request = delivery.auth.apply(request, headers, delivery.bearer);
        let started = Instant::now();
        let classify = |error: reqwest::Error| {
            if let Some(forbidden) = forbidden_in(&error) {
                DeliveryError::Forbidden(forbidden)
            } else if error.is_timeout() {
                DeliveryError::Timeout(delivery.timeout)
            } else if error.is_connect() {
                DeliveryError::Connect(auth::describe(error))
            } else {
                DeliveryError::Request(auth::describe(error))
            }
        };
        let mut response = request
            .body(delivery.body.body.clone())
            .send()
            .await
            .map_err(classify)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut snippet = Vec::new();
        while snippet.len() < SNIPPET_MAX_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        snippet.truncate(SNIPPET_MAX_BYTES);
        Ok(Response {
            status,
            headers,
            snippet: String::from_utf8_lossy(&snippet).into_owned(),
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{
        Router,
        body::Bytes,
        extract::State,
        http::{HeaderMap as AxumHeaders, StatusCode},
        response::IntoResponse,
        routing::any,
    };
    use hookplane_crds::PayloadFormat;
    use serde_json::json;

    use super::*;
    use crate::sync::{render::render, test_server::serve};

    type Seen = Arc<Mutex<Vec<(String, AxumHeaders, Bytes)>>>;

    async fn destination(seen: Seen) -> String {
        async fn record(
            State(seen): State<Seen>,
            method: axum::http::Method,
            headers: AxumHeaders,
            body: Bytes,
        ) -> impl IntoResponse {
            seen.lock()
                .unwrap()
                .push((method.to_string(), headers, body));
            (
                StatusCode::ACCEPTED,
                [("retry-after", "3")],
                "x".repeat(SNIPPET_MAX_BYTES * 4),
            )
        }
        serve(
            Router::new()
                .route("/{*path}", any(record))
                .with_state(seen),
        )
        .await
    }

    #[tokio::test]
    async fn sends_body_headers_and_credentials_and_bounds_the_snippet() {
        let seen = Seen::default();
        let base = destination(Arc::clone(&seen)).await;
        let url = Url::parse(&format!("{base}/orders/7")).unwrap();
        let body = render(PayloadFormat::Xml, Some("Order"), &json!({"Id": "7"})).unwrap();
        let mut auth = ConnectionAuth::default();
        let mut secret = HeaderValue::from_static("k-1");
        secret.set_sensitive(true);
        auth.headers
            .push((HeaderName::from_static("x-api-key"), secret));
        let headers = [
            HeaderSpec {
                name: "X-Api-Key".into(),
                value: "overridden".into(),
                ..Default::default()
            },
            HeaderSpec {
                name: "Idempotency-Key".into(),
                value: "mine".into(),
                ..Default::default()
            },
            HeaderSpec {
                name: "X-Tenant".into(),
                value: "acme".into(),
                ..Default::default()
            },
        ];
        let key = Uuid::now_v7();
        let response = Deliverer::new(DestinationPolicy::default())
            .unwrap()
            .send(Delivery {
                method: HttpMethod::Put,
                url: &url,
                headers: &headers,
                body: &body,
                idempotency_key: key,
                timeout: Duration::from_secs(5),
                auth: &auth,
                bearer: None,
            })
            .await
            .expect("answered");
        assert_eq!(response.status, 202);
        assert_eq!(response.headers["retry-after"], "3");
        assert_eq!(response.snippet.len(), SNIPPET_MAX_BYTES);
        let seen = seen.lock().unwrap();
        let (method, headers, received) = &seen[0];
        assert_eq!(method, "PUT");
        assert_eq!(headers["content-type"], "application/xml; charset=utf-8");
        assert_eq!(headers["idempotency-key"], key.to_string().as_str());
        assert_eq!(headers.get_all("idempotency-key").iter().count(), 1);
        assert_eq!(headers["x-api-key"], "k-1");
        assert_eq!(headers["x-tenant"], "acme");
        assert_eq!(received.as_ref(), body.body.as_slice());
    }

    #[tokio::test]
    async fn redirects_are_answers_and_timeouts_are_errors() {
        async fn slow() -> impl IntoResponse {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }
        async fn moved() -> impl IntoResponse {
            (StatusCode::MOVED_PERMANENTLY, [("location", "/elsewhere")])
        }
        let base = serve(
            Router::new()
                .route("/slow", any(slow))
                .route("/moved", any(moved)),
        )
        .await;
        let body = render(PayloadFormat::Json, None, &json!({})).unwrap();
        let auth = ConnectionAuth::default();
        let deliverer = Deliverer::new(DestinationPolicy::default()).unwrap();
        let send = |path: &'static str, timeout| {
            let url = Url::parse(&format!("{base}{path}")).unwrap();
            let deliverer = deliverer.clone();
            let body = body.clone();
            let auth = auth.clone();
            async move {
                deliverer
                    .send(Delivery {
                        method: HttpMethod::Post,
                        url: &url,
                        headers: &[],
                        body: &body,
                        idempotency_key: Uuid::now_v7(),
                        timeout,
                        auth: &auth,
                        bearer: None,
                    })
                    .await
            }
        };
        let moved = send("/moved", Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(moved.status, 301);
        assert_eq!(moved.headers["location"], "/elsewhere");
        let error = send("/slow", Duration::from_millis(100))
            .await
            .expect_err("too slow");
        assert!(matches!(error, DeliveryError::Timeout(_)), "{error}");
        let closed = Url::parse("http://127.0.0.1:9/x").unwrap();
        let error = deliverer
            .send(Delivery {
                method: HttpMethod::Post,
                url: &closed,
                headers: &[],
                body: &body,
                idempotency_key: Uuid::now_v7(),
                timeout: Duration::from_secs(5),
                auth: &auth,
                bearer: None,
            })
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, DeliveryError::Connect(_)), "{error}");
    }

    #[tokio::test]
    async fn refused_addresses_are_never_contacted() {
        let seen = Seen::default();
        let base = destination(Arc::clone(&seen)).await;
        let body = render(PayloadFormat::Json, None, &json!({})).unwrap();
        let auth = ConnectionAuth::default();
        let own: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
        let send = |deliverer: Deliverer, url: String| {
            let body = body.clone();
            let auth = auth.clone();
            async move {
                let url = Url::parse(&url).unwrap();
                deliverer
                    .send(Delivery {
                        method: HttpMethod::Post,
                        url: &url,
                        headers: &[],
                        body: &body,
                        idempotency_key: Uuid::now_v7(),
                        timeout: Duration::from_secs(5),
                        auth: &auth,
                        bearer: None,
                    })
                    .await
            }
        };
        let forbidden = |result: Result<Response, DeliveryError>| match result {
            Err(DeliveryError::Forbidden(forbidden)) => forbidden,
            other => panic!("refused, got {other:?}"),
        };

        // Our own listener, by IP literal and by a name resolving to it, even permissive.
        let permissive = Deliverer::new(DestinationPolicy {
            own_listeners: vec![own],
            ..DestinationPolicy::default()
        })
        .unwrap();
        let refused = forbidden(send(permissive.clone(), format!("{base}/graphql")).await);
        assert_eq!(refused.rule.name(), "own-listener");
        let by_name = format!("http://localhost:{}/graphql", own.port());
        let refused = forbidden(send(permissive.clone(), by_name).await);
        assert_eq!(refused.rule.name(), "own-listener");
        assert!(
            refused.to_string().contains("resolved from localhost"),
            "{refused}"
        );
        let refused = forbidden(send(permissive, "http://169.254.169.254/latest".into()).await);
        assert_eq!(refused.rule.name(), "cloud-metadata");

        // Strict: loopback by name and by IPv4-mapped literal.
        let strict = Deliverer::new(DestinationPolicy {
            mode: super::super::PolicyMode::Strict,
            ..DestinationPolicy::default()
        })
        .unwrap();
        let by_name = format!("http://localhost:{}/x", own.port());
        assert_eq!(
            forbidden(send(strict.clone(), by_name).await).rule.name(),
            "strict"
        );
        let mapped = format!("http://[::ffff:127.0.0.1]:{}/x", own.port());
        assert_eq!(forbidden(send(strict, mapped).await).rule.name(), "strict");
        assert!(
            seen.lock().unwrap().is_empty(),
            "nothing reached the destination"
        );
    }
}
