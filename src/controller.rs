//! The volumes on shares, in domain terms (the CSI Controller service and the provisioner use it): make, delete, look up, list and measure
//! volume directories on shares. The gRPC adapter in `csi::controller` only translates.

use crate::blocking;
use crate::error::{Error, Result};
use crate::guard::Locks;
use crate::metrics::{Metrics, VolumeAction};
use crate::share::{Created, RootCache, ShareRoot, Shares};
use crate::volume::params::Defaults;
use crate::volume::{
    CreateParams, Params, SecretOptions, ShareSpec, SubDir, VolumeContext, VolumeId,
};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod listing;
mod purge;
mod query;
mod quota;

pub use quota::Fault;

/// A CreateVolume request, validated.
#[derive(Clone, Debug)]
pub struct NewVolume {
    /// The CO's name for the volume (`pvc-<uuid>` from the provisioner).
    pub name: String,
    /// StorageClass parameters.
    pub params: Params,
    /// Mount flags from the requested capabilities (the StorageClass's mountOptions).
    pub mount_flags: Vec<String>,
    /// Mount options from the provisioner secret: for reaching the share now, never in the id.
    pub secret_options: SecretOptions,
    /// Requested capacity in bytes (0: none asked for).
    pub capacity: u64,
}

/// A volume as the controller reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// The volume id.
    pub id: String,
    /// Recorded capacity in bytes.
    pub capacity: u64,
    /// What a node needs to mount it.
    pub context: VolumeContext,
}

/// A page of ListVolumes.
#[derive(Debug, Default)]
pub struct Page {
    /// The volumes on this page.
    pub volumes: Vec<Volume>,
    /// Token for the next page; empty when this is the last.
    pub next: String,
}

/// The volume operations' state: how to reach shares, which volumes are busy, defaults.
#[derive(Debug)]
pub struct Volumes {
    pub(crate) shares: Arc<Shares>,
    pub(crate) locks: Locks,
    pub(crate) defaults: Defaults,
    /// Snapshot and restore copies running in the background (`crate::snapshot`).
    pub(crate) jobs: crate::snapshot::Jobs,
    umask: u32,
    /// Shares a call has succeeded on (their trash swept once).
    met: Mutex<HashSet<ShareSpec>>,
    roots: RootCache,
    metrics: Metrics,
    /// Removes trashed directories in the background, one bounded pool at a time.
    purger: Arc<purge::Purger>,
    /// Project quotas on the shares' filesystems this machine reaches.
    quotas: crate::quota::Quotas,
    /// A fault injected at start-up (tests only; see [`Fault`]).
    fault: Option<Fault>,
    /// ListVolumes' paging snapshot.
    listings: listing::Listings,
}

impl Volumes {
    /// The volume operations; volume and trash events go to `metrics`. This is the one owner of
    /// the process umask: it clears it, so every new directory gets exactly the mode asked for
    /// without a chmod after mkdir (nothing else in the process creates files that care).
    pub fn new(shares: Arc<Shares>, defaults: Defaults, metrics: Metrics) -> Self {
        nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        Volumes {
            shares,
            locks: Locks::default(),
            defaults,
            jobs: Default::default(),
            umask: 0,
            met: Mutex::default(),
            roots: RootCache::default(),
            purger: Arc::new(purge::Purger::new(metrics.clone())),
            metrics,
            quotas: Default::default(),
            fault: None,
            listings: Default::default(),
        }
    }

    /// Runs `op` on the open root of `spec` off the runtime within one `deadline`, trying once
    /// more on a fresh working mount if the share was stale or unreachable.
    pub(crate) async fn on_share<T, F>(
        &self,
        spec: &ShareSpec,
        what: &str,
        deadline: Duration,
        op: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&ShareRoot) -> Result<T> + Clone + Send + 'static,
    {
        let started = tokio::time::Instant::now();
        let left = || deadline.saturating_sub(started.elapsed());
        let mut result = self.attempt(spec, what, left(), op.clone()).await;
        if let Err((Some(root), e)) = &result {
            // A stale or unreachable mount is dropped in any case; retried if time is left.
            if self.shares.recover(spec, root, e).await && left() > Duration::from_millis(100) {
                tracing::info!(share = %spec, error = %e, "retrying on a fresh working mount");
                result = self.attempt(spec, what, left(), op).await;
            }
        }
        match result {
            Ok(value) => {
                self.met(spec, deadline);
                Ok(value)
            }
            Err((_, e)) => Err(e.with_whole_deadline(deadline)),
        }
    }

    /// One try of `op` on the share's root, through the cache of open roots; a root whose call
    /// failed (or timed out, its thread still running) is never reused. The error comes with the
    /// root it happened on, if the share was reached.
    async fn attempt<T, F>(
        &self,
        spec: &ShareSpec,
        what: &str,
        left: Duration,
        op: F,
    ) -> std::result::Result<T, (Option<PathBuf>, Error)>
    where
        T: Send + 'static,
        F: Fn(&ShareRoot) -> Result<T> + Send + 'static,
    {
        let root = self.shares.root(spec, left).await.map_err(|e| (None, e))?;
        let (at, cache) = (root.clone(), self.roots.clone());
        let result = blocking::run(what, left, move || {
            let result = op(&*cache.get_or_open(&at)?);
            if result.is_err() {
                cache.forget(&at);
            }
            result
        })
        .await;
        result.map_err(|e| {
            self.roots.forget(&root);
            (Some(root), e)
        })
    }

    /// Starts work on a share known before any call (the default share): as [`Volumes::met`].
    pub fn start_on(&self, spec: &ShareSpec, deadline: Duration) {
        self.met(spec, deadline);
    }

    /// A call succeeded on `spec`: the first time, the share becomes known to ListVolumes and what
    /// an earlier run left in its trash is removed in the background.
    fn met(&self, spec: &ShareSpec, deadline: Duration) {
        let first = self
            .met
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.clone());
        if first {
            self.shares.note_used(spec);
            self.sweep_trash(spec, deadline);
            self.sweep_copies(spec, deadline);
        }
    }

    /// After a restart, removes in the background what an earlier run left in a share's trash.
    fn sweep_trash(&self, spec: &ShareSpec, deadline: Duration) {
        let (shares, spec, metrics) = (self.shares.clone(), spec.clone(), self.metrics.clone());
        let purger = self.purger.clone();
        tokio::spawn(async move {
            let Ok(root) = shares.root(&spec, deadline).await else {
                return;
            };
            let found = blocking::run("list trash", deadline, move || {
                ShareRoot::open(&root)?.pending_trash()
            })
            .await;
            match found {
                Ok(entries) => {
                    metrics.trash_entries_add(entries.len() as f64);
                    for entry in entries {
                        purger.purge(entry);
                    }
                }
                Err(e) => tracing::warn!(share = %spec, error = %e, "cannot list trash"),
            }
        });
    }

    /// Makes the volume's directory (idempotent). Same name with a different capacity or other
    /// parameters is [`Error::AlreadyExists`].
    pub async fn create(&self, req: NewVolume, deadline: Duration) -> Result<Volume> {
        let CreateParams {
            share,
            sub_dir,
            on_delete,
            mode,
        } = req
            .params
            .resolve(&req.name, &req.mount_flags, &self.defaults)?;
        let share = share.with_secret_options(req.secret_options.clone());
        let mount_permissions = req.params.publish_permissions();
        let id = VolumeId {
            share: share.clone(),
            sub_dir: sub_dir.clone(),
            on_delete,
        };
        let id_text = id.to_printed()?;
        let guard = self.locks.try_lock(lock_key(&share, &sub_dir))?;
        let started = tokio::time::Instant::now();
        let quota_mode = req.params.quota.unwrap_or_default();
        // Checked before anything is made: `enforce` on a share without quotas touches nothing.
        let quota_root = self.quota_plan(&share, quota_mode, deadline).await?;
        let (umask, capacity, text) = (self.umask, req.capacity, id_text.clone());
        let guard = Arc::new(guard);
        let (_held, quota_sub) = (guard.clone(), sub_dir.clone());
        let created = self
            .on_share(
                &share,
                &format!("create {sub_dir}"),
                deadline,
                move |root| {
                    let _held = guard.clone();
                    root.create_volume(&sub_dir, mode, umask, capacity, &text)
                },
            )
            .await?;
        if let Some(local) = quota_root {
            self.fault_point(Fault::AbortBeforeQuota);
            let left = deadline.saturating_sub(started.elapsed());
            (self.quota_apply(local, quota_sub, capacity, quota_mode, left)).await?;
        }
        tracing::info!(volume.id = %id_text, new = (created == Created::New), "volume ready");
        if created == Created::New {
            self.metrics.volume(VolumeAction::Created);
        }
        Ok(Volume {
            context: VolumeContext {
                mount_permissions,
                ..VolumeContext::of(&id)
            },
            id: id_text,
            capacity: req.capacity,
        })
    }

    /// Records a larger capacity for a volume and raises its project quota if it has one; returns
    /// the capacity now recorded.
    pub async fn expand(&self, raw_id: &str, capacity: u64, deadline: Duration) -> Result<u64> {
        let id = VolumeId::parse(raw_id)?;
        let guard = Arc::new(self.locks.try_lock(lock_key(&id.share, &id.sub_dir))?);
        let (sub, _held) = (id.sub_dir.clone(), guard.clone());
        let recorded = self
            .on_share(&id.share, &format!("expand {sub}"), deadline, move |root| {
                let _held = guard.clone();
                root.expand(&sub, capacity)
            })
            .await?;
        (self.quota_resize(&id.share, &id.sub_dir, recorded, deadline)).await?;
        Ok(recorded)
    }
}

#[path = "controller_release.rs"]
mod release;

/// The per-volume guard's key.
pub(crate) fn lock_key(share: &ShareSpec, sub: &SubDir) -> String {
    format!("{share}/{sub}")
}
