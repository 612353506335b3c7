//! The bodies of the fuzz targets, as plain functions, so `cargo fuzz` (nightly, in `fuzz/`)
//! and the deterministic stable test `tests/fuzz_stable.rs` run exactly the same code.
//!
//! Each function must return normally for every input: a panic is a finding. Where a property
//! holds for every input, it is asserted (encoders accept what decoders produce; a verifier
//! given arbitrary requests never accepts one for a scheme that needs a secret unless the
//! request proves it — checked by the fixture tests, here only "never panics").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookplane_crds::{SecretKeyRef, VerificationSpec};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::{
    app::SourceApp,
    apps::catalog,
    body::{Limits, from_form, from_json, from_xml, to_form, to_xml},
    config::{ResolvedSecrets, VerifierConfig},
    incoming::Incoming,
    receive::Verified,
};

/// Limits small enough that limit paths are reached by short inputs.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_body_bytes: 64 * 1024,
        max_depth: 16,
        max_nodes: 512,
        max_events: 8,
    }
}

/// XML decoder, then the encoder on whatever it produced.
pub fn xml(data: &[u8]) {
    if let Ok(Value::Object(document)) = from_xml(data, &fuzz_limits()) {
        for (root, value) in &document {
            // Local names may be empty or start with a digit after a prefix is dropped, so
            // the encoder may refuse; it must not panic.
            let _ = to_xml(value, root);
        }
    }
}

/// Form decoder, then the encoder; form decoding only fails on limits, and everything it
/// produces encodes.
pub fn form(data: &[u8]) {
    match from_form(data, &fuzz_limits()) {
        Ok(value) => {
            let encoded = to_form(&value);
            assert!(encoded.is_ok(), "a decoded form must encode: {encoded:?}");
        }
        Err(e) => assert!(
            matches!(
                e.code(),
                "EMPTY_BODY" | "PAYLOAD_TOO_LARGE" | "PAYLOAD_TOO_DEEP" | "PAYLOAD_TOO_COMPLEX"
            ),
            "form decoding failed on content: {e}"
        ),
    }
}

/// JSON decoder, then both encoders.
pub fn json(data: &[u8]) {
    if let Ok(value) = from_json(data, &fuzz_limits()) {
        let _ = to_xml(&value, "root");
        let _ = to_form(&value);
    }
}

/// The request a fuzz input describes: `<selector byte><head>\n\n<body>`, where head lines are
/// `name: value` headers or one `?query` line.
pub struct FuzzRequest {
    /// Which app and configuration to use.
    pub selector: u8,
    /// Headers.
    pub headers: HeaderMap,
    /// Query string.
    pub query: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl FuzzRequest {
    /// Splits fuzz input into a request.
    pub fn from_bytes(data: &[u8]) -> Self {
        let (selector, rest) = data.split_first().map_or((0, &[][..]), |(s, r)| (*s, r));
        let split = rest.windows(2).position(|w| w == b"\n\n");
        let (head, body) = match split {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (&[][..], rest),
        };
        let mut headers = HeaderMap::new();
        let mut query = None;
        for line in head.split(|b| *b == b'\n').take(32) {
            if let Some(q) = line.strip_prefix(b"?") {
                query = Some(String::from_utf8_lossy(q).into_owned());
            } else if let Some(colon) = line.iter().position(|b| *b == b':') {
                let name = HeaderName::from_bytes(line[..colon].trim_ascii());
                let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
                if let (Ok(name), Ok(value)) = (name, value) {
                    headers.append(name, value);
                }
            }
        }
        Self {
            selector,
            headers,
            query,
            body: body.to_vec(),
        }
    }

    /// The request as the receiver would hand it over.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            method: &Method::POST,
            headers: &self.headers,
            query: self.query.as_deref(),
            body: &self.body,
        }
    }
}

/// Every app with every configuration worth fuzzing, indexed by the selector byte.
pub fn fuzz_configs() -> Vec<(&'static dyn SourceApp, VerifierConfig)> {
    let secret = |name: &str| SecretKeyRef {
        name: name.into(),
        key: "k".into(),
    };
    let mut secrets = ResolvedSecrets::new();
    secrets
        .insert(secret("primary"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .insert(secret("previous"), "old-secret");
    let base = VerificationSpec {
        secret_ref: Some(secret("primary")),
        previous_secret_ref: Some(secret("previous")),
        ..Default::default()
    };
    let with = |f: fn(&mut VerificationSpec)| {
        let mut spec = base.clone();
        f(&mut spec);
        VerifierConfig::new(spec, secrets.clone())
    };
    let mut configs: Vec<(&'static dyn SourceApp, VerifierConfig)> = Vec::new();
    for app in catalog() {
        match app.id() {
            "salesforce" => {
                configs.push((*app, with(|s| s.org_id = Some("00De0000000pmu1EAA".into()))));
                configs.push((
                    *app,
                    with(|s| {
                        s.org_id = Some("00De0000000pmu1".into());
                        s.action_ids = vec!["04ke0000000Cb2DAAS".into()];
                    }),
                ));
            }
            "generic" => {
                configs.push((*app, with(|s| s.scheme = Some("none".into()))));
                configs.push((
                    *app,
                    with(|s| {
                        s.scheme = Some("hmac".into());
                        s.header = Some("x-signature".into());
                        s.prefix = Some("sha256=".into());
                        s.signed_content = Some("{timestamp}.{id}.{body}".into());
                        s.timestamp_header = Some("x-timestamp".into());
                        s.id_header = Some("x-id".into());
                    }),
                ));
                configs.push((
                    *app,
                    with(|s| {
                        s.scheme = Some("hmac".into());
                        s.header = Some("x-signature".into());
                        s.algorithm = Some("sha1".into());
                        s.encoding = Some("base64".into());
                    }),
                ));
                configs.push((*app, with(|s| s.scheme = Some("standardWebhooks".into()))));
                configs.push((
                    *app,
                    with(|s| {
                        s.scheme = Some("token".into());
                        s.header = Some("x-token".into());
                        s.query_parameter = Some("token".into());
                    }),
                ));
                configs.push((
                    *app,
                    with(|s| {
                        s.scheme = Some("basic".into());
                        s.username = Some("user".into());
                    }),
                ));
                configs.push((*app, with(|s| s.scheme = Some("bearer".into()))));
            }
            "zohocrm" => configs.push((*app, with(|s| s.header = Some("x-zoho-token".into())))),
            "shift4shop" | "prestashop" => {
                configs.push((*app, with(|_| {})));
                configs.push((
                    *app,
                    with(|s| {
                        s.scheme = Some("hmac".into());
                        s.header = Some("x-signature".into());
                    }),
                ));
            }
            _ => configs.push((*app, with(|_| {}))),
        }
    }
    configs
}

/// The configurations of one app (the `verify_<app>` fuzz targets).
pub fn fuzz_configs_for(app_id: &str) -> Vec<(&'static dyn SourceApp, VerifierConfig)> {
    fuzz_configs()
        .into_iter()
        .filter(|(app, _)| app.id() == app_id)
        .collect()
}

/// A fixed clock near the fixtures' timestamps.
pub fn fuzz_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_614_265_330)
}

/// Classify, verify and parse an arbitrary request with the configuration the selector picks.
pub fn verify(data: &[u8], configs: &[(&'static dyn SourceApp, VerifierConfig)]) {
    let request = FuzzRequest::from_bytes(data);
    let Some((app, cfg)) = configs.get(usize::from(request.selector) % configs.len().max(1)) else {
        return;
    };
    let req = request.incoming();
    let _ = app.classify(&req);
    let _ = app.verify(&req, cfg, fuzz_now());
    // Parsers run on unverified input here on purpose: they must be safe regardless.
    let verified = Verified::unchecked(req, &cfg.spec);
    if let Ok(events) = app.parse(&verified, &fuzz_limits()) {
        for event in &events {
            assert!(!event.dedupe_key.is_empty(), "every event has a dedupe key");
            assert!(event.dedupe_key.len() <= crate::app::MAX_KEY_LEN);
        }
    }
}
