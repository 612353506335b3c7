//! The `SourceApp` trait every catalog app implements, and the values it exchanges with the
//! receiver: what kind of delivery arrived, the parsed events with their de-duplication keys,
//! the acknowledgement to answer, and what a portal must render to configure the app.
//!
//! Guarantees to the receiver: `parse` is only reachable with a `Verified` request (see
//! `receive`), and a [`ParsedEvent`] only comes out of `parse`: its fields are private, only
//! this crate builds one, and `SourceApp` is sealed (only the catalog's apps implement it), so
//! a `ParsedEvent` anywhere else was verified and parsed here. Every event has a non-empty de-duplication key prefixed with its kind
//! (`shopify-webhook:`, `webhook-id:`, `sha256:` …) so keys of different kinds never collide,
//! and keys are at most `MAX_KEY_LEN` bytes; replies for the same delivery are byte-identical,
//! so a duplicate answers exactly what the first delivery got.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    body::{Limits, ParseError, decode_request},
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    receive::{Rejection, Verified},
    verify::{VerifyError, encode_hex},
};

/// Longest de-duplication key; longer delivery ids are hashed.
pub const MAX_KEY_LEN: usize = 200;

/// What a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A webhook carrying one or more events.
    Event,
    /// A connectivity check (WooCommerce's ping when a webhook is saved): answered with 200,
    /// creates no event, needs no verification because it carries nothing to store.
    Ping,
}

/// One event parsed from a verified delivery: only [`SourceApp::parse`] makes one, so holding
/// one proves the delivery it came from passed its app's verifier (the store accepts events
/// only as `ParsedEvent`s).
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedEvent {
    pub(crate) payload: Value,
    pub(crate) dedupe_key: String,
    pub(crate) topic: Option<String>,
}

impl ParsedEvent {
    /// The event's JSON payload, by the convention in `PAYLOADS.md`.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// Key identifying the event across redeliveries: non-empty, prefixed with its kind, at
    /// most [`MAX_KEY_LEN`] bytes.
    pub fn dedupe_key(&self) -> &str {
        &self.dedupe_key
    }

    /// The app's name for the kind of event (`orders/create`, `store/order/created`, …).
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// Replaces the secrets `redactor` knows in the payload (after verification, before
    /// anything stores or evaluates it).
    pub fn redact(&mut self, redactor: &crate::Redactor) {
        redactor.value(&mut self.payload);
    }

    /// The payload, giving the event up (for storing it).
    pub fn into_payload(self) -> Value {
        self.payload
    }
}

/// What the receiver did with a delivery, for the acknowledgement.
#[derive(Clone, Copy, Debug)]
pub enum Ack<'a> {
    /// A ping was received.
    Ping,
    /// Every event is durably stored (or was already, for a duplicate): their event ids.
    Stored {
        /// Ids of the stored events, in delivery order.
        event_ids: &'a [String],
    },
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }
}

/// The acknowledgement most apps expect: 200 with a small JSON body.
pub fn default_acknowledge(ack: &Ack<'_>) -> Reply {
    let body = match ack {
        Ack::Ping => json!({"status": "ok"}),
        Ack::Stored { event_ids } => json!({"status": "accepted", "eventIds": event_ids}),
    };
    Reply::json(StatusCode::OK, &body)
}

/// What a portal needs to offer an app as a source.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// Catalog id (`shopify`, …).
    pub id: &'static str,
    /// Name shown to users.
    pub display_name: &'static str,
    /// How deliveries are verified, in one sentence.
    pub verification: &'static str,
    /// Accepted values of `verification.scheme`; empty when the app has one fixed scheme.
    pub schemes: &'static [&'static str],
    /// The `verification` fields the app uses.
    pub fields: &'static [FieldInfo],
    /// Headers the app sends that Hookplane reads.
    pub headers: &'static [&'static str],
    /// Where the de-duplication key comes from.
    pub dedupe: &'static str,
}

/// One `verification` field a portal renders.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldInfo {
    /// Field name in `VerificationSpec` (camelCase).
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// Input kind.
    pub kind: FieldKind,
    /// Whether the field must be set (for the listed schemes, if any).
    pub required: bool,
    /// Schemes the field applies to; empty for all.
    pub schemes: &'static [&'static str],
    /// Allowed values for `Choice` fields.
    pub options: &'static [&'static str],
    /// Value used when unset.
    pub default: Option<&'static str>,
    /// Help text.
    pub help: &'static str,
}

impl FieldInfo {
    /// An optional field with no options or default; adjust with struct update syntax.
    pub const fn new(
        name: &'static str,
        label: &'static str,
        kind: FieldKind,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            label,
            kind,
            required: false,
            schemes: &[],
            options: &[],
            default: None,
            help,
        }
    }

    /// The same field, required.
    pub const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }

    /// The same field, only for `schemes`.
    pub const fn for_schemes(self, schemes: &'static [&'static str]) -> Self {
        Self { schemes, ..self }
    }

    /// The same field with a default.
    pub const fn with_default(self, default: &'static str) -> Self {
        Self {
            default: Some(default),
            ..self
        }
    }

    /// The same field with allowed values.
    pub const fn with_options(self, options: &'static [&'static str]) -> Self {
        Self { options, ..self }
    }
}

/// How a portal renders a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldKind {
    /// A secret reference (write-only value).
    Secret,
    /// A list of secret references.
    SecretList,
    /// Free text.
    Text,
    /// A list of texts.
    TextList,
    /// An HTTP header name.
    Header,
    /// One of `options`.
    Choice,
    /// A number of seconds.
    Seconds,
}

/// A source app: how its deliveries are verified, parsed, de-duplicated and acknowledged.
/// Adding an app is one module implementing this trait (and `sealed::Sealed`) plus a line in
/// the catalog. Sealed: an app outside this crate could "verify" anything and so mint
/// `ParsedEvent`s through the default `parse`.
pub trait SourceApp: Send + Sync + sealed::Sealed {
    /// Catalog id.
    fn id(&self) -> &'static str;

    /// What a portal renders for this app.
    fn info(&self) -> AppInfo;

    /// Checks a spec is complete for this app; publishing refuses a spec that fails.
    fn validate(&self, spec: &VerificationSpec) -> Result<(), ConfigError>;

    /// What kind of delivery this is. Pings are acknowledged without verification and create
    /// no event.
    fn classify(&self, _req: &Incoming<'_>) -> Kind {
        Kind::Event
    }

    /// Checks the delivery is authentic. Never succeeds without checking something the
    /// configuration names, unless the configuration explicitly says `none`.
    fn verify(
        &self,
        req: &Incoming<'_>,
        cfg: &VerifierConfig,
        now: SystemTime,
    ) -> Result<(), VerifyError>;

    /// The events a verified delivery carries (default: the body, decoded by its
    /// `Content-Type`, as one event).
    fn parse(&self, req: &Verified<'_>, limits: &Limits) -> Result<Vec<ParsedEvent>, ParseError> {
        let payload = decode_request(req.request(), limits)?;
        Ok(vec![ParsedEvent {
            dedupe_key: self.dedupe_key(req, &payload),
            topic: self.topic(req, &payload),
            payload,
        }])
    }

    /// The de-duplication key of a single-event delivery (default: hash of the raw body).
    fn dedupe_key(&self, req: &Verified<'_>, _payload: &Value) -> String {
        body_hash_key(req.request().body)
    }

    /// The event's topic, if the app names one.
    fn topic(&self, _req: &Verified<'_>, _payload: &Value) -> Option<String> {
        None
    }

    /// The answer once every event is stored.
    fn acknowledge(&self, ack: &Ack<'_>) -> Reply {
        default_acknowledge(ack)
    }

    /// The answer to a rejected delivery (default: JSON `{"code", "message"}`).
    fn reject(&self, rejection: &Rejection) -> Reply {
        rejection.json_reply()
    }
}

pub(crate) mod sealed {
    /// Implemented by the catalog's apps only: keeps [`super::SourceApp`] closed to other
    /// crates.
    pub trait Sealed {}
}

/// `sha256:<hex>` of the raw body: the key for apps that send no delivery id.
pub fn body_hash_key(body: &[u8]) -> String {
    format!("sha256:{}", encode_hex(&Sha256::digest(body)))
}

/// `<kind>:<id>`, with ids longer than `MAX_KEY_LEN` allows replaced by their SHA-256.
pub fn id_key(kind: &str, id: &str) -> String {
    let key = format!("{kind}:{id}");
    if key.len() <= MAX_KEY_LEN {
        key
    } else {
        format!(
            "{kind}:sha256:{}",
            encode_hex(&Sha256::digest(id.as_bytes()))
        )
    }
}

/// A string field of a JSON object.
pub(crate) fn str_field<'v>(payload: &'v Value, name: &str) -> Option<&'v str> {
    payload.get(name).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_and_bounded() {
        assert_eq!(id_key("webhook-id", "msg_1"), "webhook-id:msg_1");
        let long = id_key("webhook-id", &"x".repeat(500));
        assert!(long.starts_with("webhook-id:sha256:") && long.len() <= MAX_KEY_LEN);
        assert_eq!(
            body_hash_key(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn default_ack_is_json() {
        let ids = vec!["e1".to_owned()];
        let reply = default_acknowledge(&Ack::Stored { event_ids: &ids });
        assert_eq!(reply.status, StatusCode::OK);
        let body: Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert_eq!(body, json!({"status": "accepted", "eventIds": ["e1"]}));
        assert_eq!(
            default_acknowledge(&Ack::Ping).body,
            br#"{"status":"ok"}"#.to_vec()
        );
    }
}
