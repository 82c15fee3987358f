//! The NFS server goes away: ganesha stopped while calls are in flight and started again
//! (server-down, server-back), and a ganesha restart (server-restart).

use crate::class::{Class, dir_of, new_name, pod_target};
use crate::csi::{DL, connect, until_ok};
use crate::harness::{DROPPED_WORKING_MOUNT, count_in_log, nfs_server, record_deleted};
use crate::inflight::{check_in_flight, load_loop};
use crate::mounts::{mounted_at, read_bounded, stuck_threads};
use crate::{Env, Report, info};
use std::time::{Duration, Instant};
use tonic::Code;

/// ganesha stops while calls are in flight: every call answers within its deadline; after it
/// starts again the next calls succeed on the same driver process.
pub async fn server_down(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    // d1: a running pod with data (two targets); d2: a pod about to start; d3: what the background
    // calls publish; d4: a pod about to go away
    let mut vols = Vec::new();
    for what in ["down-running", "down-starting", "down-load", "down-leaving"] {
        let t = csi.create(class.create(&new_name("pvc"), what), DL).await;
        let Some(v) = rep.require("server-down-setup", t.value()) else {
            return;
        };
        vols.push(v);
    }
    let (d1, d2, d3, d4) = (
        vols[0].clone(),
        vols[1].clone(),
        vols[2].clone(),
        vols[3].clone(),
    );
    let (t1a, t1b, t2, t4) = (
        pod_target(&dir_of(&d1)),
        pod_target(&dir_of(&d1)),
        pod_target(&dir_of(&d2)),
        pod_target(&dir_of(&d4)),
    );
    for (v, t) in [(&d1, &t1a), (&d1, &t1b), (&d4, &t4)] {
        let r = csi.publish(class.publish(v, t), DL).await;
        if rep.require("server-down-setup", r.value()).is_none() {
            return;
        }
    }
    let data = format!("before the outage {}\n", uuid::Uuid::new_v4());
    std::fs::write(t1a.join("data"), &data).expect("write");
    // a process of the leaving pod still has a file open: a plain unmount gets EBUSY
    std::fs::write(t4.join("held"), "held").expect("write");
    let held = std::fs::File::open(t4.join("held")).expect("open");

    // calls back to back from before the stop until after it
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load_dl = Duration::from_secs(8);
    let load = tokio::spawn(load_loop(
        csi.clone(),
        class.clone(),
        d3.clone(),
        load_dl,
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopped = nfs_server(env, "stop").await;
    if !rep.check("server-down-stop", stopped.is_ok(), format!("{stopped:?}")) {
        let _ = stop_tx.send(true);
        return;
    }
    let down_at = Instant::now();

    // the server is gone: a new volume, a new pod, kubelet re-publishing a running pod's target,
    // a pod going away, and volume stats — all at once, each with a 10 s deadline
    let codes = [Code::DeadlineExceeded, Code::Unavailable];
    let down_name = new_name("pvc");
    let (cr, pb_new, pb_again, unp, stats) = tokio::join!(
        csi.create(class.create(&down_name, "down-new"), DL),
        csi.publish(class.publish(&d2, &t2), DL),
        csi.publish(class.publish(&d1, &t1a), DL),
        csi.unpublish(&d4.volume_id, &t4, DL),
        csi.stats(&d1.volume_id, &t1b, DL),
    );
    rep.check(
        "server-down-create-answers-in-time",
        cr.answered_within(DL, &codes) && !cr.ok(),
        cr.describe(),
    );
    rep.check(
        "server-down-publish-answers-in-time",
        pb_new.answered_within(DL, &codes) && !pb_new.ok(),
        pb_new.describe(),
    );
    rep.check(
        "server-down-republish-answers-in-time",
        pb_again.answered_within(DL, &codes),
        pb_again.describe(),
    );
    rep.check(
        "server-down-unpublish-answers-in-time",
        unp.answered_within(DL, &codes) && (!unp.ok() || mounted_at(&t4).is_none()),
        format!("{}; still mounted: {:?}", unp.describe(), mounted_at(&t4)),
    );
    let abnormal = match &stats.result {
        Some(Ok(s)) => s.volume_condition.as_ref().map(|c| c.abnormal),
        _ => None,
    };
    rep.check(
        "server-down-stats-answers-in-time",
        stats.answered_within(DL, &codes),
        format!("{}; abnormal {abnormal:?}", stats.describe()),
    );
    println!(
        "MEASURE server-down: CreateVolume {} | NodePublish (new target) {} | NodePublish (mounted \
         target) {} | NodeUnpublish {} | NodeGetVolumeStats {} (deadline {} s each)",
        cr.describe(),
        pb_new.describe(),
        pb_again.describe(),
        unp.describe(),
        stats.describe(),
        DL.as_secs()
    );
    let stuck_down = stuck_threads();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let load = load.await.expect("load loop");
    check_in_flight(rep, &load.flights, load_dl);
    info(format!(
        "server was down {} ms",
        down_at.elapsed().as_millis()
    ));

    // back: the same driver process serves again
    let started = nfs_server(env, "start").await;
    if !rep.check("server-down-start", started.is_ok(), format!("{started:?}")) {
        return;
    }
    let up_at = Instant::now();
    // closing sends the server a CLOSE on this hard mount: only now that it answers again
    tokio::task::spawn_blocking(move || drop(held));
    let within = Duration::from_secs(60);
    let (made, attempts) = until_ok(within, || {
        csi.create(class.create(&down_name, "down-new"), DL)
    })
    .await;
    rep.check(
        "server-back-create-succeeds",
        made.is_some(),
        format!(
            "after {} ms, {} attempt(s): {attempts:?}",
            up_at.elapsed().as_millis(),
            attempts.len()
        ),
    );
    println!(
        "MEASURE server-back: first CreateVolume after start: {} ({} attempts, ok {} ms after start)",
        attempts.first().cloned().unwrap_or_default(),
        attempts.len(),
        up_at.elapsed().as_millis()
    );
    let t = Instant::now();
    let (published, attempts) = until_ok(within, || csi.publish(class.publish(&d2, &t2), DL)).await;
    rep.check(
        "server-back-publish-succeeds",
        published.is_some(),
        format!(
            "{}; {} ms",
            attempts.last().cloned().unwrap_or_default(),
            t.elapsed().as_millis()
        ),
    );
    let r = csi.publish(class.publish(&d1, &t1a), DL).await;
    let read = read_bounded(&t1a.join("data"), DL).await;
    rep.check(
        "server-back-running-pod-sees-data",
        r.ok() && read.as_deref().ok() == Some(data.as_str()),
        format!("{}; read {read:?}", r.describe()),
    );

    // every thread that waited on the server has come back
    let t = Instant::now();
    let mut stuck_up = stuck_threads();
    while stuck_up.is_some_and(|n| n > 0) && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stuck_up = stuck_threads();
    }
    rep.check(
        "server-back-no-thread-left-stuck",
        stuck_up == Some(0),
        format!(
            "driver threads in D state: {stuck_down:?} while the server was down, {stuck_up:?} \
             {} ms after it answered again",
            t.elapsed().as_millis()
        ),
    );

    // clean up: every target unpublished, every volume deleted
    let mut clean = true;
    for (id, t) in [
        (&d1.volume_id, &t1a),
        (&d1.volume_id, &t1b),
        (&d2.volume_id, &t2),
        (&d4.volume_id, &t4),
    ]
    .into_iter()
    .chain(load.targets.iter().map(|t| (&d3.volume_id, t)))
    {
        clean &= csi.unpublish(id, t, DL).await.ok();
    }
    vols.extend(made);
    vols.extend(load.made);
    let mut deleted = Vec::new();
    for v in &vols {
        clean &= csi.delete(&v.volume_id, DL).await.ok();
        deleted.push(dir_of(v));
    }
    rep.check(
        "server-back-cleanup",
        clean,
        format!("{} volumes deleted", vols.len()),
    );
    record_deleted(env, &deleted);
}

/// A restart of ganesha: the kept working mount and a published target both carry on.
pub async fn server_restart(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let name = new_name("pvc");
    let t = csi.create(class.create(&name, "restart"), DL).await;
    let Some(vol) = rep.require("server-restart-setup", t.value()) else {
        return;
    };
    let target = pod_target(&name);
    let r = csi.publish(class.publish(&vol, &target), DL).await;
    if !rep.check("server-restart-setup", r.ok(), r.describe()) {
        return;
    }
    std::fs::write(target.join("data"), "kept").expect("write");
    let drops = count_in_log(env, DROPPED_WORKING_MOUNT);
    let restarted = nfs_server(env, "restart").await;
    if !rep.check(
        "server-restart",
        restarted.is_ok(),
        format!("{restarted:?}"),
    ) {
        return;
    }
    let second = new_name("pvc");
    let t = csi.create(class.create(&second, "restart-2"), DL).await;
    let remounts = count_in_log(env, DROPPED_WORKING_MOUNT) - drops;
    rep.check(
        "server-restart-create-succeeds",
        t.ok(),
        format!("{}; working mounts dropped: {remounts}", t.describe()),
    );
    println!(
        "MEASURE server-restart: first CreateVolume {}; working mount {}",
        t.describe(),
        if remounts == 0 {
            "kept (no ESTALE after the restart)".to_owned()
        } else {
            format!("remade {remounts} time(s)")
        }
    );
    let read = read_bounded(&target.join("data"), DL).await;
    rep.check(
        "server-restart-target-still-reads",
        read.as_deref().ok() == Some("kept"),
        format!("{read:?}"),
    );
    let r = csi.unpublish(&vol.volume_id, &target, DL).await;
    rep.check("server-restart-unpublish", r.ok(), r.describe());
    let mut names = vec![name];
    for v in [Some(vol), t.result.and_then(Result::ok)]
        .into_iter()
        .flatten()
    {
        let r = csi.delete(&v.volume_id, DL).await;
        rep.check("server-restart-delete", r.ok(), r.describe());
        if let Some(n) = v.volume_context.get("subDir") {
            names.push(n.clone());
        }
    }
    names.dedup();
    record_deleted(env, &names);
}
