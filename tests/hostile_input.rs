//! Hostile text and secrets against the real binary: CR/LF, ANSI escapes and NUL in parameters and
//! ids never reach a gRPC message or the log raw (no forged log line), and secrets and sentinel
//! values never appear in the log or on /metrics.

mod common;

use common::node::{mounted, publish_req, require_root, unpublish_req};
use common::{Driver, create_req, http};
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use std::collections::HashMap;

const FORGED: &str = "ERROR forged line";

fn hostile(prefix: &str) -> String {
    format!("{prefix}\r\n{FORGED}\x1b[2J\0\u{2028}end")
}

/// No raw control character in `text`, and the forged line is not a line of its own.
fn assert_unforged(what: &str, text: &str) {
    assert!(
        !text.contains(['\r', '\x1b', '\0', '\u{2028}']),
        "{what} holds a raw control character: {text:?}"
    );
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with(FORGED),
            "{what} has a forged line: {line:?}"
        );
    }
}

#[tokio::test]
async fn control_characters_in_input_are_escaped_in_answers_and_logs() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    // The seed's case: a share holding CR/LF, echoed in the UNAVAILABLE details.
    let share = hostile("/nonexistent-share");
    let err = c
        .create_volume(create_req("pvc-1", 0, &[("share", &share)]))
        .await
        .unwrap_err();
    assert_unforged("the gRPC message", err.message());
    assert!(
        err.message().contains("\\r\\nERROR forged line\\u{1b}[2J"),
        "{}",
        err.message()
    );
    // A legal but hostile directory name: made, logged (volume id on the span), deleted.
    let name = hostile("pvc-name").replace('\0', ""); // NUL is refused in names
    let vol = c
        .create_volume(create_req(&name, 0, &[]))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert!(d.share().join(&name).is_dir());
    let del = |id: String| pb::DeleteVolumeRequest {
        volume_id: id,
        ..Default::default()
    };
    c.delete_volume(del(vol.volume_id.clone())).await.unwrap();
    // Foreign and malformed ids holding the same text.
    c.delete_volume(del(hostile("garbage"))).await.unwrap();
    let validate = pb::ValidateVolumeCapabilitiesRequest {
        // A well-formed id of a volume that is not there: NOT_FOUND names the id.
        volume_id: format!(
            "nsc1##{}#{}#delete#",
            d.share().display(),
            hostile("x").replace('\0', "")
        ),
        volume_capabilities: vec![common::cap(Mode::MultiNodeMultiWriter)],
        ..Default::default()
    };
    let err = c.validate_volume_capabilities(validate).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert_unforged("the gRPC message", err.message());

    let log = d.log();
    let mentions = log.lines().filter(|l| l.contains("forged line")).count();
    assert!(
        mentions >= 2,
        "the hostile input did not reach the log, nothing was checked:\n{log}"
    );
    assert_unforged("the driver's log", &log);
    println!("escaped: {mentions} log lines carry the hostile input, none forged");
}

#[tokio::test]
async fn secrets_and_sentinels_never_reach_logs_or_metrics() {
    require_root();
    let port = http::free_port();
    let d = Driver::start(&[&format!("--http-address=127.0.0.1:{port}")]).await;
    let (mut c, mut n) = (d.controller(), d.node());
    let secrets = |tag: &str| -> HashMap<String, String> {
        [("password".to_owned(), format!("SENTINEL-{tag}-s3cr3t"))].into()
    };
    let params = [
        (
            "csi.storage.k8s.io/provisioner-secret-name",
            "SENTINEL-param-name",
        ),
        (
            "csi.storage.k8s.io/provisioner-secret-namespace",
            "SENTINEL-param-ns",
        ),
        (
            "csi.storage.k8s.io/node-publish-secret-name",
            "SENTINEL-param-node",
        ),
    ];
    let mut req = create_req("pvc-secret", 1 << 20, &params);
    req.secrets = secrets("create");
    let vol = c
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    // Failing calls carry secrets too: their error paths must not log them either.
    let mut bad = create_req("pvc-bad", 0, &[("color", "blue")]);
    bad.secrets = secrets("create-bad");
    assert!(c.create_volume(bad).await.is_err());
    let expand = pb::ControllerExpandVolumeRequest {
        volume_id: vol.volume_id.clone(),
        capacity_range: Some(pb::CapacityRange {
            required_bytes: 2 << 20,
            limit_bytes: 0,
        }),
        secrets: secrets("expand"),
        ..Default::default()
    };
    c.controller_expand_volume(expand).await.unwrap();
    let target = d.dir.path().join("pod");
    let mut publish = publish_req(&vol.volume_id, &target, Mode::MultiNodeMultiWriter, false);
    publish.secrets = secrets("publish");
    n.node_publish_volume(publish.clone()).await.unwrap();
    assert!(mounted(&target));
    publish.target_path = "relative/target".into();
    assert!(n.node_publish_volume(publish).await.is_err());
    n.node_unpublish_volume(unpublish_req(&vol.volume_id, &target))
        .await
        .unwrap();
    let del = pb::DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        secrets: secrets("delete"),
    };
    c.delete_volume(del).await.unwrap();

    let (code, metrics) = http::get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("CreateVolume"),
        "no calls counted:\n{metrics}"
    );
    let log = d.log();
    assert!(log.contains("volume ready"), "log not captured:\n{log}");
    for (what, text) in [("log", &log), ("/metrics", &metrics)] {
        assert!(
            !text.contains("SENTINEL") && !text.contains("s3cr3t"),
            "a secret or sentinel leaked into the {what}:\n{text}"
        );
    }
    println!(
        "sentinels: 7 secret values and 3 secret parameters sent; 0 in {} log lines and {} /metrics lines",
        log.lines().count(),
        metrics.lines().count()
    );
}
