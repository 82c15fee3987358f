//! The `tar.zst` snapshot format: one GNU tar stream compressed with zstd, written from a volume
//! reached only through `O_NOFOLLOW` directory descriptors, and unpacked into a private temporary
//! directory, refusing whole any archive with an entry that could land outside it. The same
//! unpacking reads csi-driver-nfs's `.tar.gz` (and plain `.tar`) snapshots.
//!
//! Kept: the tree (directories, regular files, symlinks as symlinks, never followed, hard links as
//! hard links, FIFOs), mode with set-id bits, numeric owner and group, modification time to the
//! second, holes of sparse files (GNU sparse entries). Not kept: extended attributes and ACLs,
//! access times, sub-second times. Sockets and device nodes are skipped, as by the copy engine.

mod file;

use crate::error::{Error, Result};
use crate::share::fs::list_raw;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The archive's name inside a snapshot directory.
pub const ARCHIVE: &str = "data.tar.zst";

/// zstd's compression level. 3 (zstd's default) made archives ~1% larger than `gzip -6` on the
/// benchmark's tree of text and random data; 6 makes them ~2% smaller at about twice level 3's CPU
/// time, still ~3× less than gzip's (README, Snapshots and clones, Speed).
const LEVEL: i32 = 6;

const DIR: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

struct Packer<'a> {
    tar: tar::Builder<zstd::Encoder<'static, File>>,
    /// First archived path of each multiply-linked inode.
    links: HashMap<(u64, u64), PathBuf>,
    cancel: &'a AtomicBool,
    skipped: u64,
}

/// Writes the tree below the directory `src` as a tar.zst stream to `out`, syncs it, and returns
/// the file and the number of entries skipped (sockets, device nodes).
pub fn pack(src: &OwnedFd, out: File, cancel: &AtomicBool) -> Result<(File, u64)> {
    let enc = zstd::Encoder::new(out, LEVEL).map_err(|e| Error::io("start zstd", e))?;
    let mut p = Packer {
        tar: tar::Builder::new(enc),
        links: HashMap::new(),
        cancel,
        skipped: 0,
    };
    let st = rustix::fs::fstat(src).map_err(|e| Error::io("stat the source", e.into()))?;
    p.add_dir(src, Path::new("."), &st)?;
    let file = p
        .tar
        .into_inner()
        .and_then(zstd::Encoder::finish)
        .map_err(|e| Error::io("finish the archive", e))?;
    file.sync_all()
        .map_err(|e| Error::io("sync the archive", e))?;
    Ok((file, p.skipped))
}

fn header(st: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl Packer<'_> {
    fn add_dir(&mut self, dir: &OwnedFd, rel: &Path, st: &Stat) -> Result<()> {
        let mut h = header(st, tar::EntryType::Directory);
        self.tar
            .append_data(&mut h, rel, io::empty())
            .map_err(|e| Error::io(format!("archive {}", rel.display()), e))?;
        let mut names = list_raw(dir).map_err(|e| Error::errno("list a directory", e))?;
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, _) in names {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::io("archive", io::ErrorKind::Interrupted.into()));
            }
            let path = rel.join(&name);
            let err = |e: io::Error| Error::io(format!("archive {}", path.display()), e);
            let st = rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| err(e.into()))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let sub = rustix::fs::openat(dir, name.as_os_str(), DIR, Mode::empty())
                        .map_err(|e| err(e.into()))?;
                    self.add_dir(&sub, &path, &st)?;
                }
                FileType::RegularFile => {
                    let key = (st.st_dev, st.st_ino);
                    if st.st_nlink > 1 {
                        if let Some(first) = self.links.get(&key) {
                            let mut h = header(&st, tar::EntryType::Link);
                            let first = first.clone();
                            self.tar.append_link(&mut h, &path, first).map_err(err)?;
                            continue;
                        }
                        self.links.insert(key, path.clone());
                    }
                    // Sparse detection costs two SEEKs (round trips over NFSv4.2) per file.
                    let allocated = st.st_blocks as u64 * 512;
                    self.tar
                        .sparse(!crate::copy::dense(st.st_size as u64, allocated));
                    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let fd = rustix::fs::openat(dir, name.as_os_str(), flags, Mode::empty())
                        .map_err(|e| err(e.into()))?;
                    self.tar
                        .append_file(&path, &mut File::from(fd))
                        .map_err(err)?;
                }
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(dir, name.as_os_str(), Vec::new())
                        .map_err(|e| err(e.into()))?;
                    let target: std::ffi::OsString =
                        std::os::unix::ffi::OsStringExt::from_vec(target.into_bytes());
                    let target = PathBuf::from(target);
                    let mut h = header(&st, tar::EntryType::Symlink);
                    self.tar.append_link(&mut h, &path, target).map_err(err)?;
                }
                FileType::Fifo => {
                    let mut h = header(&st, tar::EntryType::Fifo);
                    self.tar
                        .append_data(&mut h, &path, io::empty())
                        .map_err(err)?;
                }
                _ => self.skipped += 1,
            }
        }
        Ok(())
    }
}

/// True when `path` only names things below the directory it is taken in.
fn contained(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// True when an unpack error (the tar crate wraps the filesystem's) is a full filesystem or quota.
fn full(e: &io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        {
            return true;
        }
        cur = err.source().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static))
        });
    }
    false
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::FailedPrecondition(format!(
        "snapshot archive refused: entry {:?} {why}",
        crate::volume::path::shorten(&path.to_string_lossy())
    ))
}

/// Makes the FIFO `path` below `dst` with the header's owner, mode and time, reaching its parent
/// through `O_NOFOLLOW` descriptors only (a symlink planted by an earlier entry is refused).
fn make_fifo(dst: &OwnedFd, path: &Path, h: &tar::Header) -> Result<()> {
    let err = |e: rustix::io::Errno| Error::io(format!("make FIFO {}", path.display()), e.into());
    let bad = |e: io::Error| Error::io(format!("read FIFO {}", path.display()), e);
    let names: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = names.split_last() else {
        return Err(refuse(path, "names the volume itself"));
    };
    let mut dir = dst.try_clone().map_err(|e| Error::io("dup", e))?;
    for name in parents {
        dir = rustix::fs::openat(&dir, *name, DIR, Mode::empty())
            .map_err(|_| refuse(path, "is not below plain directories"))?;
    }
    let mode = Mode::from_raw_mode(h.mode().map_err(bad)? & 0o7777);
    rustix::fs::mknodat(&dir, *last, FileType::Fifo, mode, 0).map_err(err)?;
    let (uid, gid) = (h.uid().map_err(bad)? as u32, h.gid().map_err(bad)? as u32);
    rustix::fs::chownat(
        &dir,
        *last,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(err)?;
    rustix::fs::chmodat(&dir, *last, mode, AtFlags::empty()).map_err(err)?;
    let t = Timespec {
        tv_sec: h.mtime().unwrap_or(0) as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(&dir, *last, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err)
}

/// How an archive's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// zstd (this driver's `tar.zst`).
    Zstd,
    /// gzip (csi-driver-nfs's `.tar.gz`).
    Gzip,
    /// None (a plain `.tar`).
    Plain,
}

impl Packing {
    /// Recognises the packing of `file` from its first bytes (gzip and zstd magic numbers, else
    /// the `ustar` mark of a tar header); anything else is [`Error::FailedPrecondition`].
    pub fn sniff(file: &File) -> Result<Packing> {
        let mut head = [0u8; 512];
        let mut got = 0;
        while got < head.len() {
            match std::os::unix::fs::FileExt::read_at(file, &mut head[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read the archive", e)),
            }
        }
        match head[..got] {
            [0x1f, 0x8b, ..] => Ok(Packing::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Ok(Packing::Zstd),
            _ if got == 512 && head[257..262] == *b"ustar" => Ok(Packing::Plain),
            _ => Err(Error::FailedPrecondition(
                "snapshot archive refused: neither gzip, zstd nor a tar stream".into(),
            )),
        }
    }
}

/// Unpacks the archive `archive`, packed as `packing`, into the empty directory `dst`. Any entry
/// that is not a plain relative name below `dst`, any device node, and any path through a symlink
/// out of `dst` makes the whole archive refused ([`Error::FailedPrecondition`]); the caller
/// removes what was written.
pub fn unpack(archive: File, packing: Packing, dst: &OwnedFd, cancel: &AtomicBool) -> Result<()> {
    match packing {
        Packing::Zstd => {
            let dec = zstd::Decoder::new(archive).map_err(|e| Error::io("open the archive", e))?;
            unpack_tar(dec, dst, cancel)
        }
        // Multi-member, as `gzip` and `pigz` may write.
        Packing::Gzip => unpack_tar(flate2::read::MultiGzDecoder::new(archive), dst, cancel),
        Packing::Plain => unpack_tar(io::BufReader::new(archive), dst, cancel),
    }
}

fn unpack_tar(stream: impl io::Read, dst: &OwnedFd, cancel: &AtomicBool) -> Result<()> {
    // The directory itself, whatever path leads to it (the tar crate works with paths).
    let base = PathBuf::from(format!("/proc/self/fd/{}", dst.as_raw_fd()));
    let mut ar = tar::Archive::new(stream);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(false);
    ar.set_unpack_xattrs(false);
    let read = |e: io::Error| match e.raw_os_error() {
        Some(_) => Error::io("read the archive", e),
        // Not the filesystem's: a corrupt or truncated stream.
        None => Error::FailedPrecondition(format!(
            "snapshot archive refused: unreadable: {}",
            crate::volume::path::shorten(&e.to_string())
        )),
    };
    let mut dirs = Vec::new();
    let mut last: file::Parent = None;
    for entry in ar.entries().map_err(read)? {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::io("unpack", io::ErrorKind::Interrupted.into()));
        }
        let mut entry = entry.map_err(read)?;
        let path = entry.path().map_err(read)?.into_owned();
        if !contained(&path) {
            return Err(refuse(&path, "leaves the volume (absolute or ..)"));
        }
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        match kind {
            T::Regular | T::Continuous | T::GNUSparse | T::Directory | T::Symlink | T::Fifo => {}
            T::Link => {
                let target = entry.link_name().map_err(read)?.unwrap_or_default();
                if !contained(&target) {
                    return Err(refuse(&path, "is a hard link out of the volume"));
                }
            }
            other => return Err(refuse(&path, &format!("has a refused type {other:?}"))),
        }
        let top = !path.components().any(|c| matches!(c, Component::Normal(_)));
        if top && kind == T::Directory {
            // The tar crate skips the directory itself: give it the archived owner and mode.
            let h = entry.header();
            let uid = h.uid().map_err(read)? as u32;
            let gid = h.gid().map_err(read)? as u32;
            let mode = h.mode().map_err(read)? & 0o7777;
            let top = |e: rustix::io::Errno| Error::io("restore the top directory", e.into());
            rustix::fs::fchown(
                dst,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(top)?;
            rustix::fs::fchmod(dst, Mode::from_raw_mode(mode)).map_err(top)?;
            dirs.push((path, h.mtime().unwrap_or(0)));
            continue;
        } else if top {
            return Err(refuse(&path, "names the volume itself"));
        }
        if kind == T::Fifo {
            // The tar crate would make a regular file of it.
            make_fifo(dst, &path, entry.header())?;
            continue;
        }
        if matches!(kind, T::Regular | T::Continuous | T::GNUSparse)
            && file::unpack(&mut entry, dst, &path, &mut last)?
        {
            continue;
        }
        match entry.unpack_in(&base) {
            Ok(true) => {}
            Ok(false) => return Err(refuse(&path, "leaves the volume")),
            Err(e) if full(&e) => {
                // The share filled up: not the archive's fault (RESOURCE_EXHAUSTED, not refused).
                let path = path.display();
                return Err(Error::NoSpace(format!(
                    "unpack {path}: the share is full ({e})"
                )));
            }
            Err(e) => {
                // The tar crate's error says what it did; its source says why it failed.
                let why = std::error::Error::source(&e)
                    .or_else(|| e.get_ref().and_then(|i| i.source()))
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                return Err(refuse(
                    &path,
                    &format!("cannot be unpacked inside: {e}{why}"),
                ));
            }
        }
        if kind == T::Directory {
            dirs.push((path, entry.header().mtime().unwrap_or(0)));
        }
    }
    // Entries written into a directory changed its time: put the archived one back, deepest first.
    for (path, mtime) in dirs.iter().rev() {
        let t = Timespec {
            tv_sec: *mtime as i64,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(dst, path.as_path(), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(format!("set the time of {}", path.display()), e.into()))?;
    }
    Ok(())
}
