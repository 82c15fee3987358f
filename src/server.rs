//! Wires the services together and serves them on a Unix socket or TCP port until SIGTERM/SIGINT.

use crate::cli::{Role, ServeArgs};
use crate::csi::controller::ControllerService;
use crate::csi::identity::IdentityService;
use crate::csi::node::NodeService;
use crate::csi::pb::{
    controller_server::ControllerServer, identity_server::IdentityServer, node_server::NodeServer,
};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::setup::VolumeSetup;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long calls in flight may still run after SIGTERM.
const GRACE: Duration = Duration::from_secs(3);

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// Parses `unix:///abs/path`, `unix://relative/path`, `unix:/path` or `tcp://host:port`.
    pub fn parse(raw: &str) -> Result<Self> {
        if let Some(path) = raw
            .strip_prefix("unix://")
            .or_else(|| raw.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(Error::invalid("endpoint unix:// needs a path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = raw.strip_prefix("tcp://") {
            return addr
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|e| Error::invalid(format!("endpoint {raw:?}: {e}")));
        }
        Err(Error::invalid(format!(
            "endpoint {raw:?}: expected unix:///path or tcp://host:port"
        )))
    }
}

/// Runs `serve` until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let endpoint = Endpoint::parse(&args.endpoint)?;
    let setup = VolumeSetup::from_args(&args.volumes)?;
    let timeout = setup.timeout;
    let node_id = match args.nodeid.clone() {
        Some(id) if !id.is_empty() => id,
        _ => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .map_err(|e| Error::errno("gethostname", e))?,
    };
    let has = |r| args.roles.contains(&r);

    let identity = IdentityServer::new(IdentityService {
        name: args.drivername.clone(),
        controller: has(Role::Controller),
    });
    let mut router = tonic::transport::Server::builder().add_service(identity);
    if has(Role::Controller) {
        let inner = Arc::new(setup.controller());
        router = router.add_service(ControllerServer::new(ControllerService { inner, timeout }));
    }
    if has(Role::Node) {
        let inner = Arc::new(Node::new(node_id.clone()));
        router = router.add_service(NodeServer::new(NodeService { inner, timeout }));
    }
    tracing::info!(
        driver = %args.drivername, node = %node_id, roles = ?args.roles, endpoint = %args.endpoint,
        default_share = ?setup.default_share.as_ref().map(|s| &s.path), version = env!("CARGO_PKG_VERSION"),
        "serving"
    );
    // On a signal the server stops accepting and lets calls in flight finish; clients that keep
    // idle connections open (kubelet does) get at most GRACE before the process exits anyway.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signalled = async move {
        crate::setup::shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let mut stop_rx2 = stop_rx.clone();
    let grace = async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
        tokio::time::sleep(GRACE).await;
    };
    let result = match endpoint {
        Endpoint::Unix(path) => {
            let listener = bind_unix(&path)?;
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let served = tokio::select! {
                r = router.serve_with_incoming_shutdown(incoming, signalled) => r,
                () = grace => Ok(()),
            };
            let _ = std::fs::remove_file(&path);
            served
        }
        Endpoint::Tcp(addr) => tokio::select! {
            r = router.serve_with_shutdown(addr, signalled) => r,
            () = grace => Ok(()),
        },
    };
    drop(stop_rx);
    result.map_err(|e| Error::Unavailable(format!("gRPC server: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds the Unix socket: a stale socket from an earlier run is removed (anything else at the
/// path is left alone and refused), and the socket is made reachable by owner and group only.
fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///csi/csi.sock").unwrap(),
            Endpoint::Unix("/csi/csi.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix://./csi.sock").unwrap(),
            Endpoint::Unix("./csi.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:10000").unwrap(),
            Endpoint::Tcp("127.0.0.1:10000".parse().unwrap())
        );
        for bad in ["", "unix://", "http://x", "tcp://nohost"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
