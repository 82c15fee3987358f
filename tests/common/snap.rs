//! Snapshot fixtures of the integration tests: CSI calls that must succeed, a `kill -9` of the
//! driver, and a comparison of two trees that checks everything a snapshot must keep.

use super::{Driver, eventually, ls};
use nfs_subdir_csi::csi::pb::{self, controller_client::ControllerClient};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// CreateSnapshot, which must succeed.
pub async fn snapshot(c: &mut ControllerClient<Channel>, name: &str, source: &str) -> pb::Snapshot {
    let req = pb::CreateSnapshotRequest {
        name: name.into(),
        source_volume_id: source.into(),
        ..Default::default()
    };
    c.create_snapshot(req)
        .await
        .unwrap_or_else(|e| panic!("snapshot {name}: {e:?}"))
        .into_inner()
        .snapshot
        .expect("snapshot")
}

/// Calls CreateSnapshot again until it answers ready (at most 60 s), as the snapshotter does.
pub async fn ready_snapshot(
    c: &mut ControllerClient<Channel>,
    name: &str,
    source: &str,
) -> pb::Snapshot {
    let started = Instant::now();
    loop {
        let s = snapshot(c, name, source).await;
        if s.ready_to_use {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CreateVolume request for `name` filled from `source`.
pub fn from_req(name: &str, source: pb::volume_content_source::Type) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        volume_content_source: Some(pb::VolumeContentSource {
            r#type: Some(source),
        }),
        ..super::create_req(name, 1 << 30, &[])
    }
}

/// The content source naming snapshot `id`.
pub fn snap_src(id: &str) -> pb::volume_content_source::Type {
    pb::volume_content_source::Type::Snapshot(pb::volume_content_source::SnapshotSource {
        snapshot_id: id.into(),
    })
}

/// The content source naming volume `id`.
pub fn vol_src(id: &str) -> pb::volume_content_source::Type {
    pb::volume_content_source::Type::Volume(pb::volume_content_source::VolumeSource {
        volume_id: id.into(),
    })
}

/// Kills the driver with SIGKILL (no chance to clean up) and returns its temp dir for a restart.
pub fn kill9(mut d: Driver) -> tempfile::TempDir {
    d.child.kill().expect("SIGKILL");
    d.child.wait().expect("wait");
    let spare = tempfile::tempdir().unwrap();
    std::mem::replace(&mut d.dir, spare)
}

/// Waits (at most 30 s, polling every millisecond) for an entry whose name starts with `prefix`
/// in `dir`; returns whether one appeared.
pub fn wait_for_entry(dir: &Path, prefix: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if super::ls(dir).iter().any(|n| n.starts_with(prefix)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Asserts that `copy` holds what `orig` holds: the same entries with the same type, mode,
/// owner, modification time (to the nanosecond), data, symlink targets and hard-link structure.
/// Never follows a symlink.
pub fn assert_same_tree(orig: &Path, copy: &Path) {
    compare(orig, copy, &mut HashMap::new(), true);
}

/// [`assert_same_tree`] for what a `tar.zst` archive keeps: mtimes to the second, and no check of
/// sizes on disk.
pub fn assert_same_tree_archived(orig: &Path, copy: &Path) {
    compare(orig, copy, &mut HashMap::new(), false);
}

/// `exact`: nanosecond mtimes and allocated sizes too (a `copy` snapshot keeps both).
fn compare(a: &Path, b: &Path, inodes: &mut HashMap<u64, u64>, exact: bool) {
    let (ma, mb) = (
        std::fs::symlink_metadata(a).unwrap(),
        std::fs::symlink_metadata(b).unwrap_or_else(|e| panic!("{}: {e}", b.display())),
    );
    let what = b.display();
    assert_eq!(ma.file_type(), mb.file_type(), "{what}: type");
    assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "{what}: owner");
    if exact {
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "{what}: mtime"
        );
    } else {
        assert_eq!(ma.mtime(), mb.mtime(), "{what}: mtime");
    }
    if ma.file_type().is_symlink() {
        assert_eq!(
            std::fs::read_link(a).unwrap(),
            std::fs::read_link(b).unwrap(),
            "{what}"
        );
        return;
    }
    assert_eq!(ma.mode(), mb.mode(), "{what}: mode");
    if ma.is_dir() {
        let names = super::ls(a);
        assert_eq!(names, super::ls(b), "{what}: entries");
        for n in names {
            compare(&a.join(&n), &b.join(&n), inodes, exact);
        }
    } else if ma.is_file() {
        assert_eq!(ma.nlink(), mb.nlink(), "{what}: links");
        let seen = *inodes.entry(ma.ino()).or_insert(mb.ino());
        assert_eq!(seen, mb.ino(), "{what}: hard link to another inode");
        if exact {
            assert_eq!(ma.len(), mb.len(), "{what}: size");
            assert!(mb.blocks() <= ma.blocks() + 8, "{what}: holes filled in");
        }
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{what}: data"
        );
    }
}

/// Starts `req` (a CreateSnapshot of a volume big enough to take a while) on `d`, `kill -9`s the
/// driver once the copy's temporary tree appears, and checks what the crash left: nothing that
/// looks ready, no snapshot listed by the restarted driver, the temporary tree swept. Returns the
/// restarted driver.
pub async fn kill9_while_cutting(d: Driver, req: pb::CreateSnapshotRequest) -> Driver {
    let snaps = d.share().join(".nfs-subdir-csi/snapshots");
    let mut c = d.controller();
    let call = tokio::spawn(async move { c.create_snapshot(req).await });
    let watched = snaps.clone();
    let seen = tokio::task::spawn_blocking(move || wait_for_entry(&watched, ".tmp-"));
    assert!(seen.await.unwrap(), "no snapshot copy started");
    let dir = kill9(d);
    let _ = call.await;
    let left = ls(&snaps);
    println!("after kill -9 while cutting a snapshot: {left:?}");
    assert!(
        left.iter().all(|n| n.starts_with(".tmp-")),
        "something looks ready: {left:?}"
    );
    let d = Driver::start_in(dir, &[]).await;
    let listed = d
        .controller()
        .list_snapshots(pb::ListSnapshotsRequest::default())
        .await
        .unwrap();
    assert!(
        listed.into_inner().entries.is_empty(),
        "a half snapshot is listed"
    );
    assert!(
        eventually(|| ls(&snaps).is_empty()).await,
        "temp not swept: {:?}",
        ls(&snaps)
    );
    d
}

/// A small tmpfs mounted on `<dir>/share` (the share of a driver started in `dir`), unmounted on
/// drop: a real filesystem that fills up. Needs root.
pub struct SmallShare(pub std::path::PathBuf);

impl SmallShare {
    pub fn mount(dir: &Path, size: &str) -> SmallShare {
        let share = dir.join("share");
        std::fs::create_dir(&share).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &share,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .unwrap_or_else(|e| panic!("mount a {size} tmpfs (needs root): {e}"));
        SmallShare(share)
    }

    /// Bytes free for non-root users.
    pub fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    }
}

impl Drop for SmallShare {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A raw tar header: the name and link name go in as bytes, unchecked, as a hostile tool would.
pub fn raw(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_size(size);
    h.set_cksum();
    h
}

/// `entries` (headers from [`raw`] and their data) written as a tar stream into `out` (a
/// compressor, or a plain buffer), which is handed back for the caller to finish.
pub fn tar_into<W: std::io::Write>(out: W, entries: &[(tar::Header, &[u8])]) -> W {
    let mut b = tar::Builder::new(out);
    for (h, data) in entries {
        b.append(h, *data).unwrap();
    }
    b.into_inner().unwrap()
}
