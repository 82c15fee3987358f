//! quota-*: enforced capacity with project quotas, against the kernel NFS server in the guest
//! (quota-guest.sh exports an XFS `prjquota` and an ext4 `-O quota,project` loop filesystem and a
//! tmpfs without quotas at 127.0.0.1, and starts a driver with `--export-path` for each). Per
//! filesystem: a 100Mi volume with `quota: enforce` gets a project and a 100Mi limit; through the
//! node's NFS mount df shows ~100Mi, 90 MiB are written, 20 MiB more are refused (XFS: for root
//! and uid 1000; ext4: for uid 1000, root is not limited); NodeGetVolumeStats calls it full;
//! expanding to 200Mi raises the limit and the write goes through; delete clears the limit and the
//! id's claim. Also: `enforce` where there are no project quotas is FAILED_PRECONDITION and
//! touches nothing; ListVolumes and ControllerGetVolume report the project limit, GetCapacity the
//! free space; a driver that dies between a directory and its quota is retried to the quota
//! (quota_crash.rs). Once through nfs-ganesha on the same XFS.
//! Environment: NSC_QUOTA_SOCKET, NSC_QUOTA_ROOT (the exported tmpfs: xfs/, ext4/, plain/),
//! NSC_QUOTA_SERVER, NSC_DRIVER (for the killed driver).

use crate::class::{Class, MI, dir_of, new_name, pod_target};
use crate::csi::{Csi, DL, connect};
use crate::{Env, Report, info};
use nfs_subdir_csi::csi::pb;
use nfs_subdir_csi::quota::{project, sys};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tonic::Code;

pub struct Setup {
    socket: PathBuf,
    pub root: PathBuf,
    pub server: String,
    pub driver: String,
}

pub fn class(q: &Setup, fs: &str, mode: &str) -> Class {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    Class {
        params: vec![
            pair("server", &q.server),
            pair("share", &format!("/{fs}")),
            pair("quota", mode),
        ],
        flags: vec!["nfsvers=4.1".into()],
        vers: "4.1".into(),
    }
}

/// `dd` of `mib` MiB of zeros to `path` (fsync'd), as root or as `uid`: Ok, or dd's last words.
fn dd(path: &Path, mib: u32, uid: Option<u32>) -> Result<(), String> {
    let mut c = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "dd",
            ]);
            c
        }
        None => Command::new("dd"),
    };
    c.args(["if=/dev/zero", "bs=1M", "conv=fsync"])
        .arg(format!("of={}", path.display()))
        .arg(format!("count={mib}"));
    let out = c.output().map_err(|e| format!("dd: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .lines()
        .find(|l| l.contains("dd:"))
        .unwrap_or("")
        .to_owned())
}

/// The project id and inherit flag of a directory, and its project's limit in bytes.
pub fn project_of(fs_root: &Path, dir: &Path) -> Result<(u32, bool, u64), String> {
    let d = std::fs::File::open(dir).map_err(|e| format!("open {}: {e}", dir.display()))?;
    let (id, inherit) = sys::project_of(&d).map_err(|e| format!("FSGETXATTR: {e}"))?;
    let fs = std::fs::File::open(fs_root).map_err(|e| e.to_string())?;
    let usage = sys::get(&fs, id).map_err(|e| format!("Q_GETQUOTA: {e}"))?;
    Ok((id, inherit, usage.limit_bytes))
}

fn df_total(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0)
}

fn near(bytes: u64, mib: u64) -> bool {
    bytes <= mib << 20 && bytes + (4 << 20) >= mib << 20
}

pub async fn quota(env: &Env, rep: &mut Report) {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("NSC_QUOTA_SOCKET").is_empty() {
        println!("SKIP quota: NSC_QUOTA_SOCKET is not set (quota-guest.sh setup failed above)");
        return;
    }
    let q = Setup {
        socket: var("NSC_QUOTA_SOCKET").into(),
        root: var("NSC_QUOTA_ROOT").into(),
        server: var("NSC_QUOTA_SERVER"),
        driver: var("NSC_DRIVER"),
    };
    let csi = connect(&q.socket).await;
    refusals(env, &q, &csi, rep).await;
    for fs in ["ext4", "xfs"] {
        on_fs(&q, &csi, rep, fs).await;
    }
    crate::quota_crash::crashed_driver(&q, &csi, rep).await;
    ganesha(&q, &csi, rep).await;
    let claims = q.root.join("xfs/.nfs-subdir-csi/projects");
    let left: Vec<_> = std::fs::read_dir(&claims)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    info(format!("project claims left on xfs: {left:?}"));
}

/// `enforce` without project quotas: refused before anything is made.
async fn refusals(env: &Env, q: &Setup, csi: &Csi, rep: &mut Report) {
    let name = new_name("pvc");
    let t = csi
        .create(class(q, "plain", "enforce").create(&name, "q"), DL)
        .await;
    let msg = t.describe();
    let made = q.root.join("plain").join(&name).exists();
    rep.check(
        "quota-enforce-without-prjquota-refused",
        matches!(&t.result, Some(Err(s)) if s.code() == Code::FailedPrecondition && s.message().contains("prjquota"))
            && !made,
        format!("{msg}; directory made: {made}"),
    );
    let mut ganesha = Class::with_flags(env, &env.share, "4.1");
    ganesha.params.push(("quota".into(), "enforce".into()));
    let t = csi.create(ganesha.create(&new_name("pvc"), "q"), DL).await;
    rep.check(
        "quota-enforce-without-export-path-refused",
        matches!(&t.result, Some(Err(s)) if s.code() == Code::FailedPrecondition && s.message().contains("--export-path")),
        t.describe(),
    );
}

async fn on_fs(q: &Setup, csi: &Csi, rep: &mut Report, fs: &str) {
    let p = |s: &str| format!("quota-{fs}-{s}");
    let class = class(q, fs, "enforce");
    let name = new_name("pvc");
    let t = csi.create(class.create(&name, "quota-data"), DL).await;
    let Some(vol) = rep.require(&p("create-100Mi"), t.value()) else {
        return;
    };
    let local = q.root.join(fs);
    let dir = local.join(dir_of(&vol));
    let Some((id, inherit, limit)) = rep.require(&p("project-read"), project_of(&local, &dir))
    else {
        return;
    };
    rep.check(
        &p("project-and-limit-set"),
        id >= project::FIRST_ID && inherit && limit == 100 * MI as u64,
        format!("project {id}, inherit {inherit}, limit {limit}"),
    );
    let target = pod_target(&name);
    let t = csi.publish(class.publish(&vol, &target), DL).await;
    if rep.require(&p("publish"), t.value()).is_none() {
        return;
    }
    let total = df_total(&target);
    info(format!("df {fs} after create: total {} MiB", total >> 20));
    rep.check(
        &p("df-shows-100Mi"),
        near(total, 100),
        format!("{total} bytes"),
    );
    let t0 = Instant::now();
    let r = dd(&target.join("a"), 90, None);
    let ms = t0.elapsed().as_millis();
    rep.check(&p("write-90MiB"), r.is_ok(), format!("{r:?} in {ms} ms"));
    let as_user = dd(&target.join("u"), 20, Some(1000));
    info(format!("{fs}: 20 MiB more as uid 1000: {as_user:?}"));
    let want = if fs == "xfs" {
        "No space left on device"
    } else {
        "Disk quota exceeded"
    };
    rep.check(
        &p("over-limit-refused-uid1000"),
        as_user.as_ref().is_err_and(|e| e.contains(want)),
        format!("{as_user:?}"),
    );
    let stats = csi.stats(&vol.volume_id, &target, DL).await;
    let cond = stats
        .result
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .and_then(|s| s.volume_condition.clone())
        .unwrap_or_default();
    rep.check(
        &p("stats-condition-full"),
        cond.abnormal && cond.message.contains("full"),
        cond.message,
    );
    let _ = std::fs::remove_file(target.join("u"));
    let as_root = dd(&target.join("r"), 20, None);
    info(format!("{fs}: 20 MiB more as root: {as_root:?}"));
    if fs == "xfs" {
        rep.check(
            &p("over-limit-refused-root"),
            as_root.as_ref().is_err_and(|e| e.contains(want)),
            format!("{as_root:?}"),
        );
    }
    let _ = std::fs::remove_file(target.join("r"));
    let t = csi.expand(&vol.volume_id, 200 * MI, DL).await;
    let grown = t
        .result
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .map(|r| (r.capacity_bytes, r.node_expansion_required));
    rep.check(
        &p("expand-200Mi"),
        grown == Some((200 * MI, false)),
        t.describe(),
    );
    let limit = project_of(&local, &dir).map(|(_, _, l)| l);
    rep.check(
        &p("limit-raised"),
        limit == Ok(200 * MI as u64),
        format!("{limit:?}"),
    );
    reported_capacity(q, csi, rep, fs, &vol.volume_id, &local, id).await;
    let total = df_total(&target);
    info(format!("df {fs} after expand: total {} MiB", total >> 20));
    rep.check(
        &p("df-shows-200Mi"),
        near(total, 200),
        format!("{total} bytes"),
    );
    let r = dd(&target.join("u2"), 20, Some(1000));
    rep.check(&p("write-after-expand"), r.is_ok(), format!("{r:?}"));
    let t = csi.unpublish(&vol.volume_id, &target, DL).await;
    rep.check(&p("unpublish"), t.ok(), t.describe());
    let t = csi.delete(&vol.volume_id, DL).await;
    rep.check(&p("delete"), t.ok(), t.describe());
    let fs_root = std::fs::File::open(&local).expect("open fs root");
    let after = sys::get(&fs_root, id).map(|u| u.limit_bytes);
    let claim = local.join(format!(".nfs-subdir-csi/projects/{id}"));
    rep.check(
        &p("delete-clears-limit-and-claim"),
        after == Ok(0) && claim.symlink_metadata().is_err(),
        format!(
            "limit {after:?}, claim left: {}",
            claim.symlink_metadata().is_ok()
        ),
    );
}

/// What the controller reports: ListVolumes and ControllerGetVolume give the volume's project
/// limit as its capacity (the expanded 200Mi, then a limit an administrator set to 210Mi
/// behind the driver's back, then back to 200Mi); GetCapacity gives the filesystem's free space.
async fn reported_capacity(
    q: &Setup,
    csi: &Csi,
    rep: &mut Report,
    fs: &str,
    vol: &str,
    local: &Path,
    id: u32,
) {
    let p = |s: &str| format!("quota-{fs}-{s}");
    let seen = async || {
        let listed = csi.list(DL).await.value().ok().and_then(|l| {
            let e = l.entries.into_iter().filter_map(|e| e.volume);
            e.into_iter()
                .find(|v| v.volume_id == vol)
                .map(|v| v.capacity_bytes)
        });
        let got = csi.get_volume(vol, DL).await.value().ok();
        (listed, got.and_then(|g| g.volume).map(|v| v.capacity_bytes))
    };
    let now = seen().await;
    rep.check(
        &p("list-and-get-show-expanded"),
        now == (Some(200 * MI), Some(200 * MI)),
        format!("ListVolumes, ControllerGetVolume: {now:?}"),
    );
    let fs_root = std::fs::File::open(local).expect("open fs root");
    let set = sys::set_limit(&fs_root, id, 210 * MI as u64);
    let now = seen().await;
    rep.check(
        &p("list-and-get-follow-the-limit"),
        set.is_ok() && now == (Some(210 * MI), Some(210 * MI)),
        format!("limit set to 210Mi: {set:?}; ListVolumes, ControllerGetVolume: {now:?}"),
    );
    let _ = sys::set_limit(&fs_root, id, 200 * MI as u64);
    let r = class(q, fs, "enforce").create("capacity", "capacity");
    let req = pb::GetCapacityRequest {
        volume_capabilities: r.volume_capabilities,
        parameters: r.parameters,
        accessible_topology: None,
    };
    let t = csi.capacity(req, DL).await;
    let free = nix::sys::statvfs::statvfs(local)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0);
    let got = t.result.as_ref().and_then(|r| r.as_ref().ok());
    let got = got.map(|c| c.available_capacity as u64).unwrap_or(0);
    rep.check(
        &p("get-capacity-is-free-space"),
        got > 0 && got.abs_diff(free) <= 8 << 20,
        format!("GetCapacity {got}, statvfs of the filesystem: {free} available"),
    );
}

/// nfs-ganesha serving the same XFS filesystem (quota-guest.sh): a 20Mi volume through it takes
/// 15 MiB and refuses 10 MiB more (ganesha writes through the filesystem as a process). Its df
/// shows the whole export (printed, not checked).
async fn ganesha(q: &Setup, csi: &Csi, rep: &mut Report) {
    let port = std::env::var("NSC_QUOTA_GANESHA_PORT").unwrap_or_default();
    if port.is_empty() {
        println!("SKIP quota-ganesha: ganesha in the guest did not start (see the FAIL above)");
        return;
    }
    let mut class = class(q, "gxfs", "enforce");
    class.flags.push(format!("port={port}"));
    let name = new_name("pvc");
    let mut req = class.create(&name, "g");
    req.capacity_range = Some(pb::CapacityRange {
        required_bytes: 20 * MI,
        limit_bytes: 0,
    });
    let t = csi.create(req, DL).await;
    let Some(vol) = rep.require("quota-ganesha-create-20Mi", t.value()) else {
        return;
    };
    let local = q.root.join("xfs");
    let limit = project_of(&local, &local.join(dir_of(&vol))).map(|p| p.2);
    rep.check(
        "quota-ganesha-limit-set",
        limit == Ok(20 * MI as u64),
        format!("{limit:?}"),
    );
    let target = pod_target(&name);
    let t = csi.publish(class.publish(&vol, &target), DL).await;
    if rep.require("quota-ganesha-publish", t.value()).is_none() {
        return;
    }
    let total = df_total(&target);
    // ganesha answers statfs for the export, not the directory's project (README says so)
    info(format!("df via ganesha: total {} MiB", total >> 20));
    let r = dd(&target.join("a"), 15, None);
    rep.check("quota-ganesha-write-15MiB", r.is_ok(), format!("{r:?}"));
    let over = dd(&target.join("b"), 10, None);
    info(format!("ganesha: 10 MiB more as root: {over:?}"));
    rep.check(
        "quota-ganesha-over-limit-refused",
        over.as_ref()
            .is_err_and(|e| e.contains("No space") || e.contains("quota")),
        format!("{over:?}"),
    );
    let t = csi.unpublish(&vol.volume_id, &target, DL).await;
    rep.check("quota-ganesha-unpublish", t.ok(), t.describe());
    let t = csi.delete(&vol.volume_id, DL).await;
    rep.check("quota-ganesha-delete", t.ok(), t.describe());
}
