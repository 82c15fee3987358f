//! Recursive removal that never follows symlinks, copes with read-only files and directories, and
//! handles trees of any depth without recursion on the call stack. A bounded pool of threads works
//! one tree at a time: on NFS each unlink is a round trip to the server, so a few in flight at once
//! remove a big tree several times faster than one after another (`rm -rf`).
//!
//! Every directory is reached through the descriptor of its parent with `O_NOFOLLOW`, as before;
//! a directory is removed by the worker that finishes its last child, and is closed when the last
//! task that names it is done. Directories are opened only when a worker takes them (so a wide tree
//! does not hold a descriptor per directory), and the task stack is worked last-in first-out (so
//! the open ones stay near one path per worker).

use super::fs::{list_raw, lstat, open_dir, unlink};
use crate::pool::Work;
use nix::dir::Type;
use nix::errno::Errno;
use nix::sys::stat::{Mode, fchmod};
use nix::unistd::UnlinkatFlags;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Threads that remove one tree: enough to keep several NFS round trips in flight, few enough to
/// leave the server and the controller's CPU to other work.
pub const WORKERS: usize = 8;

/// Entries unlinked by one task: a wide directory is shared among the workers in slices this big.
const SLICE: usize = 32;

/// An open directory being emptied.
struct Dir {
    fd: OwnedFd,
    name: OsString,
    /// `None` for the top of the tree, which lives in the caller's directory.
    parent: Option<Arc<Dir>>,
    /// Children not yet removed.
    pending: AtomicUsize,
}

enum Task {
    /// A subdirectory of `parent` to open, list and empty.
    Open { parent: Arc<Dir>, name: OsString },
    /// Entries of `dir` that are not (known to be) directories.
    Unlink {
        dir: Arc<Dir>,
        names: Vec<(OsString, Option<Type>)>,
    },
}

struct Shared<'a> {
    top_parent: &'a OwnedFd,
    work: Work<Task, Errno>,
    removed: AtomicU64,
}

/// Removes `name` inside `parent` and everything below it with [`WORKERS`] threads. Symlinks are
/// removed, never followed; entries that vanish meanwhile are fine. Returns the number of entries
/// removed.
pub fn remove_tree(parent: &OwnedFd, name: &str) -> nix::Result<u64> {
    remove_tree_with(parent, name, WORKERS)
}

/// [`remove_tree`] with at most `workers` threads (1: on the calling thread only).
pub fn remove_tree_with(parent: &OwnedFd, name: &str, workers: usize) -> nix::Result<u64> {
    // An empty directory (a volume never written to: the common case) goes with one call, where
    // the walk below costs a lookup, an open and a listing before the same removal. rmdir does not
    // follow a symlink; whatever it refuses (not empty, not a directory, a read-only parent) is
    // left to the walk.
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) => return Ok(1),
        Err(Errno::ENOENT) => return Ok(0),
        Err(_) => {}
    }
    let st = match lstat(parent, name) {
        Err(Errno::ENOENT) => return Ok(0),
        other => other?,
    };
    if !super::fs::is_dir(&st) {
        unlink(parent, name.as_ref(), false)?;
        return Ok(1);
    }
    let sh = Shared {
        top_parent: parent,
        work: Work::default(),
        removed: AtomicU64::new(0),
    };
    // The top is listed here: a small tree (one slice, no subdirectory) needs no threads at all.
    let top = match open_frame(parent, OsString::from(name)) {
        Err(Errno::ENOENT) => return Ok(0),
        other => other?,
    };
    schedule(&sh, top, None)?;
    let small = sh
        .work
        .peek(|q| q.len() <= 1 && q.iter().all(|t| matches!(t, Task::Unlink { .. })));
    if small || workers <= 1 {
        worker(&sh);
    } else {
        std::thread::scope(|s| {
            for _ in 1..workers {
                s.spawn(|| worker(&sh));
            }
            worker(&sh);
        });
    }
    match sh.work.take_error() {
        Some(e) => Err(e),
        None => Ok(sh.removed.load(Ordering::Relaxed)),
    }
}

fn worker(sh: &Shared<'_>) {
    sh.work.work(|task| run(sh, task));
}

fn run(sh: &Shared<'_>, task: Task) -> nix::Result<()> {
    match task {
        Task::Open { parent, name } => match open_frame(&parent.fd, name.clone()) {
            Ok(frame) => schedule(sh, frame, Some(parent)),
            Err(Errno::ENOENT) => done_one(sh, parent),
            // Replaced by something that is not a directory since it was listed: not followed.
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                unlink_writable(&parent.fd, &name, false)?;
                sh.removed.fetch_add(1, Ordering::Relaxed);
                done_one(sh, parent)
            }
            Err(e) => Err(e),
        },
        Task::Unlink { dir, names } => {
            for (name, kind) in names {
                let is_dir = match kind {
                    Some(Type::Directory) => true,
                    Some(_) => false,
                    None => match lstat(&dir.fd, name.as_os_str()) {
                        Ok(st) => super::fs::is_dir(&st),
                        Err(Errno::ENOENT) => {
                            done_one(sh, dir.clone())?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    },
                };
                if is_dir {
                    sh.work.push([Task::Open {
                        parent: dir.clone(),
                        name,
                    }]);
                } else {
                    unlink_writable(&dir.fd, &name, false)?;
                    sh.removed.fetch_add(1, Ordering::Relaxed);
                    done_one(sh, dir.clone())?;
                }
            }
            Ok(())
        }
    }
}

/// Queues the work of a freshly listed directory; an empty one is removed at once.
fn schedule(
    sh: &Shared<'_>,
    (fd, name, entries): Frame,
    parent: Option<Arc<Dir>>,
) -> nix::Result<()> {
    let dir = Arc::new(Dir {
        fd,
        name,
        parent,
        pending: AtomicUsize::new(entries.len()),
    });
    if entries.is_empty() {
        return finish(sh, dir);
    }
    let (dirs, others): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(_, kind)| *kind == Some(Type::Directory));
    let mut tasks: Vec<Task> = others
        .chunks(SLICE)
        .map(|names| Task::Unlink {
            dir: dir.clone(),
            names: names.to_vec(),
        })
        .collect();
    tasks.extend(dirs.into_iter().map(|(name, _)| Task::Open {
        parent: dir.clone(),
        name,
    }));
    sh.work.push(tasks);
    Ok(())
}

/// One child of `dir` is gone; the last one removes `dir` itself, and so on up the tree.
fn done_one(sh: &Shared<'_>, dir: Arc<Dir>) -> nix::Result<()> {
    if dir.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
        finish(sh, dir)
    } else {
        Ok(())
    }
}

/// `dir` is empty: removes it from its parent, then counts it as done there (iteratively, so a
/// deep tree needs no deep stack).
fn finish(sh: &Shared<'_>, dir: Arc<Dir>) -> nix::Result<()> {
    let mut dir = dir;
    loop {
        let parent = dir.parent.clone();
        let parent_fd = parent.as_ref().map(|p| &p.fd).unwrap_or(sh.top_parent);
        unlink_writable(parent_fd, &dir.name, true)?;
        sh.removed.fetch_add(1, Ordering::Relaxed);
        drop(dir);
        match parent {
            Some(p) if p.pending.fetch_sub(1, Ordering::AcqRel) == 1 => dir = p,
            _ => return Ok(()),
        }
    }
}

/// An opened directory: its descriptor, its name in its parent, and its entries.
type Frame = (OwnedFd, OsString, Vec<(OsString, Option<Type>)>);

fn open_frame(parent: &OwnedFd, name: OsString) -> nix::Result<Frame> {
    let dir = match open_dir(parent, name.as_os_str()) {
        Err(Errno::EACCES) => {
            // An unreadable directory: make it ours to read, then try again.
            let _ = nix::sys::stat::fchmodat(
                parent,
                name.as_os_str(),
                Mode::from_bits_truncate(0o700),
                nix::sys::stat::FchmodatFlags::NoFollowSymlink,
            );
            open_dir(parent, name.as_os_str())?
        }
        other => other?,
    };
    let entries = match list_raw(&dir) {
        Err(Errno::EACCES) => {
            fchmod(&dir, Mode::from_bits_truncate(0o700))?;
            list_raw(&dir)?
        }
        other => other?,
    };
    Ok((dir, name, entries))
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

#[cfg(test)]
#[path = "remove_tests.rs"]
mod tests;
