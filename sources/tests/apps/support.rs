//! Builders for requests and configurations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookplane_crds::{SecretKeyRef, VerificationSpec};
use hookplane_sources::{
    Incoming, Limits, ParsedEvent, Received, Rejection, ResolvedSecrets, VerifierConfig, app,
    receive,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// A fixture file's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A request under construction.
#[derive(Clone)]
pub struct Req {
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            headers: HeaderMap::new(),
            query: None,
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.headers.remove(name);
        self
    }

    pub fn json(self) -> Self {
        self.header("content-type", "application/json")
    }

    pub fn xml(self) -> Self {
        self.header("content-type", "text/xml; charset=utf-8")
    }

    pub fn form(self) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    pub fn query(mut self, query: &str) -> Self {
        self.query = Some(query.to_owned());
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            method: &Method::POST,
            headers: &self.headers,
            query: self.query.as_deref(),
            body: &self.body,
        }
    }
}

pub fn secret_ref(name: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: name.to_owned(),
        key: "value".to_owned(),
    }
}

/// A spec whose `secretRef` (and `previousSecretRef`, when given) hold the given values.
pub fn spec_with_secrets(
    current: &str,
    previous: Option<&str>,
) -> (VerificationSpec, ResolvedSecrets) {
    let mut secrets = ResolvedSecrets::new();
    secrets.insert(secret_ref("current"), current);
    let mut spec = VerificationSpec {
        secret_ref: Some(secret_ref("current")),
        ..Default::default()
    };
    if let Some(previous) = previous {
        secrets.insert(secret_ref("previous"), previous);
        spec.previous_secret_ref = Some(secret_ref("previous"));
    }
    (spec, secrets)
}

/// A config with one secret and the spec adjusted by `edit`.
pub fn config(secret: &str, edit: impl FnOnce(&mut VerificationSpec)) -> VerifierConfig {
    let (mut spec, secrets) = spec_with_secrets(secret, None);
    edit(&mut spec);
    VerifierConfig::new(spec, secrets)
}

pub fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Runs the pure pipeline for `app_id`.
pub fn run(
    app_id: &str,
    req: &Req,
    cfg: &VerifierConfig,
    now: SystemTime,
) -> Result<Received, Rejection> {
    let app = app(app_id).expect("app in catalog");
    receive(app, req.incoming(), cfg, &Limits::default(), now)
}

/// The events of an accepted delivery.
pub fn events(result: Result<Received, Rejection>) -> Vec<ParsedEvent> {
    match result {
        Ok(Received::Events(events)) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

/// The code of a rejected delivery, checking the message leaks neither body nor secret.
pub fn rejected(result: Result<Received, Rejection>, req: &Req, secret: &str) -> Rejection {
    match result {
        Err(rejection) => {
            assert!(
                !rejection.message.contains(secret),
                "message leaks the secret"
            );
            let body = String::from_utf8_lossy(&req.body);
            if body.len() > 8 {
                assert!(
                    !rejection.message.contains(body.as_ref()),
                    "message leaks the body"
                );
            }
            rejection
        }
        Ok(other) => panic!("expected a rejection, got {other:?}"),
    }
}
