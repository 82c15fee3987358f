//! Restore from csi-driver-nfs's snapshots over a real Unix socket on a real local share: archives
//! made by the real `tar czf` and `tar cf` restore to the same tree; hostile archives and hostile
//! snapshot ids are refused and touch nothing.
//!
//! csi-driver-nfs's ids name an NFS server; an empty server names a pre-mounted share the driver
//! knows (here its default share), which is how this host without an NFS client reaches one. The
//! NFS path is the guest's csi-driver-nfs scenario (tests/e2e/nfs-guest/scenarios/legacy.rs).

mod common;

use common::snap::{SmallShare, assert_same_tree_archived, from_req, raw, snap_src, tar_into};
use common::{Driver, create, eventually, ls};
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use tonic::Code;

const GIB: i64 = 1 << 30;

/// The id csi-driver-nfs gives snapshot `snap` of volume `source` on the share at `share`
/// (leading `/` trimmed, as it writes it), with an empty server: a pre-mounted share.
fn cdn_id(share: &Path, snap: &str, source: &str) -> String {
    let base = share.to_str().unwrap().trim_matches('/');
    format!("#{base}#{snap}#{snap}#{source}")
}

/// `tar <flags> <archive> -C <dir> .`, which must succeed: what csi-driver-nfs runs.
fn tar(flags: &str, archive: &Path, dir: &Path) {
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let out = Command::new("tar")
        .arg(flags)
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar {flags}: {out:?}");
}

/// A tree with what a volume holds: nested files, a hard link, owners and modes, symlinks that
/// point out (kept as data), odd names, a FIFO.
fn fill(root: &Path, outside: &Path) {
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("dir/sub/data"), vec![7u8; 300_000]).unwrap();
    std::fs::hard_link(root.join("dir/sub/data"), root.join("hardlink")).unwrap();
    std::fs::write(root.join("owned"), b"mine").unwrap();
    nix::unistd::chown(&root.join("owned"), Some(1234.into()), Some(5678.into())).unwrap();
    std::fs::set_permissions(root.join("owned"), PermissionsExt::from_mode(0o640)).unwrap();
    symlink("/etc/passwd", root.join("abs-link")).unwrap();
    symlink("../../..", root.join("dir/up-link")).unwrap();
    symlink(outside, root.join("escape")).unwrap();
    std::fs::write(root.join("new\nline ..."), b"odd").unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    std::fs::set_permissions(root.join("dir"), PermissionsExt::from_mode(0o750)).unwrap();
}

#[tokio::test]
async fn tar_gz_and_tar_snapshots_of_csi_driver_nfs_restore_the_same_tree() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let share = d.share();
    let outside = tempfile::tempdir().unwrap();
    create(&mut c, "pvc-src", GIB, &[]).await;
    let src = share.join("pvc-src");
    fill(&src, outside.path());
    tar("czf", &share.join("snapshot-gz/pvc-src.tar.gz"), &src);
    tar("cf", &share.join("snapshot-tar/pvc-src.tar"), &src);

    for (snap, vol) in [
        ("snapshot-gz", "pvc-from-gz"),
        ("snapshot-tar", "pvc-from-tar"),
    ] {
        let id = cdn_id(&share, snap, "pvc-src");
        let made = c
            .create_volume(from_req(vol, snap_src(&id)))
            .await
            .unwrap_or_else(|e| panic!("restore {snap}: {e:?}"))
            .into_inner()
            .volume
            .unwrap();
        let echoed = made.content_source.and_then(|s| s.r#type);
        assert_eq!(echoed, Some(snap_src(&id)), "the content source is echoed");
        assert_same_tree_archived(&src, &share.join(vol));
        // Idempotent: the same call again answers the same volume and copies nothing.
        let again = c
            .create_volume(from_req(vol, snap_src(&id)))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        assert_eq!(again.volume_id, made.volume_id);
        println!("{snap}: restored into {vol}");
    }
    assert!(ls(outside.path()).is_empty(), "nothing written outside");
    let restores = share.join(".nfs-subdir-csi/restore");
    assert!(eventually(|| ls(&restores).is_empty()).await, "temp left");
}

#[tokio::test]
async fn hostile_or_missing_csi_driver_nfs_snapshots_touch_nothing() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let share = d.share();
    std::fs::create_dir(share.join("snapshot-x")).unwrap();
    std::fs::write(share.join("snapshot-x/keep"), b"x").unwrap();
    let before = ls(&share);
    let base = share.to_str().unwrap().trim_matches('/');
    let cases = [
        ("srv#share#..#..#pvc-1".to_owned(), Code::InvalidArgument),
        (
            format!("#{base}#snap#snap#../../etc/passwd"),
            Code::InvalidArgument,
        ),
        (
            format!("#{base}#snapshot-x#snapshot-x#a/b"),
            Code::InvalidArgument,
        ),
        (
            format!("evil,host#{base}#snap#snap#pvc-1"),
            Code::InvalidArgument,
        ),
        (
            "srv#../..#snap#snap#pvc-1".to_owned(),
            Code::InvalidArgument,
        ),
        // Its form, but nothing there: no archive, an unknown local path.
        (
            format!("#{base}#snapshot-x#snapshot-x#pvc-1"),
            Code::NotFound,
        ),
        (
            format!("#{base}#snapshot-9#snapshot-9#pvc-1"),
            Code::NotFound,
        ),
        ("#etc#ssl#ssl#certs".to_owned(), Code::NotFound),
        // Neither driver's form.
        ("some-snapshot-id".to_owned(), Code::NotFound),
    ];
    for (i, (id, code)) in cases.iter().enumerate() {
        let vol = format!("pvc-bad-{i}");
        let err = c
            .create_volume(from_req(&vol, snap_src(id)))
            .await
            .expect_err(id);
        println!("{id:?}: {:?} {}", err.code(), err.message());
        assert_eq!(err.code(), *code, "{id}: {err:?}");
        assert_eq!(ls(&share), before, "{id}: something made");
    }
}

fn gz(entries: &[(tar::Header, &[u8])]) -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    tar_into(enc, entries).finish().unwrap()
}

#[tokio::test]
async fn hostile_tar_gz_archives_are_refused_and_write_nothing_outside() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let share = d.share();
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap().as_bytes().to_vec();
    let abs = [&out[..], b"/abs-owned"].concat();
    use tar::EntryType as T;
    let mut garbage = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    garbage.write_all(&[0xAB; 4096]).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            gz(&[(
                raw(b"../../../../../../tmp/cdn-owned", T::Regular, b"", 4),
                b"evil",
            )]),
        ),
        ("absolute", gz(&[(raw(&abs, T::Regular, b"", 4), b"evil")])),
        (
            "through a planted symlink",
            gz(&[
                (raw(b"link", T::Symlink, &out, 0), b""),
                (raw(b"link/sym-owned", T::Regular, b"", 4), b"evil"),
            ]),
        ),
        ("device node", gz(&[(raw(b"mem", T::Char, b"", 0), b"")])),
        (
            "hard link out",
            gz(&[(
                raw(b"hl", T::Link, b"../../../../../../etc/hostname", 0),
                b"",
            )]),
        ),
        ("gzip of no tar", garbage.finish().unwrap()),
        ("not an archive at all", b"plain text, not a tar".to_vec()),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let snap = format!("snapshot-h{i}");
        std::fs::create_dir(share.join(&snap)).unwrap();
        std::fs::write(share.join(&snap).join("pvc-h.tar.gz"), bytes).unwrap();
        let vol = format!("pvc-hostile-{i}");
        let err = c
            .create_volume(from_req(&vol, snap_src(&cdn_id(&share, &snap, "pvc-h"))))
            .await
            .expect_err(what);
        println!("{what}: {:?} {}", err.code(), err.message());
        assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
        assert!(!share.join(&vol).exists(), "{what}: a volume was made");
        assert!(ls(outside.path()).is_empty(), "{what}: wrote outside");
        assert!(!Path::new("/tmp/cdn-owned").exists(), "{what}: wrote /tmp");
        let restores = share.join(".nfs-subdir-csi/restore");
        assert!(
            eventually(|| ls(&restores).is_empty()).await,
            "{what}: temp left"
        );
    }
    // The archive as a symlink to a file elsewhere is not followed.
    std::fs::create_dir(share.join("snapshot-link")).unwrap();
    tar(
        "czf",
        &outside.path().join("real.tar.gz"),
        &share.join("snapshot-h0"),
    );
    symlink(
        outside.path().join("real.tar.gz"),
        share.join("snapshot-link/pvc-l.tar.gz"),
    )
    .unwrap();
    let id = cdn_id(&share, "snapshot-link", "pvc-l");
    let err = c
        .create_volume(from_req("pvc-link", snap_src(&id)))
        .await
        .expect_err("symlinked archive");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(!share.join("pvc-link").exists());
}

/// csi-driver-nfs records no size, so its archive's own size is the bound: a restore is refused
/// before a byte is unpacked when the share has less free space than the archive; one whose files
/// need more than that (zeros compress well) fails once the share is full, with the same code,
/// and leaves nothing behind; with the space back it restores.
#[tokio::test]
async fn a_csi_driver_nfs_restore_that_does_not_fit_is_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let small = SmallShare::mount(dir.path(), "16m");
    let share = small.0.clone();
    let d = Driver::start_in(dir, &[]).await;
    let mut c = d.controller();
    create(&mut c, "pvc-src", GIB, &[]).await;
    let src = share.join("pvc-src");
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(src.join("noise"), &noise).unwrap();
    tar("czf", &share.join("snapshot-noise/pvc-src.tar.gz"), &src);
    std::fs::remove_file(src.join("noise")).unwrap();
    std::fs::write(src.join("zeros"), vec![0u8; 6 << 20]).unwrap();
    tar("czf", &share.join("snapshot-zeros/pvc-src.tar.gz"), &src);
    std::fs::remove_file(src.join("zeros")).unwrap();
    create(&mut c, "pvc-filler", GIB, &[]).await;
    let filler = share.join("pvc-filler/fill");
    std::fs::write(&filler, vec![1u8; (small.free() - (3 << 20)) as usize]).unwrap();
    let free = small.free();
    let restores = share.join(".nfs-subdir-csi/restore");

    let noisy = from_req(
        "pvc-noise",
        snap_src(&cdn_id(&share, "snapshot-noise", "pvc-src")),
    );
    let err = c.create_volume(noisy.clone()).await.unwrap_err();
    println!("restore of a 4 MiB tar.gz with {free} bytes free: {err:?}");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("archive alone holds"),
        "not up front: {err:?}"
    );
    assert_eq!(small.free(), free, "something was written");

    let zeros = from_req(
        "pvc-zeros",
        snap_src(&cdn_id(&share, "snapshot-zeros", "pvc-src")),
    );
    let err = c.create_volume(zeros).await.unwrap_err();
    println!("restore of 6 MiB of zeros with {free} bytes free: {err:?}");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        eventually(|| ls(&restores).is_empty()).await,
        "{:?}",
        ls(&restores)
    );
    assert!(
        eventually(|| small.free() == free).await,
        "space not given back"
    );
    for v in ["pvc-noise", "pvc-zeros"] {
        assert!(!share.join(v).exists(), "{v} left");
    }

    std::fs::remove_file(&filler).unwrap();
    c.create_volume(noisy).await.expect("restore with room");
    assert!(std::fs::read(share.join("pvc-noise/noise")).unwrap() == noise);
}
