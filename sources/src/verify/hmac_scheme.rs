//! The configurable HMAC scheme for senders that sign their own way: signature header,
//! SHA-256 or SHA-1, hex or base64, an optional prefix such as `sha256=`, a signed-content
//! template over `{body}`, `{timestamp}` and `{id}`, a timestamp tolerance, several secrets.
//!
//! Guarantees: the template always covers the raw body (a template without `{body}` does not
//! validate); a configured timestamp header is always checked against the tolerance; the
//! header may carry several signatures (comma- or space-separated, e.g. during the sender's
//! own rotation) and one must match one accepted secret.

use std::time::SystemTime;

use hookplane_crds::VerificationSpec;

use crate::{
    config::{ConfigError, DEFAULT_TOLERANCE_SECONDS, check_header_name},
    incoming::Incoming,
    verify::{Algorithm, Encoding, VerifyError, check_timestamp, decode_signature, hmac, mac_eq},
};

/// One piece of a signed-content template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// The raw body.
    Body,
    /// The timestamp header's value.
    Timestamp,
    /// The id header's value.
    Id,
}

/// A validated HMAC configuration.
#[derive(Clone, Debug)]
pub struct HmacScheme<'s> {
    /// Header carrying the signature.
    pub header: &'s str,
    /// Digest.
    pub algorithm: Algorithm,
    /// Signature encoding.
    pub encoding: Encoding,
    /// Text in front of each signature.
    pub prefix: Option<&'s str>,
    /// What is signed.
    pub template: Vec<Segment>,
    /// Header carrying the signing time.
    pub timestamp_header: Option<&'s str>,
    /// Header carrying the delivery id.
    pub id_header: Option<&'s str>,
    /// Accepted skew in seconds.
    pub tolerance_seconds: u64,
}

impl<'s> HmacScheme<'s> {
    /// Reads and validates the HMAC fields of a spec.
    pub fn from_spec(spec: &'s VerificationSpec) -> Result<Self, ConfigError> {
        let header = spec.header.as_deref().ok_or(ConfigError::FieldRequired {
            field: "header",
            when: "for the hmac scheme",
        })?;
        check_header_name("header", spec.header.as_ref())?;
        check_header_name("timestampHeader", spec.timestamp_header.as_ref())?;
        check_header_name("idHeader", spec.id_header.as_ref())?;
        let algorithm = parse_algorithm(spec.algorithm.as_deref())?;
        let encoding = parse_encoding(spec.encoding.as_deref())?;
        let template = parse_template(spec.signed_content.as_deref().unwrap_or("{body}"))?;
        if template.contains(&Segment::Timestamp) && spec.timestamp_header.is_none() {
            return Err(ConfigError::FieldRequired {
                field: "timestampHeader",
                when: "when signedContent uses {timestamp}",
            });
        }
        if template.contains(&Segment::Id) && spec.id_header.is_none() {
            return Err(ConfigError::FieldRequired {
                field: "idHeader",
                when: "when signedContent uses {id}",
            });
        }
        Ok(Self {
            header,
            algorithm,
            encoding,
            prefix: spec.prefix.as_deref().filter(|p| !p.is_empty()),
            template,
            timestamp_header: spec.timestamp_header.as_deref(),
            id_header: spec.id_header.as_deref(),
            tolerance_seconds: u64::from(
                spec.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
            ),
        })
    }

    /// Verifies a delivery against any of `secrets`.
    pub fn verify(
        &self,
        req: &Incoming<'_>,
        secrets: &[&[u8]],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let value = req
            .header(&[self.header])
            .ok_or(VerifyError::SignatureMissing {
                header: "named in verification.header",
            })?;
        let timestamp = match self.timestamp_header {
            Some(name) => {
                let ts = req.header(&[name]).ok_or(VerifyError::TimestampMissing)?;
                check_timestamp(ts, now, self.tolerance_seconds)?;
                Some(ts)
            }
            None => None,
        };
        let id = match self.id_header {
            Some(name) if self.template.contains(&Segment::Id) => {
                Some(req.header(&[name]).ok_or(VerifyError::SignatureMissing {
                    header: "named in verification.idHeader",
                })?)
            }
            _ => None,
        };
        let candidates = self.candidates(value);
        if candidates.is_empty() {
            return Err(VerifyError::SignatureMalformed);
        }
        let parts: Vec<&[u8]> = self
            .template
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.as_bytes(),
                Segment::Body => req.body,
                Segment::Timestamp => timestamp.unwrap_or_default().as_bytes(),
                Segment::Id => id.unwrap_or_default().as_bytes(),
            })
            .collect();
        let matched = secrets.iter().any(|secret| {
            let expected = hmac(self.algorithm, secret, &parts);
            candidates.iter().any(|c| mac_eq(&expected, c))
        });
        if matched {
            Ok(())
        } else {
            Err(VerifyError::SignatureMismatch)
        }
    }

    /// The decodable signatures in a header value.
    fn candidates(&self, value: &str) -> Vec<Vec<u8>> {
        value
            .split([',', ' '])
            .filter(|entry| !entry.is_empty())
            .filter_map(|entry| match self.prefix {
                Some(prefix) => strip_prefix_ignore_case(entry, prefix),
                None => Some(entry),
            })
            .filter_map(|sig| decode_signature(self.encoding, sig))
            .collect()
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Parses `algorithm` (default `sha256`).
pub fn parse_algorithm(value: Option<&str>) -> Result<Algorithm, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("sha256") => Ok(Algorithm::Sha256),
        Some("sha1") => Ok(Algorithm::Sha1),
        Some(_) => Err(ConfigError::InvalidValue {
            field: "algorithm",
            allowed: "sha256, sha1",
        }),
    }
}

/// Parses `encoding` (default `hex`).
pub fn parse_encoding(value: Option<&str>) -> Result<Encoding, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("hex") => Ok(Encoding::Hex),
        Some("base64") => Ok(Encoding::Base64),
        Some(_) => Err(ConfigError::InvalidValue {
            field: "encoding",
            allowed: "hex, base64",
        }),
    }
}

/// Parses a signed-content template. It must contain `{body}` exactly once.
pub fn parse_template(template: &str) -> Result<Vec<Segment>, ConfigError> {
    let invalid = |reason| ConfigError::InvalidTemplate { reason };
    let mut segments = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            segments.push(Segment::Literal(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| invalid("unclosed `{`"))?
            + open;
        segments.push(match &rest[open + 1..close] {
            "body" => Segment::Body,
            "timestamp" => Segment::Timestamp,
            "id" => Segment::Id,
            _ => return Err(invalid("placeholders are {body}, {timestamp} and {id}")),
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest.to_owned()));
    }
    match segments.iter().filter(|s| **s == Segment::Body).count() {
        1 => Ok(segments),
        0 => Err(invalid(
            "it must contain {body}, or the body would not be signed",
        )),
        _ => Err(invalid("{body} may appear only once")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        assert_eq!(
            parse_template("{body}").expect("valid"),
            vec![Segment::Body]
        );
        assert_eq!(
            parse_template("v0:{timestamp}:{body}").expect("valid"),
            vec![
                Segment::Literal("v0:".into()),
                Segment::Timestamp,
                Segment::Literal(":".into()),
                Segment::Body
            ]
        );
        for bad in ["", "{timestamp}", "{body}{body}", "{nope}{body}", "{body"] {
            assert_eq!(
                parse_template(bad).unwrap_err().code(),
                "INVALID_SIGNED_CONTENT",
                "{bad}"
            );
        }
    }

    #[test]
    fn choices_parse_case_insensitively() {
        assert_eq!(
            parse_algorithm(Some("SHA1")).expect("valid"),
            Algorithm::Sha1
        );
        assert_eq!(
            parse_encoding(Some("Base64")).expect("valid"),
            Encoding::Base64
        );
        assert!(parse_algorithm(Some("md5")).is_err());
        assert!(parse_encoding(Some("b64")).is_err());
    }

    #[test]
    fn prefix_strip_handles_multibyte_text() {
        assert_eq!(strip_prefix_ignore_case("SHA256=ab", "sha256="), Some("ab"));
        assert_eq!(strip_prefix_ignore_case("é", "ab"), None);
        assert_eq!(strip_prefix_ignore_case("a", "sha256="), None);
    }
}
