//! The `serve` process itself: identity answers, socket permissions, stale socket replacement and
//! a clean exit on SIGTERM.

mod common;

use common::Driver;
use nfs_subdir_csi::csi::pb;
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn identity_and_socket_hygiene() {
    let d = Driver::start(&[]).await;
    let info = d
        .identity()
        .get_plugin_info(pb::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "nfs-subdir.csi.rs");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    let caps = d
        .identity()
        .get_plugin_capabilities(pb::GetPluginCapabilitiesRequest {})
        .await
        .unwrap();
    use pb::plugin_capability::{Service, Type, service::Type as ServiceType};
    let controller_service = pb::PluginCapability {
        r#type: Some(Type::Service(Service {
            r#type: ServiceType::ControllerService as i32,
        })),
    };
    assert_eq!(
        caps.into_inner().capabilities,
        vec![controller_service],
        "exactly CONTROLLER_SERVICE"
    );
    assert_eq!(
        d.identity()
            .probe(pb::ProbeRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready,
        Some(true)
    );
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "socket is reachable by others: {mode:o}");

    let socket = d.socket();
    let dir = d.stop();
    assert!(!socket.exists(), "socket not removed on SIGTERM");
    // A stale socket left by a crash is replaced.
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("csi.sock")).unwrap();
    drop(stale);
    let d = Driver::start_in(dir, &["--roles=node"]).await;
    let caps = d
        .identity()
        .get_plugin_capabilities(pb::GetPluginCapabilitiesRequest {})
        .await
        .unwrap();
    assert!(
        caps.into_inner().capabilities.is_empty(),
        "node-only serves no controller"
    );
    let status = d.shutdown();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_non_socket_at_the_endpoint_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("csi.sock");
    std::fs::write(&path, "precious").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nfs-subdir-csi"))
        .args(["serve", &format!("--endpoint=unix://{}", path.display())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}
