//! The server goes away in the middle of removing a big deleted volume (restart-mid-removal): a
//! volume holding 10,000 files in 1,000 directories (made on the host before the boot, see
//! csi-suite-guest.sh's host-prepare; CreateVolume adopts the directory) is deleted, and while the
//! driver removes its tree from the trash in the background ganesha is stopped for longer than the
//! working mount's soft timeout (a server reboot), then started. The removal must complete once the
//! server is back, on the same driver process; the host check then finds nothing left on the share.

use crate::class::{Class, dir_of};
use crate::csi::{DL, connect};
use crate::harness::{nfs_server, record_deleted};
use crate::mounts::RawMount;
use crate::{Env, Report, info};
use std::path::Path;
use std::time::{Duration, Instant};

/// The volume's name; csi-suite-guest.sh's host-prepare made its directory with the tree.
pub const TREE_VOLUME: &str = "pvc-restart-mid-removal";
/// Directories and files per directory of the tree (as host-prepare makes it).
const DIRS: usize = 1000;
/// How long the server stays down: longer than the working mount's soft timeout (timeo=50,
/// retrans=1: about 10 s), so calls of the removal fail rather than wait.
const DOWN: Duration = Duration::from_secs(15);
/// How long the removal may take once the server is back.
const WITHIN: Duration = Duration::from_secs(180);

/// Entries in the share's trash, as another client sees them (no caches).
fn trash_entries(raw: &Path) -> Result<usize, String> {
    std::fs::read_dir(raw.join(".nfs-subdir-csi/trash"))
        .map(|d| d.count())
        .map_err(|e| e.to_string())
}

pub async fn restart_mid_removal(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let raw = match RawMount::uncached(env, "4.1") {
        Ok(r) => r,
        Err(e) => {
            rep.check("restart-mid-removal-setup", false, e);
            return;
        }
    };
    let dirs = std::fs::read_dir(raw.path.join(TREE_VOLUME)).map(|d| d.count());
    if !rep.check(
        "restart-mid-removal-tree-there",
        dirs.as_ref().is_ok_and(|n| *n == DIRS),
        format!("{dirs:?} directories in {TREE_VOLUME} (want {DIRS}, each with 10 files)"),
    ) {
        return;
    }
    let t = csi
        .create(class.create(TREE_VOLUME, "restart-mid-removal"), DL)
        .await;
    let Some(vol) = rep.require("restart-mid-removal-setup", t.value()) else {
        return;
    };
    let trash_before = trash_entries(&raw.path).unwrap_or(0);
    let t0 = Instant::now();
    let del = csi.delete(&vol.volume_id, DL).await;
    if !rep.check("restart-mid-removal-delete", del.ok(), del.describe()) {
        return;
    }
    record_deleted(env, &[dir_of(&vol)]);
    // let the background removal get going, then take the server away under it
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_trash = trash_entries(&raw.path);
    let stopped = nfs_server(env, "stop").await;
    let stop_at = t0.elapsed();
    if !rep.check(
        "restart-mid-removal-stop",
        stopped.is_ok(),
        format!("{stopped:?}"),
    ) {
        return;
    }
    rep.check(
        "restart-mid-removal-was-in-the-middle",
        in_trash.as_ref().is_ok_and(|n| *n > trash_before),
        format!(
            "trash entries when the server stopped {} s after DeleteVolume: {in_trash:?} (before: {trash_before})",
            stop_at.as_secs()
        ),
    );
    tokio::time::sleep(DOWN).await;
    let started = nfs_server(env, "start").await;
    if !rep.check(
        "restart-mid-removal-start",
        started.is_ok(),
        format!("{started:?}"),
    ) {
        return;
    }
    let back = Instant::now();
    let mut left = trash_entries(&raw.path);
    while left != Ok(trash_before) && back.elapsed() < WITHIN {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = trash_entries(&raw.path);
    }
    let gone = !raw.path.join(TREE_VOLUME).exists();
    rep.check(
        "restart-mid-removal-completes-after-server-back",
        left == Ok(trash_before) && gone,
        format!(
            "trash entries {left:?} (before the delete: {trash_before}), volume dir gone: {gone}, \
             {} ms after the server came back",
            back.elapsed().as_millis()
        ),
    );
    println!(
        "MEASURE restart-mid-removal: 10,000 files in {DIRS} dirs; DeleteVolume {}; server stopped \
         {} ms after it for {} s; trash empty {} ms after the server came back ({} ms after DeleteVolume)",
        del.describe(),
        stop_at.as_millis(),
        DOWN.as_secs(),
        back.elapsed().as_millis(),
        t0.elapsed().as_millis()
    );
    // the same driver serves: a create and delete go through
    let probe = crate::class::new_name("pvc");
    let t = csi.create(class.create(&probe, "after-removal"), DL).await;
    let ok = t.ok();
    rep.check("restart-mid-removal-driver-serves", ok, t.describe());
    if let Some(Ok(v)) = t.result {
        let d = csi.delete(&v.volume_id, DL).await;
        rep.check("restart-mid-removal-driver-serves", d.ok(), d.describe());
        record_deleted(env, &[dir_of(&v)]);
    }
    info(format!(
        "restart-mid-removal took {} ms",
        t0.elapsed().as_millis()
    ));
}
