//! The Lease election against a scripted API server: what the real-apiserver scenario cannot force
//! (a lost create or update race, 403s, a renewal that keeps failing, an expiry timed by our clock).

use super::*;
use crate::provisioner::fixtures::{self, ApiServer, status};
use serde_json::{Value, json};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/sys/leases/nsc";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/sys/leases";

fn elector(lease_duration: Duration) -> (Elector, ApiServer) {
    let (client, api) = fixtures::client();
    let cfg = LeaseConfig {
        namespace: "sys".into(),
        name: "nsc".into(),
        identity: "me".into(),
        lease_duration,
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(100),
    };
    (Elector::new(client, cfg), api)
}

/// A Lease as the apiserver returns it.
fn lease(holder: &str, version: &str, seconds: i32, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "nsc", "namespace": "sys", "resourceVersion": version},
        "spec": {
            "holderIdentity": holder, "leaseDurationSeconds": seconds,
            "renewTime": "2026-12-01T12:00:00.000000Z", "leaseTransitions": transitions,
        },
    })
}

/// The written Lease as the apiserver stores it (a new resourceVersion).
fn stored(mut written: Value) -> Value {
    written["metadata"]["resourceVersion"] = json!("99");
    written
}

#[tokio::test]
async fn no_lease_is_created_holding_it() {
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let attempt = tokio::spawn(async move { e.try_acquire_or_renew().await });
    api.expect("GET", LEASE, 404, status(404, "NotFound")).await;
    let written = api
        .answer("POST", LEASES, |w| (201, stored(w.clone())))
        .await;
    assert_eq!(written["spec"]["holderIdentity"], "me");
    assert_eq!(written["spec"]["leaseTransitions"], 0);
    assert_eq!(written["spec"]["leaseDurationSeconds"], 15);
    assert!(attempt.await.unwrap().unwrap(), "leading");
}

#[tokio::test]
async fn a_lost_race_is_following_not_an_error() {
    // two replicas create at once: the other one's POST won
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let attempt = tokio::spawn(async move { e.try_acquire_or_renew().await });
    api.expect("GET", LEASE, 404, status(404, "NotFound")).await;
    api.expect("POST", LEASES, 409, status(409, "AlreadyExists"))
        .await;
    assert!(!attempt.await.unwrap().unwrap());

    // our renewal raced with a take-over: the update carried the version read, and lost
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let attempt = tokio::spawn(async move { e.try_acquire_or_renew().await });
    api.expect("GET", LEASE, 200, lease("me", "5", 15, 2)).await;
    let written = api.expect("PUT", LEASE, 409, status(409, "Conflict")).await;
    assert_eq!(
        written["metadata"]["resourceVersion"], "5",
        "compare-and-swap"
    );
    assert_eq!(
        written["spec"]["leaseTransitions"], 2,
        "a renewal, no transition"
    );
    assert!(!attempt.await.unwrap().unwrap());
}

#[tokio::test]
async fn a_valid_lease_of_another_is_followed_without_writing() {
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let attempt = tokio::spawn(async move {
        let first = e.try_acquire_or_renew().await;
        (first, e)
    });
    api.expect("GET", LEASE, 200, lease("other", "7", 15, 1))
        .await;
    let (first, e) = attempt.await.unwrap();
    assert!(!first.unwrap());
    drop(e);
    assert!(api.done().await, "no write after a follow");
}

#[tokio::test]
async fn an_unchanged_lease_is_taken_over_after_its_duration_on_our_clock() {
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let attempt = tokio::spawn(async move {
        let first = e.try_acquire_or_renew().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        (first, e.try_acquire_or_renew().await.unwrap())
    });
    // the other holder stopped renewing: the same record twice, a second apart (duration 1 s)
    api.expect("GET", LEASE, 200, lease("other", "8", 1, 4))
        .await;
    api.expect("GET", LEASE, 200, lease("other", "8", 1, 4))
        .await;
    let written = api.answer("PUT", LEASE, |w| (200, stored(w.clone()))).await;
    assert_eq!(written["spec"]["holderIdentity"], "me");
    assert_eq!(written["spec"]["leaseTransitions"], 5);
    assert_eq!(written["metadata"]["resourceVersion"], "8");
    let (first, second) = attempt.await.unwrap();
    assert!(!first, "not expired at first sight");
    assert!(second, "taken over");
}

#[tokio::test]
async fn forbidden_is_an_error_and_a_leader_that_cannot_renew_steps_down() {
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let attempt = tokio::spawn(async move { e.try_acquire_or_renew().await });
    api.expect("GET", LEASE, 403, status(403, "Forbidden"))
        .await;
    let err = attempt.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");

    // holding: every renewal is refused, so within the renew deadline it gives up
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let hold = tokio::spawn(async move { e.hold().await });
    let refused = api
        .answer_all("GET", LEASE, 403, status(403, "Forbidden"))
        .await;
    let result = hold.await.unwrap();
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert!(refused >= 2, "retried every period: {refused}");
}

#[tokio::test]
async fn a_taken_over_lease_ends_holding_at_once() {
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let hold = tokio::spawn(async move { e.hold().await });
    api.expect("GET", LEASE, 200, lease("other", "9", 15, 6))
        .await;
    let result = hold.await.unwrap();
    assert!(
        matches!(result, Err(Error::FailedPrecondition(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn release_clears_only_our_own_holding() {
    let (mut e, mut api) = elector(Duration::from_secs(15));
    let release = tokio::spawn(async move { e.release().await });
    api.expect("GET", LEASE, 200, lease("me", "10", 15, 6))
        .await;
    let written = api.answer("PUT", LEASE, |w| (200, stored(w.clone()))).await;
    assert!(
        written["spec"]
            .get("holderIdentity")
            .is_none_or(Value::is_null)
    );
    assert_eq!(written["spec"]["leaseDurationSeconds"], 1);
    release.await.unwrap();

    let (mut e, mut api) = elector(Duration::from_secs(15));
    let release = tokio::spawn(async move {
        e.release().await;
        e
    });
    api.expect("GET", LEASE, 200, lease("other", "11", 15, 7))
        .await;
    drop(release.await.unwrap());
    assert!(api.done().await, "another's Lease is left alone");
}
