//! Normal operation: the StatefulSet story (story-*) for one StorageClass, and a StorageClass that
//! names no NFS version (default-version).

use crate::class::{Class, MI, new_name, pod_target};
use crate::csi::{Csi, DL, connect};
use crate::harness::record_deleted;
use crate::mounts::{mounted_at, read_only_at, version_shown, working_mounts};
use crate::{Env, Report};
use nfs_subdir_csi::csi::pb;
use std::path::Path;

/// The StatefulSet story for one StorageClass.
pub async fn story(env: &Env, rep: &mut Report, label: &str, class: &Class) {
    let csi = connect(&env.socket).await;
    let fresh = connect(&env.socket2).await;
    let p = |s: &str| format!("story-{label}-{s}");
    let mut vols = Vec::new();
    for i in 0..2 {
        let name = new_name("pvc");
        let pvc = format!("redis-100m-pvc-redis-pv-sts-{i}");
        let t = csi.create(class.create(&name, &pvc), DL).await;
        let detail = t.describe();
        let Some(vol) = rep.require(&p(&format!("create-sts-{i}")), t.value()) else {
            return;
        };
        rep.check(
            &p(&format!("create-sts-{i}")),
            vol.capacity_bytes == 100 * MI && class.options_in_id(&vol),
            format!("{detail}; id {}", vol.volume_id),
        );
        vols.push((name, vol));
    }
    for (i, (name, vol)) in vols.iter().enumerate() {
        if !pods(&csi, rep, &p, class, i, name, vol).await {
            return;
        }
    }

    // claims deleted: sts-0 by the driver that made it, sts-1 by a fresh controller that knows
    // nothing but the id (it must mount the export with the options given at create time)
    let before = working_mounts(Path::new("/tmp/nsc/work2")).len();
    for (i, (name, vol)) in vols.iter().enumerate() {
        let who = if i == 0 { &csi } else { &fresh };
        let r = who.delete(&vol.volume_id, DL).await;
        rep.check(&p(&format!("delete-sts-{i}")), r.ok(), r.describe());
        record_deleted(env, std::slice::from_ref(name));
    }
    let after = working_mounts(Path::new("/tmp/nsc/work2"));
    let good = after
        .iter()
        .any(|(_, fs, opts)| version_shown(&class.vers, fs, opts));
    rep.check(
        &p("delete-by-fresh-controller-uses-create-options"),
        good,
        format!("its working mounts before {before}, now {after:?}"),
    );
    let r = csi.delete(&vols[0].1.volume_id, DL).await;
    rep.check(&p("delete-again-is-ok"), r.ok(), r.describe());
}

/// The pods of StatefulSet replica `i` using volume `vol` (directory `name`): two at once (write
/// through one, read through the other), one coming back, one read-only. False if the first two
/// could not start (the story stops).
async fn pods(
    csi: &Csi,
    rep: &mut Report,
    p: &impl Fn(&str) -> String,
    class: &Class,
    i: usize,
    name: &str,
    vol: &pb::Volume,
) -> bool {
    let (a, b) = (pod_target(name), pod_target(name));
    let mut ok = true;
    for t in [&a, &b] {
        let r = csi.publish(class.publish(vol, t), DL).await;
        let shown = mounted_at(t);
        let good = r.ok()
            && shown.as_ref().is_some_and(|(fs, src, opts)| {
                version_shown(&class.vers, fs, opts) && src.ends_with(&format!("/{name}"))
            });
        ok &= rep.check(
            &p(&format!("publish-sts-{i}")),
            good,
            format!("{}; mounted {shown:?}", r.describe()),
        );
    }
    if !ok {
        return false;
    }
    let data = format!("redis aof of sts-{i} {}\n", uuid::Uuid::new_v4());
    let wrote = std::fs::write(a.join("appendonly.aof"), &data);
    let read = std::fs::read_to_string(b.join("appendonly.aof"));
    rep.check(
        &p(&format!("rwx-sts-{i}")),
        wrote.is_ok() && read.as_deref().ok() == Some(data.as_str()),
        format!("written through pod a {wrote:?}, read through pod b {read:?}"),
    );
    // the pod sees its own directory, not the share (no other volume's directory in it)
    let mut names: Vec<String> = std::fs::read_dir(&b)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    rep.check(
        &p(&format!("target-is-volume-dir-sts-{i}")),
        names == ["appendonly.aof"],
        format!("entries {names:?}"),
    );
    for t in [&a, &b] {
        let r = csi.unpublish(&vol.volume_id, t, DL).await;
        rep.check(
            &p(&format!("unpublish-sts-{i}")),
            r.ok() && mounted_at(t).is_none() && !t.exists(),
            r.describe(),
        );
    }
    // the pod comes back (on this node or another): same data
    let c = pod_target(name);
    let r = csi.publish(class.publish(vol, &c), DL).await;
    let again = std::fs::read_to_string(c.join("appendonly.aof"));
    rep.check(
        &p(&format!("republish-sees-data-sts-{i}")),
        r.ok() && again.as_deref().ok() == Some(data.as_str()),
        format!("{}; read {again:?}", r.describe()),
    );
    let r = csi.unpublish(&vol.volume_id, &c, DL).await;
    rep.check(
        &p(&format!("unpublish-again-sts-{i}")),
        r.ok(),
        r.describe(),
    );
    // a read-only pod (readonly in the PV or the pod's volume): reads, cannot write
    let ro = pod_target(name);
    let mut r_req = class.publish(vol, &ro);
    r_req.readonly = true;
    let r = csi.publish(r_req, DL).await;
    let is_ro = read_only_at(&ro);
    let read = std::fs::read_to_string(ro.join("appendonly.aof"));
    let write = std::fs::write(ro.join("x"), "x");
    rep.check(
        &p(&format!("readonly-sts-{i}")),
        r.ok()
            && is_ro
            && read.as_deref().ok() == Some(data.as_str())
            && write
                .as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EROFS)),
        format!("{}; read {read:?}; write {write:?}", r.describe()),
    );
    let r = csi.unpublish(&vol.volume_id, &ro, DL).await;
    rep.check(
        &p(&format!("unpublish-readonly-sts-{i}")),
        r.ok(),
        r.describe(),
    );
    true
}

/// A StorageClass that names no NFS version: the node tries 4.2, 4.1, 4.0, 3 like mount.nfs and
/// mounts the newest the server speaks (ganesha here: 4.2); NFSv3 gets `nolock` added.
pub async fn default_version(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::unversioned(env, &env.share, "4.2");
    let name = new_name("pvc");
    let t = csi.create(class.create(&name, "default-version"), DL).await;
    let Some(vol) = rep.require("default-version-create", t.value()) else {
        return;
    };
    let target = pod_target(&name);
    let r = csi.publish(class.publish(&vol, &target), DL).await;
    let shown = mounted_at(&target);
    rep.check(
        "default-version-mounts-4.2",
        r.ok()
            && shown
                .as_ref()
                .is_some_and(|(fs, _, o)| version_shown("4.2", fs, o)),
        format!("{}; mounted {shown:?}", r.describe()),
    );
    let r = csi.unpublish(&vol.volume_id, &target, DL).await;
    rep.check("default-version-unpublish", r.ok(), r.describe());
    let r = csi.delete(&vol.volume_id, DL).await;
    rep.check("default-version-delete", r.ok(), r.describe());
    record_deleted(env, &[name]);
}
