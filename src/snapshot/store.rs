//! Snapshots and restores on a share, crash-safe: work goes to a `.tmp-<run>-<uuid>` directory in
//! the driver's state area and is synced and renamed into place only when complete, so a crash or
//! `kill -9` never leaves anything that looks ready; the next run removes what earlier runs left.
//!
//! ```text
//! <share>/.nfs-subdir-csi/snapshots/<snapshot dir>/meta.json   name, source, time, size
//! <share>/.nfs-subdir-csi/snapshots/<snapshot dir>/data/       the volume's tree (format copy)
//! <share>/.nfs-subdir-csi/snapshots/<snapshot dir>/data.tar.zst  or its archive (tar.zst)
//! <share>/.nfs-subdir-csi/snapshots/.tmp-<run>-<uuid>/         a snapshot being cut
//! <share>/.nfs-subdir-csi/restore/.tmp-<run>-<uuid>/           a volume being filled
//! ```
//!
//! Plain blocking calls; callers run them off the async runtime.

use super::archive::{self, ARCHIVE};
use super::id::Format;
use super::space::{check_space, ensure_room};
use crate::copy::{self, Options, Summary};
use crate::error::{Error, Result};
use crate::share::ShareRoot;
use crate::share::fs::{self as sfs, lstat, open_dir, open_parent, rename_noreplace};
use crate::volume::{SubDir, path::STATE_DIR};
use nix::errno::Errno;
use nix::sys::stat::{Mode, mkdirat};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// What is kept with a snapshot's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Layout version of this file.
    pub version: u32,
    /// The CO's name for the snapshot.
    pub name: String,
    /// The snapshot's id (so a listing needs nothing else).
    pub snapshot_id: String,
    /// The source volume's id as given to CreateSnapshot.
    pub source_volume_id: String,
    /// When the snapshot was cut: seconds and nanoseconds since the Unix epoch.
    pub created_secs: i64,
    /// See `created_secs`.
    pub created_nanos: u32,
    /// Bytes allocated to the source's files when it was cut (what a restore needs); for
    /// `tar.zst`, the archive's size.
    pub size_bytes: u64,
    /// Bytes allocated to the source's files when it was cut, in every format: what a restore
    /// needs free (0 in snapshots cut before it was recorded).
    #[serde(default)]
    pub restore_bytes: u64,
}

/// Where a restore reads from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A ready snapshot's data, by snapshot directory.
    Snapshot(String),
    /// A volume's directory (a clone).
    Volume(SubDir),
    /// A csi-driver-nfs snapshot: `<share>/<dir>/<source>.tar.gz` (or `.tar`).
    CsiDriverNfs {
        /// The snapshot's directory below the share root.
        dir: String,
        /// The source volume's name.
        source: String,
    },
}

const TMP: &str = ".tmp-";

/// The name of a temporary directory of the run `run`.
pub fn temp_name(run: &str) -> String {
    format!("{TMP}{run}-{}", uuid::Uuid::new_v4().simple())
}

/// Opens (making it with `create`) `.nfs-subdir-csi/<name>`; `None` when absent and not created.
fn area(root: &ShareRoot, name: &str, create: bool) -> Result<Option<OwnedFd>> {
    let mut dir = sfs::dup(root.dir())?;
    for (part, mode) in [(STATE_DIR, 0o755), (name, 0o700)] {
        dir = match open_dir(&dir, part) {
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                match mkdirat(&dir, part, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::errno(format!("mkdir {part}"), e)),
                }
                open_dir(&dir, part)
            }
            other => other,
        }
        .map_err(|e| Error::errno(format!("open {STATE_DIR}/{name}"), e))?;
    }
    Ok(Some(dir))
}

/// The metadata of the ready snapshot `dir`, if there is one.
pub fn read_meta(root: &ShareRoot, dir: &str) -> Result<Option<Meta>> {
    let Some(snaps) = area(root, "snapshots", false)? else {
        return Ok(None);
    };
    let snap = match open_dir(&snaps, dir) {
        Err(Errno::ENOENT) => return Ok(None),
        other => other.map_err(|e| Error::errno(format!("open snapshot {dir}"), e))?,
    };
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW;
    let fd = nix::fcntl::openat(
        &snap,
        "meta.json",
        flags | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::errno(format!("open snapshot {dir}/meta.json"), e))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("read snapshot {dir}/meta.json"), e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::FailedPrecondition(format!("snapshot {dir}: unreadable meta.json: {e}"))
    })
}

/// Every ready snapshot on the share, by directory name, sorted. Unreadable ones are logged.
pub fn list(root: &ShareRoot) -> Result<Vec<(String, Meta)>> {
    let Some(snaps) = area(root, "snapshots", false)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for dir in sfs::list(&snaps)?
        .into_iter()
        .filter(|d| !d.starts_with('.'))
    {
        match read_meta(root, &dir) {
            Ok(Some(meta)) => out.push((dir, meta)),
            Ok(None) => {}
            Err(e) => tracing::warn!(snapshot = %dir, error = %e, "snapshot not listed"),
        }
    }
    Ok(out)
}

/// What unpacking `archive` (of `source`) needs free, and where the figure comes from: the
/// bytes the source's files had allocated, recorded when this driver cut the snapshot; else
/// (a snapshot cut before that was recorded, or csi-driver-nfs's archive, which records
/// nothing) the archive's own size, a lower bound in practice: file data is most of a tar, and
/// gzip or zstd only make it smaller, so the unpacked files need at least that much. (An archive
/// of mostly empty files or holes unpacks to less: on a share with less free space than such an
/// archive's own size, its restore is refused although it might fit.)
fn archive_needs(
    src_root: &ShareRoot,
    source: &Source,
    archive: &std::fs::File,
) -> Result<(u64, &'static str)> {
    if let Source::Snapshot(dir) = source {
        let recorded = read_meta(src_root, dir)?.map_or(0, |m| m.restore_bytes);
        if recorded > 0 {
            return Ok((recorded, "the snapshot's files held"));
        }
    }
    let size = archive
        .metadata()
        .map_err(|e| Error::io("stat the snapshot archive", e))?
        .len();
    Ok((size, "the archive alone holds"))
}

/// Cuts the snapshot `dir` of the volume `source`: copies it into `temp`, writes `meta` (with the
/// measured size, or the archive's size for `tar.zst`), syncs, and renames it into place. A
/// snapshot already in place is kept.
pub fn cut(
    root: &ShareRoot,
    source: &SubDir,
    format: Format,
    dir: &str,
    mut meta: Meta,
    temp: &str,
    opts: &Options,
) -> Result<Summary> {
    let snaps = area(root, "snapshots", true)?.expect("created");
    let src = root.open_volume(source)?;
    meta.size_bytes = check_space(&src, &snaps)?;
    meta.restore_bytes = meta.size_bytes;
    mkdirat(&snaps, temp, Mode::from_bits_truncate(0o700))
        .map_err(|e| Error::errno(format!("mkdir snapshot {temp}"), e))?;
    let result = (|| {
        let tmp = open_dir(&snaps, temp).map_err(|e| Error::errno("open snapshot temp", e))?;
        let summary = match format {
            Format::Copy => {
                mkdirat(&tmp, "data", Mode::from_bits_truncate(0o700))
                    .map_err(|e| Error::errno("mkdir snapshot data", e))?;
                let data =
                    open_dir(&tmp, "data").map_err(|e| Error::errno("open snapshot data", e))?;
                copy::copy_tree(&src, &data, opts)?
            }
            Format::TarZst => {
                let flags = nix::fcntl::OFlag::O_WRONLY
                    | nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_EXCL
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC;
                let fd = nix::fcntl::openat(&tmp, ARCHIVE, flags, Mode::from_bits_truncate(0o600))
                    .map_err(|e| Error::errno("create the snapshot archive", e))?;
                let (file, skipped) = archive::pack(&src, fd.into(), &opts.cancel)?;
                meta.size_bytes = file
                    .metadata()
                    .map_err(|e| Error::io("stat the snapshot archive", e))?
                    .len();
                Summary {
                    skipped,
                    ..Summary::default()
                }
            }
        };
        write_meta(&tmp, &meta)?;
        rustix::fs::syncfs(&tmp).map_err(|e| Error::io("sync snapshot", e.into()))?;
        match rename_noreplace(&snaps, temp, &snaps, dir) {
            Ok(()) => {}
            // Cut meanwhile by another controller: that one stands.
            Err(rustix::io::Errno::EXIST) => discard(&snaps, temp),
            Err(e) => {
                return Err(Error::io(
                    format!("rename snapshot {dir} into place"),
                    e.into(),
                ));
            }
        }
        rustix::fs::fsync(&snaps).map_err(|e| Error::io("sync snapshots", e.into()))?;
        Ok(summary)
    })();
    if result.is_err() {
        discard(&snaps, temp);
    }
    result
}

fn write_meta(dir: &OwnedFd, meta: &Meta) -> Result<()> {
    let flags = nix::fcntl::OFlag::O_WRONLY
        | nix::fcntl::OFlag::O_CREAT
        | nix::fcntl::OFlag::O_EXCL
        | nix::fcntl::OFlag::O_NOFOLLOW
        | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, "meta.json", flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::errno("create meta.json", e))?;
    let text = serde_json::to_vec(meta).map_err(|e| Error::io("encode meta.json", e.into()))?;
    std::fs::File::from(fd)
        .write_all(&text)
        .map_err(|e| Error::io("write meta.json", e))
}

fn discard(parent: &OwnedFd, name: &str) {
    if let Err(e) = crate::share::remove::remove_tree(parent, name) {
        tracing::warn!(temp = name, error = %e, "temporary tree not removed; removed at next start");
    }
}

/// Fills a new volume directory `target` from `source` (read on `src_root`): copies into a
/// temporary directory on `dst_root`, syncs, and renames it to `target` last (parents made with
/// `parent_mode`). Returns false, leaving everything as it was, when `target` appeared meanwhile.
pub fn restore(
    src_root: &ShareRoot,
    source: &Source,
    dst_root: &ShareRoot,
    target: &SubDir,
    parent_mode: u32,
    temp: &str,
    opts: &Options,
) -> Result<bool> {
    // A tree to copy, or an archive to unpack.
    let (src, packed) = match source {
        Source::Volume(sub) => (src_root.open_volume(sub)?, None),
        Source::Snapshot(dir) => {
            let missing = || Error::NotFound(format!("snapshot {dir} is not on the share"));
            let snaps = area(src_root, "snapshots", false)?.ok_or_else(missing)?;
            let snap = open_dir(&snaps, dir.as_str()).map_err(|_| missing())?;
            let flags = nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC;
            match nix::fcntl::openat(&snap, ARCHIVE, flags, Mode::empty()) {
                Ok(fd) => (
                    snap,
                    Some((std::fs::File::from(fd), archive::Packing::Zstd)),
                ),
                Err(Errno::ENOENT) => (
                    open_dir(&snap, "data")
                        .map_err(|e| Error::errno(format!("open snapshot {dir} data"), e))?,
                    None,
                ),
                Err(e) => return Err(Error::errno(format!("open snapshot {dir} archive"), e)),
            }
        }
        Source::CsiDriverNfs { dir, source } => {
            let (snap, file, packing) = super::legacy::open_archive(src_root, dir, source)?;
            (snap, Some((file, packing)))
        }
    };
    let restores = area(dst_root, "restore", true)?.expect("created");
    match &packed {
        None => {
            check_space(&src, &restores)?;
        }
        Some((archive, _)) => {
            let (needed, what) = archive_needs(src_root, source, archive)?;
            ensure_room(&restores, needed, what)?;
        }
    }
    mkdirat(&restores, temp, Mode::from_bits_truncate(0o700))
        .map_err(|e| Error::errno(format!("mkdir restore {temp}"), e))?;
    let result = (|| {
        let tmp = open_dir(&restores, temp).map_err(|e| Error::errno("open restore temp", e))?;
        match packed {
            Some((file, packing)) => archive::unpack(file, packing, &tmp, &opts.cancel)?,
            None => {
                copy::copy_tree(&src, &tmp, opts)?;
            }
        }
        rustix::fs::syncfs(&tmp).map_err(|e| Error::io("sync restore", e.into()))?;
        let (parent, last) = open_parent(dst_root.dir(), target, Some(parent_mode | 0o700))?;
        match rename_noreplace(&restores, temp, &parent, last) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                discard(&restores, temp);
                return Ok(false);
            }
            Err(e) => {
                return Err(Error::io(
                    format!("rename restored {target} into place"),
                    e.into(),
                ));
            }
        }
        rustix::fs::fsync(&parent).map_err(|e| Error::io("sync volume parent", e.into()))?;
        Ok(true)
    })();
    if result.is_err() {
        discard(&restores, temp);
    }
    result
}

/// A ready snapshot moved to the trash: the trash directory and the entry's name there.
pub type Trashed = (OwnedFd, String);

/// Moves the ready snapshot `dir` to the share's trash; `None` when it is not there. With
/// `create_state` false a share this driver never wrote to is left untouched.
pub fn remove(root: &ShareRoot, dir: &str, create_state: bool) -> Result<Option<Trashed>> {
    let Some(snaps) = area(root, "snapshots", false)? else {
        return Ok(None);
    };
    if matches!(lstat(&snaps, dir), Err(Errno::ENOENT)) {
        return Ok(None);
    }
    let trash = area(root, "trash", create_state)?
        .ok_or_else(|| Error::FailedPrecondition("the share has no trash directory".into()))?;
    let name = format!("snapshot-{}", uuid::Uuid::new_v4().simple());
    match rename_noreplace(&snaps, dir, &trash, name.as_str()) {
        Ok(()) => Ok(Some((trash, name))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io(format!("move snapshot {dir} to trash"), e.into())),
    }
}

/// Removes the temporary trees that runs other than `run` left (a crash, a kill, a restart).
/// Returns how many went.
pub fn sweep(root: &ShareRoot, run: &str) -> Result<usize> {
    let mine = format!("{TMP}{run}-");
    let mut removed = 0;
    for area_name in ["snapshots", "restore"] {
        let Some(dir) = area(root, area_name, false)? else {
            continue;
        };
        for name in sfs::list(&dir)? {
            if name.starts_with(TMP) && !name.starts_with(&mine) {
                tracing::info!(area = area_name, temp = %name, "removing what an earlier run left");
                discard(&dir, &name);
                removed += 1;
            }
        }
    }
    Ok(removed)
}
