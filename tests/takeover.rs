//! csi-driver-nfs volumes and claim-label templates over a real Unix socket: hostile handles are
//! refused and touch nothing, a retained csi-driver-nfs volume is released without reaching its
//! server, and a label template without a claim to read is a clear error that makes nothing.

mod common;

use common::{Driver, create_req, ls};
use nfs_subdir_csi::csi::pb;
use std::time::{Duration, Instant};
use tonic::Code;

fn delete_req(id: &str) -> pb::DeleteVolumeRequest {
    pb::DeleteVolumeRequest {
        volume_id: id.to_owned(),
        secrets: [("mountOptions".to_owned(), "nfsvers=4.1".to_owned())].into(),
    }
}

#[tokio::test]
async fn csi_driver_nfs_handles_hostile_refused_retained_untouched() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    std::fs::create_dir(d.share().join("keep")).unwrap();
    let before = ls(&d.share());
    // Shapes csi-driver-nfs writes (share without its '/'), made hostile.
    for hostile in [
        "192.0.2.1#exports#..##",
        "192.0.2.1#exports#../../etc##",
        "192.0.2.1#../..#pvc-1##",
        "192.0.2.1#exports#pvc-1#pvc-1#shred",
        "evil,host#exports#pvc-1##",
        "192.0.2.1/../../etc/passwd",
    ] {
        let err = c.delete_volume(delete_req(hostile)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{hostile}: {err:?}");
    }
    // Retain: as csi-driver-nfs, no trip to the server (192.0.2.1 is TEST-NET, never answers).
    let started = Instant::now();
    c.delete_volume(delete_req("192.0.2.1#exports#keep#pvc-9#retain"))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Not in either format: unknown, OK.
    c.delete_volume(delete_req("fake-volume-id")).await.unwrap();
    assert_eq!(ls(&d.share()), before, "nothing touched");
    assert!(!d.log().contains("nfsvers=4.1"), "secrets never logged");
}

#[tokio::test]
async fn label_templates_need_a_claim_and_make_nothing_without_one() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let before = ls(&d.share());
    let template = [(
        "subDir",
        "${pvc.metadata.labels.team:-shared}/${pvc.metadata.name}",
    )];
    let err = c
        .create_volume(create_req("pvc-l1", 0, &template))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("--extra-create-metadata"), "{err:?}");
    // A claim named, but no Kubernetes API to read it from (or no such claim): refused.
    let named = [
        template[0],
        ("csi.storage.k8s.io/pvc/name", "data"),
        ("csi.storage.k8s.io/pvc/namespace", "ns"),
    ];
    let mut req = create_req("pvc-l2", 0, &named);
    let mut timed = tonic::Request::new(req.clone());
    timed.set_timeout(Duration::from_secs(5));
    let err = c.create_volume(timed).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    // A fallback that is not a plain name is refused when the parameters are read.
    req.parameters
        .insert("subDir".into(), "${pvc.metadata.labels.team:-../up}".into());
    let err = c.create_volume(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(ls(&d.share()), before, "nothing made");
}
