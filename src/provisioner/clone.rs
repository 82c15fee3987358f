//! A claim's `dataSource` in provisioner mode: a PersistentVolumeClaim of the same namespace,
//! Bound to a PV of this provisioner, is cloned through the domain's crash-safe copy (the one
//! the CSI clone path uses); anything else — a VolumeSnapshot, a missing, unbound or foreign
//! source, a clone smaller than its source — is refused with a clear error, so the claim gets a
//! Warning event and stays Pending. Never an empty volume in place of the data asked for
//! (nfs-subdir-external-provisioner's #182).

use super::pv::{PROVISIONED_BY, VOLUME_ID, parse_quantity};
use super::{Context, kube_error};
use crate::error::{Error, Result};
use crate::snapshot::ContentSource;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;

/// What a claim's data source asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// No data source: an empty volume.
    Empty,
    /// A clone of the claim of this name, in the claim's namespace.
    Claim(String),
}

/// Reads `dataSourceRef` (else `dataSource`) of a claim. Only a PersistentVolumeClaim of the same
/// namespace is honoured; a VolumeSnapshot and any other kind are [`Error::FailedPrecondition`]
/// saying so.
pub fn wanted(claim: &PersistentVolumeClaim) -> Result<Wanted> {
    let spec = claim.spec.as_ref();
    let (kind, group, name, namespace) = match (
        spec.and_then(|s| s.data_source_ref.as_ref()),
        spec.and_then(|s| s.data_source.as_ref()),
    ) {
        (Some(r), _) => (&r.kind, &r.api_group, &r.name, r.namespace.as_deref()),
        (None, Some(r)) => (&r.kind, &r.api_group, &r.name, None),
        (None, None) => return Ok(Wanted::Empty),
    };
    let group = group.as_deref().unwrap_or_default();
    let own_ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    match (kind.as_str(), group) {
        ("PersistentVolumeClaim", "") => match namespace {
            Some(ns) if !ns.is_empty() && ns != own_ns => Err(Error::FailedPrecondition(format!(
                "data source claim {ns}/{name} is in another namespace: provisioner mode clones \
                 claims of the claim's own namespace only"
            ))),
            _ => Ok(Wanted::Claim(name.clone())),
        },
        ("VolumeSnapshot", "snapshot.storage.k8s.io") => Err(Error::FailedPrecondition(format!(
            "data source VolumeSnapshot {name}: provisioner mode does not restore snapshots; \
             use the CSI mode (deploy/ with csi-provisioner and csi-snapshotter) to restore it"
        ))),
        (kind, group) => Err(Error::FailedPrecondition(format!(
            "data source {kind}{} {name} is not supported: provisioner mode clones \
             PersistentVolumeClaims only",
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            }
        ))),
    }
}

/// Checks that the source claim `name` (`None`: not found) can be cloned into a claim asking for
/// `request` bytes, with the PV it is bound to (`None`: not found), and returns the volume id to
/// copy from.
pub fn source_volume(
    name: &str,
    source: Option<&PersistentVolumeClaim>,
    volume: Option<&PersistentVolume>,
    request: u64,
    provisioner: &str,
) -> Result<String> {
    let source = source
        .ok_or_else(|| Error::NotFound(format!("data source claim {name} does not exist")))?;
    if source.metadata.deletion_timestamp.is_some() {
        return Err(Error::FailedPrecondition(format!(
            "data source claim {name} is being deleted"
        )));
    }
    let spec = source.spec.as_ref();
    let bound_to = spec
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty());
    let phase = source.status.as_ref().and_then(|s| s.phase.as_deref());
    let (Some(pv_name), Some("Bound")) = (bound_to, phase) else {
        return Err(Error::FailedPrecondition(format!(
            "data source claim {name} is not Bound yet"
        )));
    };
    let volume = volume.ok_or_else(|| {
        Error::NotFound(format!(
            "data source claim {name} is bound to PV {pv_name}, which does not exist"
        ))
    })?;
    let annotations = volume.metadata.annotations.clone().unwrap_or_default();
    let by = annotations.get(PROVISIONED_BY).map(String::as_str);
    let id = match (by, annotations.get(VOLUME_ID)) {
        (Some(b), Some(id)) if b == provisioner && !id.is_empty() => id.clone(),
        _ => {
            return Err(Error::FailedPrecondition(format!(
                "data source claim {name} is bound to PV {pv_name}, which provisioner \
                 {provisioner} did not make (provisioned by {}): only its own volumes can be cloned",
                by.unwrap_or("nobody known")
            )));
        }
    };
    let source_request = spec
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    if let Some(q) = source_request {
        let bytes = parse_quantity(&q.0)?;
        if request < bytes {
            return Err(Error::invalid(format!(
                "the clone requests {request} bytes, less than its data source claim {name} \
                 ({}): a clone must be at least as large as its source",
                q.0
            )));
        }
    }
    Ok(id)
}

/// What `claim` is to be filled from: `None` for an empty volume, else the source volume, checked
/// against the API ([`wanted`], [`source_volume`]).
pub async fn content_source(
    claim: &PersistentVolumeClaim,
    request: u64,
    ctx: &Context,
) -> Result<Option<ContentSource>> {
    let Wanted::Claim(name) = wanted(claim)? else {
        return Ok(None);
    };
    let ns = claim.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let source = claims
        .get_opt(&name)
        .await
        .map_err(|e| kube_error(format!("get data source claim {ns}/{name}"), e))?;
    let pv_name = source
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let volume = match pv_name {
        Some(pv) => Api::<PersistentVolume>::all(ctx.client.clone())
            .get_opt(&pv)
            .await
            .map_err(|e| kube_error(format!("get PV {pv} of data source claim {name}"), e))?,
        None => None,
    };
    let id = source_volume(
        &name,
        source.as_ref(),
        volume.as_ref(),
        request,
        &ctx.provisioner,
    )?;
    Ok(Some(ContentSource::Volume(id)))
}

#[cfg(test)]
#[path = "clone_tests.rs"]
mod tests;
