//! Leader election against the stateful fake API: one holder at a time, take-over after the
//! lease expires on the contender's own clock, release on shutdown.

use std::time::{Duration, Instant};

use hookplane_operator::leader::LeaseLock;
use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use kube::Api;

use crate::support::Cluster;

#[tokio::test]
async fn one_replica_leads_until_its_lease_expires_or_it_lets_go() {
    let cluster = Cluster::with(Vec::new()).await;
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), "hookplane");
    let duration = Duration::from_secs(15);
    let mut a = LeaseLock::new(api.clone(), "hookplane-operator", "operator-a", duration);
    let mut b = LeaseLock::new(api.clone(), "hookplane-operator", "operator-b", duration);
    let start = Instant::now();
    let wall = Timestamp::now();
    let at = |s: u64| start + Duration::from_secs(s);

    assert!(
        a.try_acquire_or_renew(at(0), wall).await.unwrap(),
        "a creates and takes the Lease"
    );
    assert!(
        !b.try_acquire_or_renew(at(0), wall).await.unwrap(),
        "b sees a holder"
    );
    assert!(
        a.try_acquire_or_renew(at(5), wall).await.unwrap(),
        "a renews"
    );
    // b saw the record change at 5 (renewTime is written from `wall`, equal here; the holder
    // and transitions did not change, so b's timer runs from its first sight).
    assert!(
        !b.try_acquire_or_renew(at(14), wall).await.unwrap(),
        "not expired for b yet"
    );
    assert!(
        b.try_acquire_or_renew(at(16), wall).await.unwrap(),
        "expired on b's clock: b takes over"
    );
    assert!(
        !a.try_acquire_or_renew(at(17), wall).await.unwrap(),
        "a has lost it"
    );

    let lease = api.get("hookplane-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("operator-b"));
    assert_eq!(lease.lease_transitions, Some(1));
    assert_eq!(lease.lease_duration_seconds, Some(15));

    b.release().await.unwrap();
    assert!(
        a.try_acquire_or_renew(at(18), wall).await.unwrap(),
        "a released Lease is free at once"
    );
    a.release().await.unwrap();
    b.release().await.unwrap(); // not the holder: nothing to do
    let lease = api.get("hookplane-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity, None);
}
