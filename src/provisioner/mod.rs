//! `nfs-subdir-csi provisioner`: provisions claims straight from the Kubernetes API with kube-rs,
//! without CSI sidecars — a drop-in for nfs-subdir-external-provisioner.
//!
//! Two controllers share one [`Context`]: [`claim`] makes a directory (through the same domain
//! [`Volumes`] and StorageClass parameters as the CSI path) and a PV pre-bound to the claim;
//! [`release`] deletes the PV and, behind a finalizer, the directory once the claim is gone under
//! reclaimPolicy Delete. Only the replica holding the [`leader`] Lease runs them.

pub mod claim;
pub mod clone;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod leader;
pub mod pv;
pub mod release;
pub mod resize;

use crate::controller::Volumes;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, ReconcileKind};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use kube::runtime::controller::Action;
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
    pub volumes: Volumes,
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

/// What a reconciler works on, as the metrics name it.
pub trait Reconciled {
    /// The `kind` label of `reconcile_errors_total`.
    const KIND: ReconcileKind;
}

impl Reconciled for PersistentVolumeClaim {
    const KIND: ReconcileKind = ReconcileKind::Claim;
}

impl Reconciled for PersistentVolume {
    const KIND: ReconcileKind = ReconcileKind::Volume;
}

/// The one requeue policy of both reconcilers: counted, logged, retried after 10 s.
pub fn error_policy<K: Reconciled>(_: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::debug!(error = %err, kind = ?K::KIND, "will be retried");
    ctx.metrics.reconcile_error(K::KIND);
    Action::requeue(Duration::from_secs(10))
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

/// What the provisioner runs with: plain values the entry (`setup::provisioner`) builds from the
/// command line, so nothing here reaches back up to the flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// The provisioner name classes give.
    pub provisioner_name: String,
    /// The CSI driver named by CSI PVs.
    pub driver: String,
    /// This replica's identity (events, the Lease).
    pub identity: String,
    /// GET /healthz and /metrics address; empty: off.
    pub http_address: String,
    /// How nodes reach the default share over NFS, if configured.
    pub nfs_export: Option<pv::NfsExport>,
    /// The Lease to hold; `None`: no leader election, act at once.
    pub lease: Option<leader::LeaseConfig>,
    /// Deadline of one directory operation.
    pub timeout: Duration,
    /// The default share's path (for the start-up log line).
    pub default_share: Option<String>,
}

/// Runs the provisioner until `shutdown` resolves (then releases the Lease) or until leadership
/// is lost (then returns an error, so that the process exits and restarts as a follower).
/// `volumes` makes the domain's volume operations once the metrics exist.
pub async fn run(
    cfg: Config,
    volumes: impl FnOnce(Metrics) -> Volumes,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let http = match cfg.http_address.trim() {
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
    let result = run_loops(cfg, volumes, metrics, phase_tx, shutdown).await;
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
    cfg: Config,
    volumes: impl FnOnce(Metrics) -> Volumes,
    metrics: Metrics,
    phase: tokio::sync::watch::Sender<Phase>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let volumes = volumes(metrics.clone());
    metrics.leader(false);
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Unavailable(format!("Kubernetes client: {e}")))?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: cfg.provisioner_name.clone(),
            instance: Some(cfg.identity.clone()),
        },
    );
    tracing::info!(
        provisioner = %cfg.provisioner_name, driver = %cfg.driver, identity = %cfg.identity,
        default_share = ?cfg.default_share, version = env!("CARGO_PKG_VERSION"),
        "provisioner starting"
    );
    let mut elector = cfg
        .lease
        .map(|lease| leader::Elector::new(client.clone(), lease));
    let ctx = Arc::new(Context {
        client: client.clone(),
        volumes,
        recorder,
        provisioner: cfg.provisioner_name,
        driver: cfg.driver,
        identity: cfg.identity,
        nfs_export: cfg.nfs_export,
        timeout: cfg.timeout,
        metrics: metrics.clone(),
    });
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
        .run(claim::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "claim controller");
            }
        });
    let volume_runner = Runner::new(volumes, watcher::Config::default())
        .run(release::reconcile, error_policy, ctx)
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

#[cfg(test)]
mod watch_api_tests;

#[cfg(test)]
mod takeover_api_tests;
