//! Stale NFS handles: a directory replaced on the server behind the controller's kept working
//! mount (working-estale) and behind a published target (node-stale-target).

use crate::class::{Class, new_name, pod_target};
use crate::csi::{DL, connect};
use crate::harness::{DROPPED_WORKING_MOUNT, count_in_log, record_deleted};
use crate::mounts::{RawMount, errno_of, mounted_at, mounts_at, working_mounts};
use crate::{Env, Report, info};
use std::path::Path;

/// The directory behind the controller's kept mount is replaced on the server: its handles go
/// stale (ESTALE); the next CreateVolume must remount and succeed.
pub async fn working_estale(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let Some(raw) = rep.require("working-estale-raw-mount", RawMount::new(env, "4.1")) else {
        return;
    };
    let dir = format!("estale-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let share_dir = raw.path.join(&dir);
    std::fs::create_dir(&share_dir).expect("mkdir share dir");
    let share = format!("{}/{dir}", env.share.trim_end_matches('/'));
    let class = Class::with_param(env, &share, "4.1");
    let work = Path::new("/tmp/nsc/work");
    let src = format!("{}:{share}", env.server);
    let mounts_of = || {
        working_mounts(work)
            .into_iter()
            .filter(|(mp, _, _)| mounted_at(mp).is_some_and(|(_, s, _)| s == src))
            .map(|(mp, _, _)| mp)
            .collect::<Vec<_>>()
    };
    let first = new_name("pvc");
    let t = csi.create(class.create(&first, "estale-0"), DL).await;
    let first_call = t.describe();
    let Some(v1) = rep.require("working-estale-first-create", t.value()) else {
        return;
    };
    let before = mounts_of();
    rep.check(
        "working-estale-first-create",
        before.len() == 1,
        format!("{first_call}; working mounts of {src}: {before:?}"),
    );
    // replace the share directory on the server: old handles now point at a removed directory
    if rep
        .require("working-estale-swap", raw.replace_dir(&dir, &[]))
        .is_none()
    {
        return;
    }
    let stale = before.first().map(|p| errno_of(p)).unwrap_or_default();
    info(format!("statfs of the old working mount now: {stale}"));
    let drops = count_in_log(env, DROPPED_WORKING_MOUNT);
    let second = new_name("pvc");
    let t = csi.create(class.create(&second, "estale-1"), DL).await;
    let after = mounts_of();
    let made = share_dir.join(&second).is_dir();
    rep.check(
        "working-estale-create-remounts",
        t.ok() && made && after.len() == 1 && after != before,
        format!(
            "{}; old mount {stale}; dir on server {made}; working mounts now {after:?}; \
             remounts logged {}",
            t.describe(),
            count_in_log(env, DROPPED_WORKING_MOUNT) - drops
        ),
    );
    // the first volume went with the old directory; deleting it is fine (already gone)
    let r = csi.delete(&v1.volume_id, DL).await;
    rep.check("working-estale-delete-vanished", r.ok(), r.describe());
    if let Some(Ok(v2)) = &t.result {
        let r = csi.delete(&v2.volume_id, DL).await;
        rep.check("working-estale-delete", r.ok(), r.describe());
    }
}

/// A published target whose directory was replaced on the server (ESTALE): NodeGetVolumeStats
/// answers in time with an abnormal condition; NodePublish at the same target detaches it and
/// mounts again, after which the condition is normal.
pub async fn node_stale_target(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let name = new_name("pvc");
    let t = csi.create(class.create(&name, "stale-target"), DL).await;
    let Some(vol) = rep.require("node-stale-create", t.value()) else {
        return;
    };
    let target = pod_target(&name);
    let r = csi.publish(class.publish(&vol, &target), DL).await;
    if !rep.check("node-stale-publish", r.ok(), r.describe()) {
        return;
    }
    std::fs::write(target.join("file"), "old").expect("write");
    let Some(raw) = rep.require("node-stale-raw-mount", RawMount::new(env, "4.1")) else {
        return;
    };
    let swapped = raw.replace_dir(&name, &[("file", "new")]);
    if rep.require("node-stale-swap", swapped).is_none() {
        return;
    }
    let before = errno_of(&target);
    rep.check(
        "node-stale-target-is-stale",
        before.contains("ESTALE"),
        format!("statfs of the target: {before}"),
    );
    // kubelet's volume health check on the stale target: an answer in time, condition abnormal
    let stats = csi.stats(&vol.volume_id, &target, DL).await;
    let condition = match &stats.result {
        Some(Ok(s)) => s.volume_condition.clone(),
        _ => None,
    };
    rep.check(
        "node-stale-stats-abnormal",
        stats.ok() && stats.took < DL && condition.as_ref().is_some_and(|c| c.abnormal),
        format!("{}; condition {condition:?}", stats.describe()),
    );
    let r = csi.publish(class.publish(&vol, &target), DL).await;
    let read = std::fs::read_to_string(target.join("file"));
    rep.check(
        "node-stale-republish-remounts",
        r.ok() && read.as_deref().ok() == Some("new"),
        format!("{}; target now reads {read:?}", r.describe()),
    );
    let stats = csi.stats(&vol.volume_id, &target, DL).await;
    let normal = match &stats.result {
        Some(Ok(s)) => s.volume_condition.as_ref().is_some_and(|c| !c.abnormal),
        _ => false,
    };
    rep.check(
        "node-stale-stats-normal-after-remount",
        normal,
        stats.describe(),
    );
    let stacked = mounts_at(&target);
    rep.check(
        "node-stale-one-mount-at-target",
        stacked == 1,
        format!("{stacked} mounts"),
    );
    let r = csi.unpublish(&vol.volume_id, &target, DL).await;
    rep.check(
        "node-stale-unpublish",
        r.ok() && !target.exists(),
        r.describe(),
    );
    let r = csi.delete(&vol.volume_id, DL).await;
    rep.check("node-stale-delete", r.ok(), r.describe());
    record_deleted(env, &[name]);
}
