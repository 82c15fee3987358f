//! Node service adapter: checks CSI requests, calls [`crate::node::Node`], builds responses. No
//! staging (NFS needs none) and no expansion.

use super::pb::{self, node_server::Node as CsiNode, node_service_capability as nsc};
use super::{caps, deadline};
use crate::error::Error;
use crate::node::{Node, Publish};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::instrument;

/// Node service state.
#[derive(Clone, Debug)]
pub struct NodeService {
    /// The domain node service.
    pub node: Arc<Node>,
    /// Longest time any call may take.
    pub timeout: Duration,
}

fn required<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} is missing")).into());
    }
    Ok(value)
}

#[tonic::async_trait]
impl CsiNode for NodeService {
    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn node_publish_volume(
        &self,
        req: Request<pb::NodePublishVolumeRequest>,
    ) -> Result<Response<pb::NodePublishVolumeResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.into_inner();
        required(&r.volume_id, "volume id")?;
        required(&r.target_path, "target path")?;
        let cap = r
            .volume_capability
            .as_ref()
            .ok_or_else(|| Error::invalid("volume capability is missing"))?;
        let needs = caps::check_all(std::slice::from_ref(cap))?;
        let publish = Publish {
            volume_id: r.volume_id,
            context: r.volume_context.into_iter().collect(),
            target: r.target_path.into(),
            read_only: r.readonly || needs.reader_only,
            single_writer: needs.single_writer,
            mount_flags: needs.flags,
        };
        self.node.publish(publish, limit).await?;
        Ok(Response::new(pb::NodePublishVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn node_unpublish_volume(
        &self,
        req: Request<pb::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<pb::NodeUnpublishVolumeResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.get_ref();
        required(&r.volume_id, "volume id")?;
        required(&r.target_path, "target path")?;
        self.node
            .unpublish(&r.volume_id, Path::new(&r.target_path), limit)
            .await?;
        Ok(Response::new(pb::NodeUnpublishVolumeResponse {}))
    }

    #[instrument(skip_all, fields(volume.id = %req.get_ref().volume_id))]
    async fn node_get_volume_stats(
        &self,
        req: Request<pb::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<pb::NodeGetVolumeStatsResponse>, Status> {
        let limit = deadline(&req, self.timeout);
        let r = req.get_ref();
        required(&r.volume_id, "volume id")?;
        required(&r.volume_path, "volume path")?;
        let (stats, abnormal) = self.node.stats(Path::new(&r.volume_path), limit).await?;
        // A volume at its limit (a project quota, or a full export) is worth a condition too:
        // less than 1% left, at most 64 MiB.
        let low = (stats.total_bytes / 100).min(64 << 20);
        let full = (abnormal.is_none() && stats.total_bytes > 0 && stats.available_bytes < low)
            .then(|| {
                format!(
                    "volume is full: {} of {} bytes in use",
                    stats.used_bytes, stats.total_bytes
                )
            });
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let usage = if abnormal.is_some() {
            Vec::new()
        } else {
            use pb::volume_usage::Unit;
            vec![
                pb::VolumeUsage {
                    available: n(stats.available_bytes),
                    total: n(stats.total_bytes),
                    used: n(stats.used_bytes),
                    unit: Unit::Bytes as i32,
                },
                pb::VolumeUsage {
                    available: n(stats.free_inodes),
                    total: n(stats.total_inodes),
                    used: n(stats.used_inodes),
                    unit: Unit::Inodes as i32,
                },
            ]
        };
        let abnormal = abnormal.or(full);
        let volume_condition = Some(pb::VolumeCondition {
            abnormal: abnormal.is_some(),
            message: abnormal.unwrap_or_else(|| "volume answers".into()),
        });
        Ok(Response::new(pb::NodeGetVolumeStatsResponse {
            usage,
            volume_condition,
        }))
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<pb::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<pb::NodeGetCapabilitiesResponse>, Status> {
        use nsc::rpc::Type;
        let capabilities = [
            Type::GetVolumeStats,
            Type::VolumeCondition,
            Type::SingleNodeMultiWriter,
        ]
        .into_iter()
        .map(|t| pb::NodeServiceCapability {
            r#type: Some(nsc::Type::Rpc(nsc::Rpc { r#type: t as i32 })),
        })
        .collect();
        Ok(Response::new(pb::NodeGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn node_get_info(
        &self,
        _req: Request<pb::NodeGetInfoRequest>,
    ) -> Result<Response<pb::NodeGetInfoResponse>, Status> {
        Ok(Response::new(pb::NodeGetInfoResponse {
            node_id: self.node.id().to_owned(),
            ..Default::default()
        }))
    }

    async fn node_stage_volume(
        &self,
        _: Request<pb::NodeStageVolumeRequest>,
    ) -> Result<Response<pb::NodeStageVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "NodeStageVolume is not needed for NFS directories",
        ))
    }
    async fn node_unstage_volume(
        &self,
        _: Request<pb::NodeUnstageVolumeRequest>,
    ) -> Result<Response<pb::NodeUnstageVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "NodeUnstageVolume is not needed for NFS directories",
        ))
    }
    async fn node_expand_volume(
        &self,
        _: Request<pb::NodeExpandVolumeRequest>,
    ) -> Result<Response<pb::NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented("NodeExpandVolume is not supported"))
    }
}
