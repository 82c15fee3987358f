//! Shared by the benchmarks (benches/local.rs, and examples/nfs_bench.rs through `#[path]`): order
//! statistics of measured durations. Both panic on an empty slice.

use std::time::Duration;

fn sorted(v: &[Duration]) -> Vec<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The median of `v` (the upper middle one of an even count).
pub fn median(v: &[Duration]) -> Duration {
    sorted(v)[v.len() / 2]
}

/// The `p` quantile of `v` (0.0–1.0), nearest rank rounding down.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    sorted(v)[((v.len() - 1) as f64 * p) as usize]
}
