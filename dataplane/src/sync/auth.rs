//! Destination authentication of a connection: credential headers (bearer tokens, API keys),
//! HTTP basic auth and OAuth2 client credentials.
//!
//! Secret values are resolved when the runtime snapshot is rebuilt ([`ConnectionAuth::resolve`])
//! and live only in [`SecretValue`]s, whose `Debug` is redacted, and in headers marked
//! sensitive; no message here ever contains one. A secret that cannot be resolved does not
//! stop the snapshot: the connection's deliveries fail (retryably, naming the secret, not its
//! value) until it exists.
//!
//! OAuth2 ([`TokenSource`]): a token is fetched with `grant_type=client_credentials`, the
//! client id and secret as HTTP basic credentials (each form-encoded first, RFC 6749 §2.3.1)
//! and the scopes joined by spaces; it is cached until shortly before `expires_in`. One fetch
//! runs at a time per connection: concurrent deliveries wait for it and share its token, and a
//! failed fetch is remembered for [`FAILURE_MEMORY`] so a broken token endpoint is not hammered
//! by every waiting delivery.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use hookplane_crds::{ConnectionSpec, SecretKeyRef};
use reqwest::{
    Client, RequestBuilder,
    header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue},
};
use serde::Deserialize;
use url::Url;

/// How long a failed token fetch is answered from memory.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(1);
/// Lifetime assumed for a token whose response has no `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// Longest stretch a token is used before its expiry: refresh at most this early.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Most bytes of a token endpoint's error body quoted in a message.
const ERROR_DETAIL_BYTES: usize = 200;

/// A secret value: its `Debug` says nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A connection's destination credentials with their secrets resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionAuth {
    /// Credential headers, values marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub basic: Option<BasicCredentials>,
    pub oauth2: Option<OAuth2Credentials>,
    /// What could not be resolved, naming secrets and credentials but never values.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BasicCredentials {
    pub username: String,
    pub password: SecretValue,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OAuth2Credentials {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretValue,
    pub scopes: Vec<String>,
}

impl ConnectionAuth {
    /// Resolve `spec`'s credentials with `secret` (the secret store's value of a key).
    pub fn resolve(
        spec: &ConnectionSpec,
        secret: impl Fn(&SecretKeyRef) -> Option<String>,
    ) -> Self {
        let mut auth = Self::default();
        let lookup = |reference: &SecretKeyRef, what: &str| {
            secret(reference).ok_or_else(|| {
                format!(
                    "{what}: the secret key {}/{} does not exist",
                    reference.name, reference.key
                )
            })
        };
        for credential in &spec.credentials {
            let what = format!("credential {:?}", credential.name);
            let value = match lookup(&credential.secret_key_ref, &what) {
                Ok(value) => value,
                Err(problem) => {
                    auth.problems.push(problem);
                    continue;
                }
            };
            let text = format!("{}{value}", credential.prefix.as_deref().unwrap_or(""));
            match (
                HeaderName::from_bytes(credential.header.as_bytes()),
                HeaderValue::from_str(&text),
            ) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    auth.headers.push((name, value));
                }
                _ => auth.problems.push(format!(
                    "{what}: the header name or value is not valid in HTTP"
                )),
            }
        }
        if let Some(basic) = &spec.basic_auth {
            match lookup(&basic.password_ref, "basic auth") {
                Ok(password) => {
                    auth.basic = Some(BasicCredentials {
                        username: basic.username.clone(),
                        password: SecretValue(password),
                    });
                }
                Err(problem) => auth.problems.push(problem),
            }
        }
        if let Some(oauth2) = &spec.oauth2 {
            match (
                Url::parse(&oauth2.token_url),
                lookup(&oauth2.client_secret_ref, "oauth2"),
            ) {
                (Ok(token_url), Ok(secret)) => {
                    auth.oauth2 = Some(OAuth2Credentials {
                        token_url,
                        client_id: oauth2.client_id.clone(),
                        client_secret: SecretValue(secret),
                        scopes: oauth2.scopes.clone(),
                    });
                }
                (Err(_), _) => auth
                    .problems
                    .push("oauth2: the token URL is not valid".to_owned()),
                (Ok(_), Err(problem)) => auth.problems.push(problem),
            }
        }
        auth
    }

    /// Put `headers` (the touchpoint's own, already merged with the defaults) on `request`,
    /// overridden by the credential headers; then basic auth or, when the connection has
    /// OAuth2, the `bearer` token as the one `Authorization` header (OAuth2 wins over basic).
    pub fn apply(
        &self,
        request: RequestBuilder,
        mut headers: HeaderMap,
        bearer: Option<&AccessToken>,
    ) -> RequestBuilder {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        let basic = self.basic.as_ref().filter(|_| bearer.is_none());
        if basic.is_some() || bearer.is_some() {
            headers.remove(AUTHORIZATION);
        }
        let request = request.headers(headers);
        match (bearer, basic) {
            (Some(token), _) => request.bearer_auth(&token.0),
            (None, Some(basic)) => {
                request.basic_auth(&basic.username, Some(basic.password.expose()))
            }
            (None, None) => request,
        }
    }
}

/// An OAuth2 access token: its `Debug` says nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why no OAuth2 token could be had. Messages name the token endpoint, never credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("could not reach the OAuth2 token endpoint {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("the OAuth2 token endpoint {url} answered {status}: {detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error(
        "the OAuth2 token endpoint {url} answered something that is not a bearer token: {reason}"
    )]
    Malformed { url: String, reason: String },
    #[error("the OAuth2 token endpoint {url} cannot be reached: {forbidden}")]
    Forbidden {
        url: String,
        forbidden: super::egress::Forbidden,
    },
}

/// OAuth2 client-credentials tokens for one connection, cached.
pub struct TokenSource {
    credentials: OAuth2Credentials,
    state: tokio::sync::Mutex<TokenState>,
}

#[derive(Default)]
struct TokenState {
    token: Option<(AccessToken, Instant)>,
    failure: Option<(TokenError, Instant)>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenSource {
    pub fn new(credentials: OAuth2Credentials) -> Self {
        Self {
            credentials,
            state: tokio::sync::Mutex::new(TokenState::default()),
        }
    }

    pub fn credentials(&self) -> &OAuth2Credentials {
        &self.credentials
    }

    /// A valid token: the cached one, or a new one. Callers queue behind a running fetch.
    pub async fn token(
        &self,
        client: &Client,
        timeout: Duration,
    ) -> Result<AccessToken, TokenError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some((token, refresh_at)) = &state.token
            && now < *refresh_at
        {
            return Ok(token.clone());
        }
        if let Some((error, at)) = &state.failure
            && now.saturating_duration_since(*at) < FAILURE_MEMORY
        {
            return Err(error.clone());
        }
        match self.fetch(client, timeout).await {
            Ok((token, lifetime)) => {
                let margin = REFRESH_MARGIN.min(lifetime / 10);
                state.token = Some((token.clone(), Instant::now() + lifetime - margin));
                state.failure = None;
                Ok(token)
            }
            Err(error) => {
                state.token = None;
                state.failure = Some((error.clone(), Instant::now()));
                Err(error)
            }
        }
    }

    /// The destination refused `used`: forget it, unless a newer token already replaced it.
    pub async fn invalidate(&self, used: &AccessToken) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|(token, _)| token == used) {
            state.token = None;
        }
    }

    async fn fetch(
        &self,
        client: &Client,
        timeout: Duration,
    ) -> Result<(AccessToken, Duration), TokenError> {
        let credentials = &self.credentials;
        let url = credentials.token_url.as_str().to_owned();
        let form_encode =
            |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !credentials.scopes.is_empty() {
                form.append_pair("scope", &credentials.scopes.join(" "));
            }
            form.finish()
        };
        let response = client
            .post(credentials.token_url.clone())
            .timeout(timeout)
            .basic_auth(
                form_encode(&credentials.client_id),
                Some(form_encode(credentials.client_secret.expose())),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| match super::egress::forbidden_in(&error) {
                Some(forbidden) => TokenError::Forbidden {
                    url: url.clone(),
                    forbidden,
                },
                None => TokenError::Request {
                    url: url.clone(),
                    reason: describe(error),
                },
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| TokenError::Request {
                url: url.clone(),
                reason: describe(error),
            })?;
        if !(200..300).contains(&status) {
            return Err(TokenError::Status {
                url,
                status,
                detail: error_detail(&bytes),
            });
        }
        let malformed = |reason: String| TokenError::Malformed {
            url: url.clone(),
            reason,
        };
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|error| malformed(format!("not a token response ({error})")))?;
        if let Some(kind) = &parsed.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(malformed(format!("the token type is {kind:?}")));
        }
        if parsed.access_token.is_empty() || HeaderValue::from_str(&parsed.access_token).is_err() {
            return Err(malformed(
                "the access token is empty or not valid in a header".into(),
            ));
        }
        let lifetime = match &parsed.expires_in {
            None => DEFAULT_TOKEN_LIFETIME,
            Some(value) => value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Duration::from_secs)
                .ok_or_else(|| malformed("expires_in is not a number of seconds".into()))?,
        };
        Ok((AccessToken(parsed.access_token.into()), lifetime))
    }
}

/// A short reason for a failed request, without the URL reqwest appends.
pub fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// RFC 6749 §5.2 `error` and `error_description`, or the start of the body.
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_slice::<OAuthError>(body) {
        return match parsed.error_description {
            Some(description) => format!("{} ({description})", parsed.error),
            None => parsed.error,
        };
    }
    let mut end = body.len().min(ERROR_DETAIL_BYTES);
    while end > 0 && std::str::from_utf8(&body[..end]).is_err() {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&body[..end]).trim().to_owned();
    if text.is_empty() {
        "an empty body".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
