//! The harness around the guest (tests/e2e/nfs-guest/boot.sh): ganesha control over the results share,
//! the list of deleted volumes its host check reads, and the driver's log.

use crate::Env;
use std::io::Write;
use std::time::{Duration, Instant};

/// Appends volume names for the host check (their directories must be gone from the export).
pub fn record_deleted(env: &Env, names: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.results.join("deleted-volumes.txt"))
        .expect("open deleted-volumes.txt");
    for n in names {
        writeln!(f, "{n}").expect("write deleted-volumes.txt");
    }
}

/// Asks the host to act on ganesha (protocol in run.sh's header); returns the ack time.
pub async fn nfs_server(env: &Env, op: &str) -> Result<Duration, String> {
    let req = env.results.join(format!("ganesha-{op}"));
    let ack = env.results.join(format!("ganesha-{op}.ack"));
    let tmp = env.results.join(format!("ganesha-{op}.tmp"));
    let _ = std::fs::remove_file(&ack);
    std::fs::write(&tmp, "").map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &req).map_err(|e| e.to_string())?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(st) = std::fs::read_to_string(&ack) {
            let _ = std::fs::remove_file(&ack);
            return if st.trim() == "ok" {
                Ok(started.elapsed())
            } else {
                Err(st.trim().to_owned())
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(&req);
    Err("no acknowledgement within 60 s".into())
}

/// How often the driver has logged `needle` so far.
pub fn count_in_log(env: &Env, needle: &str) -> usize {
    std::fs::read_to_string(&env.driver_log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// The driver has dropped (and will remake) a working mount: logged once per stale mount.
pub const DROPPED_WORKING_MOUNT: &str = "dropping working mount";
