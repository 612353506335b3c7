//! The authorize step: the credentials a request to the destination carries.
//!
//! Guarantees to the send step: a connection whose credentials could not all be resolved
//! never sends ([`credentials`] says why, naming secrets but never values, and the event is
//! retried until they are fixed); with OAuth2 the request carries an access token from the
//! connection's shared [`TokenSource`] (cached, one fetch at a time), and [`refresh`] forgets a
//! token the destination refused before fetching the next, so a revoked token costs one
//! retry, not an attempt.

use std::time::Duration;

use reqwest::Client;

use super::auth::{AccessToken, ConnectionAuth, TokenSource};

/// Whether the connection's credentials are complete: `Err` names what is missing. Pure.
pub fn credentials(auth: &ConnectionAuth) -> Result<(), String> {
    if auth.problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the connection's credentials are incomplete: {}",
            auth.problems.join("; ")
        ))
    }
}

/// The bearer token to send, if the connection uses OAuth2. `Err` is why none could be had.
pub async fn bearer(
    tokens: Option<&TokenSource>,
    client: &Client,
    timeout: Duration,
) -> Result<Option<AccessToken>, String> {
    match tokens {
        None => Ok(None),
        Some(tokens) => tokens
            .token(client, timeout)
            .await
            .map(Some)
            .map_err(|error| error.to_string()),
    }
}

/// The destination refused `used` (a `401`): forget it and get a fresh one.
pub async fn refresh(
    tokens: &TokenSource,
    used: &AccessToken,
    client: &Client,
    timeout: Duration,
) -> Result<Option<AccessToken>, String> {
    tokens.invalidate(used).await;
    bearer(Some(tokens), client, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_credentials_name_every_problem() {
        assert_eq!(credentials(&ConnectionAuth::default()), Ok(()));
        let auth = ConnectionAuth {
            problems: vec!["header X-Key: missing".into(), "basic: missing".into()],
            ..ConnectionAuth::default()
        };
        assert_eq!(
            credentials(&auth),
            Err(
                "the connection's credentials are incomplete: header X-Key: missing; basic: missing"
                    .to_owned()
            )
        );
    }
}
