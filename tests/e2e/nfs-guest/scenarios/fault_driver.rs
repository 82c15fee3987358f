//! What the export-fault scenarios (faults.rs, squash.rs) share: a driver process of their own
//! (its log and its /metrics are theirs alone), the guest's count of NFS calls, a Redis-like writer
//! running as uid 999, and directory listings.

use crate::Env;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A driver started for the fault scenarios: `serve` with both roles and an HTTP port.
pub struct FaultDriver {
    child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    http: String,
}

impl FaultDriver {
    /// Starts `$NSC_DRIVER serve` with its socket, working mounts and log named after `tag`.
    pub async fn start(env: &Env, tag: &str, port: u16) -> Result<FaultDriver, String> {
        let bin = std::env::var("NSC_DRIVER").map_err(|_| "NSC_DRIVER is not set".to_owned())?;
        let socket = PathBuf::from(format!("/tmp/nsc/{tag}.sock"));
        let log = env.results.join(format!("driver-{tag}.log"));
        let _ = std::fs::remove_file(&socket);
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let http = format!("127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["serve", "--nodeid", "nfs-guest", "--http-address", &http])
            .arg("--endpoint")
            .arg(format!("unix://{}", socket.display()))
            .arg("--working-mount-dir")
            .arg(format!("/tmp/nsc/work-{tag}"))
            .env("RUST_LOG", "info,nfs_subdir_csi=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{bin}: {e}"))?;
        let drv = FaultDriver {
            child,
            socket,
            log,
            http,
        };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if drv.socket.exists() && drv.metrics().is_ok() {
                return Ok(drv);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("driver {tag}: no socket or /metrics after 10 s"))
    }

    /// How often the driver has logged `needle`.
    pub fn count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(needle)
            .count()
    }

    /// GET /metrics (plain HTTP/1.0 over TCP).
    pub fn metrics(&self) -> Result<String, String> {
        let mut s = std::net::TcpStream::connect(&self.http).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.http)
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        s.read_to_string(&mut body).map_err(|e| e.to_string())?;
        Ok(body)
    }

    /// The sum of the samples of the metric family `name` whose labels contain `label` (empty:
    /// all); `None` when the family has no sample.
    pub fn metric(&self, name: &str, label: &str) -> Option<f64> {
        let text = self.metrics().ok()?;
        let mut found = None;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) || !rest.contains(label) {
                continue;
            }
            if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *found.get_or_insert(0.0) += v;
            }
        }
        found
    }
}

impl Drop for FaultDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// NFS calls this guest's kernel client has sent so far (/proc/net/rpc/nfs, line `rpc`).
pub fn nfs_calls() -> u64 {
    std::fs::read_to_string("/proc/net/rpc/nfs")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("rpc ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Runs `script` with sh as uid/gid 999 and umask 022 in `dir`: what a Redis pod writes.
pub fn as_uid_999(dir: &Path, script: &str) -> Result<(), String> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask 022 && {script}"))
        .current_dir(dir)
        .uid(999)
        .gid(999)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What a Redis pod leaves in its volume: dump.rdb (0644) and appendonlydir/ (0755) with a file.
pub const REDIS_WRITES: &str = "echo rdb > dump.rdb && mkdir appendonlydir && \
     echo aof > appendonlydir/appendonly.aof.1.base.rdb";

/// Names in `dir`, sorted (empty if it cannot be read).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits (up to `within`) until `done` holds; how long it took, or `None`.
pub async fn wait_for(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if done() {
            return Some(t.elapsed());
        }
        if t.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
