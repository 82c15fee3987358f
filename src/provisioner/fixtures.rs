//! Test fixtures: a scripted Kubernetes API server (kube's tower-test pattern, as controller-rs's
//! fixtures use it). A test lists the requests it expects, in order, with the answer to each; a
//! request that was not expected fails the test, and so does an expected one that never comes.

use super::Context;
use crate::controller::Volumes;
use crate::metrics::Metrics;
use crate::share::Shares;
use crate::volume::{OnDelete, params::Defaults};
use http::{Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::{self, Handle};

/// The server side of a [`kube::Client`] made by [`client`].
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// A client talking to a scripted server, and that server.
pub fn client() -> (kube::Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), ApiServer(handle))
}

impl ApiServer {
    /// Waits for the next request, checks its method and path, answers `status` with `body`, and
    /// returns the request's JSON body (`Value::Null` when it has none).
    pub async fn expect(&mut self, method: &str, path: &str, status: u16, body: Value) -> Value {
        self.answer(method, path, |_| (status, body)).await
    }

    /// Like [`ApiServer::expect`], with the answer made from the request's JSON body (an object
    /// written back as stored, say).
    pub async fn answer(
        &mut self,
        method: &str,
        path: &str,
        reply: impl FnOnce(&Value) -> (u16, Value),
    ) -> Value {
        let (sent, respond) = self
            .next(method, path)
            .await
            .unwrap_or_else(|| panic!("client gone; expected {method} {path}"));
        let (status, body) = reply(&sent);
        send(respond, status, &body);
        sent
    }

    /// Answers every request (`method` `path` only) with `status` and `body` until the client is
    /// dropped; returns how many there were.
    pub async fn answer_all(
        &mut self,
        method: &str,
        path: &str,
        status: u16,
        body: Value,
    ) -> usize {
        let mut n = 0;
        while let Some((_, respond)) = self.next(method, path).await {
            send(respond, status, &body);
            n += 1;
        }
        n
    }

    /// The next request, checked to be `method` `path`, with its JSON body; `None` when the
    /// client is gone.
    async fn next(&mut self, method: &str, path: &str) -> Option<(Value, Responder)> {
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next_request()).await;
        let (request, respond) =
            next.unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))?;
        assert_eq!(
            (request.method().as_str(), request.uri().path()),
            (method, path),
            "unexpected request"
        );
        let sent = request.into_body().collect_bytes().await.unwrap();
        let sent = if sent.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&sent).unwrap()
        };
        Some((sent, respond))
    }

    /// True when the client makes no further request (it was dropped first).
    pub async fn done(mut self) -> bool {
        self.0.next_request().await.is_none()
    }
}

type Responder = mock::SendResponse<Response<Body>>;

fn send(respond: Responder, status: u16, body: &Value) {
    respond.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// The `metav1.Status` an API server answers a failed request with.
pub fn status(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (scripted)"), "reason": reason, "code": code,
    })
}

/// A context on a mocked client, with a temp dir as the default share.
pub fn context(client: kube::Client, share: &std::path::Path) -> Arc<Context> {
    let spec = crate::volume::ShareSpec::new(None, share.to_str().unwrap(), vec![]).unwrap();
    let shares = Arc::new(Shares::new(
        Some(spec.clone()),
        share.join(".work"),
        Metrics::off(),
    ));
    let defaults = Defaults {
        share: Some(spec.path),
        on_delete: OnDelete::Delete,
        mount_permissions: 0o777,
    };
    let reporter = Reporter {
        controller: "test".into(),
        instance: Some("test-0".into()),
    };
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        volumes: Volumes::new(shares, defaults, Metrics::off()),
        provisioner: "nfs-subdir.csi.rs".into(),
        driver: "nfs-subdir.csi.rs".into(),
        identity: "test-0".into(),
        nfs_export: None,
        timeout: Duration::from_secs(10),
        metrics: Metrics::off(),
    })
}
