//! Free-space checks made before a snapshot, a clone or a restore writes anything: a refusal is
//! RESOURCE_EXHAUSTED with the figures, and nothing is left half-written on a full share.

use crate::copy;
use crate::error::{Error, Result};
use std::os::fd::OwnedFd;

/// Refuses a copy of `src` that the filesystem of `dst` has no room for; returns the bytes the
/// source's files have allocated.
pub(super) fn check_space(src: &OwnedFd, dst: &OwnedFd) -> Result<u64> {
    let usage = copy::measure(src).map_err(|e| Error::io("measure the source", e))?;
    ensure_room(dst, usage.allocated, "the source holds")?;
    Ok(usage.allocated)
}

/// Refuses with [`Error::NoSpace`] (RESOURCE_EXHAUSTED) before anything is written when the
/// filesystem of `dst` has fewer than `needed` bytes free for non-root users (`what` says where
/// the figure comes from).
pub(super) fn ensure_room(dst: &OwnedFd, needed: u64, what: &str) -> Result<()> {
    let free = crate::share::root::statvfs_fd(dst).map_err(|e| Error::errno("statvfs", e))?;
    if free.available_bytes < needed {
        return Err(Error::NoSpace(format!(
            "{what} {needed} bytes, the share has {} bytes free",
            free.available_bytes
        )));
    }
    Ok(())
}
