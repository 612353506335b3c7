//! Shared-secret schemes without signatures: a token in a header or query parameter, HTTP
//! Basic credentials, and a Bearer token.
//!
//! Guarantees: every comparison is `token_eq` (constant time in contents and length); a token
//! is accepted when it equals any of the configured secrets (rotation); a request that carries
//! no token where one is configured is `TokenMissing`, never accepted.

use base64::Engine as _;

use crate::{
    incoming::Incoming,
    verify::{VerifyError, token_eq},
};

/// Where a token may arrive. At least one location must be set.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenLocation<'s> {
    /// Header name.
    pub header: Option<&'s str>,
    /// Query parameter name.
    pub query_parameter: Option<&'s str>,
}

impl TokenLocation<'_> {
    /// The token the request carries in any configured location (header first).
    pub fn find(&self, req: &Incoming<'_>) -> Option<String> {
        let from_header = self
            .header
            .and_then(|name| req.header(&[name]))
            .map(str::to_owned);
        from_header.or_else(|| self.query_parameter.and_then(|name| req.query_param(name)))
    }
}

/// Checks a token carried at `location` against `secrets`.
pub fn verify_token(
    req: &Incoming<'_>,
    location: TokenLocation<'_>,
    secrets: &[&[u8]],
) -> Result<(), VerifyError> {
    let token = location.find(req).ok_or(VerifyError::TokenMissing)?;
    check_token(token.as_bytes(), secrets)
}

/// Whether `token` equals any of `secrets`.
pub fn check_token(token: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
    // Evaluate every secret so the time taken does not reveal which one matched.
    let matches = secrets
        .iter()
        .fold(false, |acc, s| token_eq(s, token) | acc);
    if matches {
        Ok(())
    } else {
        Err(VerifyError::TokenMismatch)
    }
}

/// Checks `Authorization: Basic` against `username` and any of `passwords`.
pub fn verify_basic(
    req: &Incoming<'_>,
    username: &str,
    passwords: &[&[u8]],
) -> Result<(), VerifyError> {
    let credentials = authorization(req, "basic").ok_or(VerifyError::CredentialsMissing)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| VerifyError::CredentialsMismatch)?;
    let split = decoded.iter().position(|b| *b == b':');
    let (user, password) = match split {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => return Err(VerifyError::CredentialsMismatch),
    };
    let user_ok = token_eq(username.as_bytes(), user);
    let password_ok = passwords
        .iter()
        .fold(false, |acc, p| token_eq(p, password) | acc);
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(VerifyError::CredentialsMismatch)
    }
}

/// Checks `Authorization: Bearer` against any of `tokens`.
pub fn verify_bearer(req: &Incoming<'_>, tokens: &[&[u8]]) -> Result<(), VerifyError> {
    let token = authorization(req, "bearer").ok_or(VerifyError::CredentialsMissing)?;
    check_token(token.as_bytes(), tokens).map_err(|_| VerifyError::CredentialsMismatch)
}

/// The credentials of an `Authorization` header using `scheme` (case-insensitive).
fn authorization<'a>(req: &Incoming<'a>, scheme: &str) -> Option<&'a str> {
    let value = req.header(&["authorization"])?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;

    fn with_auth(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn basic_accepts_right_credentials_only() {
        // "Aladdin:open sesame", the example credentials of RFC 7617, section 2.
        let headers = with_auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let req = Incoming::post(&headers, b"");
        assert!(verify_basic(&req, "Aladdin", &[b"open sesame"]).is_ok());
        assert_eq!(
            verify_basic(&req, "Aladdin", &[b"wrong"])
                .unwrap_err()
                .code(),
            "CREDENTIALS_MISMATCH"
        );
        assert!(verify_basic(&req, "aladdin", &[b"open sesame"]).is_err());
        let none = HeaderMap::new();
        assert_eq!(
            verify_basic(&Incoming::post(&none, b""), "a", &[b"b"])
                .unwrap_err()
                .code(),
            "CREDENTIALS_MISSING"
        );
    }

    #[test]
    fn bearer_accepts_any_configured_token() {
        let headers = with_auth("bearer tok-2");
        let req = Incoming::post(&headers, b"");
        assert!(verify_bearer(&req, &[b"tok-1", b"tok-2"]).is_ok());
        assert!(verify_bearer(&req, &[b"tok-1"]).is_err());
    }

    #[test]
    fn token_from_header_or_query() {
        let mut headers = HeaderMap::new();
        headers.insert("x-token", HeaderValue::from_static("s3"));
        let req = Incoming::post(&headers, b"").with_query(Some("token=q1"));
        let header_only = TokenLocation {
            header: Some("x-token"),
            query_parameter: None,
        };
        assert!(verify_token(&req, header_only, &[b"s3"]).is_ok());
        let query_only = TokenLocation {
            header: None,
            query_parameter: Some("token"),
        };
        assert!(verify_token(&req, query_only, &[b"q1"]).is_ok());
        assert_eq!(
            verify_token(&req, query_only, &[b"s3"]).unwrap_err().code(),
            "TOKEN_MISMATCH"
        );
        let nowhere = TokenLocation {
            header: Some("x-other"),
            query_parameter: Some("other"),
        };
        assert_eq!(
            verify_token(&req, nowhere, &[b"s3"]).unwrap_err().code(),
            "TOKEN_MISSING"
        );
    }
}
