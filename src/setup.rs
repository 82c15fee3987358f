//! Start-up shared by `serve` and `provisioner`: the default share, defaults and deadlines from
//! the volume flags, the domain controller, and the shutdown signal.

use crate::cli::VolumeArgs;
use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::share::Shares;
use crate::volume::{ShareSpec, params::Defaults, params::parse_mode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The volume flags, checked and resolved.
#[derive(Debug)]
pub struct VolumeSetup {
    /// The default share (created if missing, made absolute).
    pub default_share: Option<ShareSpec>,
    /// Defaults for StorageClasses that are silent.
    pub defaults: Defaults,
    /// Longest time one call may take.
    pub timeout: Duration,
    working_mount_dir: PathBuf,
}

impl VolumeSetup {
    /// Checks the flags and creates the default share directory if it is missing.
    pub fn from_args(args: &VolumeArgs) -> Result<Self> {
        let default_share = match &args.default_share {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("create default share {}", dir.display()), e))?;
                let abs = std::fs::canonicalize(dir)
                    .map_err(|e| Error::io(format!("resolve {}", dir.display()), e))?;
                Some(ShareSpec::new(None, &abs.to_string_lossy(), Vec::new())?)
            }
            None => None,
        };
        let defaults = Defaults {
            share: default_share.as_ref().map(|s| s.path.clone()),
            on_delete: args.default_ondelete_policy,
            mount_permissions: parse_mode(&args.mount_permissions)?,
        };
        Ok(VolumeSetup {
            default_share,
            defaults,
            timeout: Duration::from_secs(args.operation_timeout.max(1)),
            working_mount_dir: args.working_mount_dir.clone(),
        })
    }

    /// The domain controller. Clears the process umask, so every new directory gets exactly the
    /// mode asked for without a chmod after mkdir, and starts removing what an earlier run left
    /// in the default share's trash. Domain events go to `metrics`. Call it inside the async
    /// runtime.
    pub fn controller(&self, metrics: Metrics) -> Controller {
        nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let shares = Arc::new(Shares::new(
            self.default_share.clone(),
            self.working_mount_dir.clone(),
            metrics.clone(),
        ));
        let controller = Controller::new(shares, self.defaults.clone(), 0, metrics);
        if let Some(share) = &self.default_share {
            controller.sweep_trash(share, self.timeout);
        }
        controller
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
