//! Property tests of every parser and printer at the driver's edge: volume ids, safe paths,
//! StorageClass parameters, subDir/pathPattern templates, ListVolumes page tokens, mount options
//! and the volume context. Hostile input never panics, what is printed parses back to the same
//! value, and every accepted path stays strictly inside its share.
//!
//! 10,000 cases per property by default (CI); `PROPTEST_CASES=1000000 cargo test --test prop_edge
//! -- --nocapture` runs a million (see tests/README.md). Each property prints its case count and
//! time.

mod ids;
mod params;
mod strategies;

use nfs_subdir_csi::volume::SubDir;
use nfs_subdir_csi::volume::path::STATE_DIR;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::path::{Component, Path};
use std::time::Instant;

/// Cases per property when `PROPTEST_CASES` is not set.
const CI_CASES: u32 = 10_000;

/// Runs `test` on `cases()` values of `strategy`; panics with the shrunk input on a failure.
pub fn check<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CI_CASES;
    }
    // Generators of valid values filter out some candidates; allow that at any case count.
    config.max_local_rejects = config.cases.saturating_mul(2).max(65_536);
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let calls = Cell::new(0u64);
    let started = Instant::now();
    let result = runner.run(&strategy, |value| {
        calls.set(calls.get() + 1);
        test(value)
    });
    if let Err(e) = result {
        panic!("property {name} failed: {e}");
    }
    println!(
        "prop {name}: {cases} cases passed ({} calls) in {:.2} s",
        calls.get(),
        started.elapsed().as_secs_f64()
    );
}

/// The containment guarantee of a [`SubDir`]: relative, plain components only, never the state
/// directory, and joined to a base it names something strictly below the base.
pub fn assert_inside(sub: &SubDir) -> Result<(), TestCaseError> {
    let text = sub.as_str();
    proptest::prop_assert!(!text.is_empty() && !text.starts_with('/'), "{text:?}");
    proptest::prop_assert!(!text.contains('\0'), "NUL in {text:?}");
    for part in sub.components() {
        proptest::prop_assert!(
            !part.is_empty() && part != "." && part != ".." && part.len() <= 255,
            "component {part:?} of {text:?}"
        );
    }
    proptest::prop_assert_ne!(sub.components().next(), Some(STATE_DIR));
    let base = Path::new("/srv/share");
    let joined = base.join(text);
    proptest::prop_assert!(
        Path::new(text)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{text:?}"
    );
    proptest::prop_assert!(joined.starts_with(base) && joined != base, "{joined:?}");
    Ok(())
}
