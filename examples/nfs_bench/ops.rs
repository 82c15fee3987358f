//! NFS call counts per op type of one mount, from /proc/self/mountstats, and their differences
//! per pair or per step (what examples/nfs_bench prints).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Call counts by op type (ACCESS, CREATE, ...) of one mount.
pub type Ops = BTreeMap<String, u64>;

/// Per-op NFS call counts of the mount at `dir` (or the first under it), from /proc/self/mountstats.
pub fn nfs_ops(dir: &str) -> Ops {
    let text = std::fs::read_to_string("/proc/self/mountstats").unwrap_or_default();
    let mut ops = Ops::new();
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

/// `after - before`, op by op, without the ops that did not move.
pub fn diff(before: &Ops, after: &Ops) -> Ops {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Adds `d` into `sum`.
pub fn add(sum: &mut Ops, d: &Ops) {
    for (k, v) in d {
        *sum.entry(k.clone()).or_default() += v;
    }
}

/// Total calls of `d` divided by `n`.
pub fn total(d: &Ops, n: usize) -> f64 {
    d.values().sum::<u64>() as f64 / n as f64
}

/// "9.00 (ACCESS 4.00, CREATE 1.00, ...)": calls per unit of `n`.
pub fn per(d: &Ops, n: usize) -> String {
    let list: Vec<String> = d
        .iter()
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n as f64))
        .collect();
    format!("{:.2} ({})", total(d, n), list.join(", "))
}

/// Waits until the mount at `dir` has made no call for `quiet` (background work settled), at most
/// `max`; returns its counts then.
pub fn settle(dir: &str, quiet: Duration, max: Duration) -> Ops {
    let started = Instant::now();
    let mut last = nfs_ops(dir);
    let mut since = Instant::now();
    while started.elapsed() < max {
        std::thread::sleep(Duration::from_millis(20));
        let now = nfs_ops(dir);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}
