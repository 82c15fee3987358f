//! A tower layer around the tonic services that counts every call in one place: the method from
//! the request path, the code from the response's `grpc-status` (header of a trailers-only answer,
//! or the trailer), the latency until the answer's last frame, and the calls in flight.

use super::{ABORTED, DEADLINE_EXCEEDED, GRPC_DURATION, GRPC_IN_FLIGHT, GRPC_REQUESTS, Metrics};
use http_body::{Body, Frame, SizeHint};
use metrics::{Gauge, Label};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Every RPC of the CSI v1 services; any other path is counted as `other`, so a client cannot
/// grow the number of series.
const METHODS: &[&str] = &[
    "GetPluginInfo",
    "GetPluginCapabilities",
    "Probe",
    "CreateVolume",
    "DeleteVolume",
    "ControllerPublishVolume",
    "ControllerUnpublishVolume",
    "ValidateVolumeCapabilities",
    "ListVolumes",
    "GetCapacity",
    "ControllerGetCapabilities",
    "CreateSnapshot",
    "DeleteSnapshot",
    "ListSnapshots",
    "ControllerExpandVolume",
    "ControllerGetVolume",
    "ControllerModifyVolume",
    "NodeStageVolume",
    "NodeUnstageVolume",
    "NodePublishVolume",
    "NodeUnpublishVolume",
    "NodeGetVolumeStats",
    "NodeExpandVolume",
    "NodeGetCapabilities",
    "NodeGetInfo",
    "GroupControllerGetCapabilities",
    "CreateVolumeGroupSnapshot",
    "DeleteVolumeGroupSnapshot",
    "GetVolumeGroupSnapshot",
];

/// gRPC codes by number, named as grpc-go names them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The method label of a request path such as `/csi.v1.Controller/CreateVolume`.
pub fn method_of(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    METHODS
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("other")
}

/// The code label of a `grpc-status` value.
pub fn code_name(status: &[u8]) -> &'static str {
    std::str::from_utf8(status)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .and_then(|n| CODES.get(n).copied())
        .unwrap_or("Unknown")
}

/// Wraps services in [`RpcMetrics`].
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer(pub Metrics);

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// Counts calls to the wrapped service.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

/// One call being measured; records it when dropped (after the last frame, or when the client
/// went away: then the code is `Canceled` unless one was already seen).
struct Call {
    metrics: Metrics,
    method: &'static str,
    started: Instant,
    in_flight: Gauge,
    code: Option<&'static str>,
}

impl Call {
    fn new(metrics: &Metrics, method: &'static str) -> Self {
        let in_flight = metrics.gauge(GRPC_IN_FLIGHT, vec![Label::new("method", method)]);
        in_flight.increment(1.0);
        Call {
            metrics: metrics.clone(),
            method,
            started: Instant::now(),
            in_flight,
            code: None,
        }
    }

    fn see(&mut self, headers: &http::HeaderMap) {
        if let Some(v) = headers.get("grpc-status") {
            self.code = Some(code_name(v.as_bytes()));
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.in_flight.decrement(1.0);
        let (m, method) = (&self.metrics, self.method);
        let code = self.code.unwrap_or("Canceled");
        let labels = vec![Label::new("method", method), Label::new("code", code)];
        m.counter(GRPC_REQUESTS, labels).increment(1);
        m.histogram(GRPC_DURATION, vec![Label::new("method", method)])
            .record(self.started.elapsed().as_secs_f64());
        // ListVolumes answers ABORTED only for a token it did not issue; every other ABORTED
        // means the volume was busy.
        if code == "Aborted" && method != "ListVolumes" {
            m.counter(ABORTED, vec![Label::new("method", method)])
                .increment(1);
        }
        if code == "DeadlineExceeded" {
            m.counter(DEADLINE_EXCEEDED, vec![Label::new("operation", method)])
                .increment(1);
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: Body + Send + 'static,
{
    type Response = http::Response<CountedBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !self.metrics.is_on() {
            let fut = self.inner.call(req);
            return Box::pin(async move {
                let resp = fut.await?;
                Ok(resp.map(|inner| CountedBody { inner, call: None }))
            });
        }
        let mut call = Call::new(&self.metrics, method_of(req.uri().path()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            call.see(resp.headers());
            Ok(resp.map(|inner| CountedBody {
                inner,
                call: Some(call),
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports the call when its trailers pass or when it is dropped.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut()) {
                    call.see(trailers);
                }
            }
            // The body ended: the call is complete.
            Poll::Ready(None) => drop(this.call.take()),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_of("/csi.v1.Controller/CreateVolume"), "CreateVolume");
        assert_eq!(method_of("/csi.v1.Identity/Probe"), "Probe");
        assert_eq!(method_of("/x.Y/pvc-0123"), "other");
        assert_eq!(method_of(""), "other");
        assert_eq!(code_name(b"0"), "OK");
        assert_eq!(code_name(b"5"), "NotFound");
        assert_eq!(code_name(b"10"), "Aborted");
        assert_eq!(code_name(b"99"), "Unknown");
        assert_eq!(code_name(b"x"), "Unknown");
    }
}
