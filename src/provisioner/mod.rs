//! `nfs-subdir-csi provisioner`: provisions claims straight from the Kubernetes API with kube-rs,
//! without CSI sidecars — a drop-in for nfs-subdir-external-provisioner.
//!
//! Two controllers share one [`Context`]: [`claim`] makes a directory (through the same domain
//! [`Controller`] and StorageClass parameters as the CSI path) and a PV pre-bound to the claim;
//! [`release`] deletes the PV and, behind a finalizer, the directory once the claim is gone under
//! reclaimPolicy Delete. Only the replica holding the [`leader`] Lease runs them.

pub mod claim;
pub mod leader;
pub mod pv;
pub mod release;

use crate::cli::ProvisionerArgs;
use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::setup::VolumeSetup;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{Controller as Runner, watcher};
use kube::{Client, Resource};
use std::sync::Arc;
use std::time::Duration;

/// What the reconcilers share; passed as `Arc<Context>`, no globals.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The domain controller that makes and deletes directories.
    pub controller: Controller,
    /// Publishes events on claims and PVs.
    pub recorder: Recorder,
    /// The provisioner name classes give.
    pub provisioner: String,
    /// The CSI driver named by CSI PVs.
    pub driver: String,
    /// This replica's identity (for event messages).
    pub identity: String,
    /// How nodes reach the default share over NFS, if configured.
    pub nfs_export: Option<pv::NfsExport>,
    /// Deadline of one directory operation.
    pub timeout: Duration,
    /// Claim, leader and reconcile metrics.
    pub metrics: Metrics,
}

impl Context {
    /// Publishes an event on `object`; a failure to publish is only logged.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let mut note = note;
        if note.len() > 1000 {
            let cut = (0..=1000)
                .rev()
                .find(|i| note.is_char_boundary(*i))
                .unwrap_or(0);
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Provision".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// Maps a Kubernetes API error into the crate's error, keeping what was being done.
pub fn kube_error(what: impl std::fmt::Display, e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(s) if s.is_not_found() => Error::NotFound(format!("{what}: {e}")),
        kube::Error::Api(s) if s.is_already_exists() => {
            Error::AlreadyExists(format!("{what}: {e}"))
        }
        kube::Error::Api(s) if s.is_invalid() || s.code == 400 => {
            Error::InvalidArgument(format!("{what}: {e}"))
        }
        kube::Error::Api(s) if s.is_forbidden() || s.is_conflict() => {
            Error::FailedPrecondition(format!("{what}: {e}"))
        }
        _ => Error::Unavailable(format!("{what}: {e}")),
    }
}

/// Runs the provisioner until SIGTERM/SIGINT (then releases the Lease) or until leadership is
/// lost (then returns an error, so that the process exits and restarts as a follower).
pub async fn run(args: ProvisionerArgs) -> Result<()> {
    let setup = VolumeSetup::from_args(&args.volumes)?;
    let http = match args.http_address.trim() {
        "" => None,
        address => Some(crate::http::bind(address).await?),
    };
    let metrics = if http.is_some() {
        Metrics::new(crate::metrics::Scope::Provisioner)
    } else {
        Metrics::off()
    };
    // What /healthz reports: the phase of the main loop below.
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Starting);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http_task = http.map(|listener| {
        let served = crate::http::serve(listener, metrics.clone(), phase_check(phase_rx), stop_rx);
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "HTTP endpoint stopped");
            }
        })
    });
    let result = run_loops(args, setup, metrics, phase_tx).await;
    let _ = stop_tx.send(true);
    if let Some(task) = http_task {
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    result
}

/// Where the provisioner's main loop is; `/healthz` is 200 while it follows or leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connecting to the Kubernetes API.
    Starting,
    /// Waiting to acquire the leader Lease.
    Following,
    /// Holding the Lease and running the claim and PV controllers.
    Leading,
    /// Stopped (shutting down or lost the Lease).
    Stopped,
}

fn phase_check(phase: tokio::sync::watch::Receiver<Phase>) -> crate::http::Check {
    std::sync::Arc::new(move || {
        let now = *phase.borrow();
        Box::pin(async move {
            match now {
                Phase::Following | Phase::Leading => Ok(()),
                Phase::Starting => {
                    Err("provisioner is still connecting to the Kubernetes API".into())
                }
                Phase::Stopped => Err("provisioner loops have stopped".into()),
            }
        })
    })
}

async fn run_loops(
    args: ProvisionerArgs,
    setup: VolumeSetup,
    metrics: Metrics,
    phase: tokio::sync::watch::Sender<Phase>,
) -> Result<()> {
    let (timeout, default_share) = (setup.timeout, setup.default_share.clone());
    let nfs_export = match (&args.nfs_server, &args.nfs_path, &default_share) {
        (Some(server), Some(path), Some(share)) => Some(pv::NfsExport {
            server: server.clone(),
            path: path.clone(),
            local: share.path.clone(),
        }),
        (Some(_), _, None) => {
            return Err(Error::invalid(
                "--nfs-server needs --default-share (its local mount)",
            ));
        }
        _ => None,
    };
    let controller = setup.controller(metrics.clone());
    metrics.leader(false);
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Unavailable(format!("Kubernetes client: {e}")))?;
    let identity = match args
        .leader_election_identity
        .clone()
        .filter(|i| !i.is_empty())
    {
        Some(id) => id,
        None => {
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "provisioner".to_owned());
            format!("{host}_{}", uuid::Uuid::new_v4())
        }
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: args.provisioner_name.clone(),
            instance: Some(identity.clone()),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        controller,
        recorder,
        provisioner: args.provisioner_name.clone(),
        driver: args.drivername.clone(),
        identity: identity.clone(),
        nfs_export,
        timeout,
        metrics: metrics.clone(),
    });
    tracing::info!(
        provisioner = %args.provisioner_name, driver = %args.drivername, %identity,
        default_share = ?default_share.as_ref().map(|s| &s.path),
        version = env!("CARGO_PKG_VERSION"), "provisioner starting"
    );

    let mut elector = args.leader_elect.then(|| {
        leader::Elector::new(
            client.clone(),
            leader::LeaseConfig {
                namespace: args.leader_election_namespace.clone(),
                name: args
                    .leader_election_name
                    .clone()
                    .unwrap_or_else(|| leader::lease_name(&args.provisioner_name)),
                identity: identity.clone(),
                lease_duration: Duration::from_secs(args.leader_election_lease_duration.max(1)),
                renew_deadline: Duration::from_secs(args.leader_election_renew_deadline.max(1)),
                retry_period: Duration::from_secs(args.leader_election_retry_period.max(1)),
            },
        )
    });
    let shutdown = crate::setup::shutdown_signal();
    tokio::pin!(shutdown);
    let _ = phase.send(Phase::Following);
    if let Some(e) = elector.as_mut() {
        tokio::select! {
            () = e.acquire() => {}
            () = &mut shutdown => {
                let _ = phase.send(Phase::Stopped);
                return Ok(());
            }
        }
    }
    let _ = phase.send(Phase::Leading);
    metrics.leader(true);
    let held = async {
        match elector.as_mut() {
            Some(e) => e.hold().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        () = controllers(client, ctx) => Err(Error::Unavailable("controllers stopped".into())),
        r = held => r,
        () = &mut shutdown => Ok(()),
    };
    let _ = phase.send(Phase::Stopped);
    metrics.leader(false);
    match &result {
        Ok(()) => {
            if let Some(e) = elector.as_mut() {
                e.release().await;
            }
            tracing::info!("stopped");
        }
        Err(e) => tracing::error!(error = %e, "lost leadership; stopping"),
    }
    result
}

/// Runs the claim and PV controllers until both streams end.
async fn controllers(client: Client, ctx: Arc<Context>) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client);
    let claim_runner = Runner::new(claims, watcher::Config::default())
        .run(claim::reconcile, claim::error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "claim controller");
            }
        });
    let volume_runner = Runner::new(volumes, watcher::Config::default())
        .run(release::reconcile, release::error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "PV controller");
            }
        });
    tokio::join!(claim_runner, volume_runner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            Status {
                code,
                ..Status::failure("boom", reason)
            }
            .boxed(),
        )
    }

    #[test]
    fn kube_errors_map_to_the_crate_error() {
        let m = |e| kube_error("create PV pvc-1", e);
        assert!(matches!(m(api(404, "NotFound")), Error::NotFound(_)));
        assert!(matches!(
            m(api(409, "AlreadyExists")),
            Error::AlreadyExists(_)
        ));
        assert!(matches!(m(api(422, "Invalid")), Error::InvalidArgument(_)));
        assert!(matches!(
            m(api(403, "Forbidden")),
            Error::FailedPrecondition(_)
        ));
        assert!(matches!(
            m(api(409, "Conflict")),
            Error::FailedPrecondition(_)
        ));
        let e = m(api(500, "InternalError"));
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("create PV pvc-1"), "{e}");
    }
}
