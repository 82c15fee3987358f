//! Benchmark client for tests/e2e/nfs-guest/bench-guest.sh: the driver's CreateVolume + DeleteVolume
//! against the minimal filesystem work for the same result on a kernel NFS mount of the same export.
//!
//! Not a test and not run by CI. Built by `bash tests/e2e/nfs-guest/bench.sh` with
//! `cargo build --release --example nfs_bench` and run inside the QEMU guest against ganesha.
//! Environment (all set by bench-guest.sh):
//!   NSC_BENCH_SOCKET   the driver's Unix socket path
//!   NSC_BENCH_MOUNT    a kernel NFS mount of the same export with the same options
//!   NSC_BENCH_WORKDIR  the driver's --working-mount-dir (NFS call counts of its mount; optional)
//!   NSC_BENCH_SERVER, NSC_BENCH_SHARE, NSC_BENCH_MOUNT_OPTIONS   StorageClass parameters
//!   NSC_BENCH_N (default 200 pairs), NSC_BENCH_CONCURRENT_N (default 512 creates per mode)
//! Prints medians and ratios; asserts nothing about time.

use nfs_subdir_csi::csi::pb::{
    self,
    controller_client::ControllerClient,
    identity_client::IdentityClient,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Clone)]
struct Params(HashMap<String, String>);

fn req(name: String, params: &Params) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        name,
        capacity_range: Some(pb::CapacityRange {
            required_bytes: 100 << 20,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![pb::VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::MultiNodeMultiWriter as i32,
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }],
        parameters: params.0.clone(),
        ..Default::default()
    }
}

async fn connect(sock: &str) -> Res<Channel> {
    Ok(Endpoint::try_from(format!("unix://{sock}"))?
        .connect()
        .await?)
}

/// (a) one CreateVolume + DeleteVolume pair through the driver; returns the two call times.
async fn driver_pair(
    ctl: &mut ControllerClient<Channel>,
    name: String,
    p: &Params,
) -> Res<(Duration, Duration)> {
    let t = Instant::now();
    let v = ctl
        .create_volume(req(name, p))
        .await?
        .into_inner()
        .volume
        .ok_or("CreateVolume returned no volume")?;
    let created = t.elapsed();
    let t = Instant::now();
    ctl.delete_volume(pb::DeleteVolumeRequest {
        volume_id: v.volume_id,
        ..Default::default()
    })
    .await?;
    Ok((created, t.elapsed()))
}

/// (b) the same result by hand: mkdir(dir, 0777), rename(dir, trash/dir); returns both times.
fn fs_pair(mount: &Path, trash: &Path, name: &str) -> std::io::Result<(Duration, Duration)> {
    let dir = mount.join(name);
    let t = Instant::now();
    std::fs::DirBuilder::new().mode(0o777).create(&dir)?;
    let made = t.elapsed();
    let t = Instant::now();
    std::fs::rename(&dir, trash.join(name))?;
    Ok((made, t.elapsed()))
}

/// Per-op NFS call counts of the mount at `dir` (or the first under it), from /proc/self/mountstats.
fn nfs_ops(dir: &str) -> HashMap<String, u64> {
    let text = std::fs::read_to_string("/proc/self/mountstats").unwrap_or_default();
    let mut ops = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("device ") {
            let at = line.split_whitespace().nth(4).unwrap_or("");
            inside = ops.is_empty() && (at == dir || at.starts_with(&format!("{dir}/")));
        } else if inside {
            let mut f = line.split_whitespace();
            if let (Some(op), Some(n)) = (f.next(), f.next()) {
                if let (Some(op), Ok(n)) = (op.strip_suffix(':'), n.parse::<u64>()) {
                    if op.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                        ops.insert(op.to_owned(), n);
                    }
                }
            }
        }
    }
    ops
}

fn ops_per(label: &str, before: &HashMap<String, u64>, after: &HashMap<String, u64>, n: usize) {
    let mut d: Vec<_> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    d.sort();
    let total: u64 = d.iter().map(|(_, v)| v).sum();
    let list: Vec<String> = d
        .iter()
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n as f64))
        .collect();
    println!(
        "{label}: {:.2} NFS calls per pair ({})",
        total as f64 / n as f64,
        list.join(", ")
    );
}

fn report(label: &str, v: &[Duration]) -> Duration {
    let m = median(v.to_vec());
    println!(
        "{label}: median {:.3} ms  p10 {:.3} ms  p90 {:.3} ms  (n={})",
        ms(m),
        ms(pct(v.to_vec(), 0.1)),
        ms(pct(v.to_vec(), 0.9)),
        v.len()
    );
    m
}

#[tokio::main]
async fn main() -> Res<()> {
    // mkdir's mode is applied as given, as the driver's umask handling intends for 0777
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0) };
    let sock = env("NSC_BENCH_SOCKET");
    let mount = PathBuf::from(env("NSC_BENCH_MOUNT"));
    let params = Params(HashMap::from([
        ("server".to_owned(), env("NSC_BENCH_SERVER")),
        ("share".to_owned(), env("NSC_BENCH_SHARE")),
        ("mountOptions".to_owned(), env("NSC_BENCH_MOUNT_OPTIONS")),
    ]));
    let n = env_num("NSC_BENCH_N", 200);
    let cn = env_num("NSC_BENCH_CONCURRENT_N", 512);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let trash = mount.join(format!(".bench-trash-{run}"));
    std::fs::create_dir(&trash)?;

    let channel = connect(&sock).await?;
    let mut ctl = ControllerClient::new(channel.clone());
    // Warm-up: the first CreateVolume mounts the working share; both paths get their caches warm.
    for i in 0..10 {
        driver_pair(&mut ctl, format!("pvc-warm-{run}-{i}"), &params).await?;
        fs_pair(&mount, &trash, &format!("warm-{run}-{i}"))?;
    }
    // Side by side: one pair of each per iteration, so drift in the machine hits both alike.
    let mut id = IdentityClient::new(channel.clone());
    let mut probe = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        id.probe(pb::ProbeRequest {}).await?;
        probe.push(t.elapsed());
    }
    let work = std::env::var("NSC_BENCH_WORKDIR").unwrap_or_default();
    let mnt = mount.display().to_string();
    let (wa0, mb0) = (nfs_ops(&work), nfs_ops(&mnt));
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut a1, mut a2, mut b1, mut b2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        let (c, d) = driver_pair(&mut ctl, format!("pvc-{run}-{i}"), &params).await?;
        a.push(t.elapsed());
        a1.push(c);
        a2.push(d);
        let name = uuid::Uuid::new_v4().to_string();
        let t = Instant::now();
        let (m, r) = fs_pair(&mount, &trash, &name)?;
        b.push(t.elapsed());
        b1.push(m);
        b2.push(r);
    }
    println!("sequential pairs, {n} each, interleaved:");
    let ma = report("(a) driver CreateVolume+DeleteVolume", &a);
    let mb = report("(b) mkdir 0777 + rename into trash  ", &b);
    let ratio = ma.as_secs_f64() / mb.as_secs_f64();
    report("    Identity.Probe (gRPC only)       ", &probe);
    if !work.is_empty() {
        ops_per("(a) driver working mount", &wa0, &nfs_ops(&work), n);
    }
    ops_per("(b) bench mount         ", &mb0, &nfs_ops(&mnt), n);
    report("    CreateVolume alone               ", &a1);
    report("    DeleteVolume alone               ", &a2);
    report("    mkdir alone                      ", &b1);
    report("    rename alone                     ", &b2);
    println!("RATIO (a)/(b) = {ratio:.2}x  (DESIGN target <= 1.3x)");

    // Throughput: cn creates one at a time, then cn creates from 64 concurrent tasks.
    let mut ids = Vec::with_capacity(2 * cn);
    let t = Instant::now();
    for i in 0..cn {
        let v = ctl
            .create_volume(req(format!("pvc-seq-{run}-{i}"), &params))
            .await?
            .into_inner();
        ids.extend(v.volume.map(|v| v.volume_id));
    }
    let seq_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..64 {
        let mut c = ControllerClient::new(channel.clone());
        let (p, run) = (params.clone(), run.clone());
        tasks.spawn(async move {
            let mut got = Vec::new();
            for i in (w..cn).step_by(64) {
                let v = c
                    .create_volume(req(format!("pvc-par-{run}-{i}"), &p))
                    .await?;
                got.extend(v.into_inner().volume.map(|v| v.volume_id));
            }
            Ok::<_, tonic::Status>(got)
        });
    }
    while let Some(r) = tasks.join_next().await {
        ids.extend(r??);
    }
    let par_s = t.elapsed().as_secs_f64();
    let (seq, par) = (cn as f64 / seq_s, cn as f64 / par_s);
    println!(
        "CreateVolume throughput ({cn} volumes each): sequential {seq:.1}/s ({:.2} ms each), \
         64 concurrent {par:.1}/s",
        seq_s * 1e3 / cn as f64
    );
    println!(
        "RATIO concurrent/sequential = {:.2}x  (DESIGN target >= 8x)",
        par / seq
    );

    // Clean up (untimed): delete every volume, remove the hand-made trash.
    let total = ids.len();
    for id in ids {
        ctl.delete_volume(pb::DeleteVolumeRequest {
            volume_id: id,
            ..Default::default()
        })
        .await?;
    }
    std::fs::remove_dir_all(&trash)?;
    println!(
        "cleanup: {total} volumes deleted, {} removed",
        trash.display()
    );
    Ok(())
}
