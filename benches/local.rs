//! Benchmark on a local share (no NFS): process start to first Probe, Probe vs CreateVolume /
//! DeleteVolume latency on the same socket, 64-way concurrency, idle memory and memory growth
//! over 10,000 volumes, and the cost of metrics: Probe and CreateVolume with `--http-address` set
//! (metrics on, scraped) against two drivers side by side, plus idle RSS with the HTTP server in.
//! Prints medians and ratios; asserts nothing about time (machines are noisy).
//! The scale rows (ListVolumes over all pages, start with a full trash) are in `scale/`.
//! Run: `cargo bench --bench local` (`NSC_BENCH_VOLUMES` changes the 10,000).

mod common;
mod scale;

use common::{median, percentile};
use nfs_subdir_csi::csi::client::mount_capability;
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, identity_client::IdentityClient,
    volume_capability::access_mode::Mode,
};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn req(name: String) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        name,
        capacity_range: Some(pb::CapacityRange {
            required_bytes: 100 << 20,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_capability(Mode::MultiNodeMultiWriter, &[])],
        ..Default::default()
    }
}

struct Running {
    child: Child,
    channel: Channel,
    started_to_probe: Duration,
}

// The child is handed to the caller inside `Running` and reaped by `stop`.
#[allow(clippy::zombie_processes)]
async fn start(dir: &std::path::Path) -> Running {
    start_with(dir, &[]).await
}

#[allow(clippy::zombie_processes)]
async fn start_with(dir: &std::path::Path, extra: &[&str]) -> Running {
    let sock = dir.join("csi.sock");
    let _ = std::fs::remove_file(&sock);
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nfs-subdir-csi"))
        .args(["serve", &format!("--endpoint=unix://{}", sock.display())])
        .arg(format!("--default-share={}", dir.join("share").display()))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("start driver");
    loop {
        if let Ok(ep) = Endpoint::try_from(format!("unix://{}", sock.display())) {
            if let Ok(ch) = ep.connect().await {
                if IdentityClient::new(ch.clone())
                    .probe(pb::ProbeRequest {})
                    .await
                    .is_ok()
                {
                    return Running {
                        child,
                        channel: ch,
                        started_to_probe: t0.elapsed(),
                    };
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("driver did not start");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn stop(mut r: Running) {
    let _ = r.child.kill();
    let _ = r.child.wait();
}

#[tokio::main]
async fn main() {
    let volumes: usize = std::env::var("NSC_BENCH_VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    println!("binary: {}", env!("CARGO_BIN_EXE_nfs-subdir-csi"));
    if let Ok(meta) = std::fs::metadata("target/release/nfs-subdir-csi") {
        println!("release binary size: {:.2} MB", meta.len() as f64 / 1e6);
    }

    let mut starts = Vec::new();
    for _ in 0..7 {
        let r = start(dir.path()).await;
        starts.push(r.started_to_probe);
        stop(r);
    }
    println!(
        "process start -> first Probe answer: median {:?} (7 runs)",
        median(&starts)
    );
    println!(
        "ROW Local: start to first Probe, empty share | {:.1?} | <= 20 ms",
        median(&starts)
    );

    let r = start(dir.path()).await;
    let pid = r.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid);
    println!("idle RSS: {:.1} MB", idle as f64 / 1024.0);
    println!(
        "ROW Local: idle RSS | {:.1} MB | <= 9 MB",
        idle as f64 / 1024.0
    );

    let mut id = IdentityClient::new(r.channel.clone());
    let mut ctl = ControllerClient::new(r.channel.clone());
    for _ in 0..200 {
        id.probe(pb::ProbeRequest {}).await.unwrap();
    }
    let (mut probe, mut create, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..2000 {
        let t = Instant::now();
        id.probe(pb::ProbeRequest {}).await.unwrap();
        probe.push(t.elapsed());
        let t = Instant::now();
        let v = ctl
            .create_volume(req(format!("pvc-lat-{i}")))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        create.push(t.elapsed());
        let t = Instant::now();
        ctl.delete_volume(pb::DeleteVolumeRequest {
            volume_id: v.volume_id,
            ..Default::default()
        })
        .await
        .unwrap();
        delete.push(t.elapsed());
    }
    let (p, c, d) = (median(&probe), median(&create), median(&delete));
    println!("Probe p50 {p:?} p99 {:?}", percentile(&probe, 0.99));
    println!(
        "CreateVolume p50 {c:?} p99 {:?}  ({:.2}x Probe)",
        percentile(&create, 0.99),
        c.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "ROW Local: CreateVolume p50 vs Probe p50 | {c:.0?} vs {p:.0?} = {:.2}x | <= 2x",
        c.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "DeleteVolume p50 {d:?} p99 {:?}  ({:.2}x Probe)",
        percentile(&delete, 0.99),
        d.as_secs_f64() / p.as_secs_f64()
    );

    let n = 512;
    let t = Instant::now();
    for i in 0..n {
        ctl.create_volume(req(format!("pvc-seq-{i}")))
            .await
            .unwrap();
    }
    let seq = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..64 {
        let mut c = ControllerClient::new(r.channel.clone());
        tasks.spawn(async move {
            for i in 0..n / 64 {
                c.create_volume(req(format!("pvc-par-{w}-{i}")))
                    .await
                    .unwrap();
            }
        });
    }
    // A worker that panicked (a failed CreateVolume) must fail the run, not shorten it.
    while let Some(done) = tasks.join_next().await {
        done.expect("a CreateVolume worker failed");
    }
    let par = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "CreateVolume throughput: sequential {seq:.0}/s, 64 concurrent {par:.0}/s ({:.2}x)",
        par / seq
    );

    let before = rss_kib(pid);
    let t = Instant::now();
    for i in 0..volumes {
        ctl.create_volume(req(format!("pvc-mem-{i}")))
            .await
            .unwrap();
    }
    let after = rss_kib(pid);
    println!(
        "{volumes} volumes in {:.1}s: RSS {:.1} MB -> {:.1} MB (growth {:.2} MiB)",
        t.elapsed().as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0
    );
    stop(r);
    println!(
        "ROW Scale: RSS growth over {volumes} CreateVolume, local share | {:.2} MiB | < 2 MiB",
        (after as f64 - before as f64) / 1024.0
    );
    scale::rows(dir.path(), volumes + 2 * n).await;
    metrics_cost().await;
}

/// One HTTP GET on 127.0.0.1:`port`; returns the body length.
fn scrape(port: u16, path: &str) -> usize {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    body.len()
}

/// Two drivers at once, one with metrics and the HTTP endpoint, one without; calls alternate
/// between them so that both see the same machine load.
async fn metrics_cost() {
    let (off_dir, on_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let off = start(off_dir.path()).await;
    let on = start_with(
        on_dir.path(),
        &[&format!("--http-address=127.0.0.1:{port}")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "idle RSS with metrics + HTTP endpoint: {:.1} MB (without: {:.1} MB); first scrape {} bytes",
        rss_kib(on.child.id()) as f64 / 1024.0,
        rss_kib(off.child.id()) as f64 / 1024.0,
        scrape(port, "/metrics")
    );
    let mut clients: Vec<_> = [&off, &on]
        .iter()
        .map(|r| {
            (
                IdentityClient::new(r.channel.clone()),
                ControllerClient::new(r.channel.clone()),
            )
        })
        .collect();
    let mut probe = [Vec::new(), Vec::new()];
    let mut create = [Vec::new(), Vec::new()];
    for i in 0..2000 {
        for (k, (id, ctl)) in clients.iter_mut().enumerate() {
            let t = Instant::now();
            id.probe(pb::ProbeRequest {}).await.unwrap();
            if i >= 200 {
                probe[k].push(t.elapsed());
            }
            let t = Instant::now();
            ctl.create_volume(req(format!("pvc-m-{i}"))).await.unwrap();
            if i >= 200 {
                create[k].push(t.elapsed());
            }
        }
    }
    let after = scrape(port, "/metrics");
    let [p_off, p_on] = probe.map(|v| median(&v));
    let [c_off, c_on] = create.map(|v| median(&v));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "metrics on vs off (1800 calls each, interleaved): Probe p50 {p_on:?} vs {p_off:?} ({:+.1} %), \
         CreateVolume p50 {c_on:?} vs {c_off:?} ({:+.1} %); scrape after: {after} bytes, RSS {:.1} MB",
        (ratio(p_on, p_off) - 1.0) * 100.0,
        (ratio(c_on, c_off) - 1.0) * 100.0,
        rss_kib(on.child.id()) as f64 / 1024.0
    );
    stop(on);
    stop(off);
}
