//! Recursive removal that never follows symlinks, copes with read-only files and directories, and
//! handles trees of any depth without recursion on the call stack.

use super::fs::{list_raw, lstat, open_dir, unlink};
use nix::dir::Type;
use nix::errno::Errno;
use nix::sys::stat::{Mode, fchmod};
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};

struct Frame {
    dir: OwnedFd,
    name: OsString,
    pending: Vec<(OsString, Option<Type>)>,
}

/// Removes `name` inside `parent` and everything below it. Symlinks are removed, never followed;
/// entries that vanish meanwhile are fine. Returns the number of entries removed.
pub fn remove_tree(parent: &OwnedFd, name: &str) -> nix::Result<u64> {
    let st = match lstat(parent, name) {
        Err(Errno::ENOENT) => return Ok(0),
        other => other?,
    };
    if !super::fs::is_dir(&st) {
        unlink(parent, name.as_ref(), false)?;
        return Ok(1);
    }
    let mut removed = 0u64;
    let mut stack = vec![open_frame(parent, OsString::from(name))?];
    while let Some(top) = stack.last_mut() {
        if let Some((entry, kind)) = top.pending.pop() {
            let is_dir = match kind {
                Some(Type::Directory) => true,
                Some(_) => false,
                None => match lstat(&top.dir, entry.as_os_str()) {
                    Ok(st) => super::fs::is_dir(&st),
                    Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(e),
                },
            };
            if is_dir {
                match open_frame(&top.dir, entry) {
                    Ok(frame) => stack.push(frame),
                    Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            } else {
                unlink_writable(&top.dir, &entry, false)?;
                removed += 1;
            }
            continue;
        }
        let done = stack.pop().expect("stack is not empty");
        drop(done.dir);
        let parent_dir = stack.last().map(|f| &f.dir).unwrap_or(parent);
        unlink_writable(parent_dir, &done.name, true)?;
        removed += 1;
    }
    Ok(removed)
}

fn open_frame(parent: &OwnedFd, name: OsString) -> nix::Result<Frame> {
    let dir = match open_dir_os(parent, &name) {
        Err(Errno::EACCES) => {
            // An unreadable directory: make it ours to read, then try again.
            let _ = nix::sys::stat::fchmodat(
                parent,
                name.as_os_str(),
                Mode::from_bits_truncate(0o700),
                nix::sys::stat::FchmodatFlags::NoFollowSymlink,
            );
            open_dir_os(parent, &name)?
        }
        other => other?,
    };
    let pending = match list_raw(&dir) {
        Err(Errno::EACCES) => {
            fchmod(&dir, Mode::from_bits_truncate(0o700))?;
            list_raw(&dir)?
        }
        other => other?,
    };
    Ok(Frame { dir, name, pending })
}

fn open_dir_os(parent: &OwnedFd, name: &OsString) -> nix::Result<OwnedFd> {
    open_dir(parent, name.as_os_str())
}

/// Unlinks an entry; if the directory holding it is read-only, makes it writable and retries.
fn unlink_writable(dir: &OwnedFd, name: &OsString, is_dir: bool) -> nix::Result<()> {
    match unlink(dir, name, is_dir) {
        Err(Errno::EACCES | Errno::EPERM) => {
            fchmod(dir.as_fd(), Mode::from_bits_truncate(0o700))?;
            unlink(dir, name, is_dir)
        }
        other => other,
    }
}
