//! Node service over a real Unix socket with real bind mounts (needs root): publish, read-only,
//! single-writer refusal, idempotent unpublish, stats, and a volume directory swapped for a symlink.

mod common;

use common::node::{mounted, publish_req, require_root, unpublish_req};
use common::{Driver, create};
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use std::path::Path;
use tonic::Code;

#[tokio::test]
async fn two_pods_share_data_and_it_survives_republish() {
    require_root();
    let d = Driver::start(&[]).await;
    let (mut c, mut n) = (d.controller(), d.node());
    let vol = create(&mut c, "pvc-rwx", 100 << 20, &[]).await;
    let pods = d.dir.path().join("pods");
    std::fs::create_dir(&pods).unwrap();
    let (a, b) = (pods.join("a"), pods.join("b"));
    for t in [&a, &b] {
        n.node_publish_volume(publish_req(
            &vol.volume_id,
            t,
            Mode::MultiNodeMultiWriter,
            false,
        ))
        .await
        .unwrap();
        // Publishing again at the same target is fine.
        n.node_publish_volume(publish_req(
            &vol.volume_id,
            t,
            Mode::MultiNodeMultiWriter,
            false,
        ))
        .await
        .unwrap();
        assert!(mounted(t), "{} not mounted", t.display());
    }
    std::fs::write(a.join("key"), "value-1").unwrap();
    assert_eq!(std::fs::read_to_string(b.join("key")).unwrap(), "value-1");
    assert_eq!(
        std::fs::read_to_string(d.share().join("pvc-rwx/key")).unwrap(),
        "value-1"
    );

    for t in [&a, &b] {
        n.node_unpublish_volume(unpublish_req(&vol.volume_id, t))
            .await
            .unwrap();
        assert!(!t.exists(), "target {} left behind", t.display());
        n.node_unpublish_volume(unpublish_req(&vol.volume_id, t))
            .await
            .unwrap();
    }
    n.node_publish_volume(publish_req(
        &vol.volume_id,
        &a,
        Mode::MultiNodeMultiWriter,
        false,
    ))
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(a.join("key")).unwrap(), "value-1");

    let stats = n
        .node_get_volume_stats(pb::NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: a.display().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.usage.len(), 2, "bytes and inodes");
    assert!(stats.usage.iter().all(|u| u.total > 0));
    assert!(!stats.volume_condition.unwrap().abnormal);
    let err = n
        .node_get_volume_stats(pb::NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: pods.join("nowhere").display().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    n.node_unpublish_volume(unpublish_req(&vol.volume_id, &a))
        .await
        .unwrap();
}

#[tokio::test]
async fn read_only_and_single_writer_are_enforced() {
    require_root();
    let d = Driver::start(&[]).await;
    let (mut c, mut n) = (d.controller(), d.node());
    let vol = create(&mut c, "pvc-ro", 1 << 30, &[]).await;
    let ro = d.dir.path().join("ro");
    n.node_publish_volume(publish_req(
        &vol.volume_id,
        &ro,
        Mode::MultiNodeMultiWriter,
        true,
    ))
    .await
    .unwrap();
    let err = std::fs::write(ro.join("x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let err = n
        .node_publish_volume(publish_req(
            &vol.volume_id,
            &ro,
            Mode::MultiNodeMultiWriter,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::AlreadyExists,
        "read-write over a read-only publish: {err:?}"
    );
    n.node_unpublish_volume(unpublish_req(&vol.volume_id, &ro))
        .await
        .unwrap();

    let (first, second) = (d.dir.path().join("w1"), d.dir.path().join("w2"));
    n.node_publish_volume(publish_req(
        &vol.volume_id,
        &first,
        Mode::SingleNodeSingleWriter,
        false,
    ))
    .await
    .unwrap();
    let err = n
        .node_publish_volume(publish_req(
            &vol.volume_id,
            &second,
            Mode::SingleNodeSingleWriter,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(!mounted(&second));
    n.node_unpublish_volume(unpublish_req(&vol.volume_id, &first))
        .await
        .unwrap();
    n.node_publish_volume(publish_req(
        &vol.volume_id,
        &second,
        Mode::SingleNodeSingleWriter,
        false,
    ))
    .await
    .unwrap();
    n.node_unpublish_volume(unpublish_req(&vol.volume_id, &second))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_volume_directory_swapped_for_a_symlink_is_never_mounted() {
    require_root();
    let d = Driver::start(&[]).await;
    let (mut c, mut n) = (d.controller(), d.node());
    let vol = create(&mut c, "pvc-evil", 1 << 30, &[]).await;
    std::fs::remove_dir(d.share().join("pvc-evil")).unwrap();
    std::os::unix::fs::symlink("/etc", d.share().join("pvc-evil")).unwrap();
    let target = d.dir.path().join("evil");
    let err = n
        .node_publish_volume(publish_req(
            &vol.volume_id,
            &target,
            Mode::MultiNodeMultiWriter,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(!mounted(&target));
    let err = n
        .node_publish_volume(publish_req(
            &vol.volume_id,
            Path::new("relative/target"),
            Mode::MultiNodeMultiWriter,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
