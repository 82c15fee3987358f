//! Controller service adapter: checks CSI requests, calls [`crate::controller::Volumes`], and
//! builds CSI responses. Expansion records the new size and raises the volume's project quota
//! when it has one (controller-side only: no node expansion); snapshot RPCs and content sources
//! are in `csi::snapshot`; publishing and modification are not offered.

use super::claims::Claims;
use super::pb::{
    self, controller_server::Controller as CsiController, controller_service_capability as csc,
};
use super::{caps, deadline};
use crate::controller::{NewVolume, Volume, Volumes};
use crate::error::Error;
use crate::volume::{Params, SecretOptions};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::{Span, instrument};

/// Controller service state.
#[derive(Clone, Debug)]
pub struct ControllerService {
    /// The volume operations (domain).
    pub volumes: Arc<Volumes>,
    /// Longest time any call may take.
    pub timeout: Duration,
    /// Claim labels and annotations for subDir templates that use them.
    pub claims: Arc<Claims>,
}

fn to_csi(v: Volume) -> pb::Volume {
    pb::Volume {
        capacity_bytes: i64::try_from(v.capacity).unwrap_or(i64::MAX),
        volume_id: v.id,
        volume_context: v.context.to_pairs().into_iter().collect(),
        ..Default::default()
    }
}

fn capacity(range: Option<&pb::CapacityRange>) -> Result<u64, Error> {
    let Some(r) = range else { return Ok(0) };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Error::invalid("capacity range has negative bytes"));
    }
    if r.limit_bytes > 0 && r.required_bytes > r.limit_bytes {
        return Err(Error::invalid("required bytes exceed limit bytes"));
    }
    Ok(if r.required_bytes > 0 {
        r.required_bytes
    } else {
        r.limit_bytes
    } as u64)
}

/// The `mountOptions` key of the provisioner secret (csi-driver-nfs's way of giving mount options
/// at create and delete time; keys case-insensitive), beside the `public` ones. Never printed.
fn secret_mount_options(
    secrets: &std::collections::HashMap<String, String>,
    public: &[String],
) -> Result<SecretOptions, Status> {
    let texts = secrets
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("mountOptions"))
        .map(|(_, v)| v.as_str());
    Ok(SecretOptions::parse(texts, public)?)
}

fn unimplemented<T>(what: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{what} is not supported by this driver"
    )))
}

#[tonic::async_trait]
impl CsiController for ControllerService {
    #[instrument(skip_all, fields(volume.name = %req.get_ref().name, volume.id))]
    async fn create_volume(
        &self,
        req: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::CreateVolumeResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.into_inner();
        if r.name.is_empty() {
            return Err(Error::invalid("volume name is missing").into());
        }
        let source = super::snapshot::content_source(r.volume_content_source.as_ref())?;
        let needs = caps::check_all(&r.volume_capabilities)?;
        let secret_options = secret_mount_options(&r.secrets, &needs.flags)?;
        let mut params = Params::parse(&r.parameters)?;
        let started = std::time::Instant::now();
        if params.sub_dir.as_ref().is_some_and(|t| t.needs_claim()) {
            self.claims.fill(&mut params.metadata, limit).await?;
        }
        let limit = limit.saturating_sub(started.elapsed());
        let new = NewVolume {
            name: r.name,
            params,
            mount_flags: needs.flags,
            secret_options,
            capacity: capacity(r.capacity_range.as_ref())?,
        };
        let (volume, content_source) = match source {
            None => (self.volumes.create(new, limit).await?, None),
            Some(src) => {
                let echo = super::snapshot::echo(&src);
                (self.volumes.create_from(new, src, limit).await?, Some(echo))
            }
        };
        Span::current().record("volume.id", volume.id.as_str());
        Ok(Response::new(pb::CreateVolumeResponse {
            volume: Some(pb::Volume {
                content_source,
                ..to_csi(volume)
            }),
        }))
    }

    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn delete_volume(
        &self,
        req: Request<pb::DeleteVolumeRequest>,
    ) -> Result<Response<pb::DeleteVolumeResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let id = &req.get_ref().volume_id;
        if id.is_empty() {
            return Err(Error::invalid("volume id is missing").into());
        }
        let secret = secret_mount_options(&req.get_ref().secrets, &[])?;
        self.volumes.delete(id, secret, limit).await?;
        Ok(Response::new(pb::DeleteVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn validate_volume_capabilities(
        &self,
        req: Request<pb::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<pb::ValidateVolumeCapabilitiesResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.into_inner();
        if r.volume_id.is_empty() {
            return Err(Error::invalid("volume id is missing").into());
        }
        if r.volume_capabilities.is_empty() {
            return Err(Error::invalid("volume capabilities are missing").into());
        }
        self.volumes.get(&r.volume_id, limit).await?;
        let confirmed = match caps::check_all(&r.volume_capabilities) {
            Ok(_) => Some(pb::validate_volume_capabilities_response::Confirmed {
                volume_context: r.volume_context,
                volume_capabilities: r.volume_capabilities,
                parameters: r.parameters,
                mutable_parameters: r.mutable_parameters,
            }),
            Err(_) => None,
        };
        let message = if confirmed.is_some() {
            String::new()
        } else {
            "capabilities not supported".into()
        };
        Ok(Response::new(pb::ValidateVolumeCapabilitiesResponse {
            confirmed,
            message,
        }))
    }

    #[instrument(skip_all)]
    async fn list_volumes(
        &self,
        req: Request<pb::ListVolumesRequest>,
    ) -> Result<Response<pb::ListVolumesResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.into_inner();
        if r.max_entries < 0 {
            return Err(Error::invalid("max_entries is negative").into());
        }
        let page = self
            .volumes
            .list(&r.starting_token, r.max_entries as usize, limit)
            .await?;
        let entries = page
            .volumes
            .into_iter()
            .map(|v| pb::list_volumes_response::Entry {
                volume: Some(to_csi(v)),
                status: None,
            })
            .collect();
        Ok(Response::new(pb::ListVolumesResponse {
            entries,
            next_token: page.next,
        }))
    }

    #[instrument(skip_all)]
    async fn get_capacity(
        &self,
        req: Request<pb::GetCapacityRequest>,
    ) -> Result<Response<pb::GetCapacityResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.into_inner();
        let flags = match r.volume_capabilities.is_empty() {
            true => Vec::new(),
            false => caps::check_all(&r.volume_capabilities)?.flags,
        };
        let free = self
            .volumes
            .capacity(&Params::parse(&r.parameters)?, &flags, limit)
            .await?;
        Ok(Response::new(pb::GetCapacityResponse {
            available_capacity: i64::try_from(free).unwrap_or(i64::MAX),
            ..Default::default()
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<pb::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<pb::ControllerGetCapabilitiesResponse>, Status> {
        use csc::rpc::Type;
        let capabilities = [
            Type::CreateDeleteVolume,
            Type::ListVolumes,
            Type::GetCapacity,
            Type::GetVolume,
            Type::VolumeCondition,
            Type::ExpandVolume,
            Type::SingleNodeMultiWriter,
            Type::CreateDeleteSnapshot,
            Type::ListSnapshots,
            Type::GetSnapshot,
            Type::CloneVolume,
        ]
        .into_iter()
        .map(|t| pb::ControllerServiceCapability {
            r#type: Some(csc::Type::Rpc(csc::Rpc { r#type: t as i32 })),
        })
        .collect();
        Ok(Response::new(pb::ControllerGetCapabilitiesResponse {
            capabilities,
        }))
    }

    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn controller_get_volume(
        &self,
        req: Request<pb::ControllerGetVolumeRequest>,
    ) -> Result<Response<pb::ControllerGetVolumeResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let id = &req.get_ref().volume_id;
        if id.is_empty() {
            return Err(Error::invalid("volume id is missing").into());
        }
        let (volume, abnormal) = self.volumes.get(id, limit).await?;
        let status = pb::controller_get_volume_response::VolumeStatus {
            published_node_ids: Vec::new(),
            volume_condition: Some(pb::VolumeCondition {
                abnormal: abnormal.is_some(),
                message: abnormal.unwrap_or_else(|| "directory present".into()),
            }),
        };
        Ok(Response::new(pb::ControllerGetVolumeResponse {
            volume: Some(to_csi(volume)),
            status: Some(status),
        }))
    }

    async fn controller_publish_volume(
        &self,
        _: Request<pb::ControllerPublishVolumeRequest>,
    ) -> Result<Response<pb::ControllerPublishVolumeResponse>, Status> {
        unimplemented("ControllerPublishVolume")
    }
    async fn controller_unpublish_volume(
        &self,
        _: Request<pb::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<pb::ControllerUnpublishVolumeResponse>, Status> {
        unimplemented("ControllerUnpublishVolume")
    }
    #[instrument(skip_all, fields(snapshot.name = %req.get_ref().name, snapshot.id))]
    async fn create_snapshot(
        &self,
        req: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::CreateSnapshotResponse>, Status> {
        super::snapshot::create(self, req).await
    }
    #[instrument(skip_all, fields(snapshot.id = %req.get_ref().snapshot_id))]
    async fn delete_snapshot(
        &self,
        req: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        super::snapshot::delete(self, req).await
    }
    #[instrument(skip_all)]
    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        super::snapshot::list(self, req).await
    }
    #[instrument(skip_all, fields(snapshot.id = %req.get_ref().snapshot_id))]
    async fn get_snapshot(
        &self,
        req: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::GetSnapshotResponse>, Status> {
        super::snapshot::get(self, req).await
    }
    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn controller_expand_volume(
        &self,
        req: Request<pb::ControllerExpandVolumeRequest>,
    ) -> Result<Response<pb::ControllerExpandVolumeResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.get_ref();
        if r.volume_id.is_empty() {
            return Err(Error::invalid("volume id is missing").into());
        }
        if r.capacity_range.is_none() {
            return Err(Error::invalid("capacity range is missing").into());
        }
        if let Some(cap) = &r.volume_capability {
            caps::check(cap)?;
        }
        let wanted = capacity(r.capacity_range.as_ref())?;
        let recorded = self.volumes.expand(&r.volume_id, wanted, limit).await?;
        Ok(Response::new(pb::ControllerExpandVolumeResponse {
            capacity_bytes: i64::try_from(recorded).unwrap_or(i64::MAX),
            node_expansion_required: false,
        }))
    }
    async fn controller_modify_volume(
        &self,
        _: Request<pb::ControllerModifyVolumeRequest>,
    ) -> Result<Response<pb::ControllerModifyVolumeResponse>, Status> {
        unimplemented("ControllerModifyVolume")
    }
}
