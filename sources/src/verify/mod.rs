//! Verification building blocks shared by the apps: HMAC over raw bytes, signature decoding,
//! constant-time comparison, timestamp tolerance, and the error every verifier returns.
//!
//! Guarantees: MACs are compared with `hmac`'s constant-time `verify_slice`, tokens by
//! comparing SHA-256 digests with `subtle` (so neither content nor length leaks through
//! timing); no function here panics on any header or body; `VerifyError` messages never
//! contain the body or a secret.

pub mod hmac_scheme;
pub mod standard;
pub mod token;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ConfigError;

/// Why a delivery was not accepted as authentic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No signature where the app puts it.
    #[error("missing signature header {header}")]
    SignatureMissing {
        /// The header looked for.
        header: &'static str,
    },
    /// A signature is present but cannot be decoded.
    #[error("the signature is not well-formed")]
    SignatureMalformed,
    /// No accepted secret produces the signature.
    #[error("the signature does not match")]
    SignatureMismatch,
    /// No token where the configuration says it is.
    #[error("missing token")]
    TokenMissing,
    /// The token is not the configured one.
    #[error("the token does not match")]
    TokenMismatch,
    /// No `Authorization` credentials.
    #[error("missing Authorization credentials")]
    CredentialsMissing,
    /// The credentials are not the configured ones.
    #[error("the credentials do not match")]
    CredentialsMismatch,
    /// A signed timestamp is required and absent.
    #[error("missing timestamp header")]
    TimestampMissing,
    /// The timestamp is not an integer.
    #[error("the timestamp is not a Unix time")]
    TimestampInvalid,
    /// The timestamp is outside the accepted window.
    #[error(
        "the timestamp is {skew_seconds}s away from now, more than the {tolerance_seconds}s accepted"
    )]
    TimestampOutOfTolerance {
        /// Distance between the timestamp and now.
        skew_seconds: u64,
        /// Accepted distance.
        tolerance_seconds: u64,
    },
    /// The message carries no organization id.
    #[error("the message carries no OrganizationId")]
    OrganizationMissing,
    /// The message comes from another organization.
    #[error("the message's OrganizationId is not the configured one")]
    OrganizationMismatch,
    /// The message's action is not in the allowlist.
    #[error("the message's ActionId is not in the configured actionIds")]
    ActionNotAllowed,
    /// The proof lives in the body and the body cannot be read.
    #[error("the body cannot be read to verify it: {reason}")]
    BodyUnreadable {
        /// Why (never the body itself).
        reason: &'static str,
    },
    /// The configuration cannot verify anything (server-side problem, not the sender's).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl VerifyError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignatureMissing { .. } => "SIGNATURE_MISSING",
            Self::SignatureMalformed => "SIGNATURE_MALFORMED",
            Self::SignatureMismatch => "SIGNATURE_MISMATCH",
            Self::TokenMissing => "TOKEN_MISSING",
            Self::TokenMismatch => "TOKEN_MISMATCH",
            Self::CredentialsMissing => "CREDENTIALS_MISSING",
            Self::CredentialsMismatch => "CREDENTIALS_MISMATCH",
            Self::TimestampMissing => "TIMESTAMP_MISSING",
            Self::TimestampInvalid => "TIMESTAMP_INVALID",
            Self::TimestampOutOfTolerance { .. } => "TIMESTAMP_OUT_OF_TOLERANCE",
            Self::OrganizationMissing => "ORGANIZATION_MISSING",
            Self::OrganizationMismatch => "ORGANIZATION_MISMATCH",
            Self::ActionNotAllowed => "ACTION_NOT_ALLOWED",
            Self::BodyUnreadable { .. } => "BODY_UNREADABLE",
            Self::Config(e) => e.code(),
        }
    }

    /// The HTTP status to answer: 401 for deliveries that failed verification, 500 when the
    /// configuration itself is unusable (the sender is not at fault and should retry).
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Config(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }
}

/// HMAC digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA1, for legacy senders.
    Sha1,
}

/// How a signature is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Hexadecimal, either case.
    Hex,
    /// Base64, standard or URL-safe alphabet, padding optional.
    Base64,
}

/// Computes HMAC(`key`, concatenation of `parts`).
pub fn hmac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::Sha1 => {
            let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Whether `candidate` equals `expected`, in time independent of their contents.
pub fn mac_eq(expected: &[u8], candidate: &[u8]) -> bool {
    expected.ct_eq(candidate).into()
}

/// Whether two tokens are equal, in time independent of their contents and lengths.
pub fn token_eq(expected: &[u8], candidate: &[u8]) -> bool {
    Sha256::digest(expected)
        .ct_eq(&Sha256::digest(candidate))
        .into()
}

/// Decodes a signature written in `encoding`; `None` when it is not.
pub fn decode_signature(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => decode_hex(text),
        Encoding::Base64 => decode_base64(text),
    }
}

/// Decodes base64 in any of the common alphabets, with or without padding.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Decodes hexadecimal, either case; `None` on odd length or another character.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Lowercase hexadecimal.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Parses a Unix timestamp header (seconds; values that can only be milliseconds are
/// accepted as such) and checks it is within `tolerance` seconds of `now`.
pub fn check_timestamp(value: &str, now: SystemTime, tolerance: u64) -> Result<(), VerifyError> {
    let raw: i64 = value.parse().map_err(|_| VerifyError::TimestampInvalid)?;
    // Seconds reach 1e11 only in the year 5138; a value above it is milliseconds.
    let seconds = if raw.unsigned_abs() >= 100_000_000_000 {
        raw / 1000
    } else {
        raw
    };
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let skew = now.abs_diff(seconds);
    if skew > tolerance {
        return Err(VerifyError::TimestampOutOfTolerance {
            skew_seconds: skew,
            tolerance_seconds: tolerance,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(encode_hex(&[0, 255, 160]), "00ffa0");
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é1"), None);
    }

    #[test]
    fn base64_accepts_common_alphabets() {
        assert_eq!(decode_base64("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_base64("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_base64("!!"), None);
    }

    #[test]
    fn token_eq_handles_lengths() {
        assert!(token_eq(b"abc", b"abc"));
        assert!(!token_eq(b"abc", b"abcd"));
        assert!(!token_eq(b"abc", b""));
    }

    #[test]
    fn timestamps_within_and_outside_tolerance() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(check_timestamp("1700000300", now, 300).is_ok());
        assert!(check_timestamp("1699999700", now, 300).is_ok());
        assert_eq!(
            check_timestamp("1699999699", now, 300).unwrap_err().code(),
            "TIMESTAMP_OUT_OF_TOLERANCE"
        );
        assert!(check_timestamp("1700000000123", now, 300).is_ok());
        assert_eq!(
            check_timestamp("soon", now, 300).unwrap_err().code(),
            "TIMESTAMP_INVALID"
        );
        assert!(check_timestamp("-9223372036854775808", now, 300).is_err());
    }
}
