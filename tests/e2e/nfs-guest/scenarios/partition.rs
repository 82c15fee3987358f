//! A 60 s network partition between the guest and the server (partition): rounds of controller and
//! node calls while every packet is dropped; each must answer within its deadline, the driver's
//! threads stuck in the kernel are counted, and afterwards the same driver process serves again
//! and every stuck thread has come back.

use crate::class::{Class, dir_of, new_name, pod_target};
use crate::csi::{Csi, DL, Timed, connect, until_ok};
use crate::harness::record_deleted;
use crate::link::{driver_threads, heal, partition, sample_threads};
use crate::mounts::{mounted_at, read_bounded};
use crate::{Env, Report, info};
use nfs_subdir_csi::csi::pb;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::Code;

/// How long the link is down.
const PARTITION: Duration = Duration::from_secs(60);
/// No new round starts this close to the end, so every call is issued and answered meanwhile.
const LAST_ROUND_BEFORE_END: Duration = Duration::from_secs(11);

/// One answer during the partition.
struct Answer {
    rpc: &'static str,
    code: String,
    in_time: bool,
    took: Duration,
}

fn answer<T>(rpc: &'static str, t: &Timed<T>) -> Answer {
    let codes = [Code::DeadlineExceeded, Code::Unavailable, Code::Aborted];
    Answer {
        rpc,
        code: t.code(),
        in_time: t.answered_within(DL, &codes),
        took: t.took,
    }
}

/// What a round of calls needs: a running pod's volume and targets, a volume to delete, one to
/// publish at new targets.
struct Setup {
    running: pb::Volume,
    data_target: PathBuf,
    leaving_target: PathBuf,
    doomed: pb::Volume,
    starting: pb::Volume,
}

/// One round: every kind of call at once, each with deadline [`DL`].
async fn round(
    csi: &Csi,
    class: &Class,
    s: &Setup,
    n: usize,
    made: &mut Vec<pb::Volume>,
) -> Vec<Answer> {
    let new_target = pod_target(&dir_of(&s.starting));
    let (cr, del, exp, list, pb_new, pb_again, stats, unp) = tokio::join!(
        csi.create(
            class.create(&new_name("pvc-part"), &format!("part-{n}")),
            DL
        ),
        csi.delete(&s.doomed.volume_id, DL),
        csi.expand(&s.running.volume_id, 200 << 20, DL),
        csi.list(DL),
        csi.publish(class.publish(&s.starting, &new_target), DL),
        csi.publish(class.publish(&s.running, &s.data_target), DL),
        csi.stats(&s.running.volume_id, &s.data_target, DL),
        csi.unpublish(&s.running.volume_id, &s.leaving_target, DL),
    );
    let answers = vec![
        answer("CreateVolume", &cr),
        answer("DeleteVolume", &del),
        answer("ControllerExpandVolume", &exp),
        answer("ListVolumes", &list),
        answer("NodePublish(new target)", &pb_new),
        answer("NodePublish(mounted target)", &pb_again),
        Answer {
            // the volume condition too: a mount that does not answer is reported abnormal
            code: match &stats.result {
                Some(Ok(r)) => match &r.volume_condition {
                    Some(c) if c.abnormal => "OK(abnormal)".into(),
                    _ => "OK(normal)".into(),
                },
                _ => stats.code(),
            },
            ..answer("NodeGetVolumeStats", &stats)
        },
        answer("NodeUnpublish", &unp),
    ];
    if let Some(Ok(v)) = cr.result {
        made.push(v);
    }
    answers
}

pub async fn partition_60s(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let mut vols = Vec::new();
    for what in ["part-running", "part-doomed", "part-starting"] {
        let t = csi.create(class.create(&new_name("pvc"), what), DL).await;
        let Some(v) = rep.require("partition-setup", t.value()) else {
            return;
        };
        vols.push(v);
    }
    let s = Setup {
        data_target: pod_target(&dir_of(&vols[0])),
        leaving_target: pod_target(&dir_of(&vols[0])),
        running: vols[0].clone(),
        doomed: vols[1].clone(),
        starting: vols[2].clone(),
    };
    for t in [&s.data_target, &s.leaving_target] {
        let r = csi.publish(class.publish(&s.running, t), DL).await;
        if rep.require("partition-setup", r.value()).is_none() {
            return;
        }
    }
    let data = format!("before the partition {}\n", uuid::Uuid::new_v4());
    std::fs::write(s.data_target.join("data"), &data).expect("write");
    let before = driver_threads();

    let cut = partition();
    if !rep.check("partition-link-cut", cut.is_ok(), format!("{cut:?}")) {
        let _ = heal();
        return;
    }
    let cut_at = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_threads(Duration::from_millis(250), stop_rx));
    let (mut answers, mut made, mut n) = (Vec::new(), Vec::new(), 0);
    while cut_at.elapsed() + LAST_ROUND_BEFORE_END < PARTITION {
        n += 1;
        let started = Instant::now();
        answers.extend(round(&csi, &class, &s, n, &mut made).await);
        info(format!(
            "partition round {n} at {} ms took {} ms; driver threads (all, stuck): {:?}",
            cut_at.elapsed().as_millis(),
            started.elapsed().as_millis(),
            driver_threads()
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(PARTITION.saturating_sub(cut_at.elapsed())).await;
    let at_end = driver_threads();
    // the running pod's target is still its NFS mount (kubelet's re-publish must not detach it)
    let still = mounted_at(&s.data_target);
    rep.check(
        "partition-running-target-kept",
        still
            .as_ref()
            .is_some_and(|(fstype, _, _)| fstype.starts_with("nfs")),
        format!("mounted at the end of the partition: {still:?}"),
    );
    let healed = heal();
    let down_ms = cut_at.elapsed().as_millis();
    let _ = stop_tx.send(true);
    let (max_all, max_stuck, samples) = sampler.await.expect("sampler");
    rep.check(
        "partition-link-healed",
        healed.is_ok(),
        format!("{healed:?}"),
    );

    // every call issued during the partition answered within its deadline
    let late: Vec<String> = answers
        .iter()
        .filter(|a| !a.in_time)
        .map(|a| format!("{} {} after {} ms", a.rpc, a.code, a.took.as_millis()))
        .collect();
    rep.check(
        "partition-every-call-answers-in-time",
        late.is_empty() && !answers.is_empty(),
        format!(
            "{} calls in {n} rounds over {down_ms} ms, deadline {} ms{}",
            answers.len(),
            DL.as_millis(),
            if late.is_empty() {
                String::new()
            } else {
                format!("; late: {late:?}")
            }
        ),
    );
    let mut by_rpc: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in &answers {
        by_rpc
            .entry(a.rpc)
            .or_default()
            .push(format!("{} {}", a.code, a.took.as_millis()));
    }
    for (rpc, seen) in &by_rpc {
        println!(
            "MEASURE partition {rpc}: {} (code ms, one per round)",
            seen.join(", ")
        );
    }
    let normal: Vec<String> = answers
        .iter()
        .filter(|a| a.rpc == "NodeGetVolumeStats" && a.code == "OK(normal)")
        .map(|a| format!("after {} ms", a.took.as_millis()))
        .collect();
    rep.check(
        "partition-stats-report-abnormal",
        normal.is_empty(),
        format!("stats answered normal while the server was cut off: {normal:?}"),
    );
    println!(
        "MEASURE partition threads: before {before:?}, max during {max_all} (stuck in the kernel: \
         max {max_stuck}; {samples} samples), at the end {at_end:?} (all, stuck)"
    );

    // the same driver process serves again
    let healed_at = Instant::now();
    let within = Duration::from_secs(90);
    let back_name = new_name("pvc-part");
    let (back, attempts) = until_ok(within, || {
        csi.create(class.create(&back_name, "part-back"), DL)
    })
    .await;
    rep.check(
        "partition-after-create-succeeds",
        back.is_some(),
        format!(
            "{} ms after the link came back, {} attempt(s): {:?}",
            healed_at.elapsed().as_millis(),
            attempts.len(),
            attempts.last()
        ),
    );
    made.extend(back);
    let create_back_ms = healed_at.elapsed().as_millis();
    let read = read_bounded(&s.data_target.join("data"), Duration::from_secs(90)).await;
    rep.check(
        "partition-after-running-pod-reads-data",
        read.as_deref().ok() == Some(data.as_str()),
        format!(
            "{read:?} {} ms after the link came back",
            healed_at.elapsed().as_millis()
        ),
    );
    let read_back_ms = healed_at.elapsed().as_millis();
    let target = pod_target(&dir_of(&s.starting));
    let (published, attempts) = until_ok(within, || {
        csi.publish(class.publish(&s.starting, &target), DL)
    })
    .await;
    rep.check(
        "partition-after-publish-succeeds",
        published.is_some(),
        format!("{} attempt(s): {:?}", attempts.len(), attempts.last()),
    );
    println!(
        "MEASURE partition recovery: CreateVolume OK {create_back_ms} ms after the link came back, \
         the running pod's read {read_back_ms} ms, a new NodePublish OK {} ms",
        healed_at.elapsed().as_millis()
    );

    // every thread that waited on the server has come back; the pool shrinks again
    let base = before.map_or(0, |b| b.0);
    let t = Instant::now();
    let mut now = driver_threads();
    while now.is_some_and(|(all, stuck)| stuck > 0 || all > base + 2)
        && t.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = driver_threads();
    }
    rep.check(
        "partition-after-no-thread-left-stuck",
        now.is_some_and(|(_, stuck)| stuck == 0),
        format!(
            "(all, stuck) {now:?} {} ms after the recovery checks",
            t.elapsed().as_millis()
        ),
    );
    rep.check(
        "partition-after-threads-back-to-baseline",
        now.is_some_and(|(all, _)| all <= base + 2),
        format!("{now:?}, before the partition {before:?}, max during {max_all}"),
    );

    // clean up: targets unpublished, volumes deleted (also the one deleted during the partition)
    let mut clean = true;
    for t in [&s.data_target, &s.leaving_target, &target] {
        let id = if *t == target {
            &s.starting.volume_id
        } else {
            &s.running.volume_id
        };
        clean &= csi.unpublish(id, t, DL).await.ok();
    }
    // targets published (or half published) during the partition
    for entry in std::fs::read_dir("/tmp/kubelet/pods")
        .into_iter()
        .flatten()
        .flatten()
    {
        let t = entry
            .path()
            .join("volumes/kubernetes.io~csi")
            .join(dir_of(&s.starting))
            .join("mount");
        if t.exists() {
            clean &= csi.unpublish(&s.starting.volume_id, &t, DL).await.ok();
        }
    }
    vols.extend(made);
    let mut deleted = Vec::new();
    for v in &vols {
        clean &= csi.delete(&v.volume_id, DL).await.ok();
        deleted.push(dir_of(v));
    }
    rep.check(
        "partition-cleanup",
        clean,
        format!("{} volumes deleted", vols.len()),
    );
    record_deleted(env, &deleted);
}
