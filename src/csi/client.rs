//! For programs that talk to a running driver (the examples, the benchmarks, the tests): connecting
//! to its socket once it answers, and the capability a filesystem volume is asked for with.

use super::pb::{
    self,
    identity_client::IdentityClient,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::io;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Connects to `endpoint` (`unix:///path/csi.sock`), retrying every 20 ms until the driver answers
/// Probe; after `wait` without an answer, an error of kind `TimedOut` naming the last failure.
pub async fn connect(endpoint: &str, wait: Duration) -> io::Result<Channel> {
    let target = Endpoint::try_from(endpoint.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{endpoint}: {e}")))?;
    let started = Instant::now();
    loop {
        let last = match target.connect().await {
            Ok(ch) => match IdentityClient::new(ch.clone())
                .probe(pb::ProbeRequest {})
                .await
            {
                Ok(_) => return Ok(ch),
                Err(status) => status.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= wait {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no driver answered on {endpoint} within {wait:?}: {last}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A filesystem ("mount") capability with access `mode` and the StorageClass's `mount_flags`.
pub fn mount_capability(mode: Mode, mount_flags: &[String]) -> pb::VolumeCapability {
    pb::VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            mount_flags: mount_flags.to_vec(),
            ..Default::default()
        })),
    }
}
