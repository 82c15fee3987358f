//! PV reconciler: when a claim of a reclaimPolicy Delete volume is gone, deletes the PV object
//! and, behind this provisioner's finalizer, the volume's directory. Every step is idempotent, so
//! a provisioner killed half way finishes the job after its restart.

use super::pv::{self, FINALIZER, PROVISIONED_BY, VOLUME_ID};
use super::{Context, kube_error};
use crate::error::{Error, Result};
use crate::metrics::ClaimResult;
use crate::volume::legacy::{self, ArchiveNaming, Disposal};
use crate::volume::{OnDelete, SecretOptions, VolumeId};
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::json;
use std::sync::Arc;

/// What to do with a PV at one reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not ours, or nothing to do.
    Ignore,
    /// A reclaimPolicy Delete PV of ours without the finalizer (made by an older version or by
    /// another provisioner of the same name): protect its directory.
    AddFinalizer,
    /// Released under reclaimPolicy Delete: delete the PV object (the finalizer holds it).
    DeleteObject,
    /// The PV object is being deleted and no claim uses it: remove the directory if the policy
    /// is Delete, then the finalizer.
    Cleanup {
        /// Whether the directory goes (reclaimPolicy Delete).
        remove_dir: bool,
    },
}

/// Decides from the PV alone.
pub fn step(volume: &PersistentVolume, provisioner: &str) -> Step {
    let meta = &volume.metadata;
    let ours = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVISIONED_BY))
        .is_some_and(|p| p == provisioner);
    if !ours {
        return Step::Ignore;
    }
    let protected = meta.finalizers.iter().flatten().any(|f| f == FINALIZER);
    let reclaim_delete = volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if meta.deletion_timestamp.is_some() {
        // A PV deleted by hand while a claim still uses it waits (kubernetes.io/pv-protection).
        return match (protected, phase) {
            (false, _) | (true, Some("Bound")) => Step::Ignore,
            (true, _) => Step::Cleanup {
                remove_dir: reclaim_delete,
            },
        };
    }
    match (reclaim_delete, protected, phase) {
        (true, false, _) => Step::AddFinalizer,
        (true, true, Some("Released")) => Step::DeleteObject,
        _ => Step::Ignore,
    }
}

/// Reconciles one PV.
#[tracing::instrument(skip_all, fields(volume = %volume.metadata.name.as_deref().unwrap_or_default()))]
pub async fn reconcile(volume: Arc<PersistentVolume>, ctx: Arc<Context>) -> Result<Action> {
    let name = volume.metadata.name.clone().unwrap_or_default();
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match step(&volume, &ctx.provisioner) {
        Step::Ignore => {}
        Step::AddFinalizer => {
            let mut finalizers = volume.metadata.finalizers.clone().unwrap_or_default();
            finalizers.push(FINALIZER.to_owned());
            patch_finalizers(&pvs, &volume, finalizers).await?;
            tracing::info!("finalizer added");
        }
        Step::DeleteObject => {
            let uid = volume.metadata.uid.clone();
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pvs.delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!("claim released: PV deleted");
                    ctx.metrics.claim(ClaimResult::Released);
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(kube_error(format!("delete PV {name}"), e)),
            }
        }
        Step::Cleanup { remove_dir } => {
            if remove_dir {
                if let Err(e) = remove_directory(&volume, &ctx).await {
                    tracing::warn!(error = %e, "directory not removed; retrying");
                    ctx.event(
                        &*volume,
                        EventType::Warning,
                        "VolumeFailedDelete",
                        e.to_string(),
                    )
                    .await;
                    return Err(e);
                }
            }
            let finalizers: Vec<String> = volume
                .metadata
                .finalizers
                .iter()
                .flatten()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            patch_finalizers(&pvs, &volume, finalizers).await?;
            tracing::info!(directory_removed = remove_dir, "finalizer removed");
        }
    }
    Ok(Action::await_change())
}

/// Sets the finalizer list, guarded by the resourceVersion that was read.
async fn patch_finalizers(
    pvs: &Api<PersistentVolume>,
    volume: &PersistentVolume,
    finalizers: Vec<String>,
) -> Result<()> {
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": volume.metadata.resource_version,
    }});
    match pvs
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(kube_error(format!("update finalizers of PV {name}"), e)),
    }
}

/// Applies the volume's onDelete policy to its directory, via the domain controller.
async fn remove_directory(volume: &PersistentVolume, ctx: &Context) -> Result<()> {
    let Some((disposal, trusted)) = disposal(volume, ctx).await? else {
        let msg = "PV names no volume of this driver; its directory, if any, is left alone";
        tracing::warn!("{msg}");
        ctx.event(volume, EventType::Warning, "VolumeUnknown", msg.to_owned())
            .await;
        return Ok(());
    };
    ctx.volumes.release(disposal, trusted, ctx.timeout).await
}

/// What to release for a PV: our annotation's id, else the CSI volumeHandle of our driver (also
/// a csi-driver-nfs handle when run under its name), else, for a PV of
/// nfs-subdir-external-provisioner, its `nfs:` path below the default share's export, released as
/// that provisioner would (see [`legacy::nfs_subdir_policy`]). The bool: the share is trusted.
async fn disposal(volume: &PersistentVolume, ctx: &Context) -> Result<Option<(Disposal, bool)>> {
    let annotations = volume.metadata.annotations.clone().unwrap_or_default();
    let spec = volume.spec.clone().unwrap_or_default();
    let raw = match (annotations.get(VOLUME_ID), spec.csi) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(csi)) if csi.driver == ctx.driver => Some(csi.volume_handle),
        _ => None,
    };
    if let Some(raw) = raw {
        let mut disposal = match Disposal::parse(&raw, OnDelete::Delete, SecretOptions::default()) {
            Err(Error::NotFound(_)) => return Ok(None),
            other => other?,
        };
        if annotations.get(pv::ARCHIVE_NAMING).map(String::as_str) == Some(pv::ARCHIVE_AT_ROOT) {
            disposal.archive = ArchiveNaming::Root;
        }
        // Our own PVs on the default share were made by us: trusted like an NFS export.
        let trusted = disposal.id.share.is_nfs() || is_default_share(&disposal, ctx);
        return Ok(Some((disposal, trusted)));
    }
    let (Some(nfs), Some(export)) = (spec.nfs, ctx.nfs_export.as_ref()) else {
        return Ok(None);
    };
    let Some((share, sub_dir)) = pv::sub_dir_below(export, &nfs.server, &nfs.path) else {
        return Ok(None);
    };
    let mut params = None;
    if let Some(class) = spec.storage_class_name.filter(|c| !c.is_empty()) {
        let classes: Api<StorageClass> = Api::all(ctx.client.clone());
        let found = classes
            .get_opt(&class)
            .await
            .map_err(|e| kube_error(format!("get StorageClass {class}"), e))?;
        params = found.map(|c| c.parameters.unwrap_or_default());
    }
    let on_delete = legacy::nfs_subdir_policy(params.as_ref())?;
    let id = VolumeId {
        share,
        sub_dir,
        on_delete,
    };
    let archive = ArchiveNaming::Root;
    Ok(Some((Disposal { id, archive }, true)))
}

fn is_default_share(disposal: &Disposal, ctx: &Context) -> bool {
    ctx.nfs_export
        .as_ref()
        .is_some_and(|e| e.local == disposal.id.share.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolumeSpec, PersistentVolumeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    const PROV: &str = "nfs-subdir.csi.rs";

    fn pv(reclaim: &str, phase: &str, finalizer: bool, deleting: bool) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pvc-1".into()),
                annotations: Some([(PROVISIONED_BY.to_owned(), PROV.to_owned())].into()),
                finalizers: finalizer
                    .then(|| vec!["kubernetes.io/pv-protection".into(), FINALIZER.into()]),
                deletion_timestamp: deleting.then_some(Time(Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                persistent_volume_reclaim_policy: Some(reclaim.into()),
                ..PersistentVolumeSpec::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some(phase.into()),
                ..PersistentVolumeStatus::default()
            }),
        }
    }

    #[test]
    fn deletes_released_volumes_behind_the_finalizer() {
        assert_eq!(
            step(&pv("Delete", "Bound", true, false), PROV),
            Step::Ignore
        );
        assert_eq!(
            step(&pv("Delete", "Released", true, false), PROV),
            Step::DeleteObject
        );
        assert_eq!(
            step(&pv("Delete", "Released", true, true), PROV),
            Step::Cleanup { remove_dir: true }
        );
        assert_eq!(
            step(&pv("Delete", "Released", false, true), PROV),
            Step::Ignore,
            "done"
        );
        assert_eq!(
            step(&pv("Delete", "Bound", false, false), PROV),
            Step::AddFinalizer
        );
    }

    #[test]
    fn leaves_bound_retained_and_foreign_volumes_alone() {
        assert_eq!(
            step(&pv("Delete", "Bound", true, true), PROV),
            Step::Ignore,
            "still in use"
        );
        assert_eq!(
            step(&pv("Retain", "Released", false, false), PROV),
            Step::Ignore
        );
        assert_eq!(
            step(&pv("Retain", "Released", true, true), PROV),
            Step::Cleanup { remove_dir: false },
            "policy changed to Retain after provisioning: the directory stays"
        );
        assert_eq!(
            step(&pv("Delete", "Released", true, false), "other"),
            Step::Ignore
        );
        let mut unannotated = pv("Delete", "Released", true, false);
        unannotated.metadata.annotations = None;
        assert_eq!(step(&unannotated, PROV), Step::Ignore);
    }
}
