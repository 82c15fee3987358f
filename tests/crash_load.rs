//! Crash consistency under load: 16 clients run 1,000 mixed operations (create, delete, publish,
//! unpublish, expand) against the real binary on its real socket while it is `kill -9`ed five
//! times at random moments and restarted. Clients retry as the sidecars and kubelet do. Afterwards
//! the share holds exactly the acknowledged volumes, records and directories match, the trash is
//! empty and no mount is left. Then 100 parallel identical CreateVolume calls make one directory.

mod common;

use common::node::{mounts_under, publish_req, require_root, unpublish_req};
use common::{Driver, create_req, eventually, ls};
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const CLIENTS: usize = 16;
const OPS: usize = 1000;
const KILLS: usize = 5;
const MIB: i64 = 1 << 20;

/// One call of `method` on a clone of `client` with a clone of `req`, as a retryable future.
macro_rules! call {
    ($client:expr, $method:ident, $req:expr) => {{
        let (mut client, req) = ($client.clone(), $req.clone());
        async move { client.$method(req).await }
    }};
}

/// A small xorshift generator; the seed is printed so a run can be repeated.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Retries counted by gRPC code, shared by all clients.
type Retries = Arc<Mutex<BTreeMap<String, u64>>>;

/// Calls `op` until it succeeds, retrying what a sidecar retries (the driver gone or busy). Any
/// other error fails the test. Gives up after two minutes so a hang cannot stall CI.
async fn settle<T, F, Fut>(what: &str, retries: &Retries, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = Instant::now();
    loop {
        let status = match op().await {
            Ok(resp) => return resp.into_inner(),
            Err(status) => status,
        };
        let retry = matches!(
            status.code(),
            Code::Unavailable
                | Code::Aborted
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Cancelled
        );
        assert!(retry, "{what}: not retryable: {status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: still failing after 2 min: {status:?}"
        );
        *retries
            .lock()
            .unwrap()
            .entry(format!("{:?}", status.code()))
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Vol {
    id: String,
    capacity: i64,
    target: Option<PathBuf>,
}

/// One client: `ops` random operations on its own volumes; returns the volumes it left alive.
async fn client(
    n: usize,
    ops: usize,
    seed: u64,
    channel: Channel,
    pods: PathBuf,
    retries: Retries,
) -> BTreeMap<String, Vol> {
    let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (c, nd) = (
        pb::controller_client::ControllerClient::new(channel.clone()),
        pb::node_client::NodeClient::new(channel),
    );
    let mut live: BTreeMap<String, Vol> = BTreeMap::new();
    let mut made = 0;
    for _ in 0..ops {
        let names: Vec<String> = live.keys().cloned().collect();
        let pick = names.get(rng.below(names.len() as u64) as usize).cloned();
        match (rng.below(100), pick) {
            (0..30, _) | (_, None) => {
                made += 1;
                let name = format!("pvc-c{n}-{made}");
                let req = create_req(&name, MIB, &[]);
                let v = settle("create", &retries, || call!(c, create_volume, req)).await;
                let id = v.volume.expect("volume").volume_id;
                live.insert(
                    name,
                    Vol {
                        id,
                        capacity: MIB,
                        target: None,
                    },
                );
            }
            (30..50, Some(name)) if live[&name].target.is_none() => {
                let id = live.remove(&name).unwrap().id;
                let req = pb::DeleteVolumeRequest {
                    volume_id: id,
                    ..Default::default()
                };
                settle("delete", &retries, || call!(c, delete_volume, req)).await;
            }
            (50..70, Some(name)) if live[&name].target.is_none() => {
                let target = pods.join(&name);
                let req = publish_req(&live[&name].id, &target, Mode::MultiNodeMultiWriter, false);
                settle("publish", &retries, || call!(nd, node_publish_volume, req)).await;
                live.get_mut(&name).unwrap().target = Some(target);
            }
            (_, Some(name)) if live[&name].target.is_some() => {
                let v = live.get_mut(&name).unwrap();
                let req = unpublish_req(&v.id, v.target.as_ref().unwrap());
                settle("unpublish", &retries, || {
                    call!(nd, node_unpublish_volume, req)
                })
                .await;
                v.target = None;
            }
            (_, Some(name)) => {
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
                let got = settle("expand", &retries, || {
                    call!(c, controller_expand_volume, req)
                })
                .await;
                assert_eq!(got.capacity_bytes, v.capacity, "expand of {name}");
            }
        }
    }
    // As kubelet does before a claim goes: every target unpublished.
    for v in live.values_mut() {
        if let Some(target) = v.target.take() {
            let req = unpublish_req(&v.id, &target);
            settle("unpublish", &retries, || {
                call!(nd, node_unpublish_volume, req)
            })
            .await;
        }
    }
    live
}

fn lazy_channel(socket: &Path) -> Channel {
    Endpoint::try_from(format!("unix://{}", socket.display()))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_lazy()
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
    let mut driver = Driver::start(&[]).await;
    let (share, socket) = (driver.share(), driver.socket());
    let pods = driver.dir.path().join("pods");
    std::fs::create_dir(&pods).unwrap();
    let retries = Retries::default();
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let ops = OPS / CLIENTS + usize::from(n < OPS % CLIENTS);
        let fut = client(
            n,
            ops,
            seed,
            lazy_channel(&socket),
            pods.clone(),
            retries.clone(),
        );
        tasks.push(tokio::spawn(fut));
    }
    let mut rng = Rng(seed);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(500))).await;
        let dir = driver.kill();
        tokio::time::sleep(Duration::from_millis(rng.below(100))).await;
        driver = Driver::start_in(dir, &[]).await;
    }
    let mut expected = BTreeSet::new();
    for t in tasks {
        expected.extend(t.await.expect("client").into_keys());
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
    println!(
        "crash-load: {OPS} ops by {CLIENTS} clients, {KILLS} kill -9 + restarts, {:.1} s; \
         {} volumes left = directories = records; retries by code {:?}; seed {seed}",
        took.as_secs_f64(),
        expected.len(),
        retries.lock().unwrap()
    );

    // 100 parallel identical CreateVolume calls: one directory, one id.
    let retries = Retries::default();
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
        "crash-load: 100 parallel identical CreateVolume -> 1 directory, 1 id; retries by code {:?}",
        retries.lock().unwrap()
    );
}
