//! CreateVolume from a snapshot or another volume (restore, clone): the new volume's directory is
//! filled in a temporary directory in the background and renamed to its name last, so a crash
//! never leaves a half-filled volume; a retry joins the copy still running.

use super::id::SnapshotId;
use super::jobs::Info;
use super::legacy::{self, CsiDriverNfsSnapshot};
use super::store::{self, Source};
use super::{ContentSource, key};
use crate::blocking;
use crate::controller::{NewVolume, Volume, Volumes, lock_key};
use crate::copy::Options;
use crate::error::{Error, Result};
use crate::share::ShareRoot;
use crate::volume::{CreateParams, ShareSpec, VolumeId};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

impl Volumes {
    /// Makes a volume filled from `source` (idempotent, like [`Volumes::create`]). A source that
    /// does not exist is [`Error::NotFound`]; a copy that outlasts `deadline` goes on in the
    /// background and the call fails with [`Error::Timeout`] (a retry waits for the same copy).
    pub async fn create_from(
        &self,
        req: NewVolume,
        source: ContentSource,
        deadline: Duration,
    ) -> Result<Volume> {
        let started = Instant::now();
        let left = || deadline.saturating_sub(started.elapsed());
        let CreateParams {
            share,
            sub_dir,
            mode,
            ..
        } = req
            .params
            .resolve(&req.name, &req.mount_flags, &self.defaults)?;
        let share = share.with_secret_options(req.secret_options.clone());
        let (src_share, from, src_key) = self.find_source(&source, &share, deadline).await?;
        let fill_key = format!("fill:{}", lock_key(&share, &sub_dir));
        let timed_out = || Error::Timeout {
            what: format!("filling {sub_dir} from {source:?}"),
            millis: deadline.as_millis(),
        };
        let running = self.jobs.get(&fill_key);
        let exists = match running {
            Some(_) => false,
            None => {
                let sub = sub_dir.clone();
                self.on_share(&share, &format!("look up {sub}"), left(), move |r| {
                    r.volume_exists(&sub)
                })
                .await?
            }
        };
        if !exists {
            let mut job = match running {
                Some(job) => job,
                None => {
                    let target_guard = self.locks.try_lock(lock_key(&share, &sub_dir))?;
                    let source_guard = self.locks.try_lock(src_key)?;
                    let dst_root = self.shares.root(&share, left()).await?;
                    let src_root = self.shares.root(&src_share, left()).await?;
                    let temp = store::temp_name(self.jobs.run_id());
                    let info = Info {
                        id: sub_dir.to_string(),
                        name: req.name.clone(),
                        source: format!("{source:?}"),
                        created: SystemTime::now(),
                    };
                    let target = sub_dir.clone();
                    tracing::info!(volume = %target, ?source, "filling a new volume in the background");
                    self.jobs.start(&fill_key, info, move |cancel| {
                        let _held = (target_guard, source_guard);
                        let dst = ShareRoot::open(&dst_root)?;
                        let src = ShareRoot::open(&src_root)?;
                        let opts = Options {
                            cancel,
                            ..Options::default()
                        };
                        store::restore(&src, &from, &dst, &target, mode, &temp, &opts)?;
                        tracing::info!(volume = %target, "volume filled");
                        Ok(())
                    })
                }
            };
            match job.wait(left()).await {
                None => return Err(timed_out()),
                Some(Err(e)) => {
                    self.jobs.forget(&fill_key);
                    return Err(e);
                }
                Some(Ok(())) => {}
            }
        }
        // The directory is complete and in place: record it as any CreateVolume does.
        self.create(req, left()).await
    }

    /// Checks that `source` exists and says where it is: its share, what to read, and the key of
    /// its guard (held while it is read). `target` is the new volume's share.
    async fn find_source(
        &self,
        source: &ContentSource,
        target: &ShareSpec,
        deadline: Duration,
    ) -> Result<(ShareSpec, Source, String)> {
        match source {
            ContentSource::Snapshot(raw) => {
                let id = match SnapshotId::parse(raw) {
                    Ok(id) => id,
                    Err(e) => {
                        let old = CsiDriverNfsSnapshot::parse(raw, &target.mount_options)?.map(
                            |mut old| {
                                // Its share is mounted as the new volume's (a provisioner
                                // secret's options too), as csi-driver-nfs does.
                                if old.share.is_nfs() {
                                    old.share = old
                                        .share
                                        .with_secret_options(target.secret_options.clone());
                                }
                                old
                            },
                        );
                        return match old {
                            Some(old) => self.find_csi_driver_nfs(old, deadline).await,
                            None => Err(e),
                        };
                    }
                };
                if self.snapshot_meta(&id, deadline).await?.is_none() {
                    return Err(match self.jobs.get(&key(&id)) {
                        Some(job) if job.running() => {
                            Error::FailedPrecondition(format!("snapshot {raw} is not ready yet"))
                        }
                        _ => Error::NotFound(format!("snapshot {raw} does not exist")),
                    });
                }
                Ok((id.share.clone(), Source::Snapshot(id.dir.clone()), key(&id)))
            }
            ContentSource::Volume(raw) => {
                let id = VolumeId::parse(raw)?;
                let sub = id.sub_dir.clone();
                let exists = self
                    .on_share(&id.share, &format!("look up {sub}"), deadline, move |r| {
                        r.volume_exists(&sub)
                    })
                    .await?;
                if !exists {
                    return Err(Error::NotFound(format!(
                        "source volume {raw} does not exist"
                    )));
                }
                let guard = lock_key(&id.share, &id.sub_dir);
                Ok((id.share, Source::Volume(id.sub_dir), guard))
            }
        }
    }

    /// Checks that csi-driver-nfs's archive of `old` is on its share. A pre-mounted share (empty
    /// server) must be one this controller already knows: an id cannot name any local path.
    async fn find_csi_driver_nfs(
        &self,
        old: CsiDriverNfsSnapshot,
        deadline: Duration,
    ) -> Result<(ShareSpec, Source, String)> {
        let name = format!("csi-driver-nfs snapshot {}/{}", old.dir, old.source);
        if !old.share.is_nfs() && !self.shares.known().await.contains(&old.share) {
            return Err(Error::NotFound(format!(
                "{name}: {} is not a share this driver knows",
                old.share
            )));
        }
        let (dir, src) = (old.dir.clone(), old.source.clone());
        self.on_share(&old.share, &format!("look up {name}"), deadline, move |r| {
            legacy::open_archive(r, &dir, &src).map(drop)
        })
        .await?;
        let guard = old.guard_key();
        let from = Source::CsiDriverNfs {
            dir: old.dir,
            source: old.source,
        };
        Ok((old.share, from, guard))
    }

    /// DeleteSnapshot of a csi-driver-nfs snapshot id: removes its archive and then its directory
    /// if empty, as csi-driver-nfs does ([`legacy::remove_archive`]), mounting its share without
    /// mount options (its ids carry none). Not in its form, or on a pre-mounted share this
    /// controller does not know: an unknown snapshot, fine (an id cannot name any local path).
    /// A restore reading it meanwhile makes this [`Error::Busy`].
    pub(crate) async fn delete_csi_driver_nfs(&self, raw: &str, deadline: Duration) -> Result<()> {
        let Some(old) = CsiDriverNfsSnapshot::parse(raw, &[])? else {
            return Ok(());
        };
        if !old.share.is_nfs() && !self.shares.known().await.contains(&old.share) {
            return Ok(());
        }
        let _guard = self.locks.try_lock(old.guard_key())?;
        let name = format!("csi-driver-nfs snapshot {}/{}", old.dir, old.source);
        let (dir, src) = (old.dir.clone(), old.source.clone());
        let removed = self
            .on_share(&old.share, &format!("delete {name}"), deadline, move |r| {
                legacy::remove_archive(r, &dir, &src)
            })
            .await?;
        tracing::info!(snapshot = %name, removed, "csi-driver-nfs snapshot deleted");
        Ok(())
    }

    /// After a restart, removes in the background the temporary trees earlier runs left on a
    /// share (snapshots being cut, volumes being filled when the process died).
    pub(crate) fn sweep_copies(&self, spec: &ShareSpec, deadline: Duration) {
        let (shares, spec, run) = (
            self.shares.clone(),
            spec.clone(),
            self.jobs.run_id().to_owned(),
        );
        tokio::spawn(async move {
            let Ok(root) = shares.root(&spec, deadline).await else {
                return;
            };
            let swept = blocking::run("sweep temporary copies", deadline, move || {
                store::sweep(&ShareRoot::open(&root)?, &run)
            })
            .await;
            match swept {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(share = %spec, removed = n, "unfinished copies of an earlier run removed")
                }
                Err(e) => {
                    tracing::warn!(share = %spec, error = %e, "cannot sweep unfinished copies")
                }
            }
        });
    }
}
