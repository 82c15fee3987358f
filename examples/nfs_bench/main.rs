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
//!   NSC_BENCH_N (default 200 pairs), NSC_BENCH_CONCURRENT_N (default 512 calls per mode and
//!   round), NSC_BENCH_ROUNDS (default 3 rounds of 64-way mkdir, CreateVolume and Probe),
//!   NSC_BENCH_ROW (the server's name in the ROW lines; default "NFS")
//! Also prints `ROW name | figure | target` lines for the one benchmark table.
//! Prints medians and ratios; asserts nothing about time.

#[path = "../../benches/common/mod.rs"]
mod common;
mod ops;
mod parallel;
mod util;

use common::{median, percentile};
use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, identity_client::IdentityClient,
    volume_capability::access_mode::Mode,
};
use ops::{nfs_ops, per};
use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
pub(crate) use util::{Res, env, env_num, ms};

#[derive(Clone)]
pub(crate) struct Params(HashMap<String, String>);

pub(crate) fn req(name: String, params: &Params) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        name,
        capacity_range: Some(pb::CapacityRange {
            required_bytes: 100 << 20,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![client::mount_capability(Mode::MultiNodeMultiWriter, &[])],
        parameters: params.0.clone(),
        ..Default::default()
    }
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

fn report(label: &str, v: &[Duration]) -> Duration {
    let m = median(v);
    println!(
        "{label}: median {:.3} ms  p10 {:.3} ms  p90 {:.3} ms  (n={})",
        ms(m),
        ms(percentile(v, 0.1)),
        ms(percentile(v, 0.9)),
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
    let row = std::env::var("NSC_BENCH_ROW").unwrap_or_else(|_| "NFS".into());
    let cn = env_num("NSC_BENCH_CONCURRENT_N", 512);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let trash = mount.join(format!(".bench-trash-{run}"));
    std::fs::create_dir(&trash)?;

    let channel = client::connect(&format!("unix://{sock}"), Duration::from_secs(10)).await?;
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
    let settled = Duration::from_millis(300);
    let wa1 = ops::settle(&work, settled, Duration::from_secs(10));
    let mb1 = nfs_ops(&mnt);
    println!("sequential pairs, {n} each, interleaved:");
    let ma = report("(a) driver CreateVolume+DeleteVolume", &a);
    let mb = report("(b) mkdir 0777 + rename into trash  ", &b);
    let ratio = ma.as_secs_f64() / mb.as_secs_f64();
    let mp = report("    Identity.Probe (gRPC only)       ", &probe);
    report("    CreateVolume alone               ", &a1);
    report("    DeleteVolume alone               ", &a2);
    report("    mkdir alone                      ", &b1);
    report("    rename alone                     ", &b2);
    println!("RATIO (a)/(b) = {ratio:.2}x  (DESIGN target <= 1.3x)");
    let (wa, mb_ops) = (ops::diff(&wa0, &wa1), ops::diff(&mb0, &mb1));
    println!("NFS calls per pair (mountstats, per op type):");
    println!(
        "  (a) driver working mount, all work incl. background trash removal: {}",
        per(&wa, n)
    );
    println!(
        "  (b) bench mount, mkdir + rename:                                    {}",
        per(&mb_ops, n)
    );

    // Where the driver's calls go: each step of a few pairs counted on its own.
    let k = 20;
    let (mut create, mut delete, mut background) = Default::default();
    for i in 0..k {
        let s0 = nfs_ops(&work);
        let v = ctl
            .create_volume(req(format!("pvc-step-{run}-{i}"), &params))
            .await?
            .into_inner()
            .volume
            .ok_or("CreateVolume returned no volume")?;
        let s1 = nfs_ops(&work);
        ctl.delete_volume(pb::DeleteVolumeRequest {
            volume_id: v.volume_id,
            ..Default::default()
        })
        .await?;
        let s2 = nfs_ops(&work);
        let s3 = ops::settle(&work, settled, Duration::from_secs(10));
        ops::add(&mut create, &ops::diff(&s0, &s1));
        ops::add(&mut delete, &ops::diff(&s1, &s2));
        ops::add(&mut background, &ops::diff(&s2, &s3));
    }
    let mut answered = create.clone();
    ops::add(&mut answered, &delete);
    println!("  by step ({k} pairs, each step counted alone):");
    println!("    CreateVolume:                {}", per(&create, k));
    println!("    DeleteVolume:                {}", per(&delete, k));
    println!("    after the answer (trash):    {}", per(&background, k));
    println!("    Create + Delete (answered):  {}", per(&answered, k));
    println!(
        "ROW {row} Create+Delete wall | {ma_ms:.2} ms = {ratio:.2}x mkdir+rename ({mb_ms:.2} ms) | <= 1.3x",
        ma_ms = ms(ma),
        mb_ms = ms(mb)
    );
    // All the work of a pair, the trash removal included: the steps above blur where the removal
    // starts before the DeleteVolume answer is counted.
    println!(
        "ROW {row} calls per Create+Delete | {} (mkdir+rename: {}) | <= 8",
        per(&wa, n),
        per(&mb_ops, n)
    );
    println!(
        "ROW {row} calls by op type | CreateVolume {}; DeleteVolume {}; trash removal {} | (detail)",
        per(&create, k),
        per(&delete, k),
        per(&background, k)
    );

    // Throughput: cn creates one at a time; then rounds of cn bare mkdirs, cn CreateVolume and cn
    // Probe calls, each from 64 concurrent callers, side by side in every round.
    let mut ids = Vec::new();
    let t = Instant::now();
    for i in 0..cn {
        let v = ctl
            .create_volume(req(format!("pvc-seq-{run}-{i}"), &params))
            .await?
            .into_inner();
        ids.extend(v.volume.map(|v| v.volume_id));
    }
    let seq = cn as f64 / t.elapsed().as_secs_f64();
    let rounds = env_num("NSC_BENCH_ROUNDS", 3);
    let (mut fs_rate, mut drv_rate, mut probe_rate, mut ratios) = (vec![], vec![], vec![], vec![]);
    let par_dir = mount.join(format!(".bench-par-{run}"));
    std::fs::create_dir(&par_dir)?;
    for r in 0..rounds {
        let (fs_s, made) = parallel::mkdirs(&par_dir, cn, &format!("r{r}"))?;
        let (drv_s, got) =
            parallel::creates(&channel, &params, cn, &format!("par-{run}-r{r}")).await?;
        let probe_s = parallel::probes(&channel, cn).await?;
        ids.extend(got);
        for dir in made {
            std::fs::remove_dir(dir)?;
        }
        let (f, d, p) = (cn as f64 / fs_s, cn as f64 / drv_s, cn as f64 / probe_s);
        println!(
            "  round {r}: 64 concurrent: mkdir {f:.1}/s, CreateVolume {d:.1}/s ({:.2}x mkdir), Probe {p:.1}/s",
            d / f
        );
        fs_rate.push(f);
        drv_rate.push(d);
        probe_rate.push(p);
        ratios.push(d / f);
    }
    std::fs::remove_dir(&par_dir)?;
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, d, p, q) = (
        med(&mut fs_rate),
        med(&mut drv_rate),
        med(&mut probe_rate),
        med(&mut ratios),
    );
    println!(
        "throughput ({cn} each, median of {rounds} rounds): sequential CreateVolume {seq:.1}/s; \
         64 concurrent: CreateVolume {d:.1}/s ({:.2}x sequential), bare mkdir {f:.1}/s, Probe {p:.1}/s",
        d / seq
    );
    println!("RATIO 64-way CreateVolume / 64-way mkdir = {q:.2}x  (DESIGN target >= 0.8x)");
    println!(
        "ROW {row} 64-way CreateVolume | {d:.0}/s = {q:.2}x 64-way mkdir ({f:.0}/s); Probe {p:.0}/s | >= 0.8x"
    );
    println!(
        "ROW {row} sequential Probe vs CreateVolume | Probe p50 {:.3} ms | (gRPC floor)",
        ms(mp)
    );

    // Clean up (untimed): delete every volume (64 at a time), remove the hand-made trash.
    let total = ids.len();
    parallel::deletes(&channel, ids).await?;
    std::fs::remove_dir_all(&trash)?;
    println!(
        "cleanup: {total} volumes deleted, {} removed",
        trash.display()
    );
    Ok(())
}
