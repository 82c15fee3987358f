//! The tree walk of the copy engine: a shared stack of tasks worked by a bounded pool of threads;
//! directories are opened lazily (so a wide tree does not hold a descriptor per directory), hard
//! links are made once all inodes exist, and directory metadata is applied last, deepest first.

use super::{Counts, Options, Summary, Usage, data, meta};
use crate::error::{Error, Result};
use crate::pool::Work;
use crate::share::fs::list_raw;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, Stat, chmodat, fstat, linkat, mkdirat, mknodat, openat,
    readlinkat, statat, symlinkat,
};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const DIR: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

/// A source directory and its copy, open, with the copy's path below the target root.
struct Pair {
    src: OwnedFd,
    dst: OwnedFd,
    rel: PathBuf,
}

/// One entry of a directory pair to copy.
struct Task {
    parent: Arc<Pair>,
    name: OsString,
}

struct Shared<'a> {
    opts: &'a Options,
    counts: Counts,
    work: Work<Task, Error>,
    /// First copy of each multiply-linked inode: (dev, ino) → path in the target.
    links: Mutex<HashMap<(u64, u64), PathBuf>>,
    /// Further links to make at the end: (first copy, new name), paths in the target.
    deferred: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// Directories made, with their source's metadata.
    dirs: Mutex<Vec<(PathBuf, Stat)>>,
}

/// Copies everything inside the directory `src` into the (empty) directory `dst`, then gives `dst`
/// the owner, mode, xattrs and times of `src`. On error the copy stops and the partial target is
/// left for the caller to remove.
pub fn copy_tree(src: &OwnedFd, dst: &OwnedFd, opts: &Options) -> Result<Summary> {
    let sh = Shared {
        opts,
        counts: Counts::default(),
        work: Work::default(),
        links: Mutex::default(),
        deferred: Mutex::default(),
        dirs: Mutex::default(),
    };
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup directory", e));
    let root = Arc::new(Pair {
        src: dup(src)?,
        dst: dup(dst)?,
        rel: PathBuf::new(),
    });
    enqueue_entries(&sh, root)?;
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| worker(&sh));
        }
    });
    if let Some(e) = sh.work.take_error() {
        return Err(e);
    }
    finish(&sh, src, dst)?;
    Ok(sh.counts.summary())
}

fn worker(sh: &Shared<'_>) {
    sh.work.work(|task| {
        if sh.opts.cancel.load(Ordering::Relaxed) {
            Err(Error::io("copy", io::ErrorKind::Interrupted.into()))
        } else {
            run(sh, task)
        }
    });
}

fn at(rel: &Path, name: &OsStr, e: impl Into<io::Error>, what: &str) -> Error {
    Error::io(format!("{what} {}", rel.join(name).display()), e.into())
}

/// Lists a directory pair's source and queues its entries.
fn enqueue_entries(sh: &Shared<'_>, pair: Arc<Pair>) -> Result<()> {
    let entries =
        list_raw(&pair.src).map_err(|e| Error::errno(format!("list {}", pair.rel.display()), e))?;
    let tasks = entries.into_iter().map(|(name, _)| Task {
        parent: pair.clone(),
        name,
    });
    sh.work.push(tasks);
    Ok(())
}

fn run(sh: &Shared<'_>, task: Task) -> Result<()> {
    let Task { parent, name } = task;
    let p = &*parent;
    let st = match statat(&p.src, &name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        // Removed since the listing: nothing to copy.
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(at(&p.rel, &name, e, "stat")),
    };
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind == FileType::Directory {
        return copy_dir(sh, &parent, name, st);
    }
    let rel = p.rel.join(&name);
    if st.st_nlink > 1 {
        let mut links = sh.links.lock().unwrap_or_else(|p| p.into_inner());
        let key = (st.st_dev as u64, st.st_ino as u64);
        if let Some(first) = links.get(&key) {
            let pair = (first.clone(), rel);
            sh.deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(pair);
            return Ok(());
        }
        links.insert(key, rel);
    }
    let c = &sh.counts;
    match kind {
        FileType::RegularFile => copy_file(p, &name, c),
        FileType::Symlink => {
            let target = readlinkat(&p.src, &name, Vec::new())
                .map_err(|e| at(&p.rel, &name, e, "readlink"))?;
            symlinkat(target.as_c_str(), &p.dst, &name)
                .map_err(|e| at(&p.rel, &name, e, "symlink"))?;
            meta::apply_link(&p.dst, &name, &st, c).map_err(|e| at(&p.rel, &name, e, "set"))?;
            c.add(&c.symlinks, 1);
            Ok(())
        }
        FileType::Fifo => {
            let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
            mknodat(&p.dst, &name, FileType::Fifo, mode, 0)
                .and_then(|()| chmodat(&p.dst, &name, mode, AtFlags::empty()))
                .map_err(|e| at(&p.rel, &name, e, "mkfifo"))?;
            meta::apply_link(&p.dst, &name, &st, c).map_err(|e| at(&p.rel, &name, e, "set"))?;
            c.add(&c.fifos, 1);
            Ok(())
        }
        _ => {
            tracing::warn!(entry = %p.rel.join(&name).display(), "socket or device node not copied");
            c.add(&c.skipped, 1);
            Ok(())
        }
    }
}

fn copy_dir(sh: &Shared<'_>, parent: &Pair, name: OsString, st: Stat) -> Result<()> {
    let src = match openat(&parent.src, &name, DIR, Mode::empty()) {
        Err(Errno::NOENT) => return Ok(()),
        other => other.map_err(|e| at(&parent.rel, &name, e, "open"))?,
    };
    // Writable by us until the end, when the source's mode is applied.
    mkdirat(&parent.dst, &name, Mode::from_raw_mode(0o700))
        .map_err(|e| at(&parent.rel, &name, e, "mkdir"))?;
    let dst = openat(&parent.dst, &name, DIR, Mode::empty())
        .map_err(|e| at(&parent.rel, &name, e, "open"))?;
    let rel = parent.rel.join(&name);
    sh.dirs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((rel.clone(), st));
    sh.counts.add(&sh.counts.dirs, 1);
    enqueue_entries(sh, Arc::new(Pair { src, dst, rel }))
}

fn copy_file(p: &Pair, name: &OsStr, counts: &Counts) -> Result<()> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let src = match openat(&p.src, name, flags | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME needs the file's owner (or CAP_FOWNER).
        Err(Errno::PERM) => openat(&p.src, name, flags, Mode::empty()),
        other => other,
    };
    let src = match src {
        Err(Errno::NOENT) => return Ok(()),
        other => other.map_err(|e| at(&p.rel, name, e, "open"))?,
    };
    let st = fstat(&src).map_err(|e| at(&p.rel, name, e, "stat"))?;
    let (dst, now) = create(&p.dst, name, &st).map_err(|e| at(&p.rel, name, e, "create"))?;
    let allocated = st.st_blocks as u64 * 512;
    let (method, bytes) = data::copy_data(&src, &dst, st.st_size as u64, allocated)
        .map_err(|e| at(&p.rel, name, e, "copy"))?;
    meta::apply(&src, &dst, &st, &now, counts).map_err(|e| at(&p.rel, name, e, "set"))?;
    counts.method(method, bytes);
    Ok(())
}

/// Creates the copy `name` of the file `st` describes in `dir` (a directory this copy made) and
/// returns it open for writing, with its stat. Its permission bits are given at creation when they
/// let the owner write, so that no chmod follows (set-id bits wait for the owner). Not `O_EXCL`:
/// over NFSv4.1+ an exclusive create costs a SETATTR more. What `O_EXCL` would guard against is
/// refused all the same: the name never follows a symlink (`O_NOFOLLOW`), and an entry that was
/// already there, other than an empty file of one link (which the copy may fill), is an error.
fn create(dir: &OwnedFd, name: &OsStr, st: &Stat) -> io::Result<(OwnedFd, Stat)> {
    let perm = st.st_mode & 0o777;
    let mode = if perm & 0o200 != 0 { perm } else { 0o600 };
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    let now = fstat(&fd)?;
    if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
        || now.st_size != 0
        || now.st_nlink != 1
    {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    Ok((fd, now))
}

/// Opens the directory at `rel` below `root`, one component at a time, never following a symlink.
fn open_rel(root: &OwnedFd, rel: &Path) -> Result<OwnedFd> {
    let mut dir = root
        .try_clone()
        .map_err(|e| Error::io("dup directory", e))?;
    for part in rel.components() {
        let Component::Normal(name) = part else {
            return Err(Error::invalid(format!(
                "{}: not a plain path",
                rel.display()
            )));
        };
        dir = openat(&dir, name, DIR, Mode::empty())
            .map_err(|e| Error::io(format!("open {}", rel.display()), e.into()))?;
    }
    Ok(dir)
}

fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or_default(),
    )
}

/// Hard links, then directory metadata (deepest first, so a read-only directory is closed last),
/// then the top directory's.
fn finish(sh: &Shared<'_>, src: &OwnedFd, dst: &OwnedFd) -> Result<()> {
    let deferred = std::mem::take(&mut *sh.deferred.lock().unwrap_or_else(|p| p.into_inner()));
    for (first, new) in deferred {
        let ((fp, fname), (np, nname)) = (split(&first), split(&new));
        let (from, to) = (open_rel(dst, fp)?, open_rel(dst, np)?);
        linkat(&from, fname, &to, nname, AtFlags::empty())
            .map_err(|e| Error::io(format!("link {}", new.display()), e.into()))?;
        sh.counts.add(&sh.counts.hard_links, 1);
    }
    let mut dirs = std::mem::take(&mut *sh.dirs.lock().unwrap_or_else(|p| p.into_inner()));
    dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, st) in dirs {
        let (s, d) = (open_rel(src, &rel)?, open_rel(dst, &rel)?);
        let set = |e| Error::io(format!("set {}", rel.display()), e);
        let now = fstat(&d).map_err(|e| set(e.into()))?;
        meta::apply(&s, &d, &st, &now, &sh.counts).map_err(set)?;
    }
    let set = |e| Error::io("set top directory", e);
    let st = fstat(src).map_err(|e| set(e.into()))?;
    let now = fstat(dst).map_err(|e| set(e.into()))?;
    meta::apply(src, dst, &st, &now, &sh.counts).map_err(set)?;
    Ok(())
}

/// See [`super::measure`].
pub fn measure(dir: &OwnedFd) -> io::Result<Usage> {
    let mut usage = Usage {
        entries: 1,
        ..Usage::default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(Arc<OwnedFd>, OsString)> = Vec::new();
    let mut visit = |parent: Arc<OwnedFd>, stack: &mut Vec<(Arc<OwnedFd>, OsString)>| {
        for (name, _) in list_raw(&parent).map_err(io::Error::from)? {
            let st = match statat(&*parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => continue,
                other => other?,
            };
            usage.entries += 1;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => stack.push((parent.clone(), name)),
                FileType::RegularFile
                    if (st.st_nlink <= 1 || seen.insert((st.st_dev as u64, st.st_ino as u64))) =>
                {
                    usage.allocated += st.st_blocks as u64 * 512;
                }
                _ => {}
            }
        }
        Ok::<_, io::Error>(())
    };
    visit(Arc::new(dir.try_clone()?), &mut stack)?;
    while let Some((parent, name)) = stack.pop() {
        match openat(&*parent, &name, DIR, Mode::empty()) {
            Ok(fd) => visit(Arc::new(fd), &mut stack)?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(usage)
}
