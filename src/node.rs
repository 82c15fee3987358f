//! Node operations in domain terms: mount a volume's directory at a target path (a bind mount of a
//! pre-mounted share, or an NFS mount), unmount it within a deadline, and report its usage.

use crate::blocking;
use crate::error::{Error, Result};
use crate::guard::Locks;
use crate::metrics::{Metrics, MountOp};
use crate::mount::{self, Probes, Unusable, mountinfo, nfs};
use crate::share::{FsStats, ShareRoot, root::statvfs_fd};
use crate::volume::{VolumeContext, VolumeId, add_mount_options, context};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A NodePublishVolume request, validated.
#[derive(Clone, Debug)]
pub struct Publish {
    /// The volume id.
    pub volume_id: String,
    /// The volume context from CreateVolume or a static PV (`server`, `share`, `subDir`,
    /// `mountOptions`, `mountPermissions`).
    pub context: Vec<(String, String)>,
    /// Where to mount it.
    pub target: PathBuf,
    /// Mount read-only.
    pub read_only: bool,
    /// Only one target on this node may have it (SINGLE_NODE_SINGLE_WRITER).
    pub single_writer: bool,
    /// Mount options from the capability (the PV's mountOptions).
    pub mount_flags: Vec<String>,
}

/// Where to mount from: the volume context if it names a share (a static PV may give one), else
/// the volume id, with the capability's mount flags added.
fn source_of(
    volume_id: &str,
    context: &[(String, String)],
    flags: &[String],
) -> Result<VolumeContext> {
    let pairs = context.iter().map(|(k, v)| (k, v));
    let mut source = match VolumeContext::from_pairs(pairs.clone())? {
        Some(ctx) => ctx,
        None => VolumeContext {
            mount_permissions: context::mount_permissions(pairs)?,
            ..VolumeContext::of(&VolumeId::parse(volume_id)?)
        },
    };
    for flag in flags {
        add_mount_options(&mut source.share.mount_options, flag)?;
    }
    Ok(source)
}

/// An NFS volume this process mounted at a target: what was asked for (server, path, options), so
/// that another target of the same volume (a second pod) gets a bind mount of it instead of a new
/// NFS mount and its round trips. Forgotten at unpublish; empty after a restart (then new targets
/// get NFS mounts of their own, as before).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Made {
    key: String,
    read_only: bool,
}

type MadeMounts = Arc<Mutex<HashMap<PathBuf, Made>>>;

/// The node service's state.
#[derive(Debug)]
pub struct Node {
    node_id: String,
    locks: Locks,
    metrics: Metrics,
    made: MadeMounts,
    /// Checks of mounted targets still in flight.
    probes: Probes,
}

impl Node {
    /// A node service for the node `node_id`; mount durations go to `metrics`.
    pub fn new(node_id: String, metrics: Metrics) -> Self {
        Node {
            node_id,
            locks: Locks::default(),
            metrics,
            made: MadeMounts::default(),
            probes: Probes::default(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.node_id
    }

    /// Mounts the volume at the target (idempotent: the same volume already there is fine).
    pub async fn publish(&self, req: Publish, deadline: Duration) -> Result<()> {
        let source = source_of(&req.volume_id, &req.context, &req.mount_flags)?;
        let target = req.target.clone();
        let guard = self.locks.try_lock(req.volume_id.clone())?;
        let what = format!("publish at {}", target.display());
        // A target already mounted gets a quarter of the time to prove it still answers.
        let check = (deadline / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let started = Instant::now();
        let (made, probes) = (self.made.clone(), self.probes.clone());
        let result = blocking::run(&what, deadline, move || {
            let _held = guard;
            let target = absolute_target(&target)?;
            let how = How {
                read_only: req.read_only,
                single_writer: req.single_writer,
                check,
                probes,
            };
            publish_blocking(&source, &target, &how, &made)
        })
        .await;
        self.metrics.node_mount(MountOp::Mount, started.elapsed());
        result
    }

    /// Unmounts the target and removes it. Not mounted or already gone is fine. An unmount that
    /// does not finish within half the deadline is replaced by a lazy detach.
    pub async fn unpublish(
        &self,
        volume_id: &str,
        target: &Path,
        deadline: Duration,
    ) -> Result<()> {
        let _guard = self.locks.try_lock(volume_id.to_owned())?;
        let started = Instant::now();
        let left = || deadline.saturating_sub(started.elapsed());
        // Every filesystem call goes through the blocking gateway: even the target's parent may
        // sit on a filesystem that hangs.
        let given = target.to_owned();
        let target = blocking::run("resolve target", deadline / 8, move || {
            absolute_target(&given)
        })
        .await?;
        let unmounted = self.unmount(&target, left()).await;
        self.metrics.node_mount(MountOp::Unmount, started.elapsed());
        unmounted?;
        lock(&self.made).remove(&target);
        let t = target.clone();
        let wait = left().max(Duration::from_millis(100));
        blocking::run("remove target", wait, move || {
            match std::fs::remove_dir(&t) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("remove target {}", t.display()), e)),
            }
        })
        .await
    }

    /// Unmounts everything at `target`, lazily if a plain unmount takes over half the deadline.
    async fn unmount(&self, target: &Path, deadline: Duration) -> Result<()> {
        let t = target.to_owned();
        let first = blocking::run("unmount", deadline / 2, move || {
            mount::unmount_all(&t, false)
        })
        .await;
        if let Err(e) = first {
            tracing::warn!(target = %target.display(), error = %e, "unmount failed; detaching lazily");
            let t = target.to_owned();
            blocking::run("lazy unmount", deadline / 2, move || {
                mount::unmount_all(&t, true)
            })
            .await?;
        }
        Ok(())
    }

    /// Usage of the filesystem mounted at `path`, and `Some(reason)` when it does not answer.
    pub async fn stats(
        &self,
        path: &Path,
        deadline: Duration,
    ) -> Result<(FsStats, Option<String>)> {
        let p = path.to_owned();
        // Even the existence check runs off the runtime: on a dead server it may hang.
        let measured = blocking::run("statvfs", deadline, move || {
            let missing = || Error::NotFound(format!("volume path {} does not exist", p.display()));
            if !p.is_absolute() {
                return Err(missing());
            }
            match std::fs::symlink_metadata(&p) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
                // A stale handle (or a dead server) at the mount point is an abnormal volume,
                // not a missing one.
                Err(e) => return Err(Error::io(format!("stat {}", p.display()), e)),
            }
            let fd = crate::share::fs::open_root(&p)?;
            statvfs_fd(&fd).map_err(|e| Error::errno(format!("statvfs {}", p.display()), e))
        })
        .await;
        match measured {
            Ok(stats) => Ok((stats, None)),
            Err(e) if e.is_unavailable() => Ok((FsStats::default(), Some(e.to_string()))),
            Err(e) => Err(e),
        }
    }
}

/// The target as an absolute path whose parent is resolved, without touching the target itself
/// (it may be a mount point of a dead server).
/// Blocking (it resolves the parent): call it through the blocking gateway.
fn absolute_target(target: &Path) -> Result<PathBuf> {
    if !target.is_absolute() {
        return Err(Error::invalid(format!(
            "target path {} is not absolute",
            target.display()
        )));
    }
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(Error::invalid(format!(
            "target path {} has no parent",
            target.display()
        )));
    };
    let parent = std::fs::canonicalize(parent)
        .map_err(|e| Error::NotFound(format!("parent of target {}: {e}", target.display())))?;
    Ok(parent.join(name))
}

/// How to publish: read-only, single writer, and how long a mounted target may take to answer
/// its check.
struct How {
    read_only: bool,
    single_writer: bool,
    check: Duration,
    probes: Probes,
}

fn lock(made: &MadeMounts) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Made>> {
    made.lock().unwrap_or_else(|p| p.into_inner())
}

fn publish_blocking(
    source: &VolumeContext,
    target: &Path,
    how: &How,
    made: &MadeMounts,
) -> Result<()> {
    let (read_only, check) = (how.read_only, how.check);
    let mounts = mountinfo::read().map_err(|e| Error::io("read mountinfo", e))?;
    let existing = mountinfo::at(&mounts, target);
    // Mounted but stale (the directory was replaced on the server): detach it (never blocks) and
    // mount afresh below, as kubelet expects a usable target. Mounted but its server not answering
    // (down, or cut off by the network): a fresh mount would not answer either, and a detach would
    // leave a running pod's target an empty local directory (stats then report the node's own
    // disk as healthy): the mount stays and the call answers UNAVAILABLE, for kubelet to retry.
    let existing = match existing.map(|_| how.probes.probe(target, check)) {
        Some(Err(Unusable::Stale(why))) => {
            tracing::warn!(target = %target.display(), %why, "target is mounted but stale; detaching it and mounting again");
            mount::unmount_all(target, true)?;
            None
        }
        Some(Err(Unusable::NoAnswer(why))) => {
            return Err(Error::Unavailable(format!(
                "{} is mounted but its server does not answer ({why}); kept as it is",
                target.display()
            )));
        }
        _ => existing,
    };
    if let Some(existing) = existing {
        if existing.read_only() != read_only {
            return Err(Error::AlreadyExists(format!(
                "{} is already mounted {}",
                target.display(),
                if existing.read_only() {
                    "read-only"
                } else {
                    "read-write"
                }
            )));
        }
        return Ok(());
    }
    match std::fs::create_dir(target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("mkdir target {}", target.display()), e)),
    }
    if source.share.is_nfs() {
        let path = match &source.sub_dir {
            Some(sub) => format!("{}/{sub}", source.share.path.trim_end_matches('/')),
            None => source.share.path.clone(),
        };
        let m = nfs::NfsMount {
            server: source.share.server.as_deref().unwrap_or_default(),
            path: &path,
            options: &source.share.mount_options,
            read_only,
            bounded: false,
        };
        let key = format!("{}\0{path}\0{:?}", m.server, m.options);
        if !bind_same_volume(made, &mounts, &key, target, how) {
            let vers = nfs::mount_nfs(&m, target)?;
            tracing::info!(target = %target.display(), vers, "NFS volume mounted");
        }
        lock(made).insert(target.to_owned(), Made { key, read_only });
    } else {
        let root = ShareRoot::open(Path::new(&source.share.path))?;
        let dir = match &source.sub_dir {
            Some(sub) => root.open_volume(sub)?,
            None => crate::share::fs::open_root(root.path())?,
        };
        mount::bind_volume(&dir, target, read_only)?;
    }
    if how.single_writer {
        mount::refuse_second_writer(target)?;
    }
    match source.mount_permissions {
        Some(mode) if !read_only => set_mode(target, mode).inspect_err(|_| {
            // Undo the mount so that a retry tries again instead of finding it mounted.
            let _ = mount::unmount_all(target, true);
        }),
        _ => Ok(()),
    }
}

/// Serves `target` with a bind mount of another target where this process mounted the same
/// volume (`key`) and which still holds that mount and answers (a stale or dead one is skipped);
/// false when there is none, and the caller mounts afresh.
fn bind_same_volume(
    made: &MadeMounts,
    mounts: &[mountinfo::Mount],
    key: &str,
    target: &Path,
    how: &How,
) -> bool {
    let read_only = how.read_only;
    let candidates: Vec<PathBuf> = lock(made)
        .iter()
        .filter(|(at, m)| m.key == key && (read_only || !m.read_only) && at.as_path() != target)
        .map(|(at, _)| at.clone())
        .collect();
    for from in candidates {
        let Some(m) = mountinfo::at(mounts, &from) else {
            continue;
        };
        if !m.fstype.starts_with("nfs") || (!read_only && (m.read_only() || m.super_read_only())) {
            continue;
        }
        if let Err(why) = how.probes.probe(&from, how.check) {
            tracing::debug!(from = %from.display(), ?why, "not bound from a target that does not answer");
            continue;
        }
        match mount::bind_existing(&from, m.id, target, read_only) {
            Ok(()) => {
                tracing::info!(target = %target.display(), from = %from.display(), "NFS volume bound from another target of it");
                return true;
            }
            Err(e) => tracing::debug!(from = %from.display(), error = %e, "not bound"),
        }
    }
    false
}

/// Gives the mount point `target` the mode `mode` unless it already has it (csi-driver-nfs's
/// `mountPermissions` on the node: the root of the mounted directory, so on the share).
fn set_mode(target: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let had = std::fs::metadata(target)
        .map_err(|e| Error::io(format!("stat {}", target.display()), e))?
        .permissions()
        .mode()
        & 0o7777;
    if had != mode {
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {:04o} {}", mode, target.display()), e))?;
        tracing::info!(target = %target.display(), from = %format!("{had:04o}"), to = %format!("{mode:04o}"), "mount point mode set (mountPermissions)");
    }
    Ok(())
}
