//! The `tar.zst` snapshot format over a real Unix socket on a real local share: a restore keeps
//! the tree's metadata, hand-made hostile archives are refused without a byte written outside,
//! and `kill -9` in the middle of an archive leaves nothing that looks ready.

mod common;

use common::snap::{
    SmallShare, assert_same_tree_archived, from_req, kill9_while_cutting, raw, snap_src, tar_into,
};
use common::{Driver, create, eventually, ls};
use nfs_subdir_csi::csi::pb::{self, controller_client::ControllerClient};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;

const GIB: i64 = 1 << 30;

fn tar_req(name: &str, source: &str) -> pb::CreateSnapshotRequest {
    pb::CreateSnapshotRequest {
        name: name.into(),
        source_volume_id: source.into(),
        parameters: [("format".to_owned(), "tar.zst".to_owned())].into(),
        ..Default::default()
    }
}

/// CreateSnapshot with format tar.zst, called again until ready (at most 60 s).
async fn ready_tar(c: &mut ControllerClient<Channel>, name: &str, source: &str) -> pb::Snapshot {
    let started = Instant::now();
    loop {
        let s = c
            .create_snapshot(tar_req(name, source))
            .await
            .unwrap_or_else(|e| panic!("snapshot {name}: {e:?}"))
            .into_inner()
            .snapshot
            .expect("snapshot");
        if s.ready_to_use {
            return s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_tar_zst_restore_keeps_the_tree_and_its_metadata() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let outside = tempfile::tempdir().unwrap();
    let src = create(&mut c, "pvc-src", GIB, &[]).await;
    let root = d.share().join("pvc-src");
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("dir/sub/data"), vec![42u8; 200_000]).unwrap();
    std::fs::hard_link(root.join("dir/sub/data"), root.join("hardlink")).unwrap();
    std::fs::write(root.join("setuid"), b"#!/bin/sh\n").unwrap();
    nix::unistd::chown(&root.join("setuid"), Some(1234.into()), Some(5678.into())).unwrap();
    std::fs::set_permissions(root.join("setuid"), PermissionsExt::from_mode(0o4750)).unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(256 << 20).unwrap();
    drop(sparse);
    symlink("/etc/passwd", root.join("abs-link")).unwrap();
    symlink("../../..", root.join("dir/up-link")).unwrap();
    symlink(outside.path(), root.join("escape")).unwrap();
    std::fs::write(root.join("new\nline ..."), b"odd").unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    std::fs::set_permissions(root.join("dir"), PermissionsExt::from_mode(0o750)).unwrap();

    let snap = ready_tar(&mut c, "snapshot-t", &src.volume_id).await;
    assert!(
        snap.snapshot_id.contains("#tar.zst#"),
        "{}",
        snap.snapshot_id
    );
    let archive = d
        .share()
        .join(".nfs-subdir-csi/snapshots/snapshot-t/data.tar.zst");
    let on_disk = std::fs::metadata(&archive).unwrap().len();
    println!("archive: {on_disk} bytes (source 256 MiB sparse + 200 kB)");
    assert_eq!(
        snap.size_bytes as u64, on_disk,
        "size_bytes is the archive's size"
    );
    assert!(
        on_disk < 1 << 20,
        "holes or zeros archived as data: {on_disk}"
    );
    let again = ready_tar(&mut c, "snapshot-t", &src.volume_id).await;
    assert_eq!(again.snapshot_id, snap.snapshot_id, "idempotent");

    c.create_volume(from_req("pvc-back", snap_src(&snap.snapshot_id)))
        .await
        .expect("restore");
    let vol = d.share().join("pvc-back");
    assert_same_tree_archived(&root, &vol);
    let m = std::fs::symlink_metadata(vol.join("setuid")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4750, 1234, 5678));
    let blocks = std::fs::metadata(vol.join("sparse")).unwrap().blocks();
    assert!(
        blocks * 512 < 1 << 20,
        "sparse file filled: {blocks} blocks"
    );
    assert!(ls(outside.path()).is_empty(), "nothing written outside");
    assert!(ls(&d.share().join(".nfs-subdir-csi/restore")).is_empty());
}

fn hostile(entries: &[(tar::Header, &[u8])]) -> Vec<u8> {
    tar_into(zstd::Encoder::new(Vec::new(), 1).unwrap(), entries)
        .finish()
        .unwrap()
}

#[tokio::test]
async fn hostile_archives_are_refused_and_write_nothing_outside() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let src = create(&mut c, "pvc-small", GIB, &[]).await;
    std::fs::write(d.share().join("pvc-small/f"), b"x").unwrap();
    let snap = ready_tar(&mut c, "snapshot-h", &src.volume_id).await;
    let archive = d
        .share()
        .join(".nfs-subdir-csi/snapshots/snapshot-h/data.tar.zst");
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap().as_bytes().to_vec();
    let abs = [&out[..], b"/abs-owned"].concat();
    use tar::EntryType as T;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            hostile(&[(
                raw(b"../../../../../../tmp/dd-owned", T::Regular, b"", 4),
                b"evil",
            )]),
        ),
        (
            "absolute",
            hostile(&[(raw(&abs, T::Regular, b"", 4), b"evil")]),
        ),
        (
            "through a planted symlink",
            hostile(&[
                (raw(b"link", T::Symlink, &out, 0), b""),
                (raw(b"link/sym-owned", T::Regular, b"", 4), b"evil"),
            ]),
        ),
        (
            "a file written over a planted symlink",
            hostile(&[
                (
                    raw(b"over", T::Symlink, &[&out[..], b"/over-owned"].concat(), 0),
                    b"",
                ),
                (raw(b"over", T::Regular, b"", 4), b"evil"),
            ]),
        ),
        (
            "a FIFO through a planted symlink",
            hostile(&[
                (raw(b"link", T::Symlink, &out, 0), b""),
                (raw(b"link/fifo-owned", T::Fifo, b"", 0), b""),
            ]),
        ),
        (
            "device node",
            hostile(&[(raw(b"mem", T::Char, b"", 0), b"")]),
        ),
        (
            "hard link out",
            hostile(&[(
                raw(b"hl", T::Link, b"../../../../../../etc/hostname", 0),
                b"",
            )]),
        ),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        std::fs::write(&archive, bytes).unwrap();
        let name = format!("pvc-hostile-{i}");
        let err = c
            .create_volume(from_req(&name, snap_src(&snap.snapshot_id)))
            .await
            .expect_err(what);
        println!("{what}: {:?} {}", err.code(), err.message());
        assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
        assert!(!d.share().join(&name).exists(), "{what}: a volume was made");
        assert!(ls(outside.path()).is_empty(), "{what}: wrote outside");
        assert!(!Path::new("/tmp/dd-owned").exists(), "{what}: wrote /tmp");
        let restores = d.share().join(".nfs-subdir-csi/restore");
        assert!(
            eventually(|| ls(&restores).is_empty()).await,
            "{what}: temp left"
        );
    }
}

#[tokio::test]
async fn kill_9_during_a_tar_zst_snapshot_leaves_nothing_ready() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let src = create(&mut c, "pvc-big", GIB, &[]).await;
    // Data zstd cannot shrink much (a xorshift stream), so the archive takes a while.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..3 {
        let data: Vec<u8> = (0..(24 << 20) / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        std::fs::write(d.share().join(format!("pvc-big/big-{i}")), data).unwrap();
    }
    let req = tar_req("snapshot-big", &src.volume_id);
    let d = kill9_while_cutting(d, req).await;
    let mut c = d.controller();
    let snap = ready_tar(&mut c, "snapshot-big", &src.volume_id).await;
    println!(
        "retry after restart: ready, archive {} bytes",
        snap.size_bytes
    );
    c.create_volume(from_req("pvc-again", snap_src(&snap.snapshot_id)))
        .await
        .expect("restore");
    assert_same_tree_archived(&d.share().join("pvc-big"), &d.share().join("pvc-again"));
}

/// A restore needs what the source's files held, recorded when the snapshot was cut: on a share
/// with less free space it is refused before a byte is unpacked, though the archive (of zeros)
/// is tiny; with the space back it restores.
#[tokio::test]
async fn a_tar_zst_restore_that_does_not_fit_is_refused_before_unpacking() {
    let dir = tempfile::tempdir().unwrap();
    let small = SmallShare::mount(dir.path(), "16m");
    let share = small.0.clone();
    let d = Driver::start_in(dir, &[]).await;
    let mut c = d.controller();
    let src = create(&mut c, "pvc-zeros", GIB, &[]).await;
    std::fs::write(share.join("pvc-zeros/zeros"), vec![0u8; 6 << 20]).unwrap();
    let snap = ready_tar(&mut c, "snapshot-zeros", &src.volume_id).await;
    create(&mut c, "pvc-filler", GIB, &[]).await;
    let filler = share.join("pvc-filler/fill");
    std::fs::write(&filler, vec![1u8; 6 << 20]).unwrap();
    let free = small.free();
    assert!(free < 6 << 20, "{free} bytes still free");
    let restore = from_req("pvc-back", snap_src(&snap.snapshot_id));
    let err = c.create_volume(restore.clone()).await.unwrap_err();
    println!(
        "restore of 6 MiB (archive {} bytes) with {free} bytes free: {err:?}",
        snap.size_bytes
    );
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("files held"),
        "not refused up front: {err:?}"
    );
    assert_eq!(small.free(), free, "something was written");
    assert!(!share.join("pvc-back").exists());
    assert!(ls(&share.join(".nfs-subdir-csi/restore")).is_empty());

    std::fs::remove_file(&filler).unwrap();
    c.create_volume(restore).await.expect("restore with room");
    assert_same_tree_archived(&share.join("pvc-zeros"), &share.join("pvc-back"));
}
