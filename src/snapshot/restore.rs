//! CreateVolume from a snapshot or another volume (restore, clone): the new volume's directory is
//! filled in a temporary directory in the background and renamed to its name last, so a crash
//! never leaves a half-filled volume; a retry joins the copy still running.

use super::id::SnapshotId;
use super::jobs::Info;
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
        let (src_share, from, src_key) = self.find_source(&source, deadline).await?;
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
    /// its guard (held while it is read).
    async fn find_source(
        &self,
        source: &ContentSource,
        deadline: Duration,
    ) -> Result<(ShareSpec, Source, String)> {
        match source {
            ContentSource::Snapshot(raw) => {
                let id = SnapshotId::parse(raw)?;
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
