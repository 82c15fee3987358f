//! The controller's working mounts: one kept NFS mount per (server, export, options), made on first
//! use, reused by every request, dropped and remade when it goes stale or its server stops answering.
//!
//! Each mount is made at `<working dir>/<key>-<random>/root`, where `<key>` is derived from the
//! share and its options, and requests get that path. A mount is dropped in this order: its
//! `<key>-<random>` directory is first renamed away (to `.dropped-…`), then the mount is
//! force-unmounted and detached, then the directories are removed. So a request still holding the
//! old path — or one whose path walk the kernel restarts after the forced unmount ended its RPC
//! with ESTALE — finds nothing there (ENOENT: "unavailable", and a retry) and can never fall
//! through to the empty local directory below the mount and make volumes on the controller's own
//! disk. A path is never mounted again. A mount left by an earlier run of the driver is adopted.

use crate::error::{Error, Result};
use crate::metrics::{Metrics, MountState};
use crate::mount::{self, mountinfo, nfs};
use crate::volume::ShareSpec;
use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kept NFS mounts below one working directory.
#[derive(Debug)]
pub struct WorkingMounts {
    dir: PathBuf,
    slots: Arc<Mutex<BTreeMap<ShareSpec, Arc<Slot>>>>,
    metrics: Metrics,
}

/// One share's mount: the path once mounted, and a lock held while mounting, so concurrent first
/// calls wait for one mount instead of racing.
#[derive(Debug, Default)]
struct Slot {
    path: Mutex<Option<PathBuf>>,
    mounting: Arc<tokio::sync::Mutex<()>>,
    /// Mounted at least once: the share is known (ListVolumes looks at it) even while it is down.
    known: AtomicBool,
    /// When the mount(2) now running started.
    mount_since: Mutex<Option<Instant>>,
}

/// A mount(2) running longer than this means the server does not answer: further callers get
/// UNAVAILABLE at once instead of waiting out their deadlines behind it.
const STUCK: Duration = Duration::from_secs(5);

impl Slot {
    fn path(&self) -> Option<PathBuf> {
        self.path.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl WorkingMounts {
    /// Working mounts live in `dir` (`--working-mount-dir`); their states go to `metrics`.
    pub fn new(dir: PathBuf, metrics: Metrics) -> Self {
        WorkingMounts {
            dir,
            slots: Arc::default(),
            metrics,
        }
    }

    /// A closure that sets the working-mount gauges from the slots as they are now.
    fn reporter(&self) -> impl Fn() + Send + 'static {
        let (slots, metrics) = (self.slots.clone(), self.metrics.clone());
        move || {
            if !metrics.is_on() {
                return;
            }
            let mut counts = [0usize; 3];
            for slot in slots.lock().unwrap_or_else(|p| p.into_inner()).values() {
                let mounting = slot
                    .mount_since
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
                let state = match (slot.path().is_some(), mounting) {
                    (true, _) => MountState::Ready,
                    (false, true) => MountState::Remounting,
                    (false, false) if slot.known.load(Ordering::Relaxed) => MountState::Stale,
                    (false, false) => continue,
                };
                counts[state as usize] += 1;
            }
            for state in MountState::ALL {
                metrics.working_mounts(state, counts[state as usize]);
            }
        }
    }

    fn slot(&self, spec: &ShareSpec) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(spec.clone()).or_default().clone()
    }

    /// The local root of the export `spec`, mounting it first if needed. Waiting for another
    /// call's mount and mounting both count against `deadline`. At most one mount(2) per share is
    /// running at any time: a mount that outlives its caller's deadline (a server that does not
    /// answer) goes on in its thread, later callers wait for it rather than starting another (or,
    /// once it has been waiting longer than 5 s, get UNAVAILABLE at once), and if it succeeds late
    /// its result is kept.
    pub async fn root(&self, spec: &ShareSpec, deadline: Duration) -> Result<PathBuf> {
        let slot = self.slot(spec);
        if let Some(path) = slot.path() {
            return Ok(path);
        }
        let started = Instant::now();
        let timeout = || Error::Timeout {
            what: format!("mount {spec}"),
            millis: deadline.as_millis(),
        };
        let mounting = match slot.mounting.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                let since = *slot.mount_since.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(waited) = since.map(|t| t.elapsed()).filter(|w| *w > STUCK) {
                    return Err(Error::Unavailable(format!(
                        "mount of {spec} has been waiting for the server for {} s",
                        waited.as_secs()
                    )));
                }
                tokio::time::timeout(deadline, slot.mounting.clone().lock_owned())
                    .await
                    .map_err(|_| timeout())?
            }
        };
        if let Some(path) = slot.path() {
            return Ok(path);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (dir, prefix, owned, s) = (self.dir.clone(), key(spec), spec.clone(), slot.clone());
        let (report, metrics) = (self.reporter(), self.metrics.clone());
        tokio::task::spawn_blocking(move || {
            let _mounting = mounting;
            let since = || s.mount_since.lock().unwrap_or_else(|p| p.into_inner());
            *since() = Some(Instant::now());
            report();
            let result = mount_working(&owned, &dir, &prefix);
            *since() = None;
            if let Ok(target) = &result {
                tracing::info!(share = %owned, at = %target.display(), "working mount ready");
                *s.path.lock().unwrap_or_else(|p| p.into_inner()) = Some(target.clone());
                if s.known.swap(true, Ordering::Relaxed) {
                    metrics.remount();
                }
            }
            report();
            let _ = tx.send(result);
        });
        let left = deadline.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Io {
                context: format!("mount {spec}"),
                source: std::io::Error::other("mount worker failed"),
            }),
            Err(_) => Err(timeout()),
        }
    }

    /// Drops the working mount of `spec` if it is still the one at `failed` (the root a request
    /// used when it failed): its path is made unreachable, then it is force-unmounted and detached
    /// (which also ends calls still waiting on it where the kernel allows) and its directories are
    /// removed; see the module notes. If another request has already replaced it, nothing is done.
    /// Returns true when a retry may find a fresh mount.
    pub async fn forget(&self, spec: &ShareSpec, failed: &Path) -> bool {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get(spec).cloned()
        };
        let Some(slot) = slot else { return false };
        {
            let mut path = slot.path.lock().unwrap_or_else(|p| p.into_inner());
            match path.as_deref() {
                Some(p) if p == failed => *path = None,
                // Already dropped or replaced by another request.
                _ => return true,
            }
        }
        tracing::warn!(share = %spec, at = %failed.display(), "dropping working mount; the next call mounts afresh");
        self.reporter()();
        let path = failed.to_owned();
        match tokio::task::spawn_blocking(move || detach(&path)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(share = %spec, error = %e, "unmount of working mount failed")
            }
            Err(e) => tracing::warn!(share = %spec, error = %e, "unmount of working mount failed"),
        }
        true
    }

    /// The exports mounted so far (also those whose mount was dropped and not yet remade).
    pub async fn mounted(&self) -> Vec<ShareSpec> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .filter(|(_, slot)| slot.known.load(Ordering::Relaxed))
            .map(|(spec, _)| spec.clone())
            .collect()
    }
}

/// The stable part of a share's mount directory names: a UUIDv5 of the share and its options.
fn key(spec: &ShareSpec) -> String {
    let text = format!("{spec}|{}", spec.mount_options.join(","));
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, text.as_bytes())
        .simple()
        .to_string()
}

/// The mount point inside a mount's own directory.
const ROOT: &str = "root";
/// Prefix of mount directories being dropped.
const DROPPED: &str = ".dropped-";

/// Mounts `spec` at a new `<dir>/<prefix>-<random>/root`, or adopts an NFS mount that an earlier
/// run of the driver left at `<dir>/<prefix>-*/root`. Empty leftover directories of that prefix
/// are removed (rmdir only: never anything with content).
fn mount_working(spec: &ShareSpec, dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("mkdir {}", dir.display()), e))?;
    let mounts = mountinfo::read().map_err(|e| Error::io("read mountinfo", e))?;
    let ours = |mdir: &Path| {
        mdir.parent() == Some(dir)
            && mdir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{prefix}-")))
    };
    let adopt = mounts.iter().rev().find(|m| {
        m.fstype.starts_with("nfs")
            && m.mount_point.file_name() == Some(ROOT.as_ref())
            && m.mount_point.parent().is_some_and(ours)
    });
    if let Some(old) = adopt {
        tracing::info!(share = %spec, at = %old.mount_point.display(), "adopting working mount of an earlier run");
        return Ok(old.mount_point.clone());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for mdir in entries.flatten().map(|e| e.path()) {
            let dropped = mdir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(DROPPED));
            if (ours(&mdir) || dropped) && mountinfo::at(&mounts, &mdir.join(ROOT)).is_none() {
                let _ = std::fs::remove_dir(mdir.join(ROOT));
                let _ = std::fs::remove_dir(&mdir);
            }
        }
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mdir = dir.join(format!("{prefix}-{}", &suffix[..12]));
    let target = mdir.join(ROOT);
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::io(format!("mkdir {}", target.display()), e))?;
    let options = spec.all_mount_options();
    let m = nfs::NfsMount {
        server: spec.server.as_deref().unwrap_or_default(),
        path: &spec.path,
        options: &options,
        read_only: false,
        bounded: true,
    };
    match nfs::mount_nfs(&m, &target) {
        Ok(vers) => {
            tracing::debug!(share = %spec, vers, "working mount made");
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_dir(&target);
            let _ = std::fs::remove_dir(&mdir);
            Err(e)
        }
    }
}

/// Drops the mount at `root` (`<dir>/<mdir>/root`): renames `<mdir>` away so the path stops
/// resolving, then force-unmounts and detaches (MNT_FORCE aborts RPCs still waiting on a dead
/// server, so threads stuck there return; MNT_DETACH never blocks), then removes the directories.
fn detach(root: &Path) -> Result<()> {
    let (Some(mdir), Some(dir)) = (root.parent(), root.parent().and_then(Path::parent)) else {
        return Err(Error::invalid(format!(
            "{} is not a working mount",
            root.display()
        )));
    };
    let name = mdir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let dropped = dir.join(format!("{DROPPED}{name}"));
    match std::fs::rename(mdir, &dropped) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("rename {}", mdir.display()), e)),
    }
    let at = dropped.join(ROOT);
    for _ in 0..16 {
        if !mount::is_mount_point(&at)? {
            break;
        }
        match umount2(&at, MntFlags::MNT_FORCE | MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::errno(format!("unmount {}", at.display()), e)),
        }
    }
    std::fs::remove_dir(&at)
        .and_then(|()| std::fs::remove_dir(&dropped))
        .map_err(|e| Error::io(format!("remove {}", dropped.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_share_and_options() {
        let a = ShareSpec::new(Some("h"), "/e", vec!["nfsvers=4.1".into()]).unwrap();
        let b = ShareSpec::new(Some("h"), "/e", vec!["nfsvers=3".into()]).unwrap();
        assert_ne!(key(&a), key(&b));
        assert_eq!(key(&a), key(&a.clone()));
    }

    #[tokio::test]
    async fn forget_only_drops_the_mount_that_failed() {
        let dir = tempfile::tempdir().unwrap();
        let w = WorkingMounts::new(
            dir.path().to_owned(),
            Metrics::new(crate::metrics::Scope::Serve),
        );
        let spec = ShareSpec::new(Some("h"), "/e", vec![]).unwrap();
        let current = dir
            .path()
            .join(format!("{}-current", key(&spec)))
            .join(ROOT);
        std::fs::create_dir_all(&current).unwrap();
        let slot = w.slot(&spec);
        *slot.path.lock().unwrap() = Some(current.clone());
        slot.known.store(true, Ordering::Relaxed);
        let root = w.root(&spec, Duration::from_secs(1)).await.unwrap();
        assert_eq!(root, current);
        // A request that failed on an older mount: the current one stays.
        let older = dir.path().join(format!("{}-older", key(&spec))).join(ROOT);
        assert!(w.forget(&spec, &older).await);
        assert_eq!(slot.path(), Some(current.clone()));
        assert!(current.exists());
        // The current one failed: dropped, its directory removed, the share still known.
        assert!(w.forget(&spec, &current).await);
        assert_eq!(slot.path(), None);
        assert!(!current.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(w.mounted().await, vec![spec.clone()]);
        // Unknown share: nothing to retry.
        let other = ShareSpec::new(Some("h2"), "/e", vec![]).unwrap();
        assert!(!w.forget(&other, &current).await);
    }
}
