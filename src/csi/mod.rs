//! The gRPC side: generated CSI v1 types, and thin adapters that validate requests, call the
//! domain services and translate results.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    //! Code generated from proto/csi.proto.
    tonic::include_proto!("csi.v1");
}

pub mod caps;
pub mod claims;
pub mod client;
pub mod controller;
pub mod identity;
pub mod node;
pub mod snapshot;
pub mod status;

use std::time::Duration;

/// How long a request may take: the caller's `grpc-timeout` less a tenth (so the answer reaches
/// it in time), capped by `limit`.
pub fn deadline<T>(req: &tonic::Request<T>, limit: Duration) -> Duration {
    let header = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok());
    match header.and_then(parse_grpc_timeout) {
        Some(d) => (d - d / 10).min(limit),
        None => limit,
    }
}

fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("5Q"), None);
        let mut req = tonic::Request::new(());
        req.metadata_mut()
            .insert("grpc-timeout", "10S".parse().unwrap());
        assert_eq!(
            deadline(&req, Duration::from_secs(30)),
            Duration::from_secs(9)
        );
        assert_eq!(
            deadline(&req, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
