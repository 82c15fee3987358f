//! Kubelet plugin registration played from kubelet's side over the real registration socket:
//! GetInfo's fields, NotifyRegistrationStatus feeding /healthz, a refusal re-creating the socket
//! and being counted, a stale socket replaced at start, and the socket removed at exit.

mod common;

use common::{Driver, eventually, http};
use nfs_subdir_csi::registration::pb::{
    InfoRequest, RegistrationStatus, registration_client::RegistrationClient,
};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tonic::transport::Channel;

const SOCKET: &str = "nfs-subdir.csi.rs-reg.sock";

fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

async fn kubelet(socket: &Path) -> RegistrationClient<Channel> {
    let endpoint =
        tonic::transport::Endpoint::try_from(format!("unix://{}", socket.display())).unwrap();
    RegistrationClient::new(
        endpoint
            .connect()
            .await
            .expect("dial the registration socket"),
    )
}

async fn notify(socket: &Path, registered: bool, error: &str) {
    kubelet(socket)
        .await
        .notify_registration_status(RegistrationStatus {
            plugin_registered: registered,
            error: error.to_owned(),
        })
        .await
        .expect("NotifyRegistrationStatus");
}

#[tokio::test]
async fn kubelet_registers_the_plugin_over_the_real_socket() {
    let dir = tempfile::Builder::new()
        .prefix("nsc-reg-")
        .tempdir()
        .unwrap();
    let reg_dir = dir.path().join("plugins_registry");
    std::fs::create_dir(&reg_dir).unwrap();
    let reg = reg_dir.join(SOCKET);
    // A socket left by a crashed run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&reg).unwrap());
    // A second name keeps each old inode alive, so a new socket cannot reuse its number.
    std::fs::hard_link(&reg, reg_dir.join("stale.link")).unwrap();
    let stale = inode(&reg).unwrap();
    let port = http::free_port();
    let d = Driver::start_in(
        dir,
        &[
            "--roles=node",
            &format!("--kubelet-registration-path={}", reg_dir.display()),
            &format!("--http-address=127.0.0.1:{port}"),
        ],
    )
    .await;
    assert!(
        eventually(|| inode(&reg).is_some_and(|i| i != stale)).await,
        "stale socket kept"
    );

    let info = kubelet(&reg)
        .await
        .get_info(InfoRequest {})
        .await
        .expect("GetInfo")
        .into_inner();
    assert_eq!(info.r#type, "CSIPlugin");
    assert_eq!(info.name, "nfs-subdir.csi.rs");
    assert_eq!(
        Path::new(&info.endpoint),
        d.socket(),
        "the absolute CSI socket"
    );
    assert_eq!(info.supported_versions, vec!["1.0.0".to_owned()]);

    let (code, body) = http::get(port, "/healthz");
    assert_eq!(code, 503, "before kubelet's verdict: {body}");
    assert!(body.contains("registration"), "{body}");

    notify(&reg, true, "").await;
    let (code, body) = http::get(port, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));

    // A refusal: logged, counted, /healthz says why, and the socket is made anew so kubelet's
    // plugin watcher tries again.
    let before = inode(&reg).unwrap();
    let old = reg_dir.join("before-refusal.link");
    std::fs::hard_link(&reg, &old).unwrap();
    notify(&reg, false, "test says no").await;
    let (code, body) = http::get(port, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("refused") && body.contains("test says no"),
        "{body}"
    );
    assert!(
        eventually(|| inode(&reg).is_some_and(|i| i != before)).await,
        "registration socket not re-created after the refusal"
    );
    assert!(
        eventually(|| std::os::unix::net::UnixStream::connect(&old).is_err()).await,
        "the old registration socket still answers"
    );
    let (_, metrics) = http::get(port, "/metrics");
    let count = |result: &str| {
        http::sample(
            &metrics,
            &format!("nfs_subdir_csi_kubelet_registrations_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("accepted"), Some(1.0), "{metrics}");
    assert_eq!(count("refused"), Some(1.0), "{metrics}");
    assert!(d.log().contains("kubelet refused the plugin registration"));

    // Kubelet's retry on the new socket.
    let info = kubelet(&reg).await.get_info(InfoRequest {}).await.unwrap();
    assert_eq!(info.into_inner().name, "nfs-subdir.csi.rs");
    notify(&reg, true, "").await;
    assert_eq!(http::get(port, "/healthz").0, 200);

    let status = d.shutdown();
    assert!(status.success(), "{status:?}");
    assert!(!reg.exists(), "registration socket not removed at exit");
}

#[tokio::test]
async fn the_kubelet_csi_socket_flag_is_what_getinfo_tells() {
    let dir = tempfile::Builder::new()
        .prefix("nsc-reg-")
        .tempdir()
        .unwrap();
    let reg_dir = dir.path().join("registry");
    let d = Driver::start_in(
        dir,
        &[
            &format!("--kubelet-registration-path={}", reg_dir.display()),
            "--kubelet-csi-socket=/var/lib/kubelet/plugins/nfs-subdir.csi.rs/csi.sock",
        ],
    )
    .await;
    let reg = reg_dir.join(SOCKET);
    assert!(eventually(|| reg.exists()).await);
    let info = kubelet(&reg).await.get_info(InfoRequest {}).await.unwrap();
    assert_eq!(
        info.into_inner().endpoint,
        "/var/lib/kubelet/plugins/nfs-subdir.csi.rs/csi.sock"
    );
    drop(d);
}

#[test]
fn registration_refuses_a_non_socket_and_the_controller_only_role() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join(SOCKET);
    std::fs::write(&reg, "precious").unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nfs-subdir-csi"))
            .arg("serve")
            .arg(format!(
                "--endpoint=unix://{}",
                dir.path().join("csi.sock").display()
            ))
            .arg(format!(
                "--kubelet-registration-path={}",
                dir.path().display()
            ))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&reg).unwrap(), "precious");
    let out = run(&["--roles=controller"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the node role"));
}
