//! How many WebSockets and subscriptions may be open: in total, per connection and per token.
//! A connection takes a slot before its upgrade (503 `TOO_MANY_CONNECTIONS` when none is
//! left); each subscription takes one of its connection's and one of its token's, given back
//! when the subscription ends (`TOO_MANY_SUBSCRIPTIONS` when either is used up).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The caps, with their flags' defaults.
#[derive(Clone, Copy, Debug)]
pub struct SubscriptionCaps {
    /// WebSocket connections open at once, over all callers.
    pub connections: usize,
    /// Subscriptions open at once on one WebSocket.
    pub per_connection: usize,
    /// Subscriptions open at once with one token, over all its WebSockets.
    pub per_token: usize,
}

impl Default for SubscriptionCaps {
    fn default() -> Self {
        Self {
            connections: 2_000,
            per_connection: 100,
            per_token: 2_000,
        }
    }
}

/// The slots of one server.
pub struct Slots {
    caps: SubscriptionCaps,
    connections: Arc<Semaphore>,
    per_token: Mutex<HashMap<String, usize>>,
}

impl Slots {
    pub fn new(caps: SubscriptionCaps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            connections: Arc::new(Semaphore::new(caps.connections)),
            per_token: Mutex::new(HashMap::new()),
        })
    }

    /// A connection's slot, held as long as the WebSocket is open; `None` when all are taken.
    pub fn connection(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.connections).try_acquire_owned().ok()
    }

    pub fn caps(&self) -> SubscriptionCaps {
        self.caps
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.per_token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One WebSocket's subscriptions, for the caller `token` (a token id or actor).
pub struct ConnectionSlots {
    slots: Arc<Slots>,
    token: String,
    open: Mutex<usize>,
}

impl ConnectionSlots {
    pub fn new(slots: Arc<Slots>, token: String) -> Arc<Self> {
        Arc::new(Self {
            slots,
            token,
            open: Mutex::new(0),
        })
    }

    /// A subscription's slot, given back when the guard drops.
    pub fn take(self: &Arc<Self>) -> Result<SubscriptionSlot, ApiError> {
        let caps = self.slots.caps;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if *open >= caps.per_connection {
            return Err(too_many(format!(
                "{} subscriptions are open on this connection, the most allowed",
                caps.per_connection
            )));
        }
        let mut counts = self.slots.counts();
        let by_token = counts.entry(self.token.clone()).or_default();
        if *by_token >= caps.per_token {
            return Err(too_many(format!(
                "{} subscriptions are open with this token, the most allowed",
                caps.per_token
            )));
        }
        *by_token += 1;
        *open += 1;
        Ok(SubscriptionSlot {
            connection: Arc::clone(self),
        })
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::invalid("TOO_MANY_SUBSCRIPTIONS", message)
}

/// One open subscription's slot.
pub struct SubscriptionSlot {
    connection: Arc<ConnectionSlots>,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let connection = &self.connection;
        *connection.open.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        let mut counts = connection.slots.counts();
        if let Some(count) = counts.get_mut(&connection.token) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&connection.token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_connection_and_per_token_and_given_back() {
        let slots = Slots::new(SubscriptionCaps {
            connections: 1,
            per_connection: 2,
            per_token: 3,
        });
        let held = slots.connection().expect("one connection");
        assert!(slots.connection().is_none(), "only one");
        drop(held);
        assert!(slots.connection().is_some());

        let first = ConnectionSlots::new(Arc::clone(&slots), "t".into());
        let second = ConnectionSlots::new(Arc::clone(&slots), "t".into());
        let a = first.take().expect("1");
        let _b = first.take().expect("2");
        assert_eq!(
            first.take().err().map(|e| e.code()),
            Some("TOO_MANY_SUBSCRIPTIONS")
        );
        let _c = second.take().expect("3 for the token");
        assert!(second.take().is_err(), "the token's cap");
        drop(a);
        assert!(second.take().is_ok(), "given back");
        let other = ConnectionSlots::new(Arc::clone(&slots), "u".into());
        assert!(other.take().is_ok(), "another token has its own");
    }
}
