//! Snapshots on real NFS (snapshot-*): a volume filled through a pod's mount, snapshotted, restored
//! and cloned; the restored and cloned volumes, read through pods' mounts, hold the same tree (data,
//! modes, owners, mtimes, symlinks, hard links, the size of a sparse file). Prints how the copy
//! engine moved the data on this server (clone / copy_file_range / read-write) and how long it took.

use crate::class::{Class, new_name, pod_target};
use crate::csi::{Csi, DL, connect, until_ok};
use crate::harness::record_deleted;
use crate::{Env, Report, info};
use nfs_subdir_csi::csi::pb;
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes the source tree at the mounted target `t`.
fn fill(t: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(t.join("dir/sub"))?;
    let block: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut big = Vec::new();
    for _ in 0..8 {
        big.extend_from_slice(&block);
    }
    std::fs::write(t.join("dir/sub/big"), &big)?;
    std::fs::hard_link(t.join("dir/sub/big"), t.join("big-link"))?;
    for i in 0..50 {
        std::fs::write(t.join(format!("dir/small-{i}")), format!("small {i}\n"))?;
    }
    let sparse = std::fs::File::create(t.join("sparse"))?;
    sparse.set_len(16 << 20)?;
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", (16 << 20) - 3)?;
    symlink("/etc/passwd", t.join("abs-link"))?;
    symlink("../..", t.join("dir/up-link"))?;
    nix::unistd::chown(&t.join("dir/small-0"), Some(1234.into()), Some(5678.into()))?;
    std::fs::set_permissions(t.join("dir/small-1"), PermissionsExt::from_mode(0o640))?;
    std::fs::set_permissions(t.join("dir"), PermissionsExt::from_mode(0o750))?;
    Ok(())
}

/// Differences between two mounted trees (empty: the same). Never follows symlinks. The times of
/// symlinks go to `notes` instead: through ganesha they were seen not to stick (the SETATTR
/// succeeds), which this scenario reports but does not fail on.
fn diff(
    a: &Path,
    b: &Path,
    inodes: &mut HashMap<u64, u64>,
    out: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let (ma, mb) = match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => return out.push(format!("{}: {:?} vs {:?}", b.display(), x.err(), y.err())),
    };
    let mut same = |what: &str, ok: bool| {
        if !ok {
            out.push(format!("{}: {what} differs", b.display()));
        }
    };
    same("type", ma.file_type() == mb.file_type());
    same("owner", (ma.uid(), ma.gid()) == (mb.uid(), mb.gid()));
    let mtime = (ma.mtime(), ma.mtime_nsec()) == (mb.mtime(), mb.mtime_nsec());
    if ma.file_type().is_symlink() {
        same(
            "target",
            std::fs::read_link(a).ok() == std::fs::read_link(b).ok(),
        );
        if !mtime {
            notes.push(format!("symlink {} mtime not kept", b.display()));
        }
        return;
    }
    same("mtime", mtime);
    same("mode", ma.mode() == mb.mode());
    if ma.is_dir() {
        let names = |p: &Path| -> Vec<_> {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        same("entries", na == nb);
        for n in na {
            diff(&a.join(&n), &b.join(&n), inodes, out, notes);
        }
    } else if ma.is_file() {
        same("size", ma.len() == mb.len());
        same("links", ma.nlink() == mb.nlink());
        let first = *inodes.entry(ma.ino()).or_insert(mb.ino());
        same("hard link", first == mb.ino());
        same("data", std::fs::read(a).ok() == std::fs::read(b).ok());
        if mb.blocks() > ma.blocks() + 64 {
            notes.push(format!(
                "{} takes {} blocks, its source {}",
                b.display(),
                mb.blocks(),
                ma.blocks()
            ));
        }
    }
}

async fn mount_pod(
    csi: &Csi,
    rep: &mut Report,
    name: &str,
    class: &Class,
    vol: &pb::Volume,
) -> Option<std::path::PathBuf> {
    let t = pod_target(name);
    let r = csi.publish(class.publish(vol, &t), DL).await;
    rep.require(name, r.value())?;
    Some(t)
}

/// The snapshot story for one StorageClass; the clone only when `clone`.
pub async fn snapshot(env: &Env, rep: &mut Report, label: &str, class: &Class, clone: bool) {
    let csi = connect(&env.socket).await;
    let p = |s: &str| format!("snapshot-{label}-{s}");
    let src_name = new_name("pvc");
    let Some(src) = rep.require(
        &p("create-source"),
        csi.create(class.create(&src_name, "data-src"), DL)
            .await
            .value(),
    ) else {
        return;
    };
    let Some(t_src) = mount_pod(&csi, rep, &p("publish-source"), class, &src).await else {
        return;
    };
    if rep.require(&p("fill-source"), fill(&t_src)).is_none() {
        return;
    }
    let snap_name = new_name("snapshot");
    let started = Instant::now();
    let (snap, tries) = until_ok(Duration::from_secs(180), || {
        let csi = csi.clone();
        let (n, s) = (snap_name.clone(), src.volume_id.clone());
        async move {
            let t = csi.create_snapshot(&n, &s, DL).await;
            match t.result {
                Some(Ok(s)) if !s.ready_to_use => crate::csi::Timed {
                    result: Some(Err(tonic::Status::unavailable("not ready yet"))),
                    took: t.took,
                },
                result => crate::csi::Timed {
                    result,
                    took: t.took,
                },
            }
        }
    })
    .await;
    let took = started.elapsed();
    let Some(snap) = rep.require(&p("snapshot-ready"), snap.ok_or(format!("{tries:?}"))) else {
        return;
    };
    rep.check(
        &p("snapshot-ready"),
        snap.size_bytes >= 8 << 20,
        format!(
            "{:.2} s, {} calls, size {} bytes",
            took.as_secs_f64(),
            tries.len(),
            snap.size_bytes
        ),
    );
    let summary = std::fs::read_to_string(&env.driver_log).unwrap_or_default();
    if let Some(line) = summary
        .lines()
        .rev()
        .find(|l| l.contains("snapshot ready") && l.contains(&snap_name))
    {
        info(format!(
            "copy engine: {}",
            line.split("summary=").nth(1).unwrap_or(line)
        ));
    }
    let mut made = vec![src_name.clone()];
    for (what, source) in [
        (
            "restore",
            pb::volume_content_source::Type::Snapshot(pb::volume_content_source::SnapshotSource {
                snapshot_id: snap.snapshot_id.clone(),
            }),
        ),
        (
            "clone",
            pb::volume_content_source::Type::Volume(pb::volume_content_source::VolumeSource {
                volume_id: src.volume_id.clone(),
            }),
        ),
    ] {
        if what == "clone" && !clone {
            continue;
        }
        let name = new_name("pvc");
        let mut req = class.create(&name, &format!("data-{what}"));
        req.volume_content_source = Some(pb::VolumeContentSource {
            r#type: Some(source),
        });
        let started = Instant::now();
        let (vol, tries) = until_ok(Duration::from_secs(180), || {
            csi.create(req.clone(), Duration::from_secs(30))
        })
        .await;
        let Some(vol) = rep.require(&p(what), vol.ok_or(format!("{tries:?}"))) else {
            continue;
        };
        made.push(name.clone());
        let echoed = vol.content_source.is_some();
        let Some(t) = mount_pod(&csi, rep, &p(&format!("publish-{what}")), class, &vol).await
        else {
            continue;
        };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        diff(&t_src, &t, &mut HashMap::new(), &mut out, &mut notes);
        for note in &notes {
            info(note);
        }
        rep.check(
            &p(what),
            out.is_empty() && echoed,
            format!(
                "{:.2} s; content source echoed: {echoed}; {}",
                started.elapsed().as_secs_f64(),
                out.join("; ")
            ),
        );
        let _ = csi.unpublish(&vol.volume_id, &t, DL).await;
        let _ = csi.delete(&vol.volume_id, DL).await;
    }
    let _ = csi.unpublish(&src.volume_id, &t_src, DL).await;
    let _ = csi.delete(&src.volume_id, DL).await;
    let r = csi.delete_snapshot(&snap.snapshot_id, DL).await;
    rep.check(&p("delete-snapshot"), r.ok(), r.describe());
    record_deleted(env, &made);
}
