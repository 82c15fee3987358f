//! Claim resize in provisioner mode: what external-resizer and kubelet do for a CSI driver, done
//! here. A Bound claim of ours whose storage request is raised above its status capacity, in a
//! class with `allowVolumeExpansion: true`, gets its volume expanded (the recorded size and, where
//! the volume has one, its project limit: [`crate::controller::Volumes::expand`]), then its PV's
//! `spec.capacity` and the claim's `status.capacity` set to the new size. Idempotent: a retry
//! after a crash expands again (a no-op) and writes the same sizes.

use super::pv::{self, PROVISIONED_BY, STORAGE_PROVISIONER, VOLUME_ID};
use super::{Context, kube_error};
use crate::error::{Error, Result};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::json;

/// The size a Bound claim handed to `provisioner` asks to grow to: its storage request, when that
/// is larger than its status capacity. `None`: nothing to resize (or not ours, or not bound).
pub fn wanted(claim: &PersistentVolumeClaim, provisioner: &str) -> Option<(Quantity, u64)> {
    let status = claim.status.as_ref()?;
    let bound = status.phase.as_deref() == Some("Bound");
    let volume = claim.spec.as_ref()?.volume_name.as_deref().unwrap_or("");
    let handed = STORAGE_PROVISIONER.iter().any(|k| {
        claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(*k))
            .map(String::as_str)
            == Some(provisioner)
    });
    if !bound || volume.is_empty() || !handed || claim.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let (quantity, bytes) = pv::requested(claim).ok()?;
    let has = status.capacity.as_ref()?.get("storage")?;
    let has = pv::parse_quantity(&has.0).ok()?;
    (bytes > has).then_some((quantity, bytes))
}

/// Resizes the claim's volume to `quantity` (`bytes`): expand, then the PV, then the claim status.
/// A class that does not allow expansion, or a PV that is not ours, gets a Warning event and no
/// retry (the claim must change first).
pub async fn resize(
    claim: &PersistentVolumeClaim,
    (quantity, bytes): (Quantity, u64),
    ctx: &Context,
) -> Result<Action> {
    let pv_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pv = pvs
        .get(&pv_name)
        .await
        .map_err(|e| kube_error(format!("get PV {pv_name}"), e))?;
    let annotations = pv.metadata.annotations.clone().unwrap_or_default();
    let ours = annotations.get(PROVISIONED_BY).map(String::as_str) == Some(&ctx.provisioner);
    let Some(volume_id) = annotations.get(VOLUME_ID).filter(|_| ours) else {
        let why = format!("PV {pv_name} was not made by {}", ctx.provisioner);
        return refuse(claim, ctx, why).await;
    };
    let class = class_name(claim);
    let classes: Api<StorageClass> = Api::all(ctx.client.clone());
    let allowed = classes
        .get_opt(&class)
        .await
        .map_err(|e| kube_error(format!("get StorageClass {class}"), e))?
        .and_then(|c| c.allow_volume_expansion)
        .unwrap_or(false);
    if !allowed {
        let why = format!("StorageClass {class:?} does not allow volume expansion");
        return refuse(claim, ctx, why).await;
    }
    let note = format!("resizing volume {pv_name} to {}", quantity.0);
    ctx.event(claim, EventType::Normal, "Resizing", note).await;
    match grow(claim, &pvs, &pv_name, volume_id, &quantity, bytes, ctx).await {
        Ok(recorded) => {
            tracing::info!(volume = %pv_name, bytes = recorded, "claim resized");
            let note = format!("volume {pv_name} resized to {}", quantity.0);
            ctx.event(claim, EventType::Normal, "VolumeResizeSuccessful", note)
                .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            tracing::warn!(error = %e, "resize failed");
            let note = e.to_string();
            ctx.event(claim, EventType::Warning, "VolumeResizeFailed", note)
                .await;
            Err(e)
        }
    }
}

async fn grow(
    claim: &PersistentVolumeClaim,
    pvs: &Api<PersistentVolume>,
    pv_name: &str,
    volume_id: &str,
    quantity: &Quantity,
    bytes: u64,
    ctx: &Context,
) -> Result<u64> {
    let recorded = ctx.volumes.expand(volume_id, bytes, ctx.timeout).await?;
    let patch = json!({"spec": {"capacity": {"storage": quantity}}});
    pvs.patch(pv_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_error(format!("patch PV {pv_name} capacity"), e))?;
    let ns = claim.metadata.namespace.as_deref().unwrap_or("default");
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({"status": {"capacity": {"storage": quantity}}});
    claims
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_error(format!("patch claim {ns}/{name} status"), e))?;
    Ok(recorded)
}

async fn refuse(claim: &PersistentVolumeClaim, ctx: &Context, why: String) -> Result<Action> {
    tracing::warn!(why, "resize refused");
    let e = Error::FailedPrecondition(why);
    ctx.event(
        claim,
        EventType::Warning,
        "VolumeResizeFailed",
        e.to_string(),
    )
    .await;
    Ok(Action::await_change())
}

fn class_name(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "resize_tests.rs"]
mod tests;
