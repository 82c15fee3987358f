//! Metadata of a copied entry: owner, extended attributes, mode and times, applied in the order
//! that keeps them (chown clears set-id bits and file capabilities, so it comes first).

use super::Counts;
mod acl;

use rustix::fs::{
    AtFlags, Gid, Mode, Stat, Timestamps, Uid, XattrFlags, chownat, fchmod, fchown, fgetxattr,
    fgetxattr_query, flistxattr, flistxattr_query, fsetxattr, futimens, utimensat,
};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

/// The access and modification times of `st`, to the nanosecond.
pub fn times(st: &Stat) -> Timestamps {
    let ts = |sec: i64, nsec: u64| rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    Timestamps {
        last_access: ts(st.st_atime, st.st_atime_nsec),
        last_modification: ts(st.st_mtime, st.st_mtime_nsec),
    }
}

/// Gives the open copy `dst` the owner, extended attributes (read from `src`), mode and times of
/// `st`. `now` is the copy's current stat: an owner or mode it already has is not set again (each
/// is a SETATTR round trip on NFS). An owner or attribute the target refuses (not root, no xattr
/// support) is counted in `counts`, not an error.
pub fn apply(
    src: &OwnedFd,
    dst: &OwnedFd,
    st: &Stat,
    now: &Stat,
    counts: &Counts,
) -> io::Result<()> {
    let mode = st.st_mode & 0o7777;
    // chown clears set-id bits (and file capabilities), so the mode is set after it in that case.
    let mut chmod = now.st_mode & 0o7777 != mode;
    if (now.st_uid, now.st_gid) != (st.st_uid, st.st_gid) {
        match fchown(
            dst,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        ) {
            Ok(()) => chmod |= mode & 0o6000 != 0,
            Err(Errno::PERM | Errno::INVAL) => {
                counts.owners_kept_back.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // An ACL written as an attribute rewrites the mode's permission bits: the mode goes last.
    if copy_xattrs(src, dst, counts)? {
        chmod = true;
    }
    if chmod {
        fchmod(dst, Mode::from_raw_mode(mode))?;
    }
    futimens(dst, &times(st))?;
    Ok(())
}

/// Owner and times of a symlink `name` just made in `dir` (its mode means nothing on Linux).
pub fn apply_link(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    st: &Stat,
    counts: &Counts,
) -> io::Result<()> {
    let owner = chownat(
        dir,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    );
    match owner {
        Ok(()) => {}
        Err(Errno::PERM | Errno::INVAL) => {
            counts.owners_kept_back.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => return Err(e.into()),
    }
    utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copies every extended attribute of `src` to `dst` and says whether one of them was a
/// `system.*` attribute (an ACL). A source filesystem without xattrs has none; one the target
/// refuses is counted in `counts.xattrs_dropped`. An NFSv4 ACL that only restates the mode
/// (see [`acl::restates_mode`]) is not written: the mode set afterwards makes the same ACL, and
/// over NFS that saves a SETACL round trip per file.
fn copy_xattrs(src: &OwnedFd, dst: &OwnedFd, counts: &Counts) -> io::Result<bool> {
    let names = match list(src.as_fd()) {
        Ok(names) => names,
        Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut system = false;
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let value = match get(src.as_fd(), name) {
            Ok(v) => v,
            // Gone meanwhile, or not readable by us.
            Err(Errno::NODATA | Errno::PERM | Errno::ACCESS | Errno::OPNOTSUPP) => continue,
            Err(e) => return Err(e.into()),
        };
        if name == acl::NFS4_ACL && acl::restates_mode(&value) {
            continue;
        }
        match fsetxattr(dst, name, &value, XattrFlags::empty()) {
            Ok(()) => system |= name.starts_with(b"system."),
            Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS | Errno::INVAL | Errno::NOSPC) => {
                counts.xattrs_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(system)
}

/// The first buffer tried for attribute names and values: most fit, so one call (one round trip
/// on NFS) instead of a size query and a read.
const FIRST_TRY: usize = 4096;

/// The NUL-separated attribute names of `fd`.
fn list(fd: BorrowedFd<'_>) -> rustix::io::Result<Vec<u8>> {
    sized(|buf| flistxattr(fd, buf), || flistxattr_query(fd))
}

fn get(fd: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Vec<u8>> {
    sized(|buf| fgetxattr(fd, name, buf), || fgetxattr_query(fd, name))
}

/// Reads into a [`FIRST_TRY`] buffer; when that is too small, asks the size and reads again
/// (retried if it grew meanwhile).
fn sized(
    mut read: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    query: impl Fn() -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FIRST_TRY];
    loop {
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => buf = vec![0u8; query()?.max(buf.len() * 2)],
            Err(e) => return Err(e),
        }
    }
}
