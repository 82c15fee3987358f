//! Releasing volumes: DeleteVolume and the provisioner's release, by each volume's policy and
//! the archive naming of the tool that made it (this driver, csi-driver-nfs, or
//! nfs-subdir-external-provisioner).

use super::{Volumes, lock_key};
use crate::error::{Error, Result};
use crate::metrics::VolumeAction;
use crate::share::Disposed;
use crate::volume::legacy::{ArchiveNaming, Disposal};
use crate::volume::{OnDelete, SecretOptions};
use std::sync::Arc;
use std::time::Duration;

impl Volumes {
    /// Applies the volume's onDelete policy (ids of this driver and csi-driver-nfs handles).
    /// Unknown or already deleted volumes are fine. `secret` (the provisioner secret's mount
    /// options) helps reach the share and is never printed.
    pub async fn delete(
        &self,
        raw_id: &str,
        secret: SecretOptions,
        deadline: Duration,
    ) -> Result<()> {
        let disposal = match Disposal::parse(raw_id, self.defaults.on_delete, secret) {
            Err(Error::NotFound(_)) => return Ok(()),
            other => other?,
        };
        // A pre-mounted path is touched only if this driver has used it before.
        let trusted = disposal.id.share.is_nfs();
        self.release(disposal, trusted, deadline).await
    }

    /// Applies a volume's policy as `disposal` says. `trusted_share`: the share is this
    /// driver's configuration (an NFS export, or the provisioner's default share), so its state
    /// may be created; otherwise a share the driver never wrote to is left untouched.
    pub async fn release(
        &self,
        disposal: Disposal,
        trusted_share: bool,
        deadline: Duration,
    ) -> Result<()> {
        let Disposal { id, archive } = disposal;
        if id.on_delete == OnDelete::Retain && archive == ArchiveNaming::WholePath {
            // As csi-driver-nfs: a retained volume of its making needs no trip to the server.
            tracing::info!("volume retained (csi-driver-nfs handle; share not touched)");
            self.metrics.volume(VolumeAction::Retained);
            return Ok(());
        }
        let guard = Arc::new(self.locks.try_lock(lock_key(&id.share, &id.sub_dir))?);
        // The limit goes first: a tree in the trash no longer counts against a volume.
        self.quota_release(&id.share, &id.sub_dir, deadline).await?;
        let (sub, policy) = (id.sub_dir.clone(), id.on_delete);
        let disposed = self
            .on_share(&id.share, &format!("delete {sub}"), deadline, move |root| {
                let _held = guard.clone();
                root.delete_volume_as(&sub, policy, archive, trusted_share)
            })
            .await?;
        tracing::info!(policy = %id.on_delete, "volume deleted");
        match (id.on_delete, disposed) {
            (_, Disposed::Trashed(entry)) => {
                self.metrics.volume(VolumeAction::Deleted);
                self.metrics.trash_entries_add(1.0);
                self.purger.purge(entry);
            }
            (_, Disposed::Removed) => self.metrics.volume(VolumeAction::Deleted),
            (OnDelete::Archive, Disposed::Left) => self.metrics.volume(VolumeAction::Archived),
            (OnDelete::Retain, Disposed::Left) => self.metrics.volume(VolumeAction::Retained),
            // Already gone: counted when it went.
            (OnDelete::Delete, Disposed::Left) => {}
        }
        Ok(())
    }
}
