//! Source apps: how each app in the catalog proves its webhooks are authentic, how their
//! bodies become JSON payloads, which key de-duplicates them, and what they expect as an
//! answer. Pure and I/O-free: the receiver hands over a borrowed request (`Incoming`) with the
//! secret values it resolved (`VerifierConfig`) and the current time, and gets back events or
//! a `Rejection` with an HTTP status and a stable code.
//!
//! ```text
//! classify ──Ping──▶ acknowledge(Ack::Ping)               (WooCommerce's save-time ping)
//!    │Event
//!    ▼
//! verify (validate spec, then the app's check) ──▶ Verified ──▶ parse ──▶ [ParsedEvent]
//!    │                                                                     │ store all
//!    ▼ Rejection (401/415/400…) ──▶ reject()            acknowledge(Ack::Stored) ◀┘
//! ```
//!
//! `receive` runs the middle in one call. The JSON convention for XML and form bodies, and its
//! reverse for destinations (`to_xml`, `to_form`), is in `PAYLOADS.md`.

pub mod app;
pub mod apps;
pub mod body;
pub mod config;
pub mod fuzzing;
pub mod incoming;
pub mod receive;
pub mod redact;
pub mod verify;

pub use app::{Ack, AppInfo, FieldInfo, FieldKind, Kind, ParsedEvent, Reply, SourceApp};
pub use apps::{app, catalog};
pub use body::{
    EncodeError, Limits, MediaType, ParseError, decode, decode_request, from_form, from_json,
    from_xml, to_form, to_xml,
};
pub use config::{ConfigError, ResolvedSecrets, Secret, VerifierConfig};
pub use incoming::Incoming;
pub use receive::{Received, Rejection, Stage, Verified, receive, validate_source, verify};
pub use redact::{REDACTED, Redactor};
pub use verify::VerifyError;
