//! The raw Linux calls behind project quotas, the crate's only `unsafe` code: `quotactl_fd(2)` on
//! PRJQUOTA (state, get and set a project's limits) and the `FS_IOC_FSGETXATTR` /
//! `FS_IOC_FSSETXATTR` ioctls (a directory's project id and inherit flag). Works for XFS and ext4
//! alike: the kernel's generic quota commands reach both. Needs Linux 5.14+ (quotactl_fd).
#![allow(unsafe_code)]

use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd};

/// Quota type of projects (`PRJQUOTA` in linux/quota.h).
const PRJQUOTA: u32 = 2;
/// `Q_XGETQSTATV` (linux/dqblk_xfs.h: XQM_CMD(8)): quota state, versioned struct.
const Q_XGETQSTATV: u32 = (('X' as u32) << 8) + 8;
/// `FS_QSTATV_VERSION1`.
const FS_QSTATV_VERSION1: i8 = 1;
/// `FS_QUOTA_PDQ_ACCT` / `FS_QUOTA_PDQ_ENFD`: project quota accounting / enforcement is on.
const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;
/// `FS_XFLAG_PROJINHERIT`: new entries in a directory take its project id.
const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;
/// `_IOR('X', 31, struct fsxattr)` and `_IOW('X', 32, struct fsxattr)` (28-byte struct).
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
/// Quota block size of `if_dqblk` limits (`QIF_DQBLKSIZE`).
pub const QUOTA_BLOCK: u64 = 1024;

/// `struct fsxattr` (linux/fs.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// `struct fs_qfilestatv` (linux/dqblk_xfs.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct QFileStatV {
    ino: u64,
    nblks: u64,
    nextents: u32,
    pad: u32,
}

/// `struct fs_quota_statv` (linux/dqblk_xfs.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct QuotaStatV {
    version: i8,
    pad1: u8,
    flags: u16,
    incoredqs: u32,
    uquota: QFileStatV,
    gquota: QFileStatV,
    pquota: QFileStatV,
    btimelimit: i32,
    itimelimit: i32,
    rtbtimelimit: i32,
    bwarnlimit: u16,
    iwarnlimit: u16,
    rtbwarnlimit: u16,
    pad3: u16,
    pad4: u32,
    pad2: [u64; 7],
}

/// Project quota state of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No project quota accounting.
    Off,
    /// Usage is accounted, limits are not enforced (XFS `pqnoenforce`).
    Accounting,
    /// Usage is accounted and limits enforced.
    Enforced,
}

/// One project's limit and usage, in bytes and inodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Hard block limit in bytes (0: none).
    pub limit_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Hard inode limit (0: none).
    pub limit_inodes: u64,
    /// Inodes in use.
    pub used_inodes: u64,
}

impl Usage {
    /// True when nothing is charged to the project and it has no limits.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

fn quotactl(fs: impl AsFd, cmd: u32, id: u32, addr: *mut libc::c_void) -> nix::Result<()> {
    let qcmd = (cmd << 8) | PRJQUOTA;
    // SAFETY: quotactl_fd reads or writes at most the struct the command names, and every caller
    // passes a pointer to a live value of exactly that #[repr(C)] type.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            fs.as_fd().as_raw_fd(),
            qcmd as libc::c_uint,
            id as libc::c_uint,
            addr,
        )
    };
    Errno::result(rc).map(drop)
}

/// The project quota state of the filesystem holding `fs`. A filesystem without quota support
/// (tmpfs, NFS, 9p) is [`State::Off`].
pub fn state(fs: impl AsFd) -> nix::Result<State> {
    let mut st = QuotaStatV {
        version: FS_QSTATV_VERSION1,
        ..Default::default()
    };
    match quotactl(fs, Q_XGETQSTATV, 0, (&raw mut st).cast()) {
        Ok(()) => {}
        Err(Errno::ENOSYS | Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::ESRCH) => {
            return Ok(State::Off);
        }
        Err(e) => return Err(e),
    }
    Ok(
        match (st.flags & FS_QUOTA_PDQ_ACCT, st.flags & FS_QUOTA_PDQ_ENFD) {
            (0, _) => State::Off,
            (_, 0) => State::Accounting,
            _ => State::Enforced,
        },
    )
}

/// Project `id`'s limits and usage. A project the filesystem has never seen, or a filesystem
/// without project quotas, gives all zeros.
pub fn get(fs: impl AsFd, id: u32) -> nix::Result<Usage> {
    // SAFETY: dqblk is plain integers; all zeros is a valid value.
    let mut q: libc::dqblk = unsafe { std::mem::zeroed() };
    match quotactl(fs, libc::Q_GETQUOTA as u32, id, (&raw mut q).cast()) {
        Ok(()) => Ok(Usage {
            limit_bytes: q.dqb_bhardlimit.saturating_mul(QUOTA_BLOCK),
            used_bytes: q.dqb_curspace,
            limit_inodes: q.dqb_ihardlimit,
            used_inodes: q.dqb_curinodes,
        }),
        // ENOENT: XFS has no dquot for this id yet; the others: no project quotas at all
        Err(Errno::ENOENT | Errno::ESRCH | Errno::ENOSYS | Errno::ENOTTY | Errno::EOPNOTSUPP) => {
            Ok(Usage::default())
        }
        Err(e) => Err(e),
    }
}

/// Sets project `id`'s hard block limit to `bytes` rounded up to whole KiB (0: no limit); soft
/// limits and inode limits are cleared.
pub fn set_limit(fs: impl AsFd, id: u32, bytes: u64) -> nix::Result<()> {
    // SAFETY: as in `get`.
    let mut q: libc::dqblk = unsafe { std::mem::zeroed() };
    q.dqb_bhardlimit = bytes.div_ceil(QUOTA_BLOCK);
    q.dqb_valid = libc::QIF_LIMITS;
    quotactl(fs, libc::Q_SETQUOTA as u32, id, (&raw mut q).cast())
}

fn get_xattr(dir: impl AsFd) -> nix::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR writes one struct fsxattr to the pointer.
    let rc = unsafe { libc::ioctl(dir.as_fd().as_raw_fd(), FS_IOC_FSGETXATTR, &raw mut x) };
    Errno::result(rc).map(|_| x)
}

/// The project id of the directory `dir` and whether it has the inherit flag.
pub fn project_of(dir: impl AsFd) -> nix::Result<(u32, bool)> {
    let x = get_xattr(dir)?;
    Ok((x.projid, x.xflags & FS_XFLAG_PROJINHERIT != 0))
}

/// Gives the directory `dir` project `id` and the inherit flag, so that everything made inside it
/// is charged to the project.
pub fn set_project(dir: impl AsFd, id: u32) -> nix::Result<()> {
    let mut x = get_xattr(&dir)?;
    x.projid = id;
    x.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: FS_IOC_FSSETXATTR reads one struct fsxattr from the pointer.
    let rc = unsafe { libc::ioctl(dir.as_fd().as_raw_fd(), FS_IOC_FSSETXATTR, &raw const x) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<QuotaStatV>(), 160);
        assert_eq!(std::mem::size_of::<libc::dqblk>(), 72);
    }

    #[test]
    fn a_filesystem_without_quotas_reads_as_off() {
        // The test's temp directory (tmpfs or ext4 without the quota feature here): no projects.
        let dir = tempfile::tempdir().unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        assert_eq!(state(&fd).unwrap(), State::Off);
    }
}
