//! The guest's network link to the server (eth0, QEMU user networking) under the scenarios'
//! control: a partition (every packet dropped both ways, the link itself staying up) and a slow
//! link (tc netem delay or loss), plus the driver's thread counts the network faults are judged by.
//!
//! Why tc and not `ip link set eth0 down`: with the link down the guest kernel removes its routes
//! and answers every send with ENETUNREACH at once, which is an easier case than a real partition
//! (a switch or router in between failing: packets vanish, nothing answers, TCP waits). Why in the
//! guest and not in the server's namespace: QEMU's user networking is a TCP proxy, so a drop on the
//! server side leaves the guest's own TCP connection acknowledged and looking alive. The tc
//! modules load with modprobe from the host root (the guest runs the host's kernel version).

use std::process::Command;
use std::time::Duration;

const DEV: &str = "eth0";

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Loads the qdiscs, classifier and action the faults use (the guest kernel cannot autoload
/// them: its module helper runs in the initramfs, not in the host root).
pub fn load_modules() -> Result<(), String> {
    run(
        "modprobe",
        &["-a", "sch_netem", "sch_ingress", "cls_matchall", "act_gact"],
    )
}

/// Drops every packet on the link, both ways; the link stays up and keeps its routes.
pub fn partition() -> Result<(), String> {
    load_modules()?;
    run(
        "tc",
        &[
            "qdisc", "replace", "dev", DEV, "root", "netem", "loss", "100%",
        ],
    )?;
    run("tc", &["qdisc", "replace", "dev", DEV, "ingress"])?;
    run(
        "tc",
        &[
            "filter", "add", "dev", DEV, "parent", "ffff:", "matchall", "action", "drop",
        ],
    )
}

/// The link as it was: no qdisc of ours, no filter.
pub fn heal() -> Result<(), String> {
    let root = run("tc", &["qdisc", "del", "dev", DEV, "root"]);
    let ingress = run("tc", &["qdisc", "del", "dev", DEV, "ingress"]);
    // deleting what is not there is fine; what matters is that nothing of ours is left
    let left = qdiscs()?;
    if left.contains("netem") || left.contains("ingress") {
        return Err(format!("still there: {left} ({root:?} {ingress:?})"));
    }
    Ok(())
}

/// Makes the link slow: `spec` is netem's (e.g. "delay 100ms", "loss 5%"), on what the guest sends.
pub fn netem(spec: &str) -> Result<(), String> {
    load_modules()?;
    let mut args = vec!["qdisc", "replace", "dev", DEV, "root", "netem"];
    args.extend(spec.split_whitespace());
    run("tc", &args)
}

/// The qdiscs on the link, as `tc qdisc show` prints them (one line each).
pub fn qdiscs() -> Result<String, String> {
    let out = Command::new("tc")
        .args(["qdisc", "show", "dev", DEV])
        .output()
        .map_err(|e| format!("tc: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .collect::<Vec<_>>()
        .join("; "))
}

/// The driver's (NSC_DRIVER_PID) threads: (all, in uninterruptible sleep — stuck in the kernel).
pub fn driver_threads() -> Option<(usize, usize)> {
    let pid = std::env::var("NSC_DRIVER_PID").ok()?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let (mut all, mut stuck) = (0, 0);
    for t in tasks.flatten() {
        all += 1;
        let st = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        if st
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('D'))
        {
            stuck += 1;
        }
    }
    Some((all, stuck))
}

/// Samples [`driver_threads`] every `every` until `stop`; returns (max all, max stuck, samples).
pub async fn sample_threads(
    every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, usize, usize) {
    let (mut all, mut stuck, mut n) = (0, 0, 0);
    while !*stop.borrow() {
        if let Some((a, s)) = driver_threads() {
            all = all.max(a);
            stuck = stuck.max(s);
            n += 1;
        }
        tokio::time::sleep(every).await;
    }
    (all, stuck, n)
}

/// The median of some durations, in ms (0 for none).
pub fn median_ms(v: &[Duration]) -> u128 {
    let mut ms: Vec<u128> = v.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    ms.get(ms.len() / 2).copied().unwrap_or(0)
}
