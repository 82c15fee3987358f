//! The `--http-address` endpoint over real sockets: /healthz follows a real Identity.Probe round
//! trip through the CSI socket (503 with the reason while the socket is gone, 200 again once it is
//! back), /metrics counts calls by method and gRPC code and domain events, and the port serves those
//! two GET endpoints and nothing else.

mod common;

use common::{Driver, create, create_req, delete, eventually, http};
use nfs_subdir_csi::csi::pb;
use tonic::Code;

#[tokio::test]
async fn healthz_follows_the_csi_socket() {
    let port = http::free_port();
    let d = Driver::start(&[&format!("--http-address=127.0.0.1:{port}")]).await;
    let (code, body) = http::get(port, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));

    // The socket made unusable: moved away, so the probe's connect fails.
    let away = d.dir.path().join("moved.sock");
    std::fs::rename(d.socket(), &away).unwrap();
    let (code, body) = http::get(port, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("cannot connect to the CSI endpoint"),
        "{body}"
    );
    assert!(body.contains(&d.socket().display().to_string()), "{body}");

    std::fs::rename(&away, d.socket()).unwrap();
    let (code, body) = http::get(port, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));

    let (code, _) = http::get(port, "/nothing");
    assert_eq!(code, 404);
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code() {
    let port = http::free_port();
    let d = Driver::start(&[&format!("--http-address=127.0.0.1:{port}")]).await;
    let mut c = d.controller();
    let vol = create(&mut c, "pvc-metrics-1", 1 << 20, &[]).await;
    // The same request again is an idempotent OK but no new directory.
    create(&mut c, "pvc-metrics-1", 1 << 20, &[]).await;
    let bad = c.create_volume(create_req("", 1, &[])).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let missing = d
        .node()
        .node_get_volume_stats(pb::NodeGetVolumeStatsRequest {
            volume_id: "no-such-volume".into(),
            volume_path: d.dir.path().join("nowhere").display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // Written to, so the delete moves it into the trash (an empty volume goes with one rmdir).
    std::fs::write(d.share().join("pvc-metrics-1/data"), b"x").unwrap();
    delete(&mut c, &vol.volume_id).await;

    let text = || http::get(port, "/metrics").1;
    let value = |t: &str, s: &str| http::sample(t, &format!("nfs_subdir_csi_{s}"));
    // The trash entry goes in the background.
    assert!(
        eventually(|| value(&text(), "trash_removed_total") == Some(1.0)).await,
        "{}",
        text()
    );
    let t = text();
    let cases = [
        (
            r#"grpc_requests_total{method="CreateVolume",code="OK"}"#,
            2.0,
        ),
        (
            r#"grpc_requests_total{method="CreateVolume",code="InvalidArgument"}"#,
            1.0,
        ),
        (
            r#"grpc_requests_total{method="NodeGetVolumeStats",code="NotFound"}"#,
            1.0,
        ),
        (
            r#"grpc_requests_total{method="DeleteVolume",code="OK"}"#,
            1.0,
        ),
        (
            r#"grpc_request_duration_seconds_count{method="CreateVolume"}"#,
            3.0,
        ),
        (r#"grpc_requests_in_flight{method="CreateVolume"}"#, 0.0),
        (r#"volumes_total{action="created"}"#, 1.0),
        (r#"volumes_total{action="deleted"}"#, 1.0),
        ("trash_entries", 0.0),
    ];
    for (series, want) in cases {
        assert_eq!(value(&t, series), Some(want), "{series} in\n{t}");
    }
    // Probe answers (from start-up) are counted too; no label carries an id or a path.
    assert!(value(&t, r#"grpc_requests_total{method="Probe",code="OK"}"#).is_some());
    assert!(!t.contains("pvc-metrics-1") && !t.contains(&d.dir.path().display().to_string()));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&t, &format!("build_info{{version=\"{version}\"}}")),
        Some(1.0)
    );
}

#[test]
fn a_bad_or_busy_http_address_fails_start_up_and_binds_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    for address in ["256.0.0.1:1", "not an address", busy.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("csi.sock");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nfs-subdir-csi"))
            .arg("serve")
            .arg(format!("--endpoint=unix://{}", socket.display()))
            .arg(format!("--http-address={address}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{address}: {stderr}");
        assert!(stderr.contains("--http-address"), "{address}: {stderr}");
        assert!(!socket.exists(), "{address}: CSI socket made anyway");
    }
}

/// The port serves `GET /healthz` and `GET /metrics` and nothing else: other paths (the usual
/// debug and admin ones, traversal, a trailing slash) are 404, other methods 405 and never run a
/// handler, and the process listens on no TCP port but this one.
#[tokio::test]
async fn the_http_port_exposes_two_read_only_endpoints_and_nothing_else() {
    let port = http::free_port();
    let d = Driver::start(&[&format!("--http-address=127.0.0.1:{port}")]).await;
    assert_eq!(http::get(port, "/healthz").0, 200);
    assert_eq!(http::get(port, "/metrics").0, 200);

    for path in [
        "/",
        "/debug/pprof/",
        "/debug/vars",
        "/admin",
        "/.env",
        "/metrics/",
        "/healthz/x",
        "/metrics/../healthz",
        "/%2e%2e/etc/passwd",
        "/config",
        "/csi.v1.Identity/Probe",
    ] {
        let (code, body) = http::get(port, path);
        assert_eq!(code, 404, "GET {path}: {code} {body}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/healthz", "/metrics"] {
            let (code, body) = http::request(port, method, path);
            assert_eq!(code, 405, "{method} {path}: {code} {body}");
        }
    }

    let listening = listening_tcp_ports(d.child.id());
    assert_eq!(listening, vec![port], "the driver listens on {listening:?}");
}

/// Local ports of the TCP sockets in LISTEN state that process `pid` holds open.
fn listening_tcp_ports(pid: u32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT, st 0A is LISTEN, inode is the tenth field.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let hex = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(hex, 16).unwrap());
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}
