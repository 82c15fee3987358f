//! Tests of `resize`: which claims ask for more, and the resize against a scripted API server (the
//! volume expanded on a real temp share, the PV and claim status patched, the events).

use super::*;
use crate::controller::NewVolume;
use crate::provisioner::fixtures::{self, ApiServer, status};
use crate::provisioner::pv::tests::{claim, class};
use crate::volume::Params;
use k8s_openapi::api::core::v1::PersistentVolumeClaimStatus;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const PROV: &str = "nfs-subdir.csi.rs";
const PV: &str = "/api/v1/persistentvolumes/pvc-1234-abcd";
const CLASS: &str = "/apis/storage.k8s.io/v1/storageclasses/nfs-client";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";
const STATUS: &str = "/api/v1/namespaces/ns/persistentvolumeclaims/data-0/status";
const MI: u64 = 1 << 20;

/// The fixture claim, Bound to pvc-1234-abcd with `has` in its status, requesting `asks`.
fn bound(asks: &str, has: &str) -> PersistentVolumeClaim {
    let mut c = claim();
    let spec = c.spec.as_mut().unwrap();
    spec.volume_name = Some("pvc-1234-abcd".into());
    let requests = spec.resources.as_mut().unwrap().requests.as_mut().unwrap();
    requests.insert("storage".into(), Quantity(asks.into()));
    c.status = Some(PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        capacity: Some([("storage".to_owned(), Quantity(has.into()))].into()),
        ..Default::default()
    });
    c
}

#[test]
fn only_bound_claims_of_ours_asking_for_more_are_resized() {
    assert_eq!(wanted(&claim(), PROV), None, "not bound yet");
    assert_eq!(wanted(&bound("100Mi", "100Mi"), PROV), None, "same size");
    assert_eq!(wanted(&bound("50Mi", "100Mi"), PROV), None, "smaller");
    assert_eq!(
        wanted(&bound("102400Ki", "100Mi"), PROV),
        None,
        "same bytes"
    );
    assert_eq!(
        wanted(&bound("200Mi", "100Mi"), PROV),
        Some((Quantity("200Mi".into()), 200 * MI))
    );
    assert_eq!(wanted(&bound("200Mi", "100Mi"), "other"), None, "not ours");
    let mut pending = bound("200Mi", "100Mi");
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    assert_eq!(wanted(&pending, PROV), None);
}

/// A context on a scripted API server, and the volume pvc-1234-abcd made on its temp share.
async fn with_volume(share: &std::path::Path) -> (Arc<Context>, ApiServer, String) {
    let (client, api) = fixtures::client();
    let ctx = fixtures::context(client, share);
    let new = NewVolume {
        name: "pvc-1234-abcd".into(),
        params: Params::default(),
        mount_flags: vec![],
        secret_options: Default::default(),
        capacity: 100 * MI,
    };
    let vol = ctx
        .volumes
        .create(new, Duration::from_secs(5))
        .await
        .unwrap();
    (ctx, api, vol.id)
}

fn our_pv(volume_id: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pvc-1234-abcd", "annotations": {
            PROVISIONED_BY: PROV, VOLUME_ID: volume_id}},
        "spec": {"capacity": {"storage": "100Mi"}}})
}

async fn event(api: &mut ApiServer) -> String {
    let sent = api.answer("POST", EVENTS, |e| (201, e.clone())).await;
    sent["reason"].as_str().unwrap_or_default().to_owned()
}

async fn recorded(ctx: &Context, id: &str) -> u64 {
    ctx.volumes
        .get(id, Duration::from_secs(5))
        .await
        .unwrap()
        .0
        .capacity
}

#[tokio::test]
async fn a_raised_request_expands_the_volume_then_the_pv_then_the_claim_status() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api, id) = with_volume(share.path()).await;
    let claim = Arc::new(bound("200Mi", "100Mi"));
    let run = tokio::spawn(crate::provisioner::claim::reconcile(claim, ctx.clone()));
    api.expect("GET", PV, 200, our_pv(&id)).await;
    let mut sc = serde_json::to_value(class(Some("Delete"))).unwrap();
    sc["allowVolumeExpansion"] = true.into();
    api.expect("GET", CLASS, 200, sc).await;
    assert_eq!(event(&mut api).await, "Resizing");
    let pv = api.answer("PATCH", PV, |p| (200, p.clone())).await;
    assert_eq!(pv["spec"]["capacity"]["storage"], "200Mi");
    let st = api.answer("PATCH", STATUS, |p| (200, p.clone())).await;
    assert_eq!(st["status"]["capacity"]["storage"], "200Mi");
    assert_eq!(event(&mut api).await, "VolumeResizeSuccessful");
    run.await.unwrap().unwrap();
    assert_eq!(recorded(&ctx, &id).await, 200 * MI);
}

#[tokio::test]
async fn a_class_without_expansion_is_refused_with_a_warning_and_nothing_changes() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api, id) = with_volume(share.path()).await;
    let claim = Arc::new(bound("200Mi", "100Mi"));
    let run = tokio::spawn(crate::provisioner::claim::reconcile(claim, ctx.clone()));
    api.expect("GET", PV, 200, our_pv(&id)).await;
    let sc = serde_json::to_value(class(Some("Delete"))).unwrap();
    api.expect("GET", CLASS, 200, sc).await;
    let note = api.answer("POST", EVENTS, |e| (201, e.clone())).await;
    assert_eq!(note["reason"], "VolumeResizeFailed");
    assert!(
        note["note"]
            .as_str()
            .unwrap()
            .contains("does not allow volume expansion")
    );
    run.await.unwrap().unwrap();
    assert_eq!(recorded(&ctx, &id).await, 100 * MI);
    drop(ctx);
    assert!(api.done().await, "no PV or claim write");
}

#[tokio::test]
async fn a_failed_status_patch_is_an_error_with_a_warning_and_is_retried() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api, id) = with_volume(share.path()).await;
    let claim = Arc::new(bound("300Mi", "100Mi"));
    let run = tokio::spawn(crate::provisioner::claim::reconcile(claim, ctx.clone()));
    api.expect("GET", PV, 200, our_pv(&id)).await;
    let mut sc = serde_json::to_value(class(Some("Delete"))).unwrap();
    sc["allowVolumeExpansion"] = true.into();
    api.expect("GET", CLASS, 200, sc).await;
    assert_eq!(event(&mut api).await, "Resizing");
    api.answer("PATCH", PV, |p| (200, p.clone())).await;
    api.expect("PATCH", STATUS, 403, status(403, "Forbidden"))
        .await;
    assert_eq!(event(&mut api).await, "VolumeResizeFailed");
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
    // the volume grew already; the retry expands again (no-op) and writes the sizes
    assert_eq!(recorded(&ctx, &id).await, 300 * MI);
}
