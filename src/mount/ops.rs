//! mount(2)/umount2(2) calls with the idempotency and fallbacks CSI node operations need.

use super::mountinfo;
use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Bind-mounts the open directory `dir` at `target`, read-only if asked. The source is reached
/// through `/proc/self/fd`, so the directory that was opened safely is exactly what gets mounted.
pub fn bind_volume(dir: &OwnedFd, target: &Path, read_only: bool) -> Result<()> {
    let source = format!("/proc/self/fd/{}", dir.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::errno(format!("bind mount at {}", target.display()), e))?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(Error::errno(
                format!("remount read-only at {}", target.display()),
                e,
            ));
        }
    }
    Ok(())
}

/// Bind-mounts the mount at `from` (whose id the mount table gave as `mount_id`) at `target`,
/// read-only if asked: another target of the same volume, mounted by this process, so no round
/// trip to the server is needed. `from` is opened without following a symlink and without
/// touching its filesystem (`O_PATH`, `statx` without sync); if what is there now is not that
/// mount (unmounted meanwhile), nothing is mounted and the error says so.
pub fn bind_existing(from: &Path, mount_id: u64, target: &Path, read_only: bool) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, open, statx};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let what = || format!("bind {} at {}", from.display(), target.display());
    let fd = open(from, flags, Mode::empty()).map_err(|e| Error::io(what(), e.into()))?;
    let at = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
    let st = statx(&fd, "", at, StatxFlags::MNT_ID).map_err(|e| Error::io(what(), e.into()))?;
    if st.stx_mnt_id != mount_id {
        return Err(Error::FailedPrecondition(format!(
            "{}: no longer the mount it was",
            what()
        )));
    }
    bind_volume(&fd, target, read_only)
}

/// True when `path` is a mount point, judged from the mount table (no stat of `path`, which
/// could hang on a dead NFS server).
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let mounts = mountinfo::read().map_err(|e| Error::io("read mountinfo", e))?;
    Ok(mountinfo::at(&mounts, path).is_some())
}

/// Unmounts everything stacked at `path`. With `lazy` the mounts are detached (MNT_DETACH), which
/// cannot block on a dead server. A path that is not mounted is fine.
pub fn unmount_all(path: &Path, lazy: bool) -> Result<()> {
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    for _ in 0..16 {
        if !is_mount_point(path)? {
            return Ok(());
        }
        match umount2(path, flags) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::errno(format!("unmount {}", path.display()), e)),
        }
    }
    Err(Error::FailedPrecondition(format!(
        "{} is still mounted after 16 unmounts",
        path.display()
    )))
}

/// For SINGLE_NODE_SINGLE_WRITER: if the volume just mounted at `target` is mounted elsewhere on
/// this node too, undo the mount and refuse.
pub fn refuse_second_writer(target: &Path) -> Result<()> {
    let mounts = mountinfo::read().map_err(|e| Error::io("read mountinfo", e))?;
    let Some(mine) = mountinfo::at(&mounts, target) else {
        return Ok(());
    };
    let others = mounts
        .iter()
        .filter(|m| {
            m.mount_point != target
                && m.device == mine.device
                && m.root == mine.root
                && m.source == mine.source
        })
        .count();
    if others == 0 {
        return Ok(());
    }
    unmount_all(target, true)?;
    let _ = std::fs::remove_dir(target);
    Err(Error::FailedPrecondition(format!(
        "volume is single-writer and already published at another target on this node ({others})"
    )))
}
