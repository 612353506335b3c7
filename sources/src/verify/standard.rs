//! Standard Webhooks (<https://www.standardwebhooks.com>), as also sent by Svix and
//! BigCommerce: `webhook-id`, `webhook-timestamp` and `webhook-signature` headers (or their
//! `svix-*` names), HMAC-SHA256 over `{id}.{timestamp}.{raw body}`, the signature header a
//! space-separated list of `v1,<base64>` entries of which one must match.
//!
//! Guarantees: the timestamp is checked against the injected clock before any MAC work; every
//! accepted key is tried against every `v1` entry with constant-time comparison; entries of
//! other versions are ignored, never treated as a match.

use std::time::SystemTime;

use crate::{
    config::ConfigError,
    incoming::Incoming,
    verify::{Algorithm, VerifyError, check_timestamp, decode_base64, hmac, mac_eq},
};

/// Headers carrying the message id, in the order they are looked up.
pub const ID_HEADERS: &[&str] = &["webhook-id", "svix-id"];
/// Headers carrying the signing time.
pub const TIMESTAMP_HEADERS: &[&str] = &["webhook-timestamp", "svix-timestamp"];
/// Headers carrying the signatures.
pub const SIGNATURE_HEADERS: &[&str] = &["webhook-signature", "svix-signature"];

/// The signing key of a Standard Webhooks secret: base64 after an optional `whsec_` prefix.
pub fn key_from_secret(secret: &[u8]) -> Result<Vec<u8>, ConfigError> {
    let text = std::str::from_utf8(secret)
        .map_err(|_| invalid("not UTF-8 text"))?
        .trim();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    let key = decode_base64(encoded).ok_or_else(|| invalid("not base64 (after `whsec_`)"))?;
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    Ok(key)
}

fn invalid(reason: &'static str) -> ConfigError {
    ConfigError::SecretInvalid {
        what: "Standard Webhooks",
        reason,
    }
}

/// Verifies a Standard Webhooks delivery against any of `keys`.
pub fn verify(
    req: &Incoming<'_>,
    keys: &[Vec<u8>],
    now: SystemTime,
    tolerance_seconds: u64,
) -> Result<(), VerifyError> {
    let id = req
        .header(ID_HEADERS)
        .ok_or(VerifyError::SignatureMissing {
            header: "webhook-id",
        })?;
    let timestamp = req
        .header(TIMESTAMP_HEADERS)
        .ok_or(VerifyError::TimestampMissing)?;
    let signatures = req
        .header(SIGNATURE_HEADERS)
        .ok_or(VerifyError::SignatureMissing {
            header: "webhook-signature",
        })?;
    check_timestamp(timestamp, now, tolerance_seconds)?;

    let candidates: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| decode_base64(sig))
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::SignatureMalformed);
    }
    let matched = keys.iter().any(|key| {
        let expected = hmac(
            Algorithm::Sha256,
            key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body],
        );
        candidates.iter().any(|c| mac_eq(&expected, c))
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Signs like a Standard Webhooks sender: `v1,<base64>`. Used by tests and examples.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let ts = timestamp.to_string();
    let mac = hmac(
        Algorithm::Sha256,
        key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whsec_prefix_is_optional() {
        let a = key_from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let b = key_from_secret(b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(a, b);
        assert_eq!(
            key_from_secret(b"whsec_!!!").unwrap_err().code(),
            "SECRET_INVALID"
        );
        assert_eq!(key_from_secret(b"").unwrap_err().code(), "SECRET_INVALID");
    }

    // Vector from the Standard Webhooks JavaScript library's "sign function works" test,
    // standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts.
    #[test]
    fn sign_matches_reference_vector() {
        let key = key_from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
