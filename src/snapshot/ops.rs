//! CreateSnapshot, GetSnapshot and DeleteSnapshot in domain terms: a snapshot is cut in the
//! background and reported not ready until it is complete and in place on the share.

use super::id::{SnapshotId, dir_name};
use super::jobs::{Info, Job};
use super::store::{self, Meta};
use super::{NewSnapshot, READY_WAIT, Snapshot, key};
use crate::controller::{Volumes, lock_key};
use crate::copy::Options;
use crate::error::{Error, Result};
use crate::share::ShareRoot;
use crate::volume::VolumeId;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

impl Snapshot {
    pub(super) fn from_meta(meta: Meta) -> Self {
        Snapshot {
            id: meta.snapshot_id,
            source_volume_id: meta.source_volume_id,
            size_bytes: meta.size_bytes,
            created: UNIX_EPOCH
                + Duration::new(meta.created_secs.max(0) as u64, meta.created_nanos),
            ready: true,
        }
    }

    pub(super) fn from_info(info: &Info) -> Self {
        Snapshot {
            id: info.id.clone(),
            source_volume_id: info.source.clone(),
            size_bytes: 0,
            created: info.created,
            ready: false,
        }
    }
}

impl Volumes {
    /// Cuts a snapshot of a volume, or reports the one of that name (idempotent). Answers within
    /// a short wait: `ready` false while the copy still runs (call again). The same name with
    /// another source is [`Error::AlreadyExists`]; an unknown source is [`Error::NotFound`].
    pub async fn create_snapshot(&self, req: NewSnapshot, deadline: Duration) -> Result<Snapshot> {
        let started = Instant::now();
        let wait = || deadline.saturating_sub(started.elapsed()).min(READY_WAIT);
        let source = VolumeId::parse(&req.source_volume_id)?;
        let id = SnapshotId {
            share: source.share.clone(),
            dir: dir_name(&req.name),
            format: req.params.format,
            source: source.sub_dir.clone(),
        };
        let key = key(&id);
        // Held while deciding; released before waiting for a copy, so a DeleteSnapshot can stop it.
        let rpc = self.locks.try_lock(key.clone())?;
        let other_source = |had: &str| {
            Error::AlreadyExists(format!(
                "snapshot {} exists with another source volume ({had})",
                req.name
            ))
        };
        if let Some(job) = self.jobs.get(&key) {
            if job.info.source != req.source_volume_id {
                return Err(other_source(&job.info.source));
            }
            drop(rpc);
            return self.report(&id, &key, job, wait()).await;
        }
        if let Some(meta) = self.snapshot_meta(&id, deadline).await? {
            if meta.source_volume_id != req.source_volume_id {
                return Err(other_source(&meta.source_volume_id));
            }
            return Ok(Snapshot::from_meta(meta));
        }
        let sub = source.sub_dir.clone();
        let exists = self
            .on_share(
                &source.share,
                &format!("look up {sub}"),
                deadline,
                move |r| r.volume_exists(&sub),
            )
            .await?;
        if !exists {
            return Err(Error::NotFound(format!(
                "source volume {} does not exist",
                req.source_volume_id
            )));
        }
        // The source stays put while it is copied (DeleteVolume answers ABORTED meanwhile).
        let source_guard = self
            .locks
            .try_lock(lock_key(&source.share, &source.sub_dir))?;
        let root = self.shares.root(&id.share, deadline).await?;
        let created = SystemTime::now();
        let since = created.duration_since(UNIX_EPOCH).unwrap_or_default();
        let meta = Meta {
            version: 1,
            name: req.name.clone(),
            snapshot_id: id.to_string(),
            source_volume_id: req.source_volume_id.clone(),
            created_secs: since.as_secs() as i64,
            created_nanos: since.subsec_nanos(),
            size_bytes: 0,
            restore_bytes: 0,
        };
        let info = Info {
            id: id.to_string(),
            name: req.name,
            source: req.source_volume_id,
            created,
        };
        let (sub, dir, temp) = (
            (source.sub_dir, id.format),
            id.dir.clone(),
            store::temp_name(self.jobs.run_id()),
        );
        tracing::info!(snapshot.id = %info.id, "cutting snapshot in the background");
        let job = self.jobs.start(&key, info, move |cancel| {
            let _held = source_guard;
            let root = ShareRoot::open(&root)?;
            let opts = Options {
                cancel,
                ..Options::default()
            };
            let summary = store::cut(&root, &sub.0, sub.1, &dir, meta, &temp, &opts)?;
            tracing::info!(snapshot = %dir, ?summary, "snapshot ready");
            Ok(())
        });
        drop(rpc);
        self.report(&id, &key, job, wait()).await
    }

    /// Waits up to `wait` for the copy of `id`, then says how it stands.
    async fn report(
        &self,
        id: &SnapshotId,
        key: &str,
        mut job: Job,
        wait: Duration,
    ) -> Result<Snapshot> {
        match job.wait(wait).await {
            None => Ok(Snapshot::from_info(&job.info)),
            Some(Err(e)) => {
                // Reported once; the next call starts a fresh copy.
                self.jobs.forget(key);
                Err(e)
            }
            Some(Ok(())) => self
                .snapshot_meta(id, Duration::from_secs(10))
                .await?
                .map(Snapshot::from_meta)
                .ok_or_else(|| Error::NotFound(format!("snapshot {id} vanished once cut"))),
        }
    }

    /// The metadata of the ready snapshot `id`, if it is on its share.
    pub(crate) async fn snapshot_meta(
        &self,
        id: &SnapshotId,
        deadline: Duration,
    ) -> Result<Option<Meta>> {
        let dir = id.dir.clone();
        self.on_share(
            &id.share,
            &format!("look up snapshot {dir}"),
            deadline,
            move |root| store::read_meta(root, &dir),
        )
        .await
    }

    /// The snapshot `raw_id`: ready, or still being cut by this process. Anything else is
    /// [`Error::NotFound`].
    pub async fn get_snapshot(&self, raw_id: &str, deadline: Duration) -> Result<Snapshot> {
        let id = SnapshotId::parse(raw_id)?;
        if let Some(job) = self.jobs.get(&key(&id)).filter(Job::running) {
            return Ok(Snapshot::from_info(&job.info));
        }
        self.snapshot_meta(&id, deadline)
            .await?
            .map(Snapshot::from_meta)
            .ok_or_else(|| Error::NotFound(format!("snapshot {raw_id} does not exist")))
    }

    /// Deletes a snapshot (moved to the share's trash, removed in the background). Unknown or
    /// already deleted snapshots are fine; one still being cut is stopped first (if it does not
    /// stop within the deadline: [`Error::Busy`], try again).
    pub async fn delete_snapshot(&self, raw_id: &str, deadline: Duration) -> Result<()> {
        let id = match SnapshotId::parse(raw_id) {
            Err(Error::NotFound(_)) => return Ok(()),
            other => other?,
        };
        let key = key(&id);
        let _rpc = self.locks.try_lock(key.clone())?;
        if let Some(mut job) = self.jobs.get(&key) {
            job.cancel();
            if job.wait(deadline / 2).await.is_none() {
                return Err(Error::Busy(format!(
                    "snapshot {raw_id} (its copy is stopping)"
                )));
            }
            self.jobs.forget(&key);
        }
        let (dir, create_state) = (id.dir.clone(), id.share.is_nfs());
        let trashed = self
            .on_share(
                &id.share,
                &format!("delete snapshot {dir}"),
                deadline,
                move |root| store::remove(root, &dir, create_state),
            )
            .await?;
        if let Some((trash, name)) = trashed {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = crate::share::remove::remove_tree(&trash, &name) {
                    tracing::warn!(trash = %name, error = %e, "snapshot not removed; retried at next start");
                }
            });
        }
        tracing::info!(snapshot.id = %raw_id, "snapshot deleted");
        Ok(())
    }
}
