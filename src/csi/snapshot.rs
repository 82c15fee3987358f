//! Snapshot RPCs of the Controller service and CreateVolume's content source: check the request,
//! call the snapshot operations of [`crate::controller::Volumes`], build the CSI answer. The
//! trait methods in `csi::controller` hand over to these.

use super::controller::ControllerService;
use super::deadline;
use super::pb::{self, volume_content_source as vcs};
use crate::error::Error;
use crate::snapshot::{ContentSource, NewSnapshot, Snapshot, SnapshotParams};
use tonic::{Request, Response, Status};
use tracing::Span;

fn to_csi(s: Snapshot) -> pb::Snapshot {
    let since = s
        .created
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pb::Snapshot {
        size_bytes: i64::try_from(s.size_bytes).unwrap_or(i64::MAX),
        snapshot_id: s.id,
        source_volume_id: s.source_volume_id,
        creation_time: Some(prost_types::Timestamp {
            seconds: since.as_secs() as i64,
            nanos: since.subsec_nanos() as i32,
        }),
        ready_to_use: s.ready,
        group_snapshot_id: String::new(),
    }
}

/// The content source of a CreateVolume request, checked.
pub fn content_source(
    src: Option<&pb::VolumeContentSource>,
) -> Result<Option<ContentSource>, Error> {
    let Some(src) = src else { return Ok(None) };
    match &src.r#type {
        Some(vcs::Type::Snapshot(s)) if !s.snapshot_id.is_empty() => {
            Ok(Some(ContentSource::Snapshot(s.snapshot_id.clone())))
        }
        Some(vcs::Type::Volume(v)) if !v.volume_id.is_empty() => {
            Ok(Some(ContentSource::Volume(v.volume_id.clone())))
        }
        _ => Err(Error::invalid(
            "volume content source names no snapshot or volume id",
        )),
    }
}

/// The content source as CreateVolume's answer echoes it.
pub fn echo(src: &ContentSource) -> pb::VolumeContentSource {
    let r#type = match src {
        ContentSource::Snapshot(id) => vcs::Type::Snapshot(vcs::SnapshotSource {
            snapshot_id: id.clone(),
        }),
        ContentSource::Volume(id) => vcs::Type::Volume(vcs::VolumeSource {
            volume_id: id.clone(),
        }),
    };
    pb::VolumeContentSource {
        r#type: Some(r#type),
    }
}

/// CreateSnapshot.
pub async fn create(
    svc: &ControllerService,
    req: Request<pb::CreateSnapshotRequest>,
) -> Result<Response<pb::CreateSnapshotResponse>, Status> {
    let limit = deadline(&req, svc.timeout);
    let r = req.into_inner();
    if r.name.is_empty() {
        return Err(Error::invalid("snapshot name is missing").into());
    }
    if r.source_volume_id.is_empty() {
        return Err(Error::invalid("source volume id is missing").into());
    }
    let new = NewSnapshot {
        name: r.name,
        source_volume_id: r.source_volume_id,
        params: SnapshotParams::parse(&r.parameters)?,
    };
    let snap = svc.volumes.create_snapshot(new, limit).await?;
    Span::current().record("snapshot.id", snap.id.as_str());
    Ok(Response::new(pb::CreateSnapshotResponse {
        snapshot: Some(to_csi(snap)),
    }))
}

/// DeleteSnapshot.
pub async fn delete(
    svc: &ControllerService,
    req: Request<pb::DeleteSnapshotRequest>,
) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
    let limit = deadline(&req, svc.timeout);
    let id = &req.get_ref().snapshot_id;
    if id.is_empty() {
        return Err(Error::invalid("snapshot id is missing").into());
    }
    svc.volumes.delete_snapshot(id, limit).await?;
    Ok(Response::new(pb::DeleteSnapshotResponse {}))
}

/// GetSnapshot.
pub async fn get(
    svc: &ControllerService,
    req: Request<pb::GetSnapshotRequest>,
) -> Result<Response<pb::GetSnapshotResponse>, Status> {
    let limit = deadline(&req, svc.timeout);
    let id = &req.get_ref().snapshot_id;
    if id.is_empty() {
        return Err(Error::invalid("snapshot id is missing").into());
    }
    let snap = svc.volumes.get_snapshot(id, limit).await?;
    Ok(Response::new(pb::GetSnapshotResponse {
        snapshot: Some(to_csi(snap)),
    }))
}

/// ListSnapshots.
pub async fn list(
    svc: &ControllerService,
    req: Request<pb::ListSnapshotsRequest>,
) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
    let limit = deadline(&req, svc.timeout);
    let r = req.into_inner();
    if r.max_entries < 0 {
        return Err(Error::invalid("max_entries is negative").into());
    }
    let page = svc
        .volumes
        .list_snapshots(
            &r.starting_token,
            r.max_entries as usize,
            &r.snapshot_id,
            &r.source_volume_id,
            limit,
        )
        .await?;
    let entries = page
        .snapshots
        .into_iter()
        .map(|s| pb::list_snapshots_response::Entry {
            snapshot: Some(to_csi(s)),
        })
        .collect();
    Ok(Response::new(pb::ListSnapshotsResponse {
        entries,
        next_token: page.next,
    }))
}
