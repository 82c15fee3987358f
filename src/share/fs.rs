//! Directory primitives relative to an open share root: every walk is component by component with
//! `O_NOFOLLOW`, so no path from a request can leave the share through a symlink.

use crate::error::{Error, Result};
use crate::volume::SubDir;
use nix::NixPath;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};
use nix::unistd::UnlinkatFlags;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

/// Opens a share's root directory. The root itself is configuration, so symlinks in it are allowed.
pub fn open_root(root: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(root, OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map_err(
        |e| match e {
            Errno::ENOENT | Errno::ENOTDIR => {
                Error::Unavailable(format!("share root {}: {e}", root.display()))
            }
            e => Error::errno(format!("open share root {}", root.display()), e),
        },
    )
}

/// Opens the directory `name` inside `parent`, refusing symlinks.
pub fn open_dir<P: ?Sized + NixPath>(parent: impl AsFd, name: &P) -> nix::Result<OwnedFd> {
    openat(parent, name, DIR_FLAGS, Mode::empty())
}

/// `lstat` of `name` inside `parent`.
pub fn lstat<P: ?Sized + NixPath>(parent: impl AsFd, name: &P) -> nix::Result<FileStat> {
    fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// True when the stat result is a directory.
pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Opens the parent directory of `sub` (creating missing parents with `create` mode if given) and
/// returns it with the last component's name.
pub fn open_parent<'a>(
    root: &OwnedFd,
    sub: &'a SubDir,
    create: Option<u32>,
) -> Result<(OwnedFd, &'a str)> {
    let (parents, last) = sub.split_last();
    let mut dir = dup(root)?;
    for part in parents {
        let next = match (open_dir(&dir, part), create) {
            (Err(Errno::ENOENT), Some(mode)) => {
                match mkdirat(&dir, part, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(Error::errno(format!("mkdir parent {part:?} of {sub}"), e));
                    }
                }
                open_dir(&dir, part)
            }
            (other, _) => other,
        };
        dir = next.map_err(|e| walk_error(sub, part, e))?;
    }
    Ok((dir, last))
}

fn walk_error(sub: &SubDir, part: &str, e: Errno) -> Error {
    match e {
        Errno::ENOENT => Error::NotFound(format!("{sub}: {part:?} does not exist")),
        Errno::ELOOP | Errno::ENOTDIR => Error::FailedPrecondition(format!(
            "{sub}: {part:?} is a symlink or not a directory; refusing to follow it"
        )),
        e => Error::errno(format!("open {part:?} of {sub}"), e),
    }
}

/// Opens the volume directory `sub` itself, refusing symlinks anywhere on the way.
pub fn open_volume_dir(root: &OwnedFd, sub: &SubDir) -> Result<OwnedFd> {
    let (parent, last) = open_parent(root, sub, None)?;
    open_dir(&parent, last).map_err(|e| walk_error(sub, last, e))
}

/// Runs `a` on this thread and `b` on a second one at the same time, so two independent NFS calls
/// are in flight together instead of one after the other (a round trip saved). The second thread
/// is an idle one of the async runtime's blocking pool (no thread is started per call: under
/// emulation that cost more than the round trip saved). If none takes `b` by the time `a` is
/// done (a busy pool, or no runtime, as in unit tests), `b` runs here after `a`; it runs exactly
/// once either way.
pub fn both<RA, RB: Send + 'static>(
    a: impl FnOnce() -> RA,
    b: impl FnOnce() -> RB + Send + 'static,
) -> (RA, RB) {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(b)));
    let take =
        |slot: &std::sync::Mutex<Option<_>>| slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let theirs = slot.clone();
        drop(runtime.spawn_blocking(move || {
            if let Some(f) = take(&theirs) {
                let _ = tx.send(f());
            }
        }));
    }
    let ra = a();
    let rb = match take(&slot) {
        Some(f) => f(),
        // Taken by the helper: its result comes (a panic there drops the sender).
        None => rx
            .recv()
            .expect("the second half of a pair of calls panicked"),
    };
    (ra, rb)
}

/// Duplicates a descriptor (for handing a directory to a background task).
pub fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone()
        .map_err(|e| Error::io("dup directory descriptor", e))
}

/// Lists the names in a directory (without `.` and `..`), sorted.
pub fn list(dir: &OwnedFd) -> Result<Vec<String>> {
    let mut d = nix::dir::Dir::from_fd(dup(dir)?).map_err(|e| Error::errno("opendir", e))?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| Error::errno("readdir", e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Lists raw entry names (bytes kept as they are) with their type when readdir knows it.
pub fn list_raw(dir: &OwnedFd) -> nix::Result<Vec<(OsString, Option<nix::dir::Type>)>> {
    let mut d = nix::dir::Dir::from_fd(dir.try_clone().map_err(|_| Errno::EMFILE)?)?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((OsString::from_vec(name.to_vec()), entry.file_type()));
        }
    }
    Ok(out)
}

/// `unlinkat` that treats "already gone" as success.
pub fn unlink(dir: impl AsFd, name: &std::ffi::OsStr, is_dir: bool) -> nix::Result<()> {
    let flag = if is_dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match nix::unistd::unlinkat(dir, name, flag) {
        Err(Errno::ENOENT) => Ok(()),
        other => other,
    }
}

/// Renames without replacing: RENAME_NOREPLACE, or where the filesystem refuses the flag (NFS
/// does: EINVAL) a check then a plain rename; a non-empty directory in the way fails the plain
/// rename too. An existing target is `EXIST`.
pub fn rename_noreplace(
    from_dir: &OwnedFd,
    from: &str,
    to_dir: &OwnedFd,
    to: &str,
) -> rustix::io::Result<()> {
    use rustix::io::Errno as E;
    let flags = rustix::fs::RenameFlags::NOREPLACE;
    match rustix::fs::renameat_with(from_dir, from, to_dir, to, flags) {
        Err(E::INVAL) => {}
        other => return other,
    }
    match rustix::fs::statat(to_dir, to, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => return Err(E::EXIST),
        Err(E::NOENT) => {}
        Err(e) => return Err(e),
    }
    match rustix::fs::renameat(from_dir, from, to_dir, to) {
        Err(E::NOTEMPTY) => Err(E::EXIST),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_runs_each_side_once_without_a_runtime() {
        assert_eq!(super::both(|| 1, || "two"), (1, "two"));
    }
}
