//! Start-up: the default share, defaults and deadlines from the volume flags (shared by `serve`
//! and `provisioner`), the volume operations, the `provisioner` entry that turns its flags into the
//! provisioner's plain config, and the shutdown signal.

use crate::cli::{ProvisionerArgs, VolumeArgs};
use crate::controller::Volumes;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::provisioner::{self, leader, pv::NfsExport};
use crate::quota::Quotas;
use crate::share::Shares;
use crate::volume::{ShareSpec, params::Defaults};
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
    quotas: Quotas,
    fault: Option<crate::controller::Fault>,
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
            mount_permissions: args.mount_permissions,
        };
        Ok(VolumeSetup {
            default_share,
            defaults,
            timeout: Duration::from_secs(args.operation_timeout.max(1)),
            working_mount_dir: args.working_mount_dir.clone(),
            quotas: Quotas::new(args.export_paths.clone()),
            fault: args.fault,
        })
    }

    /// The volume operations (they own the process umask: see [`Volumes::new`]); volume events go
    /// to `metrics`. Removes what an earlier run left in the default share's trash. Call it inside
    /// the async runtime.
    pub fn volumes(&self, metrics: Metrics) -> Volumes {
        let shares = Arc::new(Shares::new(
            self.default_share.clone(),
            self.working_mount_dir.clone(),
            metrics.clone(),
        ));
        let volumes = Volumes::new(shares, self.defaults.clone(), metrics)
            .with_quotas(self.quotas.clone())
            .with_fault(self.fault);
        if let Some(fault) = self.fault {
            tracing::warn!(
                ?fault,
                "fault injection is on: this process will abort on purpose"
            );
        }
        if let Some(share) = &self.default_share {
            volumes.start_on(share, self.timeout);
        }
        volumes
    }
}

/// `provisioner`: its plain config from the flags, then its loops until SIGTERM/SIGINT.
pub async fn provisioner(args: ProvisionerArgs) -> Result<()> {
    let setup = VolumeSetup::from_args(&args.volumes)?;
    let default_share = setup.default_share.as_ref().map(|s| s.path.clone());
    let nfs_export = match (&args.nfs_server, &args.nfs_path, &default_share) {
        (Some(server), Some(path), Some(local)) => Some(NfsExport {
            server: server.clone(),
            path: path.clone(),
            local: local.clone(),
        }),
        (Some(_), _, None) => {
            return Err(Error::invalid(
                "--nfs-server needs --default-share (its local mount)",
            ));
        }
        _ => None,
    };
    let identity = match args.leader_election_identity.filter(|i| !i.is_empty()) {
        Some(id) => id,
        None => {
            let host = host_name().unwrap_or_else(|_| "provisioner".to_owned());
            format!("{host}_{}", uuid::Uuid::new_v4())
        }
    };
    let seconds = |s: u64| Duration::from_secs(s.max(1));
    let lease = args.leader_elect.then(|| leader::LeaseConfig {
        namespace: args.leader_election_namespace,
        name: args
            .leader_election_name
            .unwrap_or_else(|| leader::lease_name(&args.provisioner_name)),
        identity: identity.clone(),
        lease_duration: seconds(args.leader_election_lease_duration),
        renew_deadline: seconds(args.leader_election_renew_deadline),
        retry_period: seconds(args.leader_election_retry_period),
    });
    let cfg = provisioner::Config {
        provisioner_name: args.provisioner_name,
        driver: args.drivername,
        identity,
        http_address: args.http_address,
        nfs_export,
        lease,
        timeout: setup.timeout,
        default_share,
    };
    provisioner::run(
        cfg,
        move |metrics| setup.volumes(metrics),
        shutdown_signal(),
    )
    .await
}

/// This machine's host name (the default node id and provisioner identity).
pub fn host_name() -> Result<String> {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .map_err(|e| Error::errno("gethostname", e))
}

/// A future that resolves on SIGTERM or SIGINT. The handlers are installed by this call, not at
/// the future's first poll: a SIGTERM that arrives while the process is still starting (its
/// health endpoint may already answer) then stops it gracefully instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}
