//! Wires the services together and serves them on a Unix socket or TCP port until SIGTERM/SIGINT,
//! with the optional HTTP endpoint and kubelet registration beside them.

use crate::cli::{Role, ServeArgs};
use crate::csi::controller::ControllerService;
use crate::csi::identity::IdentityService;
use crate::csi::node::NodeService;
use crate::csi::pb::{
    controller_server::ControllerServer, identity_server::IdentityServer, node_server::NodeServer,
};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, Scope, layer::RpcMetricsLayer};
use crate::node::Node;
use crate::registration::{PluginIdentity, RegistrationState};
use crate::setup::VolumeSetup;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long calls in flight may still run after SIGTERM.
const GRACE: Duration = Duration::from_secs(3);

/// Runs `serve` until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let endpoint = match args.endpoint.clone() {
        Endpoint::Unix(path) => Endpoint::Unix(absolute(path)?),
        tcp => tcp,
    };
    let setup = VolumeSetup::from_args(&args.volumes)?;
    let timeout = setup.timeout;
    let node_id = match args.nodeid.clone() {
        Some(id) if !id.is_empty() => id,
        _ => crate::setup::host_name()?,
    };
    let has = |r| args.roles.contains(&r);
    if args.kubelet_registration_path.is_some() && !has(Role::Node) {
        return Err(Error::invalid(
            "--kubelet-registration-path needs the node role",
        ));
    }
    // Signals first: a SIGTERM from here on is a graceful stop.
    let shutdown = crate::setup::shutdown_signal();
    // Then the HTTP port: a bad or busy address fails start-up before anything is served.
    let http = match args.http_address.trim() {
        "" => None,
        address => Some(crate::http::bind(address).await?),
    };
    let metrics = if http.is_some() {
        Metrics::new(Scope::Serve)
    } else {
        Metrics::off()
    };

    let identity = IdentityServer::new(IdentityService {
        name: args.drivername.clone(),
        controller: has(Role::Controller),
    });
    let mut router = tonic::transport::Server::builder()
        .layer(RpcMetricsLayer(metrics.clone()))
        .add_service(identity);
    if has(Role::Controller) {
        let volumes = Arc::new(setup.volumes(metrics.clone()));
        router = router.add_service(ControllerServer::new(ControllerService {
            volumes,
            timeout,
            claims: Arc::default(),
        }));
    }
    if has(Role::Node) {
        let node = Arc::new(Node::new(node_id.clone(), metrics.clone()));
        router = router.add_service(NodeServer::new(NodeService { node, timeout }));
    }
    tracing::info!(
        driver = %args.drivername, node = %node_id, roles = ?args.roles, endpoint = %args.endpoint,
        default_share = ?setup.default_share.as_ref().map(|s| &s.path), version = env!("CARGO_PKG_VERSION"),
        http = %args.http_address, registration = ?args.kubelet_registration_path, "serving"
    );
    // On a signal the server stops accepting and lets calls in flight finish; clients that keep
    // idle connections open (kubelet does) get at most GRACE before the process exits anyway.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let registration = match &args.kubelet_registration_path {
        Some(dir) => {
            let state = Arc::new(RegistrationState::default());
            let plugin = PluginIdentity {
                name: args.drivername.clone(),
                endpoint: kubelet_endpoint(&args, &endpoint)?,
            };
            let path = dir.join(format!("{}-reg.sock", args.drivername));
            let task = crate::registration::start(
                path,
                plugin,
                state.clone(),
                metrics.clone(),
                stop_rx.clone(),
            )?;
            tasks.spawn(task);
            Some(state)
        }
        None => None,
    };
    if let Some(listener) = http {
        let check = crate::http::csi_check(endpoint.clone(), registration);
        let served = crate::http::serve(listener, metrics.clone(), check, stop_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "HTTP endpoint stopped");
            }
        });
    }
    let signalled = async {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let mut stop_rx2 = stop_rx.clone();
    let grace = async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
        tokio::time::sleep(GRACE).await;
    };
    let result = match &endpoint {
        Endpoint::Unix(path) => {
            let listener = bind_unix(path)?;
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let served = tokio::select! {
                r = router.serve_with_incoming_shutdown(incoming, signalled) => r,
                () = grace => Ok(()),
            };
            let _ = std::fs::remove_file(path);
            served
        }
        Endpoint::Tcp(addr) => tokio::select! {
            r = router.serve_with_shutdown(*addr, signalled) => r,
            () = grace => Ok(()),
        },
    };
    // The other endpoints stop with the CSI one, whatever stopped it.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    drop(stop_rx);
    result.map_err(|e| Error::Unavailable(format!("gRPC server: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// `path` made absolute against the working directory (kubelet and health checks need it so).
fn absolute(path: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&path).map_err(|e| Error::io(format!("resolve {}", path.display()), e))
}

/// The CSI socket path kubelet is told at registration.
fn kubelet_endpoint(args: &ServeArgs, endpoint: &Endpoint) -> Result<String> {
    match (&args.kubelet_csi_socket, endpoint) {
        (Some(path), _) if !path.is_empty() => Ok(path.clone()),
        (_, Endpoint::Unix(path)) => Ok(path.display().to_string()),
        (_, Endpoint::Tcp(_)) => Err(Error::invalid(
            "--kubelet-registration-path with a tcp:// endpoint needs --kubelet-csi-socket",
        )),
    }
}

/// Binds the Unix socket: a stale socket from an earlier run is removed (anything else at the
/// path is left alone and refused), and the socket is made reachable by owner and group only.
pub(crate) fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("remove stale socket {}", path.display()), e))?;
        }
        Ok(_) => {
            return Err(Error::invalid(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        Err(_) => {}
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| Error::io(format!("bind {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    Ok(listener)
}
