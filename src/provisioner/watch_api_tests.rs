//! The real claim and PV controllers (`controllers`) against a scripted API server, through a
//! watch restart: the claim watch answers 410 Gone, the controller re-lists and re-watches, and a
//! claim that only the re-list shows is still provisioned once (its directory and one PV create).

use super::*;
use crate::provisioner::fixtures::{self, status};
use crate::provisioner::pv::tests::{claim, class};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle, SendResponse};

const CLAIMS: &str = "/api/v1/persistentvolumeclaims";
const PVS: &str = "/api/v1/persistentvolumes";
const PV: &str = "/api/v1/persistentvolumes/pvc-1234-abcd";
const CLASS: &str = "/apis/storage.k8s.io/v1/storageclasses/nfs-client";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

fn list(kind: &str, items: Vec<Value>, version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": version},
        "items": items})
}

fn respond(respond: SendResponse<Response<Body>>, code: u16, body: Vec<u8>) {
    respond.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
    );
}

/// One query parameter of a request, empty when absent.
fn param(query: &str, name: &str) -> String {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_default()
        .to_owned()
}

/// The API server: both controllers' lists and watches and the claim reconciler's calls arrive
/// interleaved, so each is answered by what it asks for and reported (in arrival order) as one
/// line on `seen`. The first claim list is empty; the first claim watch sends a 410 Gone ERROR
/// event and ends; the second list holds the claim. Later watches are held open, as a quiet
/// apiserver does.
async fn serve(
    mut api: Handle<Request<Body>, Response<Body>>,
    seen: mpsc::UnboundedSender<String>,
) {
    let mut open_watches = Vec::new();
    let (mut claim_lists, mut claim_watches) = (0, 0);
    while let Some((request, answer)) = api.next_request().await {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let watch = param(&query, "watch") == "true";
        let body = request.into_body().collect_bytes().await.unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let ok = |v: &Value| serde_json::to_vec(v).unwrap();
        let line = match (method.as_str(), path.as_str(), watch) {
            ("GET", CLAIMS, false) => {
                claim_lists += 1;
                let items = match claim_lists {
                    1 => vec![],
                    _ => vec![serde_json::to_value(claim()).unwrap()],
                };
                let version = if claim_lists == 1 { "10" } else { "20" };
                respond(
                    answer,
                    200,
                    ok(&list("PersistentVolumeClaimList", items, version)),
                );
                "list claims".to_owned()
            }
            ("GET", CLAIMS, true) => {
                claim_watches += 1;
                if claim_watches == 1 {
                    let gone = json!({"type": "ERROR", "object": status(410, "Expired")});
                    let mut event = ok(&gone);
                    event.push(b'\n');
                    respond(answer, 200, event);
                } else {
                    open_watches.push(answer);
                }
                format!("watch claims from {}", param(&query, "resourceVersion"))
            }
            ("GET", PVS, false) => {
                respond(answer, 200, ok(&list("PersistentVolumeList", vec![], "1")));
                "list PVs".to_owned()
            }
            ("GET", PVS, true) => {
                open_watches.push(answer);
                format!("watch PVs from {}", param(&query, "resourceVersion"))
            }
            ("GET", PV, false) => {
                respond(answer, 404, ok(&status(404, "NotFound")));
                "get PV".to_owned()
            }
            ("GET", CLASS, false) => {
                respond(answer, 200, ok(&serde_json::to_value(class(None)).unwrap()));
                "get class".to_owned()
            }
            ("POST", EVENTS, false) => {
                respond(answer, 201, ok(&sent));
                format!("event {}", sent["reason"].as_str().unwrap_or_default())
            }
            ("POST", PVS, false) => {
                respond(answer, 201, ok(&sent));
                format!(
                    "create PV {}",
                    sent["metadata"]["name"].as_str().unwrap_or_default()
                )
            }
            _ => {
                respond(answer, 404, ok(&status(404, "NotFound")));
                format!("unexpected {method} {path}?{query}")
            }
        };
        if seen.send(line).is_err() {
            break;
        }
    }
}

#[tokio::test]
async fn after_a_410_on_the_claim_watch_the_controller_relists_and_provisions_the_claim_once() {
    let share = tempfile::tempdir().unwrap();
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(handle, tx));
    let ctx = fixtures::context(client.clone(), share.path());
    let running = tokio::spawn(controllers(client, ctx));

    // Until the claim is provisioned and the claim watch is back; a hang is a failure, not a skip.
    let mut seen = Vec::new();
    let done = |seen: &[String]| {
        seen.iter().any(|l| l == "event ProvisioningSucceeded")
            && seen.iter().any(|l| l == "watch claims from 20")
    };
    while !done(&seen) {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(line)) => seen.push(line),
            other => panic!("stalled ({other:?}) after {seen:#?}"),
        }
    }
    // A window for duplicated work (a second reconcile, a second create) to show up.
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        seen.push(line);
    }
    assert!(!running.is_finished(), "controllers stopped: {seen:#?}");
    running.abort();
    let _ = running.await;
    server.abort();

    let of = |keep: fn(&str) -> bool| -> Vec<&str> {
        seen.iter()
            .map(String::as_str)
            .filter(|l| keep(l))
            .collect()
    };
    assert_eq!(
        of(|l| l.ends_with("claims") || l.starts_with("watch claims")),
        [
            "list claims",
            "watch claims from 10",
            "list claims",
            "watch claims from 20"
        ],
        "the 410 made the claim watcher re-list, then watch again from the new list: {seen:#?}"
    );
    assert_eq!(
        of(|l| l.contains("PVs")),
        ["list PVs", "watch PVs from 1"],
        "the PV watcher is untouched: {seen:#?}"
    );
    assert_eq!(
        of(|l| !l.contains("claims") && !l.contains("PVs")),
        [
            "get PV",
            "get class",
            "event Provisioning",
            "create PV pvc-1234-abcd",
            "event ProvisioningSucceeded"
        ],
        "one reconcile, one create, nothing unexpected: {seen:#?}"
    );
    let relist = seen.iter().rposition(|l| l == "list claims").unwrap();
    let reconcile = seen.iter().position(|l| l == "get PV").unwrap();
    assert!(
        relist < reconcile,
        "reconciled only after the re-list: {seen:#?}"
    );
    assert!(share.path().join("pvc-1234-abcd").is_dir());
}
