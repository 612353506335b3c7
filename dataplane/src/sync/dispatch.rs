//! Dispatch planning: which claims a worker round makes so that a slow, throttled or held
//! destination never takes work (or worker slots) from the others.
//!
//! Each round the worker asks every destination for its room (requests it could start now,
//! see [`super::limiter`]) and plans claims from it:
//!
//! - a destination with no room (concurrency full, rate exhausted, `Retry-After` hold) is
//!   excluded from every claim: its events stay in the store, unleased, for later or for
//!   another worker, and cost this worker nothing;
//! - a destination known to have more work than room (*backlogged*) gets its own claim of at
//!   most its room, and is excluded from the shared claim;
//! - every other destination shares one claim, limited to the sum of their rooms.
//!
//! Every claim is also limited by the worker's free slots, and rounds alternate between the
//! shared claim and the backlogged ones going first, so neither side can starve the other when
//! the worker is full. A destination becomes backlogged when the shared claim brought it more
//! events than it had room for (the excess is handed back at once: [`Dispatcher::overflowed`])
//! and stops being backlogged when its own claim comes back short ([`Dispatcher::claimed`]).
//! So hand-backs happen once per destination that turns busy, not on every round.

use std::collections::HashSet;

use hookplane_store::ClaimFilter;
use uuid::Uuid;

use super::limiter::Closed;

/// A destination's room this round.
#[derive(Clone, Debug)]
pub struct DestinationRoom {
    pub connection: Uuid,
    /// Its running touchpoints.
    pub touchpoints: Vec<Uuid>,
    pub room: Result<usize, Closed>,
}

/// One claim to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub filter: ClaimFilter,
    /// Most events to claim (the worker lowers it to its free slots).
    pub limit: usize,
    /// The backlogged destination this claim is for; `None` for the shared claim.
    pub destination: Option<Uuid>,
}

/// Remembers which destinations are backlogged, across rounds.
#[derive(Debug, Default)]
pub struct Dispatcher {
    backlogged: HashSet<Uuid>,
    round: u64,
}

impl Dispatcher {
    /// The claims of a round, in the order to make them, each within `base` (the touchpoints
    /// this worker may claim at all). `unknown` are touchpoints whose events this worker
    /// cannot run (not in its snapshot): the shared claim skips them.
    pub fn plan(
        &mut self,
        rooms: &[DestinationRoom],
        unknown: &[Uuid],
        base: &ClaimFilter,
    ) -> Vec<Claim> {
        self.round = self.round.wrapping_add(1);
        let mut excluded: Vec<Uuid> = base.exclude.iter().chain(unknown).copied().collect();
        let mut own = Vec::new();
        let mut shared_room = 0usize;
        for destination in rooms {
            match destination.room {
                Err(_) => excluded.extend(&destination.touchpoints),
                Ok(room) if self.backlogged.contains(&destination.connection) => {
                    excluded.extend(&destination.touchpoints);
                    own.push(Claim {
                        filter: ClaimFilter {
                            only: Some(destination.touchpoints.clone()),
                            exclude: base.exclude.clone(),
                        },
                        limit: room,
                        destination: Some(destination.connection),
                    });
                }
                Ok(room) => shared_room = shared_room.saturating_add(room),
            }
        }
        let mut claims = Vec::with_capacity(own.len() + 1);
        if shared_room > 0 {
            claims.push(Claim {
                filter: ClaimFilter {
                    only: base.only.clone(),
                    exclude: excluded,
                },
                limit: shared_room,
                destination: None,
            });
        }
        if self.round.is_multiple_of(2) {
            claims.splice(0..0, own);
        } else {
            claims.extend(own);
        }
        claims
    }

    /// A claim came back with `count` events after asking for `asked`: a backlogged
    /// destination whose claim came back short has caught up.
    pub fn claimed(&mut self, claim: &Claim, asked: usize, count: usize) {
        if let Some(connection) = claim.destination
            && count < asked
        {
            self.backlogged.remove(&connection);
        }
    }

    /// The shared claim brought `connection` more events than it had room for.
    pub fn overflowed(&mut self, connection: Uuid) {
        self.backlogged.insert(connection);
    }

    /// Forget destinations that no longer run.
    pub fn retain(&mut self, running: impl Fn(&Uuid) -> bool) {
        self.backlogged.retain(|connection| running(connection));
    }

    #[cfg(test)]
    pub fn is_backlogged(&self, connection: Uuid) -> bool {
        self.backlogged.contains(&connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluding(ids: impl IntoIterator<Item = Uuid>) -> ClaimFilter {
        ClaimFilter {
            only: None,
            exclude: ids.into_iter().collect(),
        }
    }

    fn only(ids: impl IntoIterator<Item = Uuid>) -> ClaimFilter {
        ClaimFilter {
            only: Some(ids.into_iter().collect()),
            exclude: Vec::new(),
        }
    }

    fn all() -> ClaimFilter {
        ClaimFilter::default()
    }

    fn room(
        connection: Uuid,
        touchpoints: &[Uuid],
        room: Result<usize, Closed>,
    ) -> DestinationRoom {
        DestinationRoom {
            connection,
            touchpoints: touchpoints.to_vec(),
            room,
        }
    }

    fn ids<const N: usize>() -> [Uuid; N] {
        std::array::from_fn(|_| Uuid::now_v7())
    }

    #[test]
    fn destinations_without_room_are_excluded_and_the_rest_share_one_claim() {
        let [a, b, c, ta, tb1, tb2, tc, unknown] = ids();
        let mut dispatcher = Dispatcher::default();
        let claims = dispatcher.plan(
            &[
                room(a, &[ta], Ok(4)),
                room(b, &[tb1, tb2], Err(Closed::Held)),
                room(c, &[tc], Ok(16)),
            ],
            &[unknown],
            &all(),
        );
        assert_eq!(
            claims,
            vec![Claim {
                filter: excluding([unknown, tb1, tb2]),
                limit: 20,
                destination: None,
            }]
        );
        assert!(
            dispatcher
                .plan(&[room(a, &[ta], Err(Closed::Concurrency))], &[], &all())
                .is_empty(),
            "nothing to claim when no destination has room"
        );
    }

    #[test]
    fn a_backlogged_destination_gets_its_own_claim_until_it_catches_up() {
        let [slow, fast, ts, tf] = ids();
        let mut dispatcher = Dispatcher::default();
        dispatcher.overflowed(slow);
        let rooms = [room(slow, &[ts], Ok(1)), room(fast, &[tf], Ok(16))];
        let shared = Claim {
            filter: excluding([ts]),
            limit: 16,
            destination: None,
        };
        let own = Claim {
            filter: only([ts]),
            limit: 1,
            destination: Some(slow),
        };
        // Rounds alternate which goes first.
        assert_eq!(
            dispatcher.plan(&rooms, &[], &all()),
            vec![shared.clone(), own.clone()]
        );
        assert_eq!(
            dispatcher.plan(&rooms, &[], &all()),
            vec![own.clone(), shared.clone()]
        );

        dispatcher.claimed(&own, 1, 1);
        assert!(
            dispatcher.is_backlogged(slow),
            "a full claim: still backlogged"
        );
        dispatcher.claimed(&shared, 16, 0);
        assert!(
            dispatcher.is_backlogged(slow),
            "the shared claim says nothing about it"
        );
        dispatcher.claimed(&own, 1, 0);
        assert!(!dispatcher.is_backlogged(slow), "caught up");
        assert_eq!(
            dispatcher.plan(&rooms, &[], &all()),
            vec![Claim {
                filter: excluding([]),
                limit: 17,
                destination: None,
            }]
        );
    }

    #[test]
    fn claims_stay_within_the_base_filter() {
        let [a, b, ta, tb, other, never] = ids();
        let mut dispatcher = Dispatcher::default();
        dispatcher.overflowed(b);
        let base = ClaimFilter {
            only: Some(vec![ta, tb]),
            exclude: vec![never],
        };
        let claims = dispatcher.plan(
            &[room(a, &[ta], Ok(2)), room(b, &[tb], Ok(1))],
            &[other],
            &base,
        );
        assert!(claims.contains(&Claim {
            filter: ClaimFilter {
                only: Some(vec![ta, tb]),
                exclude: vec![never, other, tb],
            },
            limit: 2,
            destination: None,
        }));
        assert!(claims.contains(&Claim {
            filter: ClaimFilter {
                only: Some(vec![tb]),
                exclude: vec![never],
            },
            limit: 1,
            destination: Some(b),
        }));
    }

    #[test]
    fn gone_destinations_are_forgotten() {
        let [a, b] = ids();
        let mut dispatcher = Dispatcher::default();
        dispatcher.overflowed(a);
        dispatcher.overflowed(b);
        dispatcher.retain(|connection| *connection == b);
        assert!(!dispatcher.is_backlogged(a));
        assert!(dispatcher.is_backlogged(b));
    }
}
