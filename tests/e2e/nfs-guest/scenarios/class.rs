//! Requests as Kubernetes sends them: a StorageClass (`Class`) turned into csi-provisioner's
//! CreateVolume and kubelet's NodePublishVolume, and kubelet-style pod targets.

use crate::Env;
use nfs_subdir_csi::csi::pb::{
    self,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const MI: i64 = 1 << 20;

fn capability(flags: &[String]) -> pb::VolumeCapability {
    pb::VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume {
            mount_flags: flags.to_vec(),
            ..Default::default()
        })),
    }
}

/// "a,b,c" (leading comma allowed) as mount flags.
fn split_opts(opts: &str) -> Vec<String> {
    opts.trim_start_matches(',')
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How a scenario's StorageClass names the NFS version.
#[derive(Clone)]
pub struct Class {
    /// StorageClass parameters other than the claim metadata.
    pub params: Vec<(String, String)>,
    /// StorageClass mountOptions (capability mount flags at create and publish time).
    pub flags: Vec<String>,
    /// The version the mounts must show.
    pub vers: String,
}

impl Class {
    /// No NFS version named (only the port options the harness needs, as mountOptions): the node
    /// picks one; `vers` is the one the mounts must show.
    pub fn unversioned(env: &Env, share: &str, vers: &str) -> Class {
        Class {
            params: vec![
                ("server".into(), env.server.clone()),
                ("share".into(), share.into()),
            ],
            flags: split_opts(env.port_opts(vers)),
            vers: vers.into(),
        }
    }

    /// nfsvers in the StorageClass's mountOptions (the usual Kubernetes way).
    pub fn with_flags(env: &Env, share: &str, vers: &str) -> Class {
        Class {
            flags: split_opts(&env.version_opts(vers)),
            ..Class::unversioned(env, share, vers)
        }
    }

    /// nfsvers in the `mountOptions` parameter (as csi-driver-nfs accepts).
    pub fn with_param(env: &Env, share: &str, vers: &str) -> Class {
        let mut class = Class::unversioned(env, share, vers);
        class
            .params
            .push(("mountOptions".into(), env.version_opts(vers)));
        class.flags = Vec::new();
        class
    }

    /// CreateVolume as csi-provisioner sends it for the claim `pvc` (namespace default).
    pub fn create(&self, name: &str, pvc: &str) -> pb::CreateVolumeRequest {
        let mut parameters: HashMap<String, String> = self.params.iter().cloned().collect();
        parameters.insert("csi.storage.k8s.io/pvc/name".into(), pvc.into());
        parameters.insert("csi.storage.k8s.io/pvc/namespace".into(), "default".into());
        parameters.insert("csi.storage.k8s.io/pv/name".into(), name.into());
        pb::CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(pb::CapacityRange {
                required_bytes: 100 * MI,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![capability(&self.flags)],
            parameters,
            ..Default::default()
        }
    }

    /// NodePublishVolume as kubelet sends it for `vol` at `target`.
    pub fn publish(&self, vol: &pb::Volume, target: &Path) -> pb::NodePublishVolumeRequest {
        pb::NodePublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            target_path: target.display().to_string(),
            volume_capability: Some(capability(&self.flags)),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        }
    }

    /// The mount options in the volume id the driver gives back (flags and `mountOptions`).
    pub fn options_in_id(&self, vol: &pb::Volume) -> bool {
        self.flags
            .iter()
            .chain(
                self.params
                    .iter()
                    .filter(|(k, _)| k == "mountOptions")
                    .map(|(_, v)| v),
            )
            .all(|o| vol.volume_id.contains(o.as_str()))
    }
}

pub fn new_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The volume's directory on the share (its PV name unless a subDir template says otherwise).
pub fn dir_of(vol: &pb::Volume) -> String {
    vol.volume_context
        .get("subDir")
        .cloned()
        .unwrap_or_default()
}

/// A kubelet-style target for a new pod: /tmp/kubelet/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount,
/// with its parent created (kubelet's part); the driver creates the target itself.
pub fn pod_target(pv: &str) -> PathBuf {
    let dir = Path::new("/tmp/kubelet/pods")
        .join(uuid::Uuid::new_v4().to_string())
        .join("volumes/kubernetes.io~csi")
        .join(pv);
    std::fs::create_dir_all(&dir).expect("mkdir pod dir");
    dir.join("mount")
}
