//! Pure functions from a claim and its StorageClass to the PersistentVolume that serves it, and
//! back from a PV to the volume it names. No API calls here, so all of it is unit-tested.

use crate::error::{Error, Result};
use crate::volume::template::Metadata;
use crate::volume::{ShareSpec, SubDir, VolumeContext};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, NFSVolumeSource, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Finalizer on our PVs with reclaimPolicy Delete: the PV object outlives its directory.
pub const FINALIZER: &str = "nfs-subdir.csi.rs/directory";
/// Annotation on our PVs holding the volume id (the CSI volumeHandle, also for `nfs:` PVs).
pub const VOLUME_ID: &str = "nfs-subdir.csi.rs/volume-id";
/// Annotation on our PVs made in nfs-subdir-external-provisioner's classes, value [`ARCHIVE_AT_ROOT`]:
/// their archives go where it put them, `archived-<last component>` at the share root, also for a
/// nested pathPattern (the class may be gone by release time, so the PV says it).
pub const ARCHIVE_NAMING: &str = "nfs-subdir.csi.rs/archive-naming";
/// The value of [`ARCHIVE_NAMING`] for nfs-subdir-external-provisioner's naming.
pub const ARCHIVE_AT_ROOT: &str = "root";
/// Annotation naming the provisioner that made a PV; kube-controller-manager leaves PVs whose
/// provisioner is not in-tree to that provisioner.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Annotations kube-controller-manager puts on a claim it hands to an external provisioner.
pub const STORAGE_PROVISIONER: [&str; 2] = [
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
];
/// Set by the scheduler on claims of WaitForFirstConsumer classes.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// How nodes reach the default (pre-mounted) share over NFS, for `nfs:` PVs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsExport {
    /// NFS server (`--nfs-server`).
    pub server: String,
    /// Export path of the default share on that server (`--nfs-path`).
    pub path: String,
    /// Where the provisioner sees that share (`--default-share`).
    pub local: String,
}

/// The volume source a new PV gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PvSource {
    /// A CSI volume of `driver`.
    Csi {
        /// The CSI driver name.
        driver: String,
        /// What a node needs to mount it (the CSI volume context).
        attributes: BTreeMap<String, String>,
    },
    /// The in-tree NFS volume.
    Nfs {
        /// NFS server.
        server: String,
        /// Path of the volume's directory on the server.
        path: String,
    },
}

/// Whether the provisioner should make a volume for a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimStep {
    /// Not ours, or nothing to do; the reason is for debug logs.
    Skip(&'static str),
    /// Make the directory and the PV.
    Provision,
}

/// Decides from the claim alone: unbound, not being deleted, and handed to `provisioner` by
/// kube-controller-manager.
pub fn claim_step(claim: &PersistentVolumeClaim, provisioner: &str) -> ClaimStep {
    let meta = &claim.metadata;
    let spec = claim.spec.as_ref();
    if meta.deletion_timestamp.is_some() {
        return ClaimStep::Skip("being deleted");
    }
    if spec
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty())
    {
        return ClaimStep::Skip("already has a volume");
    }
    let annotations = meta.annotations.as_ref();
    let handed = STORAGE_PROVISIONER
        .iter()
        .any(|k| annotations.and_then(|a| a.get(*k)).map(String::as_str) == Some(provisioner));
    if !handed {
        return ClaimStep::Skip("not handed to this provisioner");
    }
    ClaimStep::Provision
}

/// The PV name for a claim: `pvc-<claim uid>`, as csi-provisioner names it. Deterministic, so a
/// restarted provisioner finds what an earlier run made.
pub fn pv_name(claim: &PersistentVolumeClaim) -> Result<String> {
    match claim.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => Ok(format!("pvc-{uid}")),
        _ => Err(Error::invalid("claim has no uid")),
    }
}

/// Checks what this provisioner cannot honour: a foreign class, selectors, block volumes, a WaitForFirstConsumer claim with no node chosen yet (`Ok(false)`: wait).
pub fn check_claim(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provisioner: &str,
) -> Result<bool> {
    if class.provisioner != provisioner {
        return Err(Error::FailedPrecondition(format!(
            "StorageClass {} names provisioner {}, not {provisioner}",
            class.metadata.name.as_deref().unwrap_or_default(),
            class.provisioner
        )));
    }
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err(Error::invalid("claim selectors are not supported"));
    }
    // A data source is checked by `clone::wanted` (claims are cloned, the rest refused).
    super::clone::wanted(claim)?;
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(Error::invalid("volumeMode Block is not supported by NFS"));
    }
    let delayed = class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
    let node_chosen = claim
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(SELECTED_NODE));
    Ok(!delayed || node_chosen)
}

/// True when the claim names a data source (`dataSource` or `dataSourceRef`).
pub fn has_data_source(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .is_some_and(|s| s.data_source.is_some() || s.data_source_ref.is_some())
}

/// The claim's storage request: the quantity as written, and in bytes.
pub fn requested(claim: &PersistentVolumeClaim) -> Result<(Quantity, u64)> {
    let q = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .ok_or_else(|| Error::invalid("claim requests no storage"))?;
    let bytes = parse_quantity(&q.0)?;
    Ok((q, bytes))
}

/// Parses a Kubernetes quantity (`100Mi`, `1G`, `1.5Gi`, `1e3`) into bytes, rounding up.
pub fn parse_quantity(raw: &str) -> Result<u64> {
    let bad = || Error::invalid(format!("storage request {raw:?} is not a quantity"));
    let s = raw.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| bad())?;
            10f64.powi(exp)
        }
        _ => return Err(bad()),
    };
    let bytes = (value * factor).ceil();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// What templates may use from the claim.
pub fn metadata_of(claim: &PersistentVolumeClaim, pv_name: &str) -> Metadata {
    let m = &claim.metadata;
    Metadata {
        pvc_name: m.name.clone(),
        pvc_namespace: m.namespace.clone(),
        pv_name: Some(pv_name.to_owned()),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
    }
}

/// Where nodes mount a volume over NFS: the class's own server, or the default share's export.
pub fn nfs_location(
    volume: &VolumeContext,
    export: Option<&NfsExport>,
) -> Result<(String, String)> {
    let join = |base: &str| match &volume.sub_dir {
        Some(sub) => format!("{}/{sub}", base.trim_end_matches('/')),
        None => base.to_owned(),
    };
    let share = &volume.share;
    if let Some(server) = &share.server {
        return Ok((server.clone(), join(&share.path)));
    }
    match export {
        Some(e) if e.local == share.path => Ok((e.server.clone(), join(&e.path))),
        _ => Err(Error::invalid(format!(
            "volumeSource nfs: share {share} is not an NFS export; give the class server and \
             share, or start the provisioner with --nfs-server and --nfs-path for its default share"
        ))),
    }
}

/// The reverse of [`nfs_location`] for PVs of nfs-subdir-external-provisioner, which carry no
/// volume id: a path below the default share's export names a directory on the default share.
pub fn sub_dir_below(export: &NfsExport, server: &str, path: &str) -> Option<(ShareSpec, SubDir)> {
    if server != export.server {
        return None;
    }
    let rest = path
        .strip_prefix(export.path.trim_end_matches('/'))?
        .strip_prefix('/')?;
    let share = ShareSpec::new(None, &export.local, Vec::new()).ok()?;
    Some((share, SubDir::parse(rest.trim_end_matches('/')).ok()?))
}

/// Everything a new PV is made of besides the claim and its class.
#[derive(Clone, Debug)]
pub struct NewPv {
    /// `pvc-<claim uid>`.
    pub name: String,
    /// The provisioner name for `pv.kubernetes.io/provisioned-by`.
    pub provisioner: String,
    /// The volume id.
    pub volume_id: String,
    /// The volume source.
    pub source: PvSource,
    /// Mount options the share needs (merged after the class's own).
    pub share_mount_options: Vec<String>,
}

/// Builds the PV for `claim`: pre-bound to it (claimRef with uid), with the class's reclaim
/// policy and mount options, the claim's access modes, capacity and volume mode.
pub fn build_pv(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    capacity: Quantity,
    new: NewPv,
) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let reclaim = class
        .reclaim_policy
        .clone()
        .unwrap_or_else(|| "Delete".to_owned());
    let mut mount_options = class.mount_options.clone().unwrap_or_default();
    crate::volume::push_new(&mut mount_options, new.share_mount_options);
    let (csi, nfs) = match new.source {
        PvSource::Csi { driver, attributes } => (
            Some(CSIPersistentVolumeSource {
                driver,
                volume_handle: new.volume_id.clone(),
                volume_attributes: Some(attributes),
                ..CSIPersistentVolumeSource::default()
            }),
            None,
        ),
        PvSource::Nfs { server, path } => (
            None,
            Some(NFSVolumeSource {
                server,
                path,
                read_only: None,
            }),
        ),
    };
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(new.name),
            annotations: Some(BTreeMap::from([
                (PROVISIONED_BY.to_owned(), new.provisioner),
                (VOLUME_ID.to_owned(), new.volume_id),
            ])),
            finalizers: (reclaim == "Delete").then(|| vec![FINALIZER.to_owned()]),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes,
            capacity: Some(BTreeMap::from([("storage".to_owned(), capacity)])),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..ObjectReference::default()
            }),
            persistent_volume_reclaim_policy: Some(reclaim),
            mount_options: (!mount_options.is_empty()).then_some(mount_options),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".to_owned())),
            csi,
            nfs,
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
#[path = "pv_tests.rs"]
pub(crate) mod tests;
