//! The authorize step: the credentials a request to the destination carries.
//!
//! Guarantees to the send step: a connection whose credentials could not all be resolved
//! never sends ([`credentials`] says why, naming secrets but never values, and the event is
//! retried until they are fixed); with OAuth2 the request carries an access token from the
//! connection's shared [`TokenSource`] (cached, one fetch at a time), and [`refresh`] forgets a
//! token the destination refused before fetching the next, so a revoked token costs one
//! retry, not an attempt.

use std::time::Duration;

use super::{
    Deliverer,
    auth::{AccessToken, ConnectionAuth, TokenError, TokenSource},
    classify::NoAnswer,
};

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

/// The bearer token to send, if the connection uses OAuth2. `Err` is why none could be had
/// (the destination policy refusing the token endpoint's address among the reasons).
pub async fn bearer(
    tokens: Option<&TokenSource>,
    deliverer: &Deliverer,
    timeout: Duration,
) -> Result<Option<AccessToken>, NoAnswer> {
    let Some(tokens) = tokens else {
        return Ok(None);
    };
    let client = deliverer
        .client_for(&tokens.credentials().token_url)
        .map_err(NoAnswer::Forbidden)?;
    match tokens.token(client, timeout).await {
        Ok(token) => Ok(Some(token)),
        Err(TokenError::Forbidden { forbidden, .. }) => Err(NoAnswer::Forbidden(forbidden)),
        Err(error) => Err(NoAnswer::Failed(error.to_string())),
    }
}

/// The destination refused `used` (a `401`): forget it and get a fresh one.
pub async fn refresh(
    tokens: &TokenSource,
    used: &AccessToken,
    deliverer: &Deliverer,
    timeout: Duration,
) -> Result<Option<AccessToken>, NoAnswer> {
    tokens.invalidate(used).await;
    bearer(Some(tokens), deliverer, timeout).await
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
