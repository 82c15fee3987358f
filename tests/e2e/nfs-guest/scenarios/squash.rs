//! Squashing exports (tests/e2e/nfs-guest/fault-exports.sh) with the data a Redis pod writes: uid
//! 999, files 0644 in 0755 directories. Root_Squash (export-squash): what create and delete do, a
//! visible trash backlog (log + metric) that drains once the export stops squashing root.
//! All_Squash with Anonymous_Uid = 999 (export-anon): the delete succeeds by itself.

use crate::class::{Class, dir_of, new_name, pod_target};
use crate::csi::{DL, connect};
use crate::fault_driver::{FaultDriver, REDIS_WRITES, as_uid_999, names, wait_for};
use crate::harness::nfs_server;
use crate::mounts::RawMount;
use crate::{Env, Report, info};
use nfs_subdir_csi::csi::pb;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;
use tonic::Code;

const STATE: &str = ".nfs-subdir-csi";
const ENTRIES: &str = "nfs_subdir_csi_trash_entries";
const FAILURES: &str = "nfs_subdir_csi_trash_removal_failures_total";
const NOT_REMOVED: &str = "trash entry not removed";

/// A volume made on `class`, published, filled by "Redis" (uid 999), unpublished. Returns it with
/// the uid owning its directory on the server.
async fn redis_volume(
    csi: &crate::csi::Csi,
    rep: &mut Report,
    class: &Class,
    raw: &RawMount,
    p: &str,
) -> Option<(pb::Volume, u32)> {
    let t = csi
        .create(class.create(&new_name("pvc"), "redis-data-redis-0"), DL)
        .await;
    let ok = t.ok();
    let desc = t.describe();
    let v = t.value().ok();
    let owner = v
        .as_ref()
        .and_then(|v| std::fs::metadata(raw.path.join(dir_of(v))).ok())
        .map(|m| m.uid());
    rep.check(
        &format!("{p}-create-works"),
        ok,
        format!("{desc}; directory owner uid {owner:?}"),
    );
    let v = v?;
    let target = pod_target(&dir_of(&v));
    let r = csi.publish(class.publish(&v, &target), DL).await;
    rep.require(&format!("{p}-publish"), r.value())?;
    // the pod: uid 999 writes its files; root in the pod (squashed by the server) one more
    let wrote = as_uid_999(&target, REDIS_WRITES)
        .and_then(|()| std::fs::write(target.join("by-root"), "x").map_err(|e| e.to_string()));
    rep.require(&format!("{p}-pod-writes"), wrote)?;
    let r = csi.unpublish(&v.volume_id, &target, DL).await;
    rep.require(&format!("{p}-unpublish"), r.value())?;
    Some((v, owner.unwrap_or(u32::MAX)))
}

/// Root_Squash: create on a share root the anonymous user cannot write is refused with the fix
/// named; on a writable one it works; the delete answers at once but the tree (uid 999's) cannot
/// be removed by the squashed root: a visible backlog that drains once the export is fixed.
pub async fn export_squash(env: &Env, rep: &mut Report) {
    let Some(drv) = rep.require(
        "squash-driver",
        FaultDriver::start(env, "squash", 9813).await,
    ) else {
        return;
    };
    let csi = connect(&drv.socket).await;
    let locked = Class::with_flags(env, "/export-squash/locked", "4.1");
    let t = csi
        .create(locked.create(&new_name("pvc"), "squash-locked"), DL)
        .await;
    let refused = matches!(&t.result, Some(Err(s)) if s.code() == Code::PermissionDenied
        && s.message().contains("no_root_squash"));
    rep.check("squash-create-refused-names-fix", refused, t.describe());

    let class = Class::with_flags(env, "/export-squash", "4.1");
    let Some(raw) = rep.require(
        "squash-raw-mount",
        RawMount::export(env, "/export-squash", "4.1"),
    ) else {
        return;
    };
    let Some((v, owner)) = redis_volume(&csi, rep, &class, &raw, "squash").await else {
        return;
    };
    let failures = drv.metric(FAILURES, "").unwrap_or(0.0);
    let r = csi.delete(&v.volume_id, DL).await;
    rep.check("squash-delete-answers", r.ok(), r.describe());
    let trash = raw.path.join(STATE).join("trash");
    let seen = wait_for(Duration::from_secs(15), || {
        drv.metric(FAILURES, "").unwrap_or(0.0) > failures
    })
    .await;
    let (entries, refused_by) = (
        drv.metric(ENTRIES, "").unwrap_or(0.0),
        ["EPERM", "EACCES"].map(|e| drv.metric(FAILURES, e).unwrap_or(0.0)),
    );
    let log = std::fs::read_to_string(&drv.log).unwrap_or_default();
    let hinted = log
        .lines()
        .any(|l| l.contains(NOT_REMOVED) && l.contains("no_root_squash"));
    let backlog = names(&trash);
    rep.check(
        "squash-trash-backlog-visible",
        seen.is_some() && entries >= 1.0 && hinted && backlog.len() == 1,
        format!(
            "{ENTRIES} {entries}, {FAILURES} EPERM/EACCES {refused_by:?}, log names the fix: \
             {hinted}, trash {backlog:?}"
        ),
    );
    let kept = backlog
        .first()
        .map(|b| names(&trash.join(b)))
        .unwrap_or_default();
    info(format!("what the squashed root could not remove: {kept:?}"));

    // the admin's fix: the export stops squashing root; the backlog drains without a restart
    let fixed = nfs_server(env, "squash-off").await;
    if !rep.check("squash-off", fixed.is_ok(), format!("{fixed:?}")) {
        return;
    }
    let drained = wait_for(Duration::from_secs(60), || {
        drv.metric(ENTRIES, "") == Some(0.0) && names(&trash).is_empty()
    })
    .await;
    rep.check(
        "squash-backlog-drains-after-fix",
        drained.is_some(),
        format!(
            "after {drained:?}; {ENTRIES} {:?}; trash {:?}; attempts that failed {}",
            drv.metric(ENTRIES, ""),
            names(&trash),
            drv.count(NOT_REMOVED)
        ),
    );
    let root = names(&raw.path);
    rep.check(
        "squash-nothing-leaked",
        root == [STATE, "locked"] && names(&raw.path.join("locked")).is_empty(),
        format!("export root {root:?}"),
    );
    println!(
        "MEASURE export-squash: create on a 0755 root-owned share: {}; on a 0777 share: OK, \
         directory owned by uid {owner}; DeleteVolume {}; removal refused {} time(s) ({refused_by:?} \
         EPERM/EACCES) until Root_Squash was lifted, drained {drained:?} after",
        t.describe(),
        r.describe(),
        drv.count(NOT_REMOVED)
    );
}

/// All_Squash with Anonymous_Uid = 999: the driver acts as the pod's user, so create and delete
/// both work and the trash drains by itself.
pub async fn export_anon(env: &Env, rep: &mut Report) {
    let Some(drv) = rep.require("anon-driver", FaultDriver::start(env, "anon", 9814).await) else {
        return;
    };
    let csi = connect(&drv.socket).await;
    let class = Class::with_flags(env, "/export-anon", "4.1");
    let Some(raw) = rep.require(
        "anon-raw-mount",
        RawMount::export(env, "/export-anon", "4.1"),
    ) else {
        return;
    };
    let Some((v, owner)) = redis_volume(&csi, rep, &class, &raw, "anon").await else {
        return;
    };
    rep.check(
        "anon-directory-owned-by-999",
        owner == 999,
        format!("uid {owner}"),
    );
    let r = csi.delete(&v.volume_id, DL).await;
    let state = raw.path.join(STATE);
    let drained = wait_for(Duration::from_secs(30), || {
        names(&state.join("trash")).is_empty() && drv.metric(ENTRIES, "") == Some(0.0)
    })
    .await;
    let failed = drv.count(NOT_REMOVED);
    rep.check(
        "anon-delete-removes-the-tree",
        r.ok() && drained.is_some() && failed == 0,
        format!(
            "{}; trash empty after {drained:?}; failed removals {failed}",
            r.describe()
        ),
    );
    let root = names(&raw.path);
    rep.check(
        "anon-nothing-leaked",
        root == [STATE] && names(&state.join("volumes")).is_empty(),
        format!("export root {root:?}"),
    );
}
