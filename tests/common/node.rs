//! Node-service request builders and mount checks shared by the tests that make real bind mounts.

use super::cap;
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use nfs_subdir_csi::mount::mountinfo;
use std::path::Path;

/// Bind mounts need root; CI runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the node tests make real bind mounts and must run as root (CI does)"
    );
}

/// A NodePublishVolume request for volume `id` at `target`.
pub fn publish_req(
    id: &str,
    target: &Path,
    mode: Mode,
    readonly: bool,
) -> pb::NodePublishVolumeRequest {
    pb::NodePublishVolumeRequest {
        volume_id: id.to_owned(),
        target_path: target.display().to_string(),
        volume_capability: Some(cap(mode)),
        readonly,
        ..Default::default()
    }
}

/// A NodeUnpublishVolume request for volume `id` at `target`.
pub fn unpublish_req(id: &str, target: &Path) -> pb::NodeUnpublishVolumeRequest {
    pb::NodeUnpublishVolumeRequest {
        volume_id: id.to_owned(),
        target_path: target.display().to_string(),
    }
}

/// True when something is mounted at `path`.
pub fn mounted(path: &Path) -> bool {
    mountinfo::at(&mountinfo::read().unwrap(), path).is_some()
}

/// The mount points at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    mountinfo::read()
        .unwrap()
        .iter()
        .map(|m| m.mount_point.display().to_string())
        .filter(|p| Path::new(p).starts_with(dir))
        .collect()
}
