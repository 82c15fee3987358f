//! `provisioner --http-address` as a real process whose Kubernetes API does not answer (an
//! apiserver that is down): /healthz is 200 both for the replica that leads and for a standby
//! still waiting for the Lease (liveness must not restart a follower), the leader gauge says
//! which, and /metrics shows every family with the provisioner's own at zero.

mod common;

use common::{eventually, http, terminate};
use nfs_subdir_csi::metrics::DESCRIPTIONS;
use std::process::{Command, Stdio};

/// A kubeconfig whose API server refuses connections.
fn dead_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: \"https://127.0.0.1:1\", \
         insecure-skip-tls-verify: true}\n  name: c\ncontexts:\n- context: {cluster: c, user: u}\n  \
         name: x\ncurrent-context: x\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    path
}

async fn provisioner(leader_elect: bool) -> (u16, String, std::process::ExitStatus) {
    let dir = tempfile::Builder::new()
        .prefix("nsc-prov-")
        .tempdir()
        .unwrap();
    let port = http::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nfs-subdir-csi"))
        .arg("provisioner")
        .arg(format!(
            "--default-share={}",
            dir.path().join("share").display()
        ))
        .arg(format!("--http-address=127.0.0.1:{port}"))
        .arg(format!("--leader-elect={leader_elect}"))
        .env("KUBECONFIG", dead_kubeconfig(dir.path()))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the provisioner");
    // Healthy once the client is set up and the loops run (or wait for the Lease).
    let healthy = eventually(|| http::get(port, "/healthz").0 == 200).await;
    let (code, body) = http::get(port, "/healthz");
    let metrics = http::get(port, "/metrics").1;
    let status = terminate(&mut child);
    assert!(
        healthy,
        "leader_elect={leader_elect}: never healthy: {body}"
    );
    (code, format!("{body}\n{metrics}"), status)
}

#[tokio::test]
async fn leader_and_standby_are_both_healthy_and_say_which_they_are() {
    for leader_elect in [false, true] {
        let (code, text, status) = provisioner(leader_elect).await;
        assert_eq!(code, 200, "leader_elect={leader_elect}: {text}");
        assert!(text.starts_with("ok\n"), "{text}");
        let leading = if leader_elect { 0.0 } else { 1.0 };
        assert_eq!(
            http::sample(&text, "nfs_subdir_csi_leader"),
            Some(leading),
            "{text}"
        );
        for (name, _, _) in DESCRIPTIONS {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        for series in [
            r#"nfs_subdir_csi_claims_total{result="provisioned"}"#,
            r#"nfs_subdir_csi_reconcile_errors_total{kind="claim"}"#,
        ] {
            assert!(http::sample(&text, series).is_some(), "{series}:\n{text}");
        }
        // No gRPC series in a process that serves no gRPC.
        assert!(!text.contains("grpc_requests_total{"), "{text}");
        assert!(status.success(), "leader_elect={leader_elect}: {status:?}");
    }
}
