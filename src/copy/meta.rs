//! Metadata of a copied entry: owner, extended attributes, mode and times, applied in the order
//! that keeps them (chown clears set-id bits and file capabilities, so it comes first).

use super::Counts;
use rustix::fs::{
    AtFlags, Gid, Mode, Stat, Timestamps, Uid, XattrFlags, chownat, fchmod, fchown, fgetxattr,
    flistxattr, fsetxattr, futimens, utimensat,
};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
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
/// `st`. An owner or attribute the target refuses (not root, no xattr support) is counted in
/// `counts`, not an error.
pub fn apply(src: &OwnedFd, dst: &OwnedFd, st: &Stat, counts: &Counts) -> io::Result<()> {
    match fchown(
        dst,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    ) {
        Ok(()) => {}
        Err(Errno::PERM | Errno::INVAL) => {
            counts.owners_kept_back.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => return Err(e.into()),
    }
    copy_xattrs(src, dst, counts)?;
    fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
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

/// Copies every extended attribute of `src` to `dst`. A source filesystem without xattrs has
/// none; one the target refuses is counted in `counts.xattrs_dropped`.
fn copy_xattrs(src: &OwnedFd, dst: &OwnedFd, counts: &Counts) -> io::Result<()> {
    let names = match list(src.as_fd()) {
        Ok(names) => names,
        Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let value = match get(src.as_fd(), name) {
            Ok(v) => v,
            // Gone meanwhile, or not readable by us.
            Err(Errno::NODATA | Errno::PERM | Errno::ACCESS | Errno::OPNOTSUPP) => continue,
            Err(e) => return Err(e.into()),
        };
        match fsetxattr(dst, name, &value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS | Errno::INVAL | Errno::NOSPC) => {
                counts.xattrs_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The NUL-separated attribute names of `fd`, sized by a first query (retried if they grew).
fn list(fd: std::os::fd::BorrowedFd<'_>) -> rustix::io::Result<Vec<u8>> {
    loop {
        let len = rustix::fs::flistxattr_query(fd)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; len];
        match flistxattr(fd, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn get(fd: std::os::fd::BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Vec<u8>> {
    loop {
        let len = rustix::fs::fgetxattr_query(fd, name)?;
        let mut buf = vec![0u8; len];
        match fgetxattr(fd, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}
