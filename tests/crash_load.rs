//! Crash consistency under load: 16 clients run 1,000 mixed operations (create, delete, publish,
//! unpublish, expand, snapshot in both formats, delete snapshot, restore, clone) against the real
//! binary on its real socket while it is `kill -9`ed five times at random moments and restarted.
//! Clients retry as the sidecars and kubelet do. Afterwards the share holds exactly the
//! acknowledged volumes with the files the clients wrote or restored, records and directories
//! match, the trash is empty, no mount is left, exactly the acknowledged snapshots are on the share
//! and each restores what its source held, and no temporary copy is left. Then 100 parallel
//! identical CreateVolume calls make one directory.

mod common;

use common::crash::{self, Ctx, Snap, Vol};
use common::load::{Counts, Rng, lazy_channel, read_tree, settle};
use common::node::{mounts_under, publish_req, require_root, unpublish_req};
use common::{Driver, create_req, eventually, ls};
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const CLIENTS: usize = 16;
const OPS: usize = 1000;
const KILLS: usize = 5;
const MIB: i64 = 1 << 20;

enum Op {
    Create,
    Delete,
    Publish,
    Unpublish,
    Expand,
    Snapshot,
    DeleteSnapshot,
    Restore,
    Clone,
}

/// One client: `ops` random operations on its own volumes and snapshots; returns the volumes and
/// snapshots it left.
async fn client(
    n: usize,
    ops: usize,
    seed: u64,
    channel: Channel,
    pods: PathBuf,
    ctx: Ctx,
) -> (BTreeMap<String, Vol>, Vec<Snap>) {
    let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (c, nd) = (ctx.c.clone(), pb::node_client::NodeClient::new(channel));
    let (retries, acked) = (&ctx.retries, &ctx.acked);
    let mut live: BTreeMap<String, Vol> = BTreeMap::new();
    let mut snaps: BTreeMap<String, Snap> = BTreeMap::new();
    let (mut made, mut cut) = (0, 0);
    for _ in 0..ops {
        let names: Vec<String> = live.keys().cloned().collect();
        let pick = names.get(rng.below(names.len() as u64) as usize).cloned();
        let snap = snaps.keys().nth(rng.below(snaps.len() as u64) as usize);
        let snap = snap.cloned();
        let published = pick.as_ref().is_some_and(|p| live[p].target.is_some());
        let op = match (rng.below(100), &pick, &snap) {
            (_, None, _) | (0..24, ..) => Op::Create,
            (24..38, ..) if !published => Op::Delete,
            (38..52, ..) if !published => Op::Publish,
            (52..64, ..) => Op::Snapshot,
            (64..70, _, Some(_)) => Op::DeleteSnapshot,
            (70..78, _, Some(_)) => Op::Restore,
            (78..82, ..) => Op::Clone,
            _ if published => Op::Unpublish,
            _ => Op::Expand,
        };
        let name = pick.unwrap_or_default();
        match op {
            Op::Create | Op::Restore | Op::Clone => {
                made += 1;
                let new = format!("pvc-c{n}-{made}");
                let vol = match op {
                    Op::Restore => {
                        let s = &snaps[snap.as_ref().unwrap()];
                        crash::fill(&ctx, &new, crash::from_snapshot(s), &s.tree).await
                    }
                    Op::Clone => {
                        let v = &live[&name];
                        crash::fill(&ctx, &new, crash::from_volume(v), &v.tree).await
                    }
                    _ => {
                        let req = create_req(&new, MIB, &[]);
                        let v = settle("create", retries, || call!(c, create_volume, req)).await;
                        acked.add("create");
                        Vol {
                            id: v.volume.expect("volume").volume_id,
                            capacity: MIB,
                            target: None,
                            tree: Default::default(),
                        }
                    }
                };
                live.insert(new, vol);
            }
            Op::Delete => {
                let id = live.remove(&name).unwrap().id;
                let req = pb::DeleteVolumeRequest {
                    volume_id: id,
                    ..Default::default()
                };
                settle("delete", retries, || call!(c, delete_volume, req)).await;
                acked.add("delete");
            }
            Op::Publish => {
                let target = pods.join(&name);
                let req = publish_req(&live[&name].id, &target, Mode::MultiNodeMultiWriter, false);
                settle("publish", retries, || call!(nd, node_publish_volume, req)).await;
                live.get_mut(&name).unwrap().target = Some(target);
                acked.add("publish");
            }
            Op::Unpublish => {
                let v = live.get_mut(&name).unwrap();
                let req = unpublish_req(&v.id, v.target.as_ref().unwrap());
                settle("unpublish", retries, || {
                    call!(nd, node_unpublish_volume, req)
                })
                .await;
                v.target = None;
                acked.add("unpublish");
            }
            Op::Expand => {
                let v = live.get_mut(&name).unwrap();
                v.capacity += MIB;
                let req = pb::ControllerExpandVolumeRequest {
                    volume_id: v.id.clone(),
                    capacity_range: Some(pb::CapacityRange {
                        required_bytes: v.capacity,
                        limit_bytes: 0,
                    }),
                    ..Default::default()
                };
                let got = settle("expand", retries, || {
                    call!(c, controller_expand_volume, req)
                });
                assert_eq!(got.await.capacity_bytes, v.capacity, "expand of {name}");
                acked.add("expand");
            }
            Op::Snapshot => {
                cut += 1;
                let snap_name = format!("snapshot-c{n}-{cut}");
                let format = ["copy", "tar.zst"][rng.below(2) as usize];
                let v = live.get_mut(&name).unwrap();
                let s = crash::snapshot(&ctx, &name, v, &snap_name, format).await;
                snaps.insert(snap_name, s);
            }
            Op::DeleteSnapshot => {
                let s = snaps.remove(snap.as_ref().unwrap()).unwrap();
                crash::delete_snapshot(&ctx, s).await;
            }
        }
    }
    // As kubelet does before a claim goes: every target unpublished.
    for v in live.values_mut() {
        if let Some(target) = v.target.take() {
            let req = unpublish_req(&v.id, &target);
            settle("unpublish", retries, || {
                call!(nd, node_unpublish_volume, req)
            })
            .await;
        }
    }
    (live, snaps.into_values().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_under_load_loses_nothing() {
    require_root();
    let started = Instant::now();
    let seed = std::env::var("NSC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64 | 1
        });
    println!("crash-load: seed {seed} (NSC_CRASH_SEED repeats the clients' choices)");
    let mut driver = Driver::start(&[]).await;
    let (share, socket) = (driver.share(), driver.socket());
    let pods = driver.dir.path().join("pods");
    std::fs::create_dir(&pods).unwrap();
    let (retries, acked) = (Counts::default(), Counts::default());
    let ctx = |channel: &Channel, acked: &Counts| Ctx {
        c: pb::controller_client::ControllerClient::new(channel.clone()),
        share: share.clone(),
        retries: retries.clone(),
        acked: acked.clone(),
    };
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let ops = OPS / CLIENTS + usize::from(n < OPS % CLIENTS);
        let channel = lazy_channel(&socket);
        let fut = client(
            n,
            ops,
            seed,
            channel.clone(),
            pods.clone(),
            ctx(&channel, &acked),
        );
        tasks.push(tokio::spawn(fut));
    }
    let mut rng = Rng(seed);
    // Temporary trees (snapshots being cut, volumes being filled) a kill left and a restart swept.
    let swept = |d: &Driver| d.log().matches("removing what an earlier run left").count();
    let mut temps = 0;
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(500))).await;
        temps += swept(&driver);
        let dir = driver.kill();
        tokio::time::sleep(Duration::from_millis(rng.below(100))).await;
        driver = Driver::start_in(dir, &[]).await;
    }
    let (mut expected, mut vols, mut snaps) = (BTreeSet::new(), BTreeMap::new(), Vec::new());
    for t in tasks {
        let (v, s) = t.await.expect("client");
        expected.extend(v.keys().cloned());
        vols.extend(v);
        snaps.extend(s);
    }
    let took = started.elapsed();

    let state = share.join(".nfs-subdir-csi");
    let dirs: BTreeSet<String> = ls(&share)
        .into_iter()
        .filter(|n| n != ".nfs-subdir-csi")
        .collect();
    let records: BTreeSet<String> = ls(&state.join("volumes")).into_iter().collect();
    assert_eq!(
        dirs, expected,
        "directories on the share vs acknowledged creates - deletes"
    );
    assert_eq!(records, expected, "records vs acknowledged volumes");
    let trash = state.join("trash");
    assert!(
        eventually(|| ls(&trash).is_empty()).await,
        "trash not emptied: {:?}",
        ls(&trash)
    );
    assert_eq!(
        mounts_under(driver.dir.path()),
        Vec::<String>::new(),
        "mounts left"
    );
    for (name, v) in &vols {
        assert!(read_tree(&share.join(name)) == v.tree, "{name}: files");
    }
    let check = Counts::default();
    let restored = crash::check_snapshots(&ctx(&lazy_channel(&socket), &check), snaps).await;
    let checked = started.elapsed() - took;
    temps += swept(&driver);
    assert_eq!(acked.total(), OPS as u64, "acknowledged operations");
    println!(
        "crash-load: {OPS} ops by {CLIENTS} clients, {KILLS} kill -9 + restarts, {:.1} s; \
         acknowledged by kind {:?}; {} volumes left = directories = records, files as written or \
         restored; {restored} snapshots left = on the share = listed, each restored equal to its \
         source in {:.1} s; {temps} temporary trees of killed copies swept, none left; retries \
         {:?}; seed {seed}",
        took.as_secs_f64(),
        acked.get(),
        expected.len(),
        checked.as_secs_f64(),
        retries.get()
    );

    // 100 parallel identical CreateVolume calls: one directory, one id.
    let retries = Counts::default();
    let channel = lazy_channel(&socket);
    let mut same = Vec::new();
    for _ in 0..100 {
        let (c, r) = (
            pb::controller_client::ControllerClient::new(channel.clone()),
            retries.clone(),
        );
        same.push(tokio::spawn(async move {
            let req = create_req("pvc-same", MIB, &[]);
            let v = settle("create same", &r, || call!(c, create_volume, req)).await;
            v.volume.expect("volume").volume_id
        }));
    }
    let mut ids = BTreeSet::new();
    for t in same {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let now: BTreeSet<String> = ls(&share)
        .into_iter()
        .filter(|n| n != ".nfs-subdir-csi")
        .collect();
    assert_eq!(
        now.difference(&expected).collect::<Vec<_>>(),
        vec!["pvc-same"]
    );
    println!(
        "crash-load: 100 parallel identical CreateVolume -> 1 directory, 1 id; retries {:?}",
        retries.get()
    );
}
