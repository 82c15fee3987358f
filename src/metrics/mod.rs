//! The driver's Prometheus metrics: one [`Metrics`] value owns its own recorder (no global
//! recorder) and is handed down like a context. Domain code records events through its small,
//! typed methods; [`layer`] counts every gRPC call in one place. No label ever carries a volume id
//! or a path, so the number of series stays bounded.

pub mod layer;
mod names;

pub use names::*;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::sync::Arc;
use std::time::Duration;

const META: Metadata<'static> = Metadata::new("nfs_subdir_csi", Level::INFO, None);

/// Latency buckets in seconds: from a local-share Probe (tens of µs) to an NFS mount timeout.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// A handle on the metrics of one process; cheap to clone. [`Metrics::off`] records nothing.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.is_some() {
            "Metrics(on)"
        } else {
            "Metrics(off)"
        })
    }
}

impl Metrics {
    /// Metrics that are recorded and can be rendered for the process `scope`. Every family shows
    /// from the start: the scope's families with a fixed set of label values as zero series, all
    /// others by their HELP and TYPE lines only (so dashboards can be checked against any one
    /// process's exposition).
    pub fn new(scope: Scope) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            inner: Some(Arc::new(Inner { recorder, handle })),
        };
        m.describe();
        m.gauge(
            BUILD_INFO,
            vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
        )
        .set(1.0);
        m.zero_series(scope);
        m
    }

    /// Registers the series whose label values are known in advance at zero, so that rates work
    /// from the first scrape.
    fn zero_series(&self, scope: Scope) {
        let labelled = |name, label: &'static str, values: &[&'static str]| {
            for v in values {
                self.counter(name, vec![Label::new(label, *v)]).increment(0);
            }
        };
        labelled(
            VOLUMES,
            "action",
            &["created", "deleted", "archived", "retained"],
        );
        self.counter(TRASH_REMOVED, Vec::new()).increment(0);
        self.gauge(TRASH_ENTRIES, Vec::new()).set(0.0);
        self.counter(REMOUNTS, Vec::new()).increment(0);
        for state in MountState::ALL {
            self.working_mounts(state, 0);
        }
        match scope {
            Scope::Serve => labelled(REGISTRATIONS, "result", &["accepted", "refused"]),
            Scope::Provisioner => {
                labelled(CLAIMS, "result", &["provisioned", "released", "failed"]);
                labelled(RECONCILE_ERRORS, "kind", &["claim", "volume"]);
                self.leader(false);
            }
        }
    }

    /// Metrics that record nothing (no HTTP endpoint to serve them).
    pub fn off() -> Self {
        Metrics::default()
    }

    /// True unless this is [`Metrics::off`].
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The Prometheus text exposition (format 0.0.4) of everything recorded so far, plus the
    /// HELP and TYPE lines of the families that have no series yet.
    pub fn render(&self) -> String {
        let Some(i) = &self.inner else {
            return String::new();
        };
        let mut text = i.handle.render();
        for (name, kind, help) in DESCRIPTIONS {
            if !text.contains(&format!("# TYPE {name} ")) {
                let kind = match kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Histogram => "histogram",
                };
                text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n\n"));
            }
        }
        text
    }

    /// Folds recorded histogram samples into their buckets, so memory stays bounded between
    /// scrapes; call it every few seconds.
    pub fn upkeep(&self) {
        if let Some(i) = &self.inner {
            i.handle.run_upkeep();
        }
    }

    fn describe(&self) {
        if let Some(i) = &self.inner {
            for (name, kind, help) in DESCRIPTIONS {
                let (name, help) = (metrics::KeyName::from_const_str(name), (*help).into());
                match kind {
                    Kind::Counter => i.recorder.describe_counter(name, None, help),
                    Kind::Gauge => i.recorder.describe_gauge(name, None, help),
                    Kind::Histogram => i.recorder.describe_histogram(name, None, help),
                }
            }
        }
    }

    /// The counter `name` with `labels` (a no-op counter when off).
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        match &self.inner {
            Some(i) => i
                .recorder
                .register_counter(&Key::from_parts(name, labels), &META),
            None => Counter::noop(),
        }
    }

    /// The gauge `name` with `labels` (a no-op gauge when off).
    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        match &self.inner {
            Some(i) => i
                .recorder
                .register_gauge(&Key::from_parts(name, labels), &META),
            None => Gauge::noop(),
        }
    }

    /// The histogram `name` with `labels` (a no-op histogram when off).
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        match &self.inner {
            Some(i) => i
                .recorder
                .register_histogram(&Key::from_parts(name, labels), &META),
            None => Histogram::noop(),
        }
    }

    // Domain events. Labels are fixed words, never ids or paths.

    /// A volume directory was created, deleted, archived or retained.
    pub fn volume(&self, action: VolumeAction) {
        self.counter(VOLUMES, vec![Label::new("action", action.as_str())])
            .increment(1);
    }

    /// How many entries wait in a share's trash, as last seen.
    pub fn trash_entries(&self, entries: usize) {
        self.gauge(TRASH_ENTRIES, Vec::new()).set(entries as f64);
    }

    /// A trash entry was added (`+1`) or finished (`-1`) since the last listing.
    pub fn trash_entries_add(&self, delta: f64) {
        self.gauge(TRASH_ENTRIES, Vec::new()).increment(delta);
    }

    /// A trash entry was removed for good.
    pub fn trash_removed(&self) {
        self.counter(TRASH_REMOVED, Vec::new()).increment(1);
    }

    /// Removing a trash entry failed with `errno` (e.g. `EACCES`).
    pub fn trash_removal_failed(&self, errno: &str) {
        let errno = errno_label(errno);
        self.counter(TRASH_FAILURES, vec![Label::new("errno", errno)])
            .increment(1);
    }

    /// Working NFS mounts now in `state`.
    pub fn working_mounts(&self, state: MountState, count: usize) {
        self.gauge(WORKING_MOUNTS, vec![Label::new("state", state.as_str())])
            .set(count as f64);
    }

    /// A working mount was dropped and made again.
    pub fn remount(&self) {
        self.counter(REMOUNTS, Vec::new()).increment(1);
    }

    /// A node mount or unmount took `took`.
    pub fn node_mount(&self, operation: MountOp, took: Duration) {
        let op = match operation {
            MountOp::Mount => "mount",
            MountOp::Unmount => "unmount",
        };
        self.histogram(NODE_MOUNT_DURATION, vec![Label::new("operation", op)])
            .record(took.as_secs_f64());
    }

    /// Kubelet accepted (`true`) or refused the plugin registration.
    pub fn kubelet_registration(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "refused" };
        self.counter(REGISTRATIONS, vec![Label::new("result", result)])
            .increment(1);
    }

    /// The provisioner provisioned, released, or failed a claim.
    pub fn claim(&self, result: ClaimResult) {
        self.counter(CLAIMS, vec![Label::new("result", result.as_str())])
            .increment(1);
    }

    /// Whether this provisioner replica leads.
    pub fn leader(&self, leading: bool) {
        self.gauge(LEADER, Vec::new())
            .set(if leading { 1.0 } else { 0.0 });
    }

    /// A provisioner reconcile of `kind` failed.
    pub fn reconcile_error(&self, kind: ReconcileKind) {
        let kind = match kind {
            ReconcileKind::Claim => "claim",
            ReconcileKind::Volume => "volume",
        };
        self.counter(RECONCILE_ERRORS, vec![Label::new("kind", kind)])
            .increment(1);
    }
}

/// Keeps the errno label to an upper-case errno name; anything else becomes `other`.
fn errno_label(errno: &str) -> String {
    let ok = errno.len() <= 16
        && errno.starts_with('E')
        && errno
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        errno.to_owned()
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_records_nothing_and_on_renders_what_was_recorded() {
        let off = Metrics::off();
        off.volume(VolumeAction::Created);
        assert_eq!(off.render(), "");
        let on = Metrics::new(Scope::Serve);
        on.volume(VolumeAction::Created);
        on.volume(VolumeAction::Created);
        on.trash_removal_failed("EACCES");
        on.trash_removal_failed("/some/path");
        let text = on.render();
        assert!(
            text.contains("nfs_subdir_csi_volumes_total{action=\"created\"} 2"),
            "{text}"
        );
        assert!(text.contains("errno=\"EACCES\"} 1"), "{text}");
        assert!(text.contains("errno=\"other\"} 1"), "{text}");
        assert!(!text.contains("/some/path"), "{text}");
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                "nfs_subdir_csi_build_info{{version=\"{version}\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains("# HELP nfs_subdir_csi_volumes_total "),
            "{text}"
        );
        // Families with no series yet still show; the provisioner's have no series here.
        assert!(text.contains("# TYPE nfs_subdir_csi_grpc_request_duration_seconds histogram"));
        assert!(
            text.contains("nfs_subdir_csi_volumes_total{action=\"retained\"} 0"),
            "{text}"
        );
        assert!(!text.contains("nfs_subdir_csi_leader 0"), "{text}");
        let p = Metrics::new(Scope::Provisioner).render();
        assert!(p.contains("nfs_subdir_csi_leader 0"), "{p}");
        assert!(!p.contains("grpc_requests_total{"), "{p}");
        for (name, _, _) in DESCRIPTIONS {
            for t in [&text, &p] {
                assert!(t.contains(&format!("# HELP {name} ")), "{name}");
                assert!(t.contains(&format!("# TYPE {name} ")), "{name}");
            }
        }
    }
}
