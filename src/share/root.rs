//! Volume directories on one open share root: create, delete (trash / archive / retain), look up,
//! list and measure. Plain blocking filesystem calls; callers run them off the async runtime.

use super::fs::{self, both, is_dir, lstat, open_dir, open_parent, open_volume_dir};
use super::record::{self, Record};
use crate::error::{Error, Result};
use crate::volume::{SubDir, path::STATE_DIR};
use nix::errno::Errno;
use nix::sys::stat::{Mode, fchmod, mkdirat};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// An open share root directory.
#[derive(Debug)]
pub struct ShareRoot {
    fd: OwnedFd,
    path: PathBuf,
    /// The state directories once opened: kept, so a call on a share reached over NFS does not
    /// pay the close-to-open revalidation of three directory opens every time.
    state: OnceLock<State>,
    /// Pairs of calls ([`ShareRoot::pair`]) in flight on this root.
    pairs: AtomicUsize,
    /// On NFS: a call is a network round trip, worth overlapping with another. A local
    /// filesystem answers in microseconds, less than a hand-off to another thread costs.
    remote: bool,
}

/// Up to this many pairs of calls in flight on a share, each pair's second call goes to another
/// thread; beyond it, the calls running at once already keep the share's round trips overlapping,
/// and the hand-off would only add a thread wake-up and a context switch to each.
const OVERLAP_UP_TO: usize = 4;

/// The driver's own directories on a share.
#[derive(Debug)]
struct State {
    trash: OwnedFd,
    /// Shared with the helper thread that writes a record beside the volume's own call.
    records: Arc<OwnedFd>,
}

/// Result of creating a volume directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The directory was made now.
    New,
    /// A matching volume already existed (an idempotent retry).
    Existing,
}

/// A directory moved to the trash, to be removed in the background.
#[derive(Debug)]
pub struct TrashEntry {
    trash: OwnedFd,
    name: String,
}

/// Space and inode figures of the filesystem holding a share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Size in bytes.
    pub total_bytes: u64,
    /// Bytes an unprivileged user can still write.
    pub available_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Total inodes.
    pub total_inodes: u64,
    /// Free inodes.
    pub free_inodes: u64,
    /// Inodes in use.
    pub used_inodes: u64,
}

impl ShareRoot {
    /// Opens the share root at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let fd = fs::open_root(path)?;
        let remote = nix::sys::statfs::fstatfs(&fd)
            .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::NFS_SUPER_MAGIC);
        Ok(ShareRoot {
            state: OnceLock::new(),
            pairs: AtomicUsize::new(0),
            remote,
            fd,
            path: path.to_owned(),
        })
    }

    /// Where the share root is on this machine.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open root directory (for walks below it with the `fs` helpers).
    pub fn dir(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `a` and `b`, two independent calls, in flight together ([`fs::both`]) on an NFS share
    /// while few pairs are running on it (up to [`OVERLAP_UP_TO`]); under more load, or on a local
    /// filesystem, `b` after `a` on this thread.
    pub(super) fn pair<RA, RB: Send + 'static>(
        &self,
        a: impl FnOnce() -> RA,
        b: impl FnOnce() -> RB + Send + 'static,
    ) -> (RA, RB) {
        if !self.remote {
            return (a(), b());
        }
        struct Running<'a>(&'a AtomicUsize);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let running = Running(&self.pairs);
        if running.0.fetch_add(1, Ordering::Relaxed) < OVERLAP_UP_TO {
            both(a, b)
        } else {
            (a(), b())
        }
    }

    /// Opens the driver's state directories; with `create` false a share never used by this
    /// driver gives `None` and nothing is created.
    fn state(&self, create: bool) -> Result<Option<&State>> {
        if let Some(state) = self.state.get() {
            return Ok(Some(state));
        }
        let top = match open_dir(&self.fd, STATE_DIR) {
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                ensure_dir(&self.fd, STATE_DIR, 0o755)?;
                open_dir(&self.fd, STATE_DIR)
            }
            other => other,
        }
        .map_err(|e| Error::errno(format!("open {}/{STATE_DIR}", self.path.display()), e))?;
        let sub = |name: &str, mode| -> Result<OwnedFd> {
            match open_dir(&top, name) {
                Err(Errno::ENOENT) => {
                    ensure_dir(&top, name, mode)?;
                    open_dir(&top, name)
                }
                other => other,
            }
            .map_err(|e| Error::errno(format!("open {STATE_DIR}/{name}"), e))
        };
        let opened = State {
            trash: sub("trash", 0o700)?,
            records: Arc::new(sub("volumes", 0o755)?),
        };
        // Two threads may both open it; either result is as good.
        let _ = self.state.set(opened);
        Ok(self.state.get())
    }

    /// Makes the volume directory `sub` with `mode` and records `capacity` and `volume_id` for it.
    /// A retry with the same capacity and id is [`Created::Existing`]; a different one is
    /// [`Error::AlreadyExists`]. `umask` is the process's, so the mode can be fixed up only when
    /// mkdir could not set it.
    pub fn create_volume(
        &self,
        sub: &SubDir,
        mode: u32,
        umask: u32,
        capacity: u64,
        volume_id: &str,
    ) -> Result<Created> {
        let state = self.state(true)?.expect("state is created on demand");
        let key = record::key(sub);
        let wanted = Record {
            capacity,
            volume_id: volume_id.to_owned(),
        };
        let (parent, last) = open_parent(&self.fd, sub, Some(mode | 0o700))?;
        // The directory and its record go out together (two NFS calls in flight, one round trip)
        // unless the share is busy with other pairs (see `pair`).
        // A crash in between leaves one without the other, and the CO's retry completes it: a
        // directory gets its record below, a record its directory.
        let (records, k, w) = (state.records.clone(), key.clone(), wanted.clone());
        let (made, recorded) = self.pair(
            || mkdirat(&parent, last, Mode::from_bits_truncate(mode)),
            move || record::create(&records, &k, &w),
        );
        let record_error = |e| Error::errno(format!("record {sub}"), e);
        match made {
            Ok(()) => {
                let finish = || -> Result<()> {
                    // mkdir(2) leaves out what the umask clears and, on Linux, setuid and setgid
                    // (a mountPermissions of 2775 is common): only then is a chmod needed.
                    if mode & (umask | 0o6000) != 0 {
                        let dir = open_dir(&parent, last)
                            .map_err(|e| Error::errno(format!("open {sub}"), e))?;
                        fchmod(&dir, Mode::from_bits_truncate(mode))
                            .map_err(|e| Error::errno(format!("chmod {sub}"), e))?;
                    }
                    match recorded {
                        Ok(()) => Ok(()),
                        // A record of an earlier volume of that name whose directory is gone
                        // (removed by hand, or a crash mid-delete): the new volume's replaces it.
                        Err(Errno::EEXIST) => {
                            record::write(&state.records, &key, &wanted).map_err(record_error)
                        }
                        Err(e) => Err(record_error(e)),
                    }
                };
                if let Err(e) = finish() {
                    // A full share (no inode for the record) or a refused chmod: the directory
                    // just made goes again (and the record made beside it), so a failed call
                    // leaves no half volume behind.
                    if recorded.is_ok() {
                        let _ = record::remove(&state.records, &key);
                    }
                    if let Err(undo) = fs::unlink(&parent, last.as_ref(), true) {
                        tracing::warn!(error = %undo, "new volume directory not removed after {e}");
                    }
                    return Err(e);
                }
                Ok(Created::New)
            }
            Err(Errno::EEXIST) => {
                let st =
                    lstat(&parent, last).map_err(|e| Error::errno(format!("stat {sub}"), e))?;
                if !is_dir(&st) {
                    if recorded.is_ok() {
                        // Made just now for nothing: no volume is there.
                        let _ = record::remove(&state.records, &key);
                    }
                    return Err(Error::AlreadyExists(format!(
                        "{sub} exists and is not a directory"
                    )));
                }
                match recorded {
                    // A directory without a record (made before a crash, or retained earlier):
                    // it has the wanted one now.
                    Ok(()) => return Ok(Created::Existing),
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(record_error(e)),
                }
                match record::read(&state.records, &key)
                    .map_err(|e| Error::errno("read record", e))?
                {
                    Some(old) if old.capacity != capacity => Err(Error::AlreadyExists(format!(
                        "{sub} exists with capacity {} bytes, requested {capacity}",
                        old.capacity
                    ))),
                    Some(old) if old.volume_id != volume_id => Err(Error::AlreadyExists(format!(
                        "{sub} exists with other parameters (id {})",
                        old.volume_id
                    ))),
                    Some(_) => Ok(Created::Existing),
                    None => {
                        // Unreadable (or gone meanwhile): replaced by the wanted one.
                        record::write(&state.records, &key, &wanted).map_err(record_error)?;
                        Ok(Created::Existing)
                    }
                }
            }
            Err(e) => {
                if recorded.is_ok() {
                    let _ = record::remove(&state.records, &key);
                }
                Err(Error::errno(format!("mkdir {sub}"), e))
            }
        }
    }

    /// True when the volume directory exists (as a real directory, reached without symlinks).
    pub fn volume_exists(&self, sub: &SubDir) -> Result<bool> {
        match open_volume_dir(&self.fd, sub) {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens the volume directory (for a bind mount through `/proc/self/fd`).
    pub fn open_volume(&self, sub: &SubDir) -> Result<OwnedFd> {
        open_volume_dir(&self.fd, sub)
    }

    /// Records a new capacity for the volume `sub` (expansion). Only growth is recorded; the
    /// recorded (never smaller) capacity is returned. A volume with neither directory nor record
    /// is [`Error::NotFound`].
    pub fn expand(&self, sub: &SubDir, capacity: u64) -> Result<u64> {
        let state = self.state(false)?;
        let key = record::key(sub);
        let old = match &state {
            Some(st) => {
                record::read(&st.records, &key).map_err(|e| Error::errno("read record", e))?
            }
            None => None,
        };
        let (Some(state), Some(old)) = (state, old) else {
            return Err(Error::NotFound(format!(
                "no volume {sub} on {}",
                self.path.display()
            )));
        };
        if capacity <= old.capacity {
            return Ok(old.capacity);
        }
        let grown = Record { capacity, ..old };
        record::write(&state.records, &key, &grown)
            .map_err(|e| Error::errno(format!("record {sub}"), e))?;
        Ok(capacity)
    }

    /// Space and inode figures of the share's filesystem.
    pub fn stats(&self) -> Result<FsStats> {
        statvfs_fd(&self.fd)
            .map_err(|e| Error::errno(format!("statvfs {}", self.path.display()), e))
    }
}

/// Space and inode figures of the filesystem holding `fd`.
pub fn statvfs_fd(fd: &OwnedFd) -> nix::Result<FsStats> {
    let s = nix::sys::statvfs::fstatvfs(fd)?;
    let frsize = s.fragment_size();
    let total_bytes = s.blocks() * frsize;
    let free_bytes = s.blocks_free() * frsize;
    Ok(FsStats {
        total_bytes,
        available_bytes: s.blocks_available() * frsize,
        used_bytes: total_bytes.saturating_sub(free_bytes),
        total_inodes: s.files(),
        free_inodes: s.files_free(),
        used_inodes: s.files().saturating_sub(s.files_free()),
    })
}

fn ensure_dir(parent: &OwnedFd, name: &str, mode: u32) -> Result<()> {
    match mkdirat(parent, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(Error::errno(format!("mkdir {name}"), e)),
    }
}

#[path = "root_archive.rs"]
mod archive;
#[path = "root_delete.rs"]
mod delete;
#[path = "root_records.rs"]
mod records;

pub use delete::Disposed;

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "root_tests.rs"]
mod tests;
