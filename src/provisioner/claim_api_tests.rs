//! The claim reconciler against a scripted API server, for what the real-apiserver scenarios
//! cannot force: the PV create refused (403) or raced (409), and the events each case publishes.

use super::*;
use crate::provisioner::fixtures::{self, ApiServer, status};
use crate::provisioner::pv::tests::{claim, class};
use serde_json::{Value, json};

const PV: &str = "/api/v1/persistentvolumes/pvc-1234-abcd";
const PVS: &str = "/api/v1/persistentvolumes";
const CLASS: &str = "/apis/storage.k8s.io/v1/storageclasses/nfs-client";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

/// A context on a scripted API server, with a temp dir as the default share.
fn context(share: &std::path::Path) -> (Arc<Context>, ApiServer) {
    let (client, api) = fixtures::client();
    (fixtures::context(client, share), api)
}

/// Answers an event create with the event as stored; returns its reason.
async fn event(api: &mut ApiServer) -> String {
    let sent = api.answer("POST", EVENTS, |e| (201, e.clone())).await;
    sent["reason"].as_str().unwrap_or_default().to_owned()
}

/// Up to the PV create: not there yet, the class, the Provisioning event.
async fn until_pv_create(api: &mut ApiServer) {
    api.expect("GET", PV, 404, status(404, "NotFound")).await;
    let class = serde_json::to_value(class(Some("Delete"))).unwrap();
    api.expect("GET", CLASS, 200, class).await;
    assert_eq!(event(api).await, "Provisioning");
}

#[tokio::test]
async fn a_refused_pv_create_is_an_error_with_a_warning_event_and_the_directory_stays() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api) = context(share.path());
    let run = tokio::spawn(reconcile(Arc::new(claim()), ctx));
    until_pv_create(&mut api).await;
    let pv = api.expect("POST", PVS, 403, status(403, "Forbidden")).await;
    assert_eq!(pv["metadata"]["name"], "pvc-1234-abcd");
    assert_eq!(event(&mut api).await, "ProvisioningFailed");
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
    // made before the PV: kept, and found again (Existing) by the retry
    assert!(share.path().join("pvc-1234-abcd").is_dir());
}

#[tokio::test]
async fn a_pv_created_meanwhile_is_success_already_provisioned() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api) = context(share.path());
    let run = tokio::spawn(reconcile(Arc::new(claim()), ctx));
    until_pv_create(&mut api).await;
    api.expect("POST", PVS, 409, status(409, "AlreadyExists"))
        .await;
    let note = api.answer("POST", EVENTS, |e| (201, e.clone())).await;
    assert_eq!(note["reason"], "ProvisioningSucceeded");
    assert!(
        note["note"]
            .as_str()
            .unwrap_or_default()
            .contains("already provisioned"),
        "{note}"
    );
    run.await.unwrap().unwrap();
    assert!(api.done().await, "nothing else written");
}

#[tokio::test]
async fn an_existing_pv_means_waiting_for_the_binder_and_no_write() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api) = context(share.path());
    let run = tokio::spawn(reconcile(Arc::new(claim()), ctx));
    let existing: Value = json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pvc-1234-abcd"}, "spec": {}});
    api.expect("GET", PV, 200, existing).await;
    run.await.unwrap().unwrap();
    assert!(api.done().await, "no class read, no event, no PV");
    assert!(!share.path().join("pvc-1234-abcd").exists());
}
