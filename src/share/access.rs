//! Turns a [`ShareSpec`] into a directory on this machine: a pre-mounted path as it is, an NFS
//! export through the controller's kept working mounts.

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::volume::ShareSpec;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How shares are reached from this process.
#[derive(Debug)]
pub struct Shares {
    default: Option<ShareSpec>,
    working: super::working::WorkingMounts,
}

impl Shares {
    /// `default` is the pre-mounted share used when a StorageClass names none; NFS exports are
    /// mounted below `working_dir`; their states go to `metrics`.
    pub fn new(default: Option<ShareSpec>, working_dir: PathBuf, metrics: Metrics) -> Self {
        Shares {
            default,
            working: super::working::WorkingMounts::new(working_dir, metrics),
        }
    }

    /// The local directory of `spec`'s root, mounting the export first if needed.
    pub async fn root(&self, spec: &ShareSpec, deadline: Duration) -> Result<PathBuf> {
        if spec.is_nfs() {
            self.working.root(spec, deadline).await
        } else {
            Ok(PathBuf::from(&spec.path))
        }
    }

    /// Called when a call on `spec` failed with `err` while using the share root `root`; drops
    /// that working mount if it was stale or its server did not answer, so the next call mounts
    /// afresh. Returns true when a retry makes sense.
    pub async fn recover(&self, spec: &ShareSpec, root: &Path, err: &Error) -> bool {
        spec.is_nfs() && err.is_unavailable() && self.working.forget(spec, root).await
    }

    /// Shares this process knows of: the default share and every NFS export mounted so far.
    pub async fn known(&self) -> Vec<ShareSpec> {
        let mut all: Vec<ShareSpec> = self.default.iter().cloned().collect();
        all.extend(self.working.mounted().await);
        all
    }

    /// The default share, if one was configured.
    pub fn default_share(&self) -> Option<&ShareSpec> {
        self.default.as_ref()
    }
}
