//! The trust boundary: a request becomes `Verified` only by passing its app's verifier with a
//! spec that validates, and only a `Verified` request can be parsed into events.
//!
//! `receive` runs the whole pure pipeline (classify → validate → verify → parse) and returns
//! either a ping, the events to store, or a `Rejection` carrying the HTTP status, the stable
//! code and a message safe to log and return (never the body, never a secret).

use std::time::SystemTime;

use hookplane_crds::{SourceSpec, VerificationSpec};
use http::StatusCode;
use serde_json::json;

use crate::{
    app::{Kind, ParsedEvent, Reply, SourceApp},
    apps,
    body::{Limits, ParseError},
    config::{ConfigError, VerifierConfig},
    incoming::Incoming,
    verify::VerifyError,
};

/// A request whose authenticity was checked, with the spec it was checked against.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    req: Incoming<'a>,
    spec: &'a VerificationSpec,
}

impl<'a> Verified<'a> {
    /// The request.
    pub fn request(&self) -> &Incoming<'a> {
        &self.req
    }

    /// The verification spec it passed.
    pub fn spec(&self) -> &'a VerificationSpec {
        self.spec
    }

    /// Wraps a request without verifying it: only for this crate's fuzz and test harnesses,
    /// which exercise parsers directly.
    pub(crate) fn unchecked(req: Incoming<'a>, spec: &'a VerificationSpec) -> Self {
        Self { req, spec }
    }
}

/// Validates `cfg.spec` for `app` and verifies `req` with it.
pub fn verify<'a>(
    app: &dyn SourceApp,
    req: Incoming<'a>,
    cfg: &'a VerifierConfig,
    now: SystemTime,
) -> Result<Verified<'a>, VerifyError> {
    app.validate(&cfg.spec)?;
    app.verify(&req, cfg, now)?;
    Ok(Verified {
        req,
        spec: &cfg.spec,
    })
}

/// Checks a touchpoint's source can be published: its app exists and its verification spec is
/// complete for that app.
pub fn validate_source(source: &SourceSpec) -> Result<(), ConfigError> {
    let app = apps::app(&source.app).ok_or_else(|| ConfigError::UnknownApp(source.app.clone()))?;
    app.validate(&source.verification.clone().unwrap_or_default())
}

/// What an accepted delivery holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// A ping: answer `acknowledge(&Ack::Ping)`, store nothing.
    Ping,
    /// Events to store, then answer `acknowledge(&Ack::Stored { .. })`.
    Events(Vec<ParsedEvent>),
}

/// Runs classify, verify and parse for one delivery. What the events carry is as sent: the
/// caller redacts the configured secrets (see [`crate::Redactor`]) before storing them.
pub fn receive<'a>(
    app: &dyn SourceApp,
    req: Incoming<'a>,
    cfg: &'a VerifierConfig,
    limits: &Limits,
    now: SystemTime,
) -> Result<Received, Rejection> {
    if app.classify(&req) == Kind::Ping {
        return Ok(Received::Ping);
    }
    let verified = verify(app, req, cfg, now)?;
    let events = app.parse(&verified, limits)?;
    Ok(Received::Events(events))
}

/// The step that rejected a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Verification failed (or the configuration cannot verify).
    Verify,
    /// The body could not become events.
    Parse,
}

/// A rejected delivery, ready to log and answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Which step rejected it.
    pub stage: Stage,
    /// Status to answer.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Human-readable reason; contains neither body nor secrets.
    pub message: String,
}

impl Rejection {
    /// `{"code", "message"}` with the rejection's status.
    pub fn json_reply(&self) -> Reply {
        Reply::json(
            self.status,
            &json!({"code": self.code, "message": self.message}),
        )
    }
}

impl From<VerifyError> for Rejection {
    fn from(error: VerifyError) -> Self {
        Self {
            stage: Stage::Verify,
            status: error.status(),
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<ParseError> for Rejection {
    fn from(error: ParseError) -> Self {
        Self {
            stage: Stage::Parse,
            status: error.status(),
            code: error.code(),
            message: error.to_string(),
        }
    }
}
