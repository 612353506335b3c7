//! The worker's live state per destination (connection): its [`Limiter`] and OAuth2
//! [`TokenSource`], kept across runtime snapshots.
//!
//! A snapshot is rebuilt on every publish; the adaptive rate, the in-flight count, a running
//! `Retry-After` hold and a cached token must survive that, so they live here, keyed by
//! connection id, and [`Destinations::sync`] only reconfigures them when the connection's
//! settings changed (a new token source only when the OAuth2 credentials changed).

use std::{collections::HashMap, sync::Arc, time::Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use super::{auth::TokenSource, limiter::Limiter};
use crate::runtime::RunningConnection;

/// One connection's destination, as the worker delivers to it.
pub struct Destination {
    pub connection: Arc<RunningConnection>,
    pub limiter: Arc<Limiter>,
    pub tokens: Option<Arc<TokenSource>>,
}

/// Destinations by connection id.
pub struct Destinations {
    by_connection: HashMap<Uuid, Arc<Destination>>,
    /// Told when any destination finishes a request.
    freed: Arc<Notify>,
}

impl Destinations {
    pub fn new(freed: Arc<Notify>) -> Self {
        Self {
            by_connection: HashMap::new(),
            freed,
        }
    }

    pub fn get(&self, connection: Uuid) -> Option<&Arc<Destination>> {
        self.by_connection.get(&connection)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &Arc<Destination>)> {
        self.by_connection.iter()
    }

    /// Follow the running connections (a snapshot's): add new ones, reconfigure changed
    /// ones, drop gone ones.
    pub fn sync<'a>(
        &mut self,
        connections: impl IntoIterator<Item = &'a Arc<RunningConnection>>,
        now: Instant,
    ) {
        let mut next = HashMap::with_capacity(self.by_connection.len());
        for connection in connections {
            let id = connection.id;
            let destination = match self.by_connection.remove(&id) {
                Some(current) if Arc::ptr_eq(&current.connection, connection) => current,
                Some(current) => {
                    current.limiter.reconfigure(&connection.limits, now);
                    let tokens = match (&current.tokens, &connection.auth.oauth2) {
                        (Some(tokens), Some(credentials))
                            if tokens.credentials() == credentials =>
                        {
                            Some(Arc::clone(tokens))
                        }
                        (_, credentials) => credentials
                            .clone()
                            .map(|credentials| Arc::new(TokenSource::new(credentials))),
                    };
                    Arc::new(Destination {
                        connection: Arc::clone(connection),
                        limiter: Arc::clone(&current.limiter),
                        tokens,
                    })
                }
                None => Arc::new(Destination {
                    connection: Arc::clone(connection),
                    limiter: Arc::new(Limiter::new(
                        &connection.limits,
                        Arc::clone(&self.freed),
                        now,
                    )),
                    tokens: connection
                        .auth
                        .oauth2
                        .clone()
                        .map(|credentials| Arc::new(TokenSource::new(credentials))),
                }),
            };
            next.insert(id, destination);
        }
        self.by_connection = next;
    }
}

#[cfg(test)]
mod tests {
    use hookplane_crds::DestinationLimits;

    use super::*;
    use crate::sync::auth::{ConnectionAuth, OAuth2Credentials, SecretValue};

    fn connection(id: Uuid, max_concurrency: u32, client_id: &str) -> Arc<RunningConnection> {
        Arc::new(RunningConnection {
            id,
            limits: DestinationLimits {
                max_concurrency,
                requests_per_second: None,
            },
            auth: ConnectionAuth {
                oauth2: Some(OAuth2Credentials {
                    token_url: url::Url::parse("http://auth.local/token").unwrap(),
                    client_id: client_id.into(),
                    client_secret: SecretValue::new("s"),
                    scopes: Vec::new(),
                }),
                ..ConnectionAuth::default()
            },
        })
    }

    #[test]
    fn state_survives_snapshots_and_follows_changes() {
        let now = Instant::now();
        let mut destinations = Destinations::new(Arc::new(Notify::new()));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        destinations.sync([&connection(a, 2, "c"), &connection(b, 2, "c")], now);
        let first = Arc::clone(destinations.get(a).expect("a"));
        let _in_flight = first.limiter.try_admit(now).expect("room");

        // A new snapshot with equal settings for `a` and `b` gone.
        destinations.sync([&connection(a, 2, "c")], now);
        let second = Arc::clone(destinations.get(a).expect("a"));
        assert!(Arc::ptr_eq(&first.limiter, &second.limiter));
        assert!(Arc::ptr_eq(
            first.tokens.as_ref().unwrap(),
            second.tokens.as_ref().unwrap()
        ));
        assert_eq!(second.limiter.in_flight(), 1);
        assert!(destinations.get(b).is_none());

        // Changed limits keep the limiter; changed OAuth2 credentials replace the tokens.
        destinations.sync([&connection(a, 1, "other")], now);
        let third = destinations.get(a).expect("a");
        assert!(Arc::ptr_eq(&first.limiter, &third.limiter));
        assert_eq!(
            third.limiter.room(now),
            Err(crate::sync::limiter::Closed::Concurrency)
        );
        assert!(!Arc::ptr_eq(
            first.tokens.as_ref().unwrap(),
            third.tokens.as_ref().unwrap()
        ));
    }
}
