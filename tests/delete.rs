//! DeleteVolume over a real Unix socket against a real local share: deep and read-only trees,
//! planted symlinks that must not be followed, retain/archive, the trash after a restart, and a
//! trash entry whose removal fails at first being tried again until it goes.

mod common;

use common::{Driver, create, delete, eventually, ls};
use nfs_subdir_csi::csi::pb;
use std::os::unix::fs::{PermissionsExt, symlink};

const GIB: i64 = 1 << 30;

#[tokio::test]
async fn delete_handles_deep_trees_read_only_entries_and_planted_symlinks() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let victim = create(&mut c, "pvc-victim", GIB, &[]).await;
    std::fs::write(d.share().join("pvc-victim/keep.txt"), "sibling data").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "outside data").unwrap();

    let vol = create(&mut c, "pvc-doomed", GIB, &[]).await;
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

    delete(&mut c, &vol.volume_id).await;
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
    delete(&mut c, &vol.volume_id).await;
    delete(&mut c, "fake-volume-id").await;
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
    let vol = create(&mut c, "pvc-swapped", GIB, &[]).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "outside").unwrap();
    std::fs::remove_dir(d.share().join("pvc-swapped")).unwrap();
    symlink(outside.path(), d.share().join("pvc-swapped")).unwrap();
    delete(&mut c, &vol.volume_id).await;
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
        let v = create(&mut c, name, GIB, &[("onDelete", policy)]).await;
        std::fs::write(d.share().join(name).join("data"), policy).unwrap();
        delete(&mut c, &v.volume_id).await;
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
    let v = create(&mut c, "pvc-arch", GIB, &[("onDelete", "archive")]).await;
    delete(&mut c, &v.volume_id).await;
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
async fn a_restart_finishes_deletes_left_in_the_trash() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    create(&mut c, "pvc-first", GIB, &[]).await;
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
async fn a_trash_entry_that_cannot_be_removed_is_tried_again_until_it_can() {
    // A mount inside the deleted tree makes its removal fail (EBUSY), as root_squash or a
    // read-only export would (EPERM, EROFS): the entry must stay, be logged, and go once the
    // cause does, without a restart.
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "needs root (a tmpfs mount inside the volume)"
    );
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let vol = create(&mut c, "pvc-busy", GIB, &[]).await;
    let inner = d.share().join("pvc-busy/mnt");
    std::fs::create_dir(&inner).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &inner,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    delete(&mut c, &vol.volume_id).await;
    let trash = d.share().join(".nfs-subdir-csi/trash");
    assert!(
        eventually(|| d.log().contains("trash entry not removed")).await,
        "{}",
        d.log()
    );
    let left = ls(&trash);
    assert_eq!(left.len(), 1, "{left:?}");
    // The entry waiting for its next try does not hold up the removals queued behind it.
    let other = create(&mut c, "pvc-after", GIB, &[]).await;
    std::fs::write(d.share().join("pvc-after/data"), "x").unwrap();
    delete(&mut c, &other.volume_id).await;
    assert!(
        eventually(|| ls(&trash) == left).await,
        "the later entry is not removed while the first waits: {:?}\n{}",
        ls(&trash),
        d.log()
    );
    nix::mount::umount2(
        &trash.join(&left[0]).join("mnt"),
        nix::mount::MntFlags::MNT_DETACH,
    )
    .unwrap();
    assert!(
        eventually(|| ls(&trash).is_empty()).await,
        "not retried: {:?}\n{}",
        ls(&trash),
        d.log()
    );
}

/// A wide tree (subdirectories and slices of files shared among the removal's workers) with
/// read-only parts and planted symlinks, and many entries left in the trash by a crash: the
/// bounded parallel removal empties the trash and touches nothing outside it.
#[tokio::test]
async fn the_parallel_removal_empties_wide_trees_and_many_left_entries() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "outside data").unwrap();
    let vol = create(&mut c, "pvc-wide", GIB, &[]).await;
    let root = d.share().join("pvc-wide");
    for i in 0..24 {
        let sub = root.join(format!("dir{i}/inner"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..50 {
            std::fs::write(sub.join(format!("f{f}")), "x").unwrap();
        }
        symlink(outside.path(), sub.join("to-outside")).unwrap();
        if i % 4 == 0 {
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
    }
    for f in 0..100 {
        std::fs::write(root.join(format!("top{f}")), "x").unwrap();
    }
    let dir = d.stop();
    // As if a crash left 40 deletes half done in the trash.
    let trash = dir.path().join("share/.nfs-subdir-csi/trash");
    for e in 0..40 {
        let left = trash.join(format!("1700000000-crashed-{e}"));
        std::fs::create_dir_all(left.join("a/b")).unwrap();
        std::fs::write(left.join("a/b/file"), "x").unwrap();
        symlink(outside.path().join("keep.txt"), left.join("a/link")).unwrap();
    }
    let d = Driver::start_in(dir, &[]).await;
    let mut c = d.controller();
    delete(&mut c, &vol.volume_id).await;
    assert!(!root.exists(), "volume directory still there");
    assert!(
        eventually(|| ls(&trash).is_empty()).await,
        "trash not emptied: {:?}\n{}",
        ls(&trash),
        d.log()
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "outside data"
    );
}
