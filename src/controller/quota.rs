//! The volume operations' project-quota steps (see [`crate::quota`]): planned before a directory is
//! made, applied after it, raised on expansion, cleared on delete. Run off the async runtime.

use super::Volumes;
use crate::blocking;
use crate::error::{Error, Result};
use crate::quota::{self, Mode};
use crate::volume::{ShareSpec, SubDir};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

impl Volumes {
    /// The volume operations with project quotas on the shares `quotas` reaches (the
    /// StorageClass parameter `quota`; see [`crate::quota`]).
    pub fn with_quotas(self, quotas: crate::quota::Quotas) -> Self {
        Volumes { quotas, ..self }
    }

    /// The volume operations with a fault injected (see [`Fault`]; tests only).
    pub fn with_fault(self, fault: Option<Fault>) -> Self {
        Volumes { fault, ..self }
    }

    /// Where the quota of a new volume on `share` goes (`None`: size recorded only); `enforce`
    /// without reachable project quotas is an error before anything is made.
    pub(super) async fn quota_plan(
        &self,
        share: &ShareSpec,
        mode: Mode,
        deadline: Duration,
    ) -> Result<Option<PathBuf>> {
        // Off, or best effort on an export whose filesystem is not reachable here (the common
        // NFS case): nothing to check, and no trip through the blocking pool for it.
        // The same for best effort on a filesystem found without project quotas moments ago.
        let best_effort = mode == Mode::BestEffort;
        let unreachable = self.quotas.local_root(share).is_none();
        if mode == Mode::Off || (best_effort && (unreachable || self.quotas.recently_none(share))) {
            return Ok(None);
        }
        let (quotas, share) = (self.quotas.clone(), share.clone());
        blocking::run("check project quotas", deadline, move || {
            quotas.plan(&share, mode)
        })
        .await
    }

    /// Gives the volume `sub` (made on the share whose filesystem is at `local`) its project and a
    /// limit of `bytes`. With `best-effort` a failure is logged and the size stays recorded only.
    pub(super) async fn quota_apply(
        &self,
        local: PathBuf,
        sub: SubDir,
        bytes: u64,
        mode: Mode,
        deadline: Duration,
    ) -> Result<()> {
        let what = format!("set quota of {sub}");
        let done = blocking::run(&what, deadline, move || quota::apply(&local, &sub, bytes)).await;
        match (done, mode) {
            (Ok(id), _) => {
                tracing::info!(project = id, limit = bytes, "project quota set");
                Ok(())
            }
            (Err(e), Mode::BestEffort) if !matches!(e, Error::Timeout { .. }) => {
                tracing::warn!(error = %e, "project quota not set; size recorded only");
                Ok(())
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Raises the project limit of the volume `sub` to `bytes`, if it has a project.
    pub(super) async fn quota_resize(
        &self,
        share: &ShareSpec,
        sub: &SubDir,
        bytes: u64,
        deadline: Duration,
    ) -> Result<()> {
        let Some(local) = self.quotas.local_root(share) else {
            return Ok(());
        };
        let sub = sub.clone();
        let what = format!("raise quota of {sub}");
        if let Some(id) =
            blocking::run(&what, deadline, move || quota::resize(&local, &sub, bytes)).await?
        {
            tracing::info!(project = id, limit = bytes, "project quota raised");
        }
        Ok(())
    }

    /// Clears the project limit of the volume `sub` and releases its id, if it has one. A share
    /// whose local root cannot be opened has nothing to release here.
    pub(super) async fn quota_release(
        &self,
        share: &ShareSpec,
        sub: &SubDir,
        deadline: Duration,
    ) -> Result<()> {
        let Some(local) = self.quotas.local_root(share) else {
            return Ok(());
        };
        let sub = sub.clone();
        let what = format!("clear quota of {sub}");
        match blocking::run(&what, deadline, move || quota::release(&local, &sub)).await {
            Ok(Some(id)) => tracing::info!(project = id, "project quota cleared, id released"),
            Ok(None) | Err(Error::Unavailable(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The project limits of the volumes `keys` on `share` by record key (empty when the share's
    /// filesystem is not reachable here or has none). A failure is logged: the recorded sizes
    /// are then reported.
    pub(super) async fn quota_limits(
        &self,
        share: &ShareSpec,
        keys: Vec<String>,
        deadline: Duration,
    ) -> HashMap<String, u64> {
        let Some(local) = self.quotas.local_root(share) else {
            return HashMap::new();
        };
        match blocking::run("read project limits", deadline, move || {
            quota::limits(&local, &keys)
        })
        .await
        {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!(share = %share, error = %e, "project limits not read; recorded sizes reported");
                HashMap::new()
            }
        }
    }

    /// Stops here if the fault `at` was asked for at start-up (see [`Fault`]).
    pub(super) fn fault_point(&self, at: Fault) {
        if self.fault == Some(at) {
            tracing::error!(fault = ?at, "fault injection: aborting the process");
            std::process::abort();
        }
    }
}

/// Fault injection for the crash-consistency test of the guest suite (hidden flag `--fault`,
/// environment `NSC_FAULT`): read once at start-up into the config. Never set in a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `abort-before-quota`: CreateVolume aborts the process (as kill -9 would end it) right
    /// after the volume's directory is made and before its project quota is set.
    AbortBeforeQuota,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "abort-before-quota" => Ok(Fault::AbortBeforeQuota),
            _ => Err(format!("{s:?}: the one fault is abort-before-quota")),
        }
    }
}
