//! Kubelet plugin registration (API v1), so the node needs no node-driver-registrar: the driver
//! serves `pluginregistration.Registration` on `<plugins_registry>/<drivername>-reg.sock`, answers
//! GetInfo with its CSI socket, and logs kubelet's verdict. After a refusal the socket is made
//! anew, which kubelet's plugin watcher sees as a new plugin and tries again.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    //! Code generated from proto/pluginregistration.proto.
    tonic::include_proto!("pluginregistration");
}

use crate::error::Result;
use crate::metrics::Metrics;
use pb::registration_server::{Registration, RegistrationServer};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tonic::{Request, Response, Status};

/// How long kubelet's connection may stay open after the socket is to be re-made.
const GRACE: Duration = Duration::from_secs(3);

/// Kubelet's last verdict on the registration, shared with `/healthz`.
#[derive(Debug, Default)]
pub struct RegistrationState(Mutex<Verdict>);

/// What kubelet said last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Kubelet has not reported yet.
    #[default]
    Waiting,
    /// Kubelet accepted the plugin.
    Accepted,
    /// Kubelet refused it, saying why.
    Refused(String),
}

impl RegistrationState {
    /// Kubelet's last verdict.
    pub fn verdict(&self) -> Verdict {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, v: Verdict) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// What GetInfo tells kubelet.
#[derive(Clone, Debug)]
pub struct PluginIdentity {
    /// The CSI driver name.
    pub name: String,
    /// The CSI socket as kubelet sees it on the host.
    pub endpoint: String,
}

/// The registration service.
#[derive(Clone, Debug)]
struct Service {
    identity: PluginIdentity,
    state: Arc<RegistrationState>,
    metrics: Metrics,
    refused: Arc<Notify>,
}

#[tonic::async_trait]
impl Registration for Service {
    async fn get_info(
        &self,
        _req: Request<pb::InfoRequest>,
    ) -> std::result::Result<Response<pb::PluginInfo>, Status> {
        tracing::info!(endpoint = %self.identity.endpoint, "kubelet asked for plugin info");
        Ok(Response::new(pb::PluginInfo {
            r#type: "CSIPlugin".to_owned(),
            name: self.identity.name.clone(),
            endpoint: self.identity.endpoint.clone(),
            supported_versions: vec!["1.0.0".to_owned()],
        }))
    }

    async fn notify_registration_status(
        &self,
        req: Request<pb::RegistrationStatus>,
    ) -> std::result::Result<Response<pb::RegistrationStatusResponse>, Status> {
        let status = req.into_inner();
        self.metrics.kubelet_registration(status.plugin_registered);
        if status.plugin_registered {
            tracing::info!("kubelet accepted the plugin registration");
            self.state.set(Verdict::Accepted);
        } else {
            tracing::error!(error = %status.error, "kubelet refused the plugin registration; re-creating the registration socket");
            self.state.set(Verdict::Refused(status.error));
            self.refused.notify_one();
        }
        Ok(Response::new(pb::RegistrationStatusResponse {}))
    }
}

/// Binds the registration socket at `path` (a stale socket is replaced, anything else refused)
/// and returns the task that serves it until `stop` turns true and then removes it. Every refusal
/// re-binds the socket (a new inode) after the answer has gone out.
pub fn start(
    path: PathBuf,
    identity: PluginIdentity,
    state: Arc<RegistrationState>,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) -> Result<impl std::future::Future<Output = ()>> {
    let first = crate::server::bind_unix(&path)?;
    let refused = Arc::new(Notify::new());
    let service = Service {
        identity,
        state,
        metrics,
        refused: refused.clone(),
    };
    Ok(run(path, first, service, refused, stop))
}

async fn run(
    path: PathBuf,
    first: tokio::net::UnixListener,
    service: Service,
    refused: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = Some(first);
    loop {
        let bound = match listener.take() {
            Some(l) => l,
            None => match crate::server::bind_unix(&path) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot re-create the registration socket");
                    return;
                }
            },
        };
        tracing::info!(socket = %path.display(), "serving kubelet plugin registration");
        // kubelet sends the socket path as :authority; the relay makes it one h2 accepts
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::UnixListenerStream::new(bound),
            |c| c.map(crate::h2_authority::relay),
        );
        let again = refused.clone();
        let mut stop2 = stop.clone();
        let (fired_tx, mut fired_rx) = watch::channel(false);
        let until = async move {
            tokio::select! {
                _ = stop2.wait_for(|s| *s) => {}
                () = again.notified() => {}
            }
            let _ = fired_tx.send(true);
        };
        let server = tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(service.clone()))
            .serve_with_incoming_shutdown(incoming, until);
        // A client that keeps its connection open gets GRACE to finish, no more.
        let drained = async move {
            let _ = fired_rx.wait_for(|f| *f).await;
            tokio::time::sleep(GRACE).await;
        };
        let served = tokio::select! {
            r = server => r,
            () = drained => Ok(()),
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "registration server failed; serving it again");
            tokio::time::sleep(GRACE).await;
        }
        if *stop.borrow_and_update() {
            let _ = std::fs::remove_file(&path);
            return;
        }
    }
}
