//! Faults that come from the export (tests/e2e/nfs-guest/fault-exports.sh): a full filesystem
//! behind the export (export-full) and a read-only export (export-ro). Each runs on a driver of
//! its own (fault_driver.rs) and ends with a "nothing lost / nothing leaked" look at the export.

use crate::class::{Class, MI, new_name, pod_target};
use crate::csi::{Csi, DL, connect, until_ok};
use crate::fault_driver::{FaultDriver, names, nfs_calls, wait_for};
use crate::mounts::RawMount;
use crate::{Env, Report, info};
use nfs_subdir_csi::csi::pb;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;

const STATE: &str = ".nfs-subdir-csi";

/// The call failed with `code` (and its message names `hint`).
fn failed_with<T>(t: &crate::csi::Timed<T>, code: Code, hint: &str) -> bool {
    matches!(&t.result, Some(Err(s)) if s.code() == code && s.message().contains(hint))
}

fn free_bytes(p: &Path) -> u64 {
    nix::sys::statvfs::statvfs(p)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}

/// Writes 1 MiB chunks to `file` until the filesystem refuses (each chunk synced, so ENOSPC shows
/// at once); returns the bytes that stuck.
fn fill_bytes(file: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::create(file) else {
        return 0;
    };
    let chunk = vec![0x5a_u8; MI as usize];
    let mut n = 0;
    while n < 64 * MI as u64 && f.write_all(&chunk).is_ok() && f.sync_data().is_ok() {
        n += MI as u64;
    }
    n
}

async fn snapshot_ready(csi: &Csi, name: &str, src: &str) -> Result<pb::Snapshot, String> {
    let (s, tries) = until_ok(Duration::from_secs(60), || async {
        let mut t = csi
            .create_snapshot(name, src, Duration::from_secs(30))
            .await;
        if matches!(&t.result, Some(Ok(s)) if !s.ready_to_use) {
            t.result = Some(Err(tonic::Status::unavailable("not ready yet")));
        }
        t
    })
    .await;
    s.ok_or_else(|| format!("{tries:?}"))
}

fn restore_req(class: &Class, name: &str, snap: &str) -> pb::CreateVolumeRequest {
    let mut req = class.create(name, "full-restore");
    req.volume_content_source = Some(pb::VolumeContentSource {
        r#type: Some(pb::volume_content_source::Type::Snapshot(
            pb::volume_content_source::SnapshotSource {
                snapshot_id: snap.into(),
            },
        )),
    });
    req
}

/// A full filesystem behind the export: CreateVolume, CreateSnapshot and a restore answer
/// RESOURCE_EXHAUSTED and leave nothing behind; DeleteVolume still works and frees the space;
/// then all three work again.
pub async fn export_full(env: &Env, rep: &mut Report) {
    let Some(drv) = rep.require("full-driver", FaultDriver::start(env, "full", 9811).await) else {
        return;
    };
    let csi = connect(&drv.socket).await;
    let class = Class::with_flags(env, "/export-full", "4.1");
    let Some(raw) = rep.require(
        "full-raw-mount",
        RawMount::export(env, "/export-full", "4.1"),
    ) else {
        return;
    };
    let mut made = Vec::new();
    for what in ["full-a", "full-b"] {
        let t = csi.create(class.create(&new_name("pvc"), what), DL).await;
        let Some(v) = rep.require("full-setup", t.value()) else {
            return;
        };
        let target = pod_target(what);
        let r = csi.publish(class.publish(&v, &target), DL).await;
        if rep.require("full-setup", r.value()).is_none() {
            return;
        }
        made.push((v, target));
    }
    let ((a, ta), (b, tb)) = (made[0].clone(), made[1].clone());
    let data: Vec<u8> = (0..3 * MI).map(|i| (i % 251) as u8).collect();
    std::fs::write(ta.join("a.bin"), &data).expect("write a.bin");
    let Some(s1) = rep.require(
        "full-setup-snapshot",
        snapshot_ready(&csi, &new_name("snap"), &a.volume_id).await,
    ) else {
        return;
    };
    // fill the filesystem: data first, then every inode
    let free_before = free_bytes(&raw.path);
    let filled = fill_bytes(&tb.join("fill"));
    let mut files = 0;
    while files < 512 && std::fs::File::create(tb.join(format!("i{files}"))).is_ok() {
        files += 1;
    }
    info(format!(
        "filled /export-full: {free_before} bytes free before, {filled} written, {files} empty \
         files, {} bytes free now",
        free_bytes(&raw.path)
    ));

    let (c_name, d_name) = (new_name("pvc"), new_name("pvc"));
    let c = csi.create(class.create(&c_name, "full-c"), DL).await;
    let s2_name = new_name("snap");
    let s2 = csi.create_snapshot(&s2_name, &a.volume_id, DL).await;
    let d = csi
        .create(restore_req(&class, &d_name, &s1.snapshot_id), DL)
        .await;
    let refused = [c.describe(), s2.describe(), d.describe()];
    for (name, t) in [
        "full-create-resource-exhausted",
        "full-snapshot-resource-exhausted",
        "full-restore-resource-exhausted",
    ]
    .iter()
    .zip(&refused)
    {
        rep.check(name, t.starts_with("ResourceExhausted"), t);
    }
    // one inode back: mkdir gets it, the volume's record finds none; the directory must go again
    let _ = std::fs::remove_file(tb.join("i0"));
    let one = csi.create(class.create(&c_name, "full-c"), DL).await;
    let dir_left = raw.path.join(&c_name).exists();
    let recorded = names(&raw.path.join(STATE).join("volumes")).contains(&c_name);
    // Either refused with nothing left, or (if the filesystem had room for both inodes after
    // all) a whole volume: directory and record.
    rep.check(
        "full-one-inode-left-no-half-volume",
        (failed_with(&one, Code::ResourceExhausted, "") && !dir_left && !recorded)
            || (one.ok() && dir_left && recorded),
        format!(
            "{}; directory left: {dir_left}; record: {recorded}",
            one.describe()
        ),
    );
    if one.ok() {
        info("one free inode was enough for the directory and its record: a whole volume");
    }
    let state = raw.path.join(STATE);
    let tmp: Vec<String> = ["snapshots", "restore"]
        .iter()
        .flat_map(|a| names(&state.join(a)))
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    let records = names(&state.join("volumes"));
    let mut want = vec![crate::class::dir_of(&a), crate::class::dir_of(&b)];
    want.sort();
    if one.ok() {
        want.push(c_name.clone());
        want.sort();
    }
    let half = !one.ok() && raw.path.join(&c_name).exists() || raw.path.join(&d_name).exists();
    rep.check(
        "full-refusals-leave-nothing",
        tmp.is_empty() && records == want && !half,
        format!("temporary trees {tmp:?}; records {records:?}; half volume {half}"),
    );

    // a delete still works and gives the space back
    let r = csi.unpublish(&b.volume_id, &tb, DL).await;
    rep.check("full-unpublish", r.ok(), r.describe());
    let r = csi.delete(&b.volume_id, DL).await;
    let freed_in = wait_for(Duration::from_secs(30), || {
        free_bytes(&raw.path) >= filled && names(&state.join("trash")).is_empty()
    })
    .await;
    rep.check(
        "full-delete-frees-space",
        r.ok() && freed_in.is_some(),
        format!(
            "{}; {} bytes free after {freed_in:?}",
            r.describe(),
            free_bytes(&raw.path)
        ),
    );
    let c = csi.create(class.create(&c_name, "full-c"), DL).await;
    rep.check("full-create-works-again", c.ok(), c.describe());
    let s2 = snapshot_ready(&csi, &s2_name, &a.volume_id).await;
    rep.check("full-snapshot-works-again", s2.is_ok(), format!("{s2:?}"));
    let req = restore_req(&class, &d_name, &s1.snapshot_id);
    let (d, tries) = until_ok(Duration::from_secs(60), || csi.create(req.clone(), DL)).await;
    let same = d.as_ref().is_some_and(|d| {
        std::fs::read(raw.path.join(crate::class::dir_of(d)).join("a.bin")).ok()
            == Some(data.clone())
    });
    rep.check(
        "full-restore-works-again",
        same,
        format!("{} attempt(s), last {:?}", tries.len(), tries.last()),
    );
    println!(
        "MEASURE export-full: refused CreateVolume {} | CreateSnapshot {} | restore {}; delete \
         freed {filled} bytes in {freed_in:?}",
        refused[0], refused[1], refused[2]
    );

    // clean up, then nothing may be left on the export but the driver's empty state
    let mut clean = csi.unpublish(&a.volume_id, &ta, DL).await.ok();
    for s in [Some(s1), s2.ok()].into_iter().flatten() {
        clean &= csi.delete_snapshot(&s.snapshot_id, DL).await.ok();
    }
    let ids: Vec<String> = [Some(a), c.result.and_then(Result::ok), d]
        .into_iter()
        .flatten()
        .map(|v| v.volume_id)
        .collect();
    for id in &ids {
        clean &= csi.delete(id, DL).await.ok();
    }
    let empty = |a: &str| names(&state.join(a)).is_empty();
    let drained = wait_for(Duration::from_secs(30), || {
        empty("trash") && empty("volumes") && empty("snapshots") && empty("restore")
    })
    .await;
    rep.check(
        "full-nothing-leaked",
        clean && drained.is_some() && names(&raw.path) == [STATE],
        format!(
            "{} volumes deleted; export root {:?}; state {:?}",
            ids.len(),
            names(&raw.path),
            ["trash", "volumes", "snapshots", "restore"].map(|a| names(&state.join(a)))
        ),
    );
}

/// A read-only export: CreateVolume and DeleteVolume answer FAILED_PRECONDITION naming the cause,
/// each retry costs the same few NFS calls (no retry inside the driver), nothing changes there.
pub async fn export_ro(env: &Env, rep: &mut Report) {
    let Some(drv) = rep.require("ro-driver", FaultDriver::start(env, "ro", 9812).await) else {
        return;
    };
    let csi = connect(&drv.socket).await;
    let class = Class::with_flags(env, "/export-ro", "4.1");
    const RETRIES: usize = 5;
    const RETRIED: &str = "retrying on a fresh working mount";
    let name = new_name("pvc");
    let (mut calls, mut answers, mut all) = (Vec::new(), Vec::new(), true);
    for _ in 0..RETRIES {
        let before = nfs_calls();
        let t = csi.create(class.create(&name, "ro"), DL).await;
        calls.push(nfs_calls() - before);
        all &= failed_with(&t, Code::FailedPrecondition, "read-only");
        answers.push(t.describe());
    }
    rep.check(
        "ro-create-failed-precondition",
        all,
        format!("{RETRIES} tries: {}", answers[0]),
    );
    // The volume made before the export became read-only (fault-exports.sh): its id as the
    // driver prints it.
    let id = nfs_subdir_csi::volume::VolumeId {
        share: nfs_subdir_csi::volume::ShareSpec::new(
            Some(env.server.as_str()),
            "/export-ro",
            class.flags.clone(),
        )
        .expect("share"),
        sub_dir: nfs_subdir_csi::volume::SubDir::parse("pvc-ro-kept").expect("subdir"),
        on_delete: nfs_subdir_csi::volume::OnDelete::Delete,
    }
    .to_printed()
    .expect("id");
    let mut del_all = true;
    for _ in 0..RETRIES {
        let before = nfs_calls();
        let t = csi.delete(&id, DL).await;
        calls.push(nfs_calls() - before);
        del_all &= failed_with(&t, Code::FailedPrecondition, "read-only");
        answers.push(t.describe());
    }
    rep.check(
        "ro-delete-failed-precondition",
        del_all,
        answers[RETRIES].clone(),
    );
    // A retry storm would show as calls growing per try or as retries logged: the first try
    // also mounts; every later one must stay a handful of calls.
    let retried = drv.count(RETRIED);
    let worst = calls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0)
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(0);
    rep.check(
        "ro-no-retry-storm",
        retried == 0 && worst <= 20,
        format!("NFS calls per try (create x{RETRIES}, delete x{RETRIES}): {calls:?}; retries logged {retried}"),
    );
    println!(
        "MEASURE export-ro: CreateVolume {} ; DeleteVolume {} ; NFS calls per try {calls:?}",
        answers[RETRIES - 1],
        answers[2 * RETRIES - 1]
    );
    let kept = RawMount::export(env, "/export-ro", "4.1").map(|raw| {
        (
            names(&raw.path),
            std::fs::read_to_string(raw.path.join("pvc-ro-kept/data")),
        )
    });
    rep.check(
        "ro-nothing-changed",
        matches!(&kept, Ok((n, Ok(d))) if n == &["pvc-ro-kept"] && d == "kept\n"),
        format!("{kept:?}"),
    );
    let started = Instant::now();
    drop(drv);
    info(format!(
        "ro driver stopped in {} ms",
        started.elapsed().as_millis()
    ));
}
