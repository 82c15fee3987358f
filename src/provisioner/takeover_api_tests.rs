//! Taking over nfs-subdir-external-provisioner, against a scripted API server: its PVs are
//! released as it would release them, new claims in its classes keep its directory names.
//!
//! Its shapes, from kubernetes-sigs/nfs-subdir-external-provisioner
//! cmd/nfs-subdir-external-provisioner/provisioner.go: directory `<namespace>-<claim>-<pv>` (or
//! the pathPattern result) below NFS_PATH; PV `nfs: {server: NFS_SERVER, path: NFS_PATH/<dir>}`;
//! on delete a missing directory is skipped, the class's `onDelete` (delete|retain), else
//! `archiveOnDelete` (false: delete), else a rename to `archived-<last component>` at the root.

use super::*;
use crate::provisioner::fixtures::{self, ApiServer, status};
use crate::provisioner::pv::tests::{claim, class};
use crate::provisioner::pv::{FINALIZER, NfsExport, PROVISIONED_BY};
use k8s_openapi::api::core::v1::{NFSVolumeSource, PersistentVolumeSpec, PersistentVolumeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::path::Path;

const PROV: &str = "nfs-subdir.csi.rs";

fn context(share: &Path) -> (Arc<Context>, ApiServer) {
    let (client, api) = fixtures::client();
    let mut ctx = fixtures::context(client, share);
    Arc::get_mut(&mut ctx).unwrap().nfs_export = Some(NfsExport {
        server: "nfs.example.com".into(),
        path: "/export".into(),
        local: share.to_str().unwrap().into(),
    });
    (ctx, api)
}

/// A PV as nfs-subdir-external-provisioner made it, released and being deleted (our finalizer
/// was added at takeover).
fn old_pv(dir: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some("pvc-old".into()),
            annotations: Some([(PROVISIONED_BY.to_owned(), PROV.to_owned())].into()),
            finalizers: Some(vec![FINALIZER.into()]),
            deletion_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            persistent_volume_reclaim_policy: Some("Delete".into()),
            storage_class_name: Some("old-class".into()),
            nfs: Some(NFSVolumeSource {
                server: "nfs.example.com".into(),
                path: format!("/export/{dir}"),
                read_only: Some(false),
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..PersistentVolumeStatus::default()
        }),
    }
}

const OLD_CLASS: &str = "/apis/storage.k8s.io/v1/storageclasses/old-class";
const OLD_PV: &str = "/api/v1/persistentvolumes/pvc-old";

async fn release_old(share: &Path, dir: &str, class: Option<Value>) {
    let (ctx, mut api) = context(share);
    let run = tokio::spawn(super::release::reconcile(Arc::new(old_pv(dir)), ctx));
    match class {
        Some(c) => api.expect("GET", OLD_CLASS, 200, c).await,
        None => {
            api.expect("GET", OLD_CLASS, 404, status(404, "NotFound"))
                .await
        }
    };
    let patch = api.answer("PATCH", OLD_PV, |p| (200, p.clone())).await;
    assert_eq!(patch["metadata"]["finalizers"], json!([]), "{patch}");
    run.await.unwrap().unwrap();
}

fn class_with(params: Value) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "old-class"}, "provisioner": PROV, "parameters": params})
}

#[tokio::test]
async fn its_volumes_are_released_as_it_would_even_with_the_class_gone() {
    let share = tempfile::tempdir().unwrap();
    let put = |dir: &str| {
        std::fs::create_dir_all(share.path().join(dir)).unwrap();
        std::fs::write(share.path().join(dir).join("f"), dir).unwrap();
    };
    // Class gone: its default, archive, at the root under the last component's name.
    put("ns/data-0");
    release_old(share.path(), "ns/data-0", None).await;
    assert!(share.path().join("archived-data-0/f").is_file());
    assert!(!share.path().join("ns/data-0").exists());
    // onDelete retain: untouched; archiveOnDelete false: gone.
    put("ns-keep-pvc-k");
    let retain = class_with(json!({"onDelete": "retain", "archiveOnDelete": "false"}));
    release_old(share.path(), "ns-keep-pvc-k", Some(retain)).await;
    assert!(share.path().join("ns-keep-pvc-k/f").is_file());
    put("ns-gone-pvc-g");
    let delete = class_with(json!({"archiveOnDelete": "false"}));
    release_old(share.path(), "ns-gone-pvc-g", Some(delete)).await;
    assert!(!share.path().join("ns-gone-pvc-g").exists());
    // A directory already gone is no error.
    release_old(share.path(), "ns-never-pvc-n", None).await;
}

#[tokio::test]
async fn new_claims_in_its_classes_keep_its_directory_names_and_policy() {
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api) = context(share.path());
    let run = tokio::spawn(super::claim::reconcile(Arc::new(claim()), ctx));
    api.expect(
        "GET",
        "/api/v1/persistentvolumes/pvc-1234-abcd",
        404,
        status(404, "NotFound"),
    )
    .await;
    let mut old = class(Some("Delete"));
    old.parameters = Some([("archiveOnDelete".to_owned(), "true".to_owned())].into());
    let old = serde_json::to_value(old).unwrap();
    api.expect(
        "GET",
        "/apis/storage.k8s.io/v1/storageclasses/nfs-client",
        200,
        old,
    )
    .await;
    let events = "/apis/events.k8s.io/v1/namespaces/ns/events";
    api.answer("POST", events, |e| (201, e.clone())).await;
    let pv = api
        .answer("POST", "/api/v1/persistentvolumes", |p| (201, p.clone()))
        .await;
    api.answer("POST", events, |e| (201, e.clone())).await;
    run.await.unwrap().unwrap();
    assert!(share.path().join("ns-data-0-pvc-1234-abcd").is_dir());
    assert_eq!(pv["spec"]["nfs"]["server"], "nfs.example.com");
    assert_eq!(pv["spec"]["nfs"]["path"], "/export/ns-data-0-pvc-1234-abcd");
    let id = pv["metadata"]["annotations"][super::pv::VOLUME_ID]
        .as_str()
        .unwrap();
    assert!(id.contains("#ns-data-0-pvc-1234-abcd#archive#"), "{id}");
}

#[tokio::test]
async fn a_nested_path_pattern_archives_at_the_root_as_it_did() {
    // Its Delete archives to `<root>/archived-<last component of the PV's path>`; the volumes made
    // here in its classes are released the same way, whether or not the class still exists.
    let share = tempfile::tempdir().unwrap();
    let (ctx, mut api) = context(share.path());
    let run = tokio::spawn(super::claim::reconcile(Arc::new(claim()), ctx));
    let get_pv = "/api/v1/persistentvolumes/pvc-1234-abcd";
    api.expect("GET", get_pv, 404, status(404, "NotFound"))
        .await;
    let its = class_with(json!({"pathPattern": "${.PVC.namespace}/${.PVC.name}",
        "archiveOnDelete": "true"}));
    let its_path = "/apis/storage.k8s.io/v1/storageclasses/nfs-client";
    api.expect("GET", its_path, 200, its).await;
    let events = "/apis/events.k8s.io/v1/namespaces/ns/events";
    api.answer("POST", events, |e| (201, e.clone())).await;
    let pv = api
        .answer("POST", "/api/v1/persistentvolumes", |p| (201, p.clone()))
        .await;
    api.answer("POST", events, |e| (201, e.clone())).await;
    run.await.unwrap().unwrap();
    assert_eq!(pv["spec"]["nfs"]["path"], "/export/ns/data-0");
    assert_eq!(
        pv["metadata"]["annotations"][super::pv::ARCHIVE_NAMING],
        super::pv::ARCHIVE_AT_ROOT
    );
    std::fs::write(share.path().join("ns/data-0/f"), "kept").unwrap();

    // The claim is deleted: the PV is released and being deleted; the class is not read.
    let mut released: PersistentVolume = serde_json::from_value(pv).unwrap();
    released.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    released.status = Some(PersistentVolumeStatus {
        phase: Some("Released".into()),
        ..PersistentVolumeStatus::default()
    });
    let (ctx, mut api) = context(share.path());
    let run = tokio::spawn(super::release::reconcile(Arc::new(released), ctx));
    let patch = api.answer("PATCH", get_pv, |p| (200, p.clone())).await;
    assert_eq!(patch["metadata"]["finalizers"], json!([]), "{patch}");
    run.await.unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(share.path().join("archived-data-0/f")).unwrap(),
        "kept"
    );
    assert!(!share.path().join("ns/data-0").exists());
    assert!(!share.path().join("ns/archived-data-0").exists());
}
