//! Archiving a volume directory where the tool that made it put its archives (this driver,
//! csi-driver-nfs, nfs-subdir-external-provisioner), never replacing an earlier archive.

use super::super::fs::{lstat, open_parent, rename_noreplace};
use super::{ShareRoot, unix_secs};
use crate::error::{Error, Result};
use crate::volume::SubDir;
use crate::volume::legacy::ArchiveNaming;
use nix::errno::Errno;
use std::os::fd::OwnedFd;

impl ShareRoot {
    /// Archives the volume `sub` (whose parent is open as `parent`) where `naming` puts it.
    pub(super) fn archive(
        &self,
        parent: &OwnedFd,
        last: &str,
        sub: &SubDir,
        naming: ArchiveNaming,
    ) -> Result<()> {
        let failed = |e| Error::errno(format!("archive {sub}"), e);
        match naming {
            ArchiveNaming::Sibling => archive(parent, last, parent, &format!("archived-{last}")),
            ArchiveNaming::Root => archive(parent, last, &self.fd, &format!("archived-{last}")),
            ArchiveNaming::WholePath => {
                if lstat(parent, last).is_err() {
                    return Ok(());
                }
                let target = SubDir::parse(&format!("archived-{sub}"))?;
                let (to, name) = open_parent(&self.fd, &target, Some(0o777))?;
                archive(parent, last, &to, name)
            }
        }
        .map_err(failed)
    }
}

/// Renames `last` in `from` to `to_name` in `to`, or `<to_name>-<secs>` when that name is taken,
/// never replacing an earlier archive. A source already gone is fine. (On NFS, which has no
/// RENAME_NOREPLACE, [`rename_noreplace`] checks the name first, then renames.)
fn archive(from: &OwnedFd, last: &str, to: &OwnedFd, to_name: &str) -> nix::Result<()> {
    let rename = |name: &str| {
        rename_noreplace(from, last, to, name).map_err(|e| Errno::from_raw(e.raw_os_error()))
    };
    match rename(to_name) {
        Err(Errno::EEXIST) => rename(&format!("{to_name}-{}", unix_secs())),
        Err(Errno::ENOENT) => Ok(()),
        other => other,
    }
}
