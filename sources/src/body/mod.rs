//! Bodies in and out: JSON, XML and form-encoded bodies become a `serde_json::Value` by one
//! convention (see `PAYLOADS.md` and the `xml` and `form` modules), and a value becomes XML or
//! form encoding for destinations by the same convention in reverse.
//!
//! Guarantees: the `Content-Type` alone picks the decoder (no sniffing); a missing or other
//! type is `UnsupportedMediaType` (415) naming the accepted types; size, depth and node limits
//! are enforced before and while decoding, so hostile input costs bounded time and memory;
//! error messages never quote the body.

pub mod form;
pub mod json;
pub mod xml;
pub mod xml_out;

use http::StatusCode;
use serde_json::Value;

pub use form::{from_form, to_form};
pub use json::from_json;
pub use xml::from_xml;
pub use xml_out::to_xml;

use crate::incoming::Incoming;

/// The media types a source may send, as listed in 415 answers.
pub const ACCEPTED_MEDIA_TYPES: &str = "application/json, application/*+json, application/xml, \
     text/xml, application/*+xml, application/x-www-form-urlencoded";

/// Bounds on what a body may cost to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Deepest nesting of elements, objects, arrays or form brackets.
    pub max_depth: usize,
    /// Most elements plus attributes (XML) or fields (form) in one body.
    pub max_nodes: usize,
    /// Most events one delivery may carry (Salesforce sends up to 100 notifications).
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_nodes: 200_000,
            max_events: 100,
        }
    }
}

/// The decoders, chosen by media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json` and `+json` types.
    Json,
    /// `application/xml`, `text/xml` and `+xml` types.
    Xml,
    /// `application/x-www-form-urlencoded`.
    Form,
}

impl MediaType {
    /// The decoder for a media type (lowercase, without parameters).
    pub fn from_essence(essence: &str) -> Option<Self> {
        match essence {
            "application/json" | "text/json" => Some(Self::Json),
            "application/xml" | "text/xml" => Some(Self::Xml),
            "application/x-www-form-urlencoded" => Some(Self::Form),
            other if other.starts_with("application/") && other.ends_with("+json") => {
                Some(Self::Json)
            }
            other if other.starts_with("application/") && other.ends_with("+xml") => {
                Some(Self::Xml)
            }
            _ => None,
        }
    }

    /// The decoder for a request's `Content-Type`.
    pub fn of(req: &Incoming<'_>) -> Result<Self, ParseError> {
        let essence = req.media_type();
        essence
            .as_deref()
            .and_then(Self::from_essence)
            .ok_or(ParseError::UnsupportedMediaType { found: essence })
    }
}

/// Why a body could not become a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The `Content-Type` is missing or not one of `ACCEPTED_MEDIA_TYPES`.
    #[error("unsupported content type {}; send one of: {ACCEPTED_MEDIA_TYPES}", found.as_deref().unwrap_or("(none)"))]
    UnsupportedMediaType {
        /// The media type sent, if any.
        found: Option<String>,
    },
    /// The body exceeds `Limits::max_body_bytes`.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body nests deeper than `Limits::max_depth`.
    #[error("the body nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The body has more nodes than `Limits::max_nodes`.
    #[error("the body has more than {limit} elements, attributes or fields")]
    TooManyNodes {
        /// The limit.
        limit: usize,
    },
    /// The delivery carries more events than `Limits::max_events`.
    #[error("the delivery carries more than {limit} events")]
    TooManyEvents {
        /// The limit.
        limit: usize,
    },
    /// The body is empty.
    #[error("the body is empty")]
    Empty,
    /// Malformed JSON.
    #[error("malformed JSON at line {line}, column {column}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Malformed XML.
    #[error("malformed XML near byte {position}: {reason}")]
    Xml {
        /// Byte offset where the reader stopped.
        position: u64,
        /// What was wrong (no body content).
        reason: &'static str,
    },
    /// The XML has a document type declaration. DTDs are never processed, so entity
    /// expansion attacks (billion laughs) and external entities are impossible.
    #[error("XML document type declarations (DOCTYPE) are not accepted")]
    XmlDoctype,
    /// The XML refers to an entity other than the five predefined ones.
    #[error("XML entity references other than &lt; &gt; &amp; &apos; &quot; are not accepted")]
    XmlEntity,
    /// The body decodes but lacks what the app's message format requires.
    #[error("the message is missing {what}")]
    MissingPart {
        /// What is missing (an element or field name, not content).
        what: &'static str,
    },
}

impl ParseError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            Self::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::TooDeep { .. } => "PAYLOAD_TOO_DEEP",
            Self::TooManyNodes { .. } => "PAYLOAD_TOO_COMPLEX",
            Self::TooManyEvents { .. } => "TOO_MANY_EVENTS",
            Self::Empty => "EMPTY_BODY",
            Self::Json { .. } => "MALFORMED_JSON",
            Self::Xml { .. } => "MALFORMED_XML",
            Self::XmlDoctype => "XML_DOCTYPE_FORBIDDEN",
            Self::XmlEntity => "XML_ENTITY_FORBIDDEN",
            Self::MissingPart { .. } => "MALFORMED_MESSAGE",
        }
    }

    /// The HTTP status to answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Why a value cannot be encoded for a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A key cannot be an XML element or attribute name.
    #[error("{0:?} is not a valid XML name")]
    InvalidXmlName(String),
    /// Form encoding needs an object at the top.
    #[error("form encoding needs a JSON object at the top level")]
    NotAnObject,
    /// The value nests deeper than the encoder allows.
    #[error("the value nests deeper than {0} levels")]
    TooDeep(usize),
}

/// Deepest nesting the encoders accept, so a hostile value cannot exhaust the stack.
pub const MAX_ENCODE_DEPTH: usize = 128;

/// Decodes a body with the decoder for `media_type`.
pub fn decode(media_type: MediaType, body: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    match media_type {
        MediaType::Json => from_json(body, limits),
        MediaType::Xml => from_xml(body, limits),
        MediaType::Form => from_form(body, limits),
    }
}

/// Decodes a request's body with the decoder its `Content-Type` names.
pub fn decode_request(req: &Incoming<'_>, limits: &Limits) -> Result<Value, ParseError> {
    decode(MediaType::of(req)?, req.body, limits)
}

/// Rejects bodies over the size limit and empty bodies.
pub(crate) fn check_size(body: &[u8], limits: &Limits) -> Result<(), ParseError> {
    if body.len() > limits.max_body_bytes {
        return Err(ParseError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};

    use super::*;

    #[test]
    fn media_types_pick_decoders() {
        assert_eq!(
            MediaType::from_essence("application/json"),
            Some(MediaType::Json)
        );
        assert_eq!(
            MediaType::from_essence("application/cloudevents+json"),
            Some(MediaType::Json)
        );
        assert_eq!(MediaType::from_essence("text/xml"), Some(MediaType::Xml));
        assert_eq!(
            MediaType::from_essence("application/soap+xml"),
            Some(MediaType::Xml)
        );
        assert_eq!(
            MediaType::from_essence("application/x-www-form-urlencoded"),
            Some(MediaType::Form)
        );
        assert_eq!(MediaType::from_essence("text/plain"), None);
        assert_eq!(MediaType::from_essence("multipart/form-data"), None);
    }

    #[test]
    fn missing_content_type_is_415_listing_accepted_types() {
        let headers = HeaderMap::new();
        let err = decode_request(&Incoming::post(&headers, b"{}"), &Limits::default()).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            err.to_string()
                .contains("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn wrong_content_type_is_415() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let err = decode_request(&Incoming::post(&headers, b"{}"), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "UNSUPPORTED_MEDIA_TYPE");
        assert!(err.to_string().contains("text/plain"));
    }

    #[test]
    fn oversized_body_is_413() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let err = decode(MediaType::Json, b"[1,2,3]", &limits).unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
