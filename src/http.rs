//! The HTTP endpoint (`--http-address`): `GET /healthz` runs the process's health check (200 "ok"
//! or 503 with the reason) and `GET /metrics` renders the Prometheus text exposition.

use crate::csi::pb::{ProbeRequest, identity_client::IdentityClient};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::registration::{RegistrationState, Verdict};
use crate::server::Endpoint;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long one health check may take (kubelet's default probe timeout is 1 s; ours is a bit
/// shorter so that the answer, not the timeout, reaches it).
const CHECK_TIMEOUT: Duration = Duration::from_millis(900);

/// An asynchronous health check: `Ok` when healthy, else the reason.
pub type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    check: Check,
}

/// Turns `:port` into `0.0.0.0:port`; other forms are used as given.
pub fn listen_address(raw: &str) -> String {
    if raw.starts_with(':') {
        format!("0.0.0.0{raw}")
    } else {
        raw.to_owned()
    }
}

/// Binds `address` (`:port` or `host:port`); a bad or busy address fails start-up.
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener> {
    let addr = listen_address(address);
    tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| Error::io(format!("listen on --http-address {addr}"), e))
}

/// Serves `/healthz` and `/metrics` on `listener` until `stop` turns true. Metrics are folded
/// every few seconds so that histograms stay small between scrapes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    check: Check,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let upkeep = metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.upkeep();
        }
    });
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(render))
        .with_state(AppState { metrics, check });
    let until = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(until)
        .await;
    upkeep.abort();
    served.map_err(|e| Error::io("HTTP server", e))
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let verdict = tokio::time::timeout(CHECK_TIMEOUT, (s.check)()).await;
    let text = |t: String| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t);
    match verdict {
        Ok(Ok(())) => (StatusCode::OK, text("ok\n".to_owned())),
        Ok(Err(why)) => {
            tracing::warn!(reason = %why, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, text(format!("{why}\n")))
        }
        Err(_) => {
            let why = format!("health check took over {} ms", CHECK_TIMEOUT.as_millis());
            tracing::warn!(reason = %why, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, text(format!("{why}\n")))
        }
    }
}

async fn render(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// The health check of `serve`: a CSI Identity.Probe round trip through the real endpoint (a new
/// connection each time, so a vanished socket shows), and, when registration is on, kubelet's
/// acceptance.
pub fn csi_check(endpoint: Endpoint, registration: Option<Arc<RegistrationState>>) -> Check {
    Arc::new(move || {
        let (endpoint, registration) = (endpoint.clone(), registration.clone());
        Box::pin(async move {
            probe(&endpoint).await?;
            match registration.map(|r| r.verdict()) {
                None | Some(Verdict::Accepted) => Ok(()),
                Some(Verdict::Waiting) => {
                    Err("kubelet has not confirmed the plugin registration yet".to_owned())
                }
                Some(Verdict::Refused(why)) => {
                    Err(format!("kubelet refused the plugin registration: {why}"))
                }
            }
        })
    })
}

/// One Identity.Probe round trip on a fresh connection to `endpoint`.
pub async fn probe(endpoint: &Endpoint) -> Result<(), String> {
    let uri = match endpoint {
        Endpoint::Unix(path) => format!("unix://{}", path.display()),
        Endpoint::Tcp(addr) => {
            let mut addr = *addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let channel = tonic::transport::Endpoint::try_from(uri.clone())
        .map_err(|e| format!("CSI endpoint {uri}: {e}"))?
        .connect_timeout(CHECK_TIMEOUT)
        .timeout(CHECK_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the CSI endpoint {uri}: {}", causes(&e)))?;
    let answer = IdentityClient::new(channel)
        .probe(ProbeRequest {})
        .await
        .map_err(|e| format!("CSI Probe on {uri} failed: {}", e.message()))?;
    match answer.into_inner().ready {
        Some(false) => Err("CSI Probe answered not ready".to_owned()),
        _ => Ok(()),
    }
}

/// An error with its causes, `outer: inner: …` (tonic's own text is only "transport error").
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    let mut last = String::new();
    while let Some(cause) = next {
        let line = cause.to_string();
        // Wrappers often repeat their source's text.
        if line != last {
            text.push_str(": ");
            text.push_str(&line);
        }
        last = line;
        next = cause.source();
    }
    text
}
