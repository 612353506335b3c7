//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one reconciles.
//!
//! The rules are client-go's: a replica takes the Lease when nobody holds it or when its
//! record has not changed for `leaseDurationSeconds` as measured by the replica's own clock
//! (so clock skew between nodes does not matter); the holder renews it well within that time;
//! every write is a compare-and-swap on the resourceVersion, so two replicas never both win.
//! A leader that cannot renew for `renew_deadline` (shorter than the lease) stops, and the
//! process exits, before anyone else may take over.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, api::PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One replica's view of the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The record last seen and when this replica first saw it.
    observed: Option<(Observed, Instant)>,
}

#[derive(Clone, Debug, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Observed {
    fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
        }
    }
}

impl LeaseLock {
    /// The Lease `name` (in `api`'s namespace) contended for as `identity` (the pod name).
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            observed: None,
        }
    }

    /// Take or renew the Lease; whether this replica holds it now. `now` measures expiry,
    /// `wall` is written to the record.
    pub async fn try_acquire_or_renew(
        &mut self,
        now: Instant,
        wall: Timestamp,
    ) -> Result<bool, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None, wall)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => Ok(self.held(&created, now)),
                Err(kube::Error::Api(status))
                    if status.is_already_exists() || status.is_conflict() =>
                {
                    Ok(false)
                }
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let observed = Observed::of(&spec);
        if self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| *seen != observed)
        {
            self.observed = Some((observed.clone(), now));
        }
        let mine = observed.holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .map_or(self.duration, |s| Duration::from_secs(s.max(0) as u64));
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, seen)| now.saturating_duration_since(*seen) >= duration);
        if !mine && observed.holder.is_some() && !expired {
            return Ok(false);
        }
        let mut updated = lease.clone();
        updated.spec = Some(self.record(mine.then_some(&spec), wall));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => Ok(self.held(&written, now)),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Give the Lease up if this replica holds it, so another takes over at once.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// The record this replica writes: a renewal of `current`, or a new tenure.
    fn record(&self, current: Option<&LeaseSpec>, wall: Timestamp) -> LeaseSpec {
        let now = Some(MicroTime(wall));
        let transitions = self
            .observed
            .as_ref()
            .and_then(|(o, _)| o.transitions)
            .unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: match current {
                Some(current) => current.acquire_time.clone(),
                None => now.clone(),
            },
            renew_time: now,
            lease_transitions: Some(match current {
                Some(_) => transitions,
                None if self.observed.is_some() => transitions + 1,
                None => 0,
            }),
            ..LeaseSpec::default()
        }
    }

    fn held(&mut self, lease: &Lease, now: Instant) -> bool {
        let spec = lease.spec.clone().unwrap_or_default();
        self.observed = Some((Observed::of(&spec), now));
        spec.holder_identity.as_deref() == Some(self.identity.as_str())
    }
}

/// Leadership was lost: this replica must stop reconciling.
#[derive(Debug, thiserror::Error)]
#[error("lost the leader Lease")]
pub struct LostLeadership;

/// Contend for the Lease until `shutdown`, renewing every `retry`. `leading` becomes true when
/// this replica leads; `reachable` says whether the last round trip to the API server worked.
/// Returns `Err` when leadership is lost (the process should exit), `Ok` after releasing it
/// on shutdown.
pub async fn campaign(
    mut lock: LeaseLock,
    retry: Duration,
    renew_deadline: Duration,
    leading: watch::Sender<bool>,
    reachable: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), LostLeadership> {
    let mut last_renewal: Option<Instant> = None;
    loop {
        let attempt = lock
            .try_acquire_or_renew(Instant::now(), Timestamp::now())
            .await;
        reachable.send_replace(attempt.is_ok());
        let leader = *leading.borrow();
        match attempt {
            Ok(true) => {
                last_renewal = Some(Instant::now());
                if !leader {
                    tracing::info!(lease = %lock.name, identity = %lock.identity, "became the leader");
                    leading.send_replace(true);
                }
            }
            Ok(false) if leader => return Err(LostLeadership),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "renewing the leader Lease");
                if leader && last_renewal.is_none_or(|at| at.elapsed() >= renew_deadline) {
                    return Err(LostLeadership);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(retry) => {}
        }
    }
    if *leading.borrow() {
        if let Err(error) = lock.release().await {
            tracing::warn!(%error, "releasing the leader Lease");
        }
        leading.send_replace(false);
    }
    Ok(())
}
