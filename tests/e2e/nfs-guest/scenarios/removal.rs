//! The server goes away in the middle of removing a big deleted volume (restart-mid-removal): a
//! volume holding 10,000 files in 1,000 directories (NSC_REMOVAL_DIRS directories of 10; made on
//! the host before the boot, see csi-suite-guest.sh's host-prepare; CreateVolume adopts it) is
//! deleted, and while the driver removes its tree from the trash in the background ganesha is
//! stopped for longer than the working mount's soft timeout (a server reboot), then started. The
//! removal must complete once the server is back, on the same driver process; the host check then
//! finds nothing left on the share.

use crate::class::{Class, dir_of};
use crate::csi::{DL, connect};
use crate::harness::{nfs_server, record_deleted};
use crate::mounts::RawMount;
use crate::{Env, Report, info};
use std::path::Path;
use std::time::{Duration, Instant};

/// The volume's name; csi-suite-guest.sh's host-prepare made its directory with the tree.
pub const TREE_VOLUME: &str = "pvc-restart-mid-removal";
/// Directories of 10 files in the tree (as host-prepare makes it): NSC_REMOVAL_DIRS, else 1,000.
fn tree_dirs() -> usize {
    std::env::var("NSC_REMOVAL_DIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
/// How long the server stays down: longer than the working mount's soft timeout (timeo=50,
/// retrans=1: about 10 s), so calls of the removal fail rather than wait.
const DOWN: Duration = Duration::from_secs(15);
/// The removal fails if the tree stops shrinking for this long once the server is back (a slow
/// machine is not a failure, a removal that gave up is).
const STALLED: Duration = Duration::from_secs(60);
/// And it may take this long in all.
const WITHIN: Duration = Duration::from_secs(420);

/// Entries in the share's trash, as another client sees them (no caches).
fn trash_entries(raw: &Path) -> Result<Vec<String>, String> {
    std::fs::read_dir(raw.join(".nfs-subdir-csi/trash"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// Directories of the tree still there (the removal goes one directory after another).
fn dirs_left(raw: &Path, entry: &str) -> usize {
    std::fs::read_dir(raw.join(".nfs-subdir-csi/trash").join(entry)).map_or(0, |d| d.count())
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
    let want = tree_dirs();
    let dirs = std::fs::read_dir(raw.path.join(TREE_VOLUME)).map(|d| d.count());
    if !rep.check(
        "restart-mid-removal-tree-there",
        dirs.as_ref().is_ok_and(|n| *n == want),
        format!("{dirs:?} directories in {TREE_VOLUME} (want {want}, each with 10 files)"),
    ) {
        return;
    }
    let t = csi
        .create(class.create(TREE_VOLUME, "restart-mid-removal"), DL)
        .await;
    let Some(vol) = rep.require("restart-mid-removal-setup", t.value()) else {
        return;
    };
    let before = trash_entries(&raw.path).unwrap_or_default();
    let t0 = Instant::now();
    let del = csi.delete(&vol.volume_id, DL).await;
    if !rep.check("restart-mid-removal-delete", del.ok(), del.describe()) {
        return;
    }
    record_deleted(env, &[dir_of(&vol)]);
    // let the background removal get going, then take the server away under it
    tokio::time::sleep(Duration::from_secs(2)).await;
    let entry = trash_entries(&raw.path)
        .unwrap_or_default()
        .into_iter()
        .find(|e| !before.contains(e));
    let left_at_stop = entry.as_deref().map_or(0, |e| dirs_left(&raw.path, e));
    let stopped = nfs_server(env, "stop").await;
    let stop_at = t0.elapsed();
    if !rep.check(
        "restart-mid-removal-stop",
        stopped.is_ok(),
        format!("{stopped:?}"),
    ) {
        return;
    }
    let Some(entry) = entry else {
        rep.check(
            "restart-mid-removal-was-in-the-middle",
            false,
            "no new trash entry: removed already?",
        );
        return;
    };
    rep.check(
        "restart-mid-removal-was-in-the-middle",
        left_at_stop > 0,
        format!(
            "{left_at_stop} of {want} directories left when the server stopped {} ms after DeleteVolume",
            stop_at.as_millis()
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
    let (mut last, mut moved) = (dirs_left(&raw.path, &entry), Instant::now());
    let left_at_start = last;
    let mut there = trash_entries(&raw.path).map(|t| t.contains(&entry));
    while there != Ok(false) && moved.elapsed() < STALLED && back.elapsed() < WITHIN {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = dirs_left(&raw.path, &entry);
        if now != last {
            (last, moved) = (now, Instant::now());
        }
        there = trash_entries(&raw.path).map(|t| t.contains(&entry));
    }
    let gone = !raw.path.join(TREE_VOLUME).exists();
    let took = back.elapsed();
    rep.check(
        "restart-mid-removal-completes-after-server-back",
        there == Ok(false) && gone,
        format!(
            "trash entry still there: {there:?} ({last} directories left; no progress for {} ms), \
             volume dir gone: {gone}, {} ms after the server came back",
            moved.elapsed().as_millis(),
            took.as_millis()
        ),
    );
    let rate = |dirs: usize, d: Duration| dirs as f64 * 10.0 / d.as_secs_f64().max(0.001);
    println!(
        "MEASURE restart-mid-removal: {} files in {want} dirs; DeleteVolume {}; {} dirs left when the \
         server stopped {} ms after it ({:.0} files/s before), down {} s; {left_at_start} dirs left when \
         it came back; trash empty {} ms later ({:.0} files/s after)",
        want * 10,
        del.describe(),
        left_at_stop,
        stop_at.as_millis(),
        rate(want - left_at_stop, stop_at),
        DOWN.as_secs(),
        took.as_millis(),
        rate(left_at_start, took)
    );
    // the same driver serves: a create and delete go through
    let probe = crate::class::new_name("pvc");
    let t = csi.create(class.create(&probe, "after-removal"), DL).await;
    rep.check("restart-mid-removal-driver-serves", t.ok(), t.describe());
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
