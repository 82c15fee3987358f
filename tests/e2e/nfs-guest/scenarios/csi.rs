//! The driver's gRPC services as the scenarios call them: every call carries a deadline, and what
//! comes back is a `Timed` answer (result code and how long it took).

use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{self, controller_client::ControllerClient, node_client::NodeClient};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// The deadline of an ordinary call.
pub const DL: Duration = Duration::from_secs(10);

/// Both services of one driver. Clones share the connection; every call uses its own client
/// handle, so calls can run concurrently on one `&Csi`.
#[derive(Clone)]
pub struct Csi {
    controller: ControllerClient<Channel>,
    node: NodeClient<Channel>,
}

pub async fn connect(socket: &Path) -> Csi {
    let endpoint = format!("unix://{}", socket.display());
    let ch = client::connect(&endpoint, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Csi {
        controller: ControllerClient::new(ch.clone()),
        node: NodeClient::new(ch),
    }
}

/// A request with a gRPC deadline.
fn req<T>(msg: T, deadline: Duration) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(deadline);
    r
}

impl Csi {
    pub async fn create(&self, r: pb::CreateVolumeRequest, dl: Duration) -> Timed<pb::Volume> {
        let t = timed(dl, self.controller.clone().create_volume(req(r, dl))).await;
        Timed {
            result: t.result.map(|r| r.map(|v| v.volume.unwrap_or_default())),
            took: t.took,
        }
    }

    pub async fn delete(&self, id: &str, dl: Duration) -> Timed<pb::DeleteVolumeResponse> {
        let r = pb::DeleteVolumeRequest {
            volume_id: id.into(),
            ..Default::default()
        };
        timed(dl, self.controller.clone().delete_volume(req(r, dl))).await
    }

    /// DeleteVolume with the provisioner secret csi-provisioner passes.
    pub async fn delete_with_secrets(
        &self,
        id: &str,
        secrets: std::collections::HashMap<String, String>,
        dl: Duration,
    ) -> Timed<pb::DeleteVolumeResponse> {
        let r = pb::DeleteVolumeRequest {
            volume_id: id.into(),
            secrets,
        };
        timed(dl, self.controller.clone().delete_volume(req(r, dl))).await
    }

    pub async fn expand(
        &self,
        id: &str,
        bytes: i64,
        dl: Duration,
    ) -> Timed<pb::ControllerExpandVolumeResponse> {
        let r = pb::ControllerExpandVolumeRequest {
            volume_id: id.into(),
            capacity_range: Some(pb::CapacityRange {
                required_bytes: bytes,
                limit_bytes: 0,
            }),
            ..Default::default()
        };
        timed(
            dl,
            self.controller.clone().controller_expand_volume(req(r, dl)),
        )
        .await
    }

    /// ListVolumes, every page at once.
    pub async fn list(&self, dl: Duration) -> Timed<pb::ListVolumesResponse> {
        let r = pb::ListVolumesRequest::default();
        timed(dl, self.controller.clone().list_volumes(req(r, dl))).await
    }

    pub async fn get_volume(
        &self,
        id: &str,
        dl: Duration,
    ) -> Timed<pb::ControllerGetVolumeResponse> {
        let r = pb::ControllerGetVolumeRequest {
            volume_id: id.into(),
        };
        timed(
            dl,
            self.controller.clone().controller_get_volume(req(r, dl)),
        )
        .await
    }

    pub async fn capacity(
        &self,
        r: pb::GetCapacityRequest,
        dl: Duration,
    ) -> Timed<pb::GetCapacityResponse> {
        timed(dl, self.controller.clone().get_capacity(req(r, dl))).await
    }

    pub async fn publish(
        &self,
        r: pb::NodePublishVolumeRequest,
        dl: Duration,
    ) -> Timed<pb::NodePublishVolumeResponse> {
        timed(dl, self.node.clone().node_publish_volume(req(r, dl))).await
    }

    pub async fn unpublish(
        &self,
        id: &str,
        target: &Path,
        dl: Duration,
    ) -> Timed<pb::NodeUnpublishVolumeResponse> {
        let r = pb::NodeUnpublishVolumeRequest {
            volume_id: id.into(),
            target_path: target.display().to_string(),
        };
        timed(dl, self.node.clone().node_unpublish_volume(req(r, dl))).await
    }

    pub async fn create_snapshot(
        &self,
        name: &str,
        source: &str,
        dl: Duration,
    ) -> Timed<pb::Snapshot> {
        let r = pb::CreateSnapshotRequest {
            name: name.into(),
            source_volume_id: source.into(),
            ..Default::default()
        };
        let t = timed(dl, self.controller.clone().create_snapshot(req(r, dl))).await;
        Timed {
            result: t.result.map(|r| r.map(|s| s.snapshot.unwrap_or_default())),
            took: t.took,
        }
    }

    pub async fn delete_snapshot(
        &self,
        id: &str,
        dl: Duration,
    ) -> Timed<pb::DeleteSnapshotResponse> {
        let r = pb::DeleteSnapshotRequest {
            snapshot_id: id.into(),
            ..Default::default()
        };
        timed(dl, self.controller.clone().delete_snapshot(req(r, dl))).await
    }

    pub async fn stats(
        &self,
        id: &str,
        path: &Path,
        dl: Duration,
    ) -> Timed<pb::NodeGetVolumeStatsResponse> {
        let r = pb::NodeGetVolumeStatsRequest {
            volume_id: id.into(),
            volume_path: path.display().to_string(),
            ..Default::default()
        };
        timed(dl, self.node.clone().node_get_volume_stats(req(r, dl))).await
    }
}

/// How one call went: its result code and how long the answer took. A call the driver does not
/// answer at all is cut off 5 s after its deadline and reported as `None`.
pub struct Timed<T> {
    pub result: Option<Result<T, Status>>,
    pub took: Duration,
}

impl<T> Timed<T> {
    pub fn code(&self) -> String {
        match &self.result {
            None => "no answer".into(),
            Some(Ok(_)) => "OK".into(),
            Some(Err(s)) => format!("{:?}", s.code()),
        }
    }

    pub fn ok(&self) -> bool {
        matches!(self.result, Some(Ok(_)))
    }

    pub fn describe(&self) -> String {
        let msg = match &self.result {
            Some(Err(s)) => format!(": {}", s.message().chars().take(160).collect::<String>()),
            _ => String::new(),
        };
        format!("{} after {} ms{msg}", self.code(), self.took.as_millis())
    }

    /// Answered before `deadline` with OK or one of `codes`.
    pub fn answered_within(&self, deadline: Duration, codes: &[Code]) -> bool {
        self.took < deadline
            && match &self.result {
                Some(Ok(_)) => true,
                Some(Err(s)) => codes.contains(&s.code()),
                None => false,
            }
    }

    /// The answer if it was OK, else how the call went (for `Report::require`).
    pub fn value(self) -> Result<T, String> {
        let described = self.describe();
        match self.result {
            Some(Ok(v)) => Ok(v),
            _ => Err(described),
        }
    }
}

async fn timed<T, F>(deadline: Duration, fut: F) -> Timed<T>
where
    F: Future<Output = Result<Response<T>, Status>>,
{
    let started = Instant::now();
    let result = tokio::time::timeout(deadline + Duration::from_secs(5), fut)
        .await
        .ok()
        .map(|r| r.map(Response::into_inner));
    Timed {
        result,
        took: started.elapsed(),
    }
}

/// Calls `call` until it answers OK or `within` has passed (500 ms between attempts): the value,
/// if any, and how every attempt went.
pub async fn until_ok<T, F, Fut>(within: Duration, mut call: F) -> (Option<T>, Vec<String>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Timed<T>>,
{
    let started = Instant::now();
    let mut attempts = Vec::new();
    while started.elapsed() < within {
        let t = call().await;
        attempts.push(t.describe());
        if let Some(Ok(v)) = t.result {
            return (Some(v), attempts);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (None, attempts)
}
