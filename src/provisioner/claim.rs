//! Claim reconciler: makes the directory and the pre-bound PV for each claim handed to us;
//! kube-controller-manager then binds the two. Re-running it after a crash is harmless: the
//! directory step is idempotent and the PV name is derived from the claim's uid. A Bound claim
//! asking for more storage is resized ([`super::resize`]).

use super::pv::{self, ClaimStep, NewPv, PvSource};
use super::{Context, kube_error};
use crate::controller::NewVolume;
use crate::error::{Error, Result};
use crate::metrics::ClaimResult;
use crate::volume::Params;
use crate::volume::legacy;
use crate::volume::params::VolumeSource;
use crate::volume::template::Template;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use std::sync::Arc;
use tracing::Span;

/// Reconciles one claim. Errors are reported as a Warning event on the claim and retried.
#[tracing::instrument(skip_all, fields(claim = %claim_key(&claim), volume))]
pub async fn reconcile(claim: Arc<PersistentVolumeClaim>, ctx: Arc<Context>) -> Result<Action> {
    if let Some(wanted) = super::resize::wanted(&claim, &ctx.provisioner) {
        let pv = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
        Span::current().record("volume", pv.unwrap_or_default());
        return super::resize::resize(&claim, wanted, &ctx).await;
    }
    if let ClaimStep::Skip(why) = pv::claim_step(&claim, &ctx.provisioner) {
        tracing::trace!(why, "skipped");
        return Ok(Action::await_change());
    }
    let name = pv::pv_name(&claim)?;
    Span::current().record("volume", name.as_str());
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if pvs
        .get_opt(&name)
        .await
        .map_err(|e| kube_error(format!("get PV {name}"), e))?
        .is_some()
    {
        tracing::debug!("PV exists; waiting for the binder");
        return Ok(Action::await_change());
    }
    let class = match class_of(&claim, &ctx).await {
        Ok(class) => class,
        Err(e) => return Err(failed(&claim, &ctx, e).await),
    };
    match pv::check_claim(&claim, &class, &ctx.provisioner) {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!("WaitForFirstConsumer: no node chosen yet");
            return Ok(Action::await_change());
        }
        Err(e) => return Err(failed(&claim, &ctx, e).await),
    }
    ctx.event(
        &*claim,
        EventType::Normal,
        "Provisioning",
        format!("{} is provisioning volume {name}", ctx.identity),
    )
    .await;
    match provision(&claim, &class, &name, &pvs, &ctx).await {
        Ok(created) => {
            let note = match created {
                true => format!("Successfully provisioned volume {name}"),
                false => format!("Volume {name} was already provisioned"),
            };
            tracing::info!(new = created, "provisioned");
            if created {
                ctx.metrics.claim(ClaimResult::Provisioned);
            }
            ctx.event(&*claim, EventType::Normal, "ProvisioningSucceeded", note)
                .await;
            Ok(Action::await_change())
        }
        Err(e) => Err(failed(&claim, &ctx, e).await),
    }
}

async fn class_of(claim: &PersistentVolumeClaim, ctx: &Context) -> Result<StorageClass> {
    let name = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::invalid("claim names no StorageClass"))?;
    let classes: Api<StorageClass> = Api::all(ctx.client.clone());
    classes
        .get_opt(name)
        .await
        .map_err(|e| kube_error(format!("get StorageClass {name}"), e))?
        .ok_or_else(|| Error::NotFound(format!("StorageClass {name}")))
}

/// Makes the directory, then the PV. `Ok(false)` when the PV already existed.
async fn provision(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    name: &str,
    pvs: &Api<PersistentVolume>,
    ctx: &Context,
) -> Result<bool> {
    let raw = class.parameters.clone().unwrap_or_default();
    let mut params = Params::parse(&raw)?;
    params.metadata = pv::metadata_of(claim, name);
    let taking_over = ctx.provisioner != ctx.driver;
    let its_class = ctx.nfs_export.is_some() && legacy::speaks_nfs_subdir(raw.keys(), taking_over);
    if its_class {
        keep_nfs_subdir_ways(&mut params, &raw)?;
    }
    let (capacity, bytes) = pv::requested(claim)?;
    let mount_flags = class.mount_options.clone().unwrap_or_default();
    let volume = ctx
        .volumes
        .create(
            NewVolume {
                name: name.to_owned(),
                params: params.clone(),
                mount_flags,
                secret_options: Default::default(),
                capacity: bytes,
            },
            ctx.timeout,
        )
        .await?;
    let location = volume.context;
    let source = match source_kind(params.volume_source, ctx.nfs_export.is_some()) {
        VolumeSource::Csi => PvSource::Csi {
            driver: ctx.driver.clone(),
            attributes: location.to_pairs().into_iter().collect(),
        },
        VolumeSource::Nfs => {
            let (server, path) = pv::nfs_location(&location, ctx.nfs_export.as_ref())?;
            PvSource::Nfs { server, path }
        }
    };
    let new = NewPv {
        name: name.to_owned(),
        provisioner: ctx.provisioner.clone(),
        volume_id: volume.id,
        source,
        share_mount_options: location.share.mount_options,
    };
    let mut pv = pv::build_pv(claim, class, capacity, new);
    if its_class {
        pv.metadata.annotations.get_or_insert_default().insert(
            pv::ARCHIVE_NAMING.to_owned(),
            pv::ARCHIVE_AT_ROOT.to_owned(),
        );
    }
    match pvs.create(&PostParams::default(), &pv).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
        Err(e) => Err(kube_error(format!("create PV {name}"), e)),
    }
}

/// A class of nfs-subdir-external-provisioner (see [`legacy::speaks_nfs_subdir`]; the
/// provisioner set up with its export) keeps its directory name `<namespace>-<claim>-<pv>` where `pathPattern` gives
/// none, and its delete policy (archive when neither `onDelete` nor `archiveOnDelete` is set).
fn keep_nfs_subdir_ways(
    params: &mut Params,
    raw: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let named = match &params.sub_dir {
        Some(pattern) => pattern.expand(&params.metadata)?.is_some(),
        None => false,
    };
    if !named {
        params.sub_dir = Some(Template::parse(
            "${pvc.metadata.namespace}-${pvc.metadata.name}-${pv.metadata.name}",
        )?);
    }
    params.on_delete = Some(legacy::nfs_subdir_policy(Some(raw))?);
    Ok(())
}

/// The PV source a class gets: its `volumeSource`, else the in-tree `nfs:` source when the
/// provisioner was told the export behind its default share (`--nfs-server`, the way
/// nfs-subdir-external-provisioner is set up, so its classes work unchanged), else CSI.
fn source_kind(param: Option<VolumeSource>, knows_nfs_export: bool) -> VolumeSource {
    match (param, knows_nfs_export) {
        (Some(kind), _) => kind,
        (None, true) => VolumeSource::Nfs,
        (None, false) => VolumeSource::Csi,
    }
}

async fn failed(claim: &PersistentVolumeClaim, ctx: &Context, e: Error) -> Error {
    tracing::warn!(error = %e, "provisioning failed");
    ctx.metrics.claim(ClaimResult::Failed);
    ctx.event(
        claim,
        EventType::Warning,
        "ProvisioningFailed",
        e.to_string(),
    )
    .await;
    e
}

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_without_volume_source_follow_the_provisioner_setup() {
        assert_eq!(source_kind(None, false), VolumeSource::Csi);
        assert_eq!(source_kind(None, true), VolumeSource::Nfs);
        assert_eq!(
            source_kind(Some(VolumeSource::Csi), true),
            VolumeSource::Csi
        );
        assert_eq!(
            source_kind(Some(VolumeSource::Nfs), false),
            VolumeSource::Nfs
        );
    }
}

#[cfg(test)]
#[path = "claim_api_tests.rs"]
mod api_tests;
