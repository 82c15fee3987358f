//! Controller service over a real Unix socket against a real local share: idempotency, capacity
//! records, delete policies, hostile ids and trees, pagination, and trash recovery after a restart.

mod common;

use common::{Driver, cap, create_req, eventually, ls};
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use std::os::unix::fs::{PermissionsExt, symlink};
use tonic::Code;

const GIB: i64 = 1 << 30;

#[tokio::test]
async fn create_is_idempotent_and_capacity_is_recorded() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let v1 = c
        .create_volume(create_req("pvc-a", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v1.capacity_bytes, GIB);
    assert!(v1.volume_id.starts_with("nsc1##"), "{}", v1.volume_id);
    let dir = d.share().join("pvc-a");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o777
    );

    let again = c
        .create_volume(create_req("pvc-a", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(again.volume_id, v1.volume_id);
    let err = c
        .create_volume(create_req("pvc-a", 2 * GIB, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = c
        .create_volume(create_req("pvc-a", GIB, &[("onDelete", "retain")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "other parameters: {err:?}");

    let mode = c
        .create_volume(create_req("pvc-b", 0, &[("mountPermissions", "0750")]))
        .await
        .unwrap();
    assert_eq!(mode.into_inner().volume.unwrap().capacity_bytes, 0);
    assert_eq!(
        std::fs::metadata(d.share().join("pvc-b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_touches_nothing() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let before = ls(&d.share());
    let mut block = create_req("pvc-block", GIB, &[]);
    block.volume_capabilities[0].access_type = Some(pb::volume_capability::AccessType::Block(
        pb::volume_capability::BlockVolume {},
    ));
    let long_name = "n".repeat(4096);
    let cases = vec![
        create_req("pvc-x", GIB, &[("color", "blue")]),
        create_req("pvc-x", GIB, &[("subDir", "../escape")]),
        create_req("pvc-x", GIB, &[("subDir", "/etc")]),
        create_req(
            "pvc-x",
            GIB,
            &[
                ("subDir", "${pvc.metadata.name}"),
                ("csi.storage.k8s.io/pvc/name", ".."),
            ],
        ),
        create_req("pvc-x", GIB, &[("mountPermissions", "rwx")]),
        create_req("pvc-x", GIB, &[("onDelete", "shred")]),
        create_req("../pvc-x", GIB, &[]),
        create_req("a\0b", GIB, &[]),
        create_req(&long_name, GIB, &[]),
        create_req("", GIB, &[]),
        block,
        pb::CreateVolumeRequest {
            name: "pvc-nocaps".into(),
            ..Default::default()
        },
    ];
    for req in cases {
        let name = req.name.chars().take(40).collect::<String>();
        let err = c.create_volume(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err:?}");
    }
    assert_eq!(
        ls(&d.share()),
        before,
        "a refused request left something behind"
    );
    assert!(
        ls(d.share().parent().unwrap())
            .iter()
            .all(|n| n != "escape" && n != "pvc-x")
    );

    let hostile_ids = [
        format!("nsc1##{}#..#delete#", d.share().display()),
        format!("nsc1##{}#../share#delete#", d.share().display()),
        format!("nsc1##{}#/etc#delete#", d.share().display()),
        format!("nsc1##{}#.nfs-subdir-csi#delete#", d.share().display()),
    ];
    for id in hostile_ids {
        let err = c
            .delete_volume(pb::DeleteVolumeRequest {
                volume_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}: {err:?}");
    }
    // A well-formed id for a share this driver never used: nothing is touched, and it is OK.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("data")).unwrap();
    let foreign = format!("nsc1##{}#data#delete#", outside.path().display());
    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: foreign,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(outside.path().join("data").is_dir());
    assert_eq!(ls(outside.path()), vec!["data"]);
}

#[tokio::test]
async fn delete_handles_deep_trees_read_only_entries_and_planted_symlinks() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let victim = c
        .create_volume(create_req("pvc-victim", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    std::fs::write(d.share().join("pvc-victim/keep.txt"), "sibling data").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "outside data").unwrap();

    let vol = c
        .create_volume(create_req("pvc-doomed", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let root = d.share().join("pvc-doomed");
    let mut deep = root.clone();
    for i in 0..300 {
        deep = deep.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom.txt"), "x").unwrap();
    let ro_dir = root.join("readonly");
    std::fs::create_dir(&ro_dir).unwrap();
    std::fs::write(ro_dir.join("locked.txt"), "x").unwrap();
    std::fs::set_permissions(
        ro_dir.join("locked.txt"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(&ro_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    symlink(d.share().join("pvc-victim"), root.join("to-sibling")).unwrap();
    symlink("../pvc-victim", root.join("to-sibling-relative")).unwrap();
    symlink(outside.path(), root.join("to-outside")).unwrap();
    symlink("/", root.join("to-root")).unwrap();
    symlink(
        outside.path().join("keep.txt"),
        ro_dir.join("to-outside-file"),
    )
    .unwrap();

    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(!root.exists(), "volume directory still there");
    let trash = d.share().join(".nfs-subdir-csi/trash");
    assert!(
        eventually(|| ls(&trash).is_empty()).await,
        "trash not emptied: {:?}\n{}",
        ls(&trash),
        d.log()
    );
    assert_eq!(
        std::fs::read_to_string(d.share().join("pvc-victim/keep.txt")).unwrap(),
        "sibling data"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "outside data"
    );
    assert!(std::path::Path::new("/etc/passwd").exists());

    // Deleting again, or an id that was never ours, is fine.
    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: vol.volume_id,
        ..Default::default()
    })
    .await
    .unwrap();
    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: "fake-volume-id".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    // The sibling is still a live volume.
    let got = c
        .controller_get_volume(pb::ControllerGetVolumeRequest {
            volume_id: victim.volume_id,
        })
        .await
        .unwrap();
    assert!(
        !got.into_inner()
            .status
            .unwrap()
            .volume_condition
            .unwrap()
            .abnormal
    );
}

#[tokio::test]
async fn a_volume_directory_replaced_by_a_symlink_is_not_followed() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let vol = c
        .create_volume(create_req("pvc-swapped", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "outside").unwrap();
    std::fs::remove_dir(d.share().join("pvc-swapped")).unwrap();
    symlink(outside.path(), d.share().join("pvc-swapped")).unwrap();
    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: vol.volume_id,
        ..Default::default()
    })
    .await
    .unwrap();
    let trash = d.share().join(".nfs-subdir-csi/trash");
    assert!(eventually(|| ls(&trash).is_empty()).await);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "outside"
    );
}

#[tokio::test]
async fn retain_and_archive_keep_the_data() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    for (name, policy) in [("pvc-keep", "retain"), ("pvc-arch", "archive")] {
        let v = c
            .create_volume(create_req(name, GIB, &[("onDelete", policy)]))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        std::fs::write(d.share().join(name).join("data"), policy).unwrap();
        c.delete_volume(pb::DeleteVolumeRequest {
            volume_id: v.volume_id,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(d.share().join("pvc-keep/data")).unwrap(),
        "retain"
    );
    assert_eq!(
        std::fs::read_to_string(d.share().join("archived-pvc-arch/data")).unwrap(),
        "archive"
    );
    assert!(!d.share().join("pvc-arch").exists());
    // Archiving the same name again keeps the first archive.
    let v = c
        .create_volume(create_req("pvc-arch", GIB, &[("onDelete", "archive")]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: v.volume_id,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        ls(&d.share())
            .iter()
            .filter(|n| n.starts_with("archived-pvc-arch"))
            .count(),
        2
    );
    // Retained and archived volumes are no longer listed.
    let list = c
        .list_volumes(pb::ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.entries.is_empty(), "{:?}", list.entries);
}

#[tokio::test]
async fn templates_place_directories_by_claim() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let params = [
        ("subDir", "${pvc.metadata.namespace}/${pvc.metadata.name}"),
        (
            "csi.storage.k8s.io/pvc/name",
            "redis-100m-pvc-redis-pv-sts-0",
        ),
        ("csi.storage.k8s.io/pvc/namespace", "default"),
        ("csi.storage.k8s.io/pv/name", "pvc-1234"),
    ];
    let v = c
        .create_volume(create_req("pvc-1234", GIB, &params))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert!(
        d.share()
            .join("default/redis-100m-pvc-redis-pv-sts-0")
            .is_dir()
    );
    assert_eq!(
        v.volume_context.get("subDir").map(String::as_str),
        Some("default/redis-100m-pvc-redis-pv-sts-0")
    );
    c.delete_volume(pb::DeleteVolumeRequest {
        volume_id: v.volume_id,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(
        !d.share()
            .join("default/redis-100m-pvc-redis-pv-sts-0")
            .exists()
    );
}

#[tokio::test]
async fn list_pages_through_every_volume_and_refuses_foreign_tokens() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            c.create_volume(create_req(&format!("pvc-{i}"), GIB, &[]))
                .await
                .unwrap()
                .into_inner()
                .volume
                .unwrap()
                .volume_id,
        );
    }
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = c
            .list_volumes(pb::ListVolumesRequest {
                max_entries: 3,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 3);
        seen.extend(
            page.entries
                .into_iter()
                .map(|e| e.volume.unwrap().volume_id),
        );
        pages += 1;
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    seen.sort();
    made.sort();
    assert_eq!((seen, pages), (made, 3));
    let err = c
        .list_volumes(pb::ListVolumesRequest {
            max_entries: 1,
            starting_token: "invalid-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
}

#[tokio::test]
async fn lookups_report_missing_volumes_and_real_capacity() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let err = c
        .validate_volume_capabilities(pb::ValidateVolumeCapabilitiesRequest {
            volume_id: "no-such-volume".into(),
            volume_capabilities: vec![cap(Mode::MultiNodeMultiWriter)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let v = c
        .create_volume(create_req("pvc-gone", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    std::fs::remove_dir(d.share().join("pvc-gone")).unwrap();
    let got = c
        .controller_get_volume(pb::ControllerGetVolumeRequest {
            volume_id: v.volume_id,
        })
        .await
        .unwrap()
        .into_inner();
    let cond = got.status.unwrap().volume_condition.unwrap();
    assert!(
        cond.abnormal && cond.message.contains("missing"),
        "{cond:?}"
    );
    let cap = c
        .get_capacity(pb::GetCapacityRequest::default())
        .await
        .unwrap()
        .into_inner();
    let expect = nix::sys::statvfs::statvfs(&d.share()).unwrap();
    let free = (expect.blocks_available() * expect.fragment_size()) as i64;
    assert!(
        cap.available_capacity > 0 && (cap.available_capacity - free).abs() < 64 << 20,
        "{cap:?} vs {free}"
    );
}

#[tokio::test]
async fn a_restart_finishes_deletes_left_in_the_trash() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    c.create_volume(create_req("pvc-first", GIB, &[]))
        .await
        .unwrap();
    let dir = d.stop();
    // As if the driver died between the rename into the trash and the removal.
    let left = dir
        .path()
        .join("share/.nfs-subdir-csi/trash/1700000000-crashed");
    std::fs::create_dir_all(left.join("a/b/c")).unwrap();
    std::fs::write(left.join("a/b/c/file"), "x").unwrap();
    let d = Driver::start_in(dir, &[]).await;
    let trash = d.share().join(".nfs-subdir-csi/trash");
    assert!(
        eventually(|| ls(&trash).is_empty()).await,
        "left over: {:?}",
        ls(&trash)
    );
    assert!(d.share().join("pvc-first").is_dir());
}

#[tokio::test]
async fn expansion_records_the_larger_size() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let v = c
        .create_volume(create_req("pvc-grow", GIB, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let expand = |bytes: i64| pb::ControllerExpandVolumeRequest {
        volume_id: v.volume_id.clone(),
        capacity_range: Some(pb::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        ..Default::default()
    };
    let grown = c
        .controller_expand_volume(expand(3 * GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (grown.capacity_bytes, grown.node_expansion_required),
        (3 * GIB, false)
    );
    let smaller = c
        .controller_expand_volume(expand(GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        smaller.capacity_bytes,
        3 * GIB,
        "a shrink request keeps the larger size"
    );
    let got = c
        .controller_get_volume(pb::ControllerGetVolumeRequest {
            volume_id: v.volume_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().volume.unwrap().capacity_bytes, 3 * GIB);
    let err = c
        .controller_expand_volume(pb::ControllerExpandVolumeRequest {
            volume_id: "no-such-volume".into(),
            capacity_range: Some(pb::CapacityRange {
                required_bytes: GIB,
                limit_bytes: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
