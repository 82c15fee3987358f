//! csi-driver-nfs's snapshots, read for restore when migrating from it (and removed by
//! DeleteSnapshot): its snapshot ids and where its archives lie. The archive is unpacked by the same code as this driver's `tar.zst`
//! ([`super::archive`]), with the same refusals and the same temporary-directory-then-rename.
//!
//! Facts used here (from csi-driver-nfs's source, see docs/migrate-from-csi-driver-nfs.md):
//! - Its snapshot id is `server#baseDir#snapshotName#snapshotName#sourceVolume`: five `#` fields,
//!   `server` and `baseDir` trimmed of `/`, the snapshot's name twice (its directory and its
//!   "archive path"), and the source volume's name (the PV name).
//! - The archive is `<server>:/<baseDir>/<snapshotName>/<sourceVolume>.tar.gz`, a gzipped tar
//!   whose entries are relative to the volume's root (`.`, `a`, `a/b`, or `./a` from `tar czf`).
//!   It only ever writes gzip; a plain `.tar` at that place (an archive repacked by hand) is read
//!   too, recognised by its content, not its name.

use super::archive::Packing;
use crate::error::{Error, Result};
use crate::share::ShareRoot;
use crate::share::fs::{lstat, open_dir, unlink};
use crate::volume::{ShareSpec, path::shorten};
use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};
use std::os::fd::OwnedFd;

/// A csi-driver-nfs snapshot, parsed from its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsiDriverNfsSnapshot {
    /// The share holding it: `server:/baseDir` with the new volume's mount options; an empty
    /// server names a pre-mounted share (which the controller must already know).
    pub share: ShareSpec,
    /// The snapshot's directory below the share root (its name).
    pub dir: String,
    /// The source volume's name: the archive is `<source>.tar.gz` (or `.tar`).
    pub source: String,
}

/// Archive names tried in the snapshot's directory, in order.
pub const SUFFIXES: [&str; 2] = [".tar.gz", ".tar"];

impl CsiDriverNfsSnapshot {
    /// `Ok(None)` when `raw` is not in csi-driver-nfs's form (this driver's ids have seven fields
    /// starting `nss1`). An id in its form with a hostile or bad field (`..`, `/`, a bad server)
    /// is [`Error::InvalidArgument`]. `mount_options` are those of the volume being made.
    pub fn parse(raw: &str, mount_options: &[String]) -> Result<Option<Self>> {
        if raw.is_empty() || raw.len() > 4096 {
            return Ok(None);
        }
        let fields: Vec<&str> = raw.split('#').collect();
        let [server, base, name, again, source] = fields[..] else {
            return Ok(None);
        };
        if name.is_empty() || name != again {
            return Ok(None);
        }
        let bad = |why: String| {
            Error::invalid(format!(
                "csi-driver-nfs snapshot id {:?}: {why}",
                shorten(raw)
            ))
        };
        for (what, value) in [("snapshot name", name), ("source volume", source)] {
            if !is_component(value) {
                return Err(bad(format!("{what} is not a plain name")));
            }
        }
        let path = format!("/{}", base.trim_matches('/'));
        // A pre-mounted share has no mount options.
        let options = match server.is_empty() {
            true => Vec::new(),
            false => mount_options.to_vec(),
        };
        let share = ShareSpec::new(Some(server), &path, options).map_err(|e| bad(e.to_string()))?;
        Ok(Some(CsiDriverNfsSnapshot {
            share,
            dir: name.to_owned(),
            source: source.to_owned(),
        }))
    }

    /// The key of its guard, held while it is restored from or deleted.
    pub fn guard_key(&self) -> String {
        format!("cdn-snap:{}\0{}", self.share, self.dir)
    }

    /// The archive names to look for in [`CsiDriverNfsSnapshot::dir`], in order.
    pub fn archives(&self) -> impl Iterator<Item = String> + '_ {
        SUFFIXES.iter().map(|s| format!("{}{s}", self.source))
    }
}

/// Opens csi-driver-nfs's archive of the snapshot `dir` of the volume `source` on `root`
/// (`<dir>/<source>.tar.gz`, else `<dir>/<source>.tar`), never through a symlink, and says how
/// it is packed. Missing is [`Error::NotFound`].
pub fn open_archive(
    root: &ShareRoot,
    dir: &str,
    source: &str,
) -> Result<(OwnedFd, std::fs::File, Packing)> {
    let missing = || Error::NotFound(format!("csi-driver-nfs snapshot {dir}/{source}.tar.gz"));
    let snap = match open_dir(root.dir(), dir) {
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Err(missing()),
        other => other.map_err(|e| Error::errno(format!("open snapshot {dir}"), e))?,
    };
    let flags =
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC;
    for suffix in SUFFIXES {
        let name = format!("{source}{suffix}");
        match nix::fcntl::openat(&snap, name.as_str(), flags, Mode::empty()) {
            Ok(fd) => {
                let file = std::fs::File::from(fd);
                let meta = file
                    .metadata()
                    .map_err(|e| Error::io(format!("stat {dir}/{name}"), e))?;
                if !meta.is_file() {
                    return Err(Error::FailedPrecondition(format!(
                        "snapshot archive {dir}/{name} is not a regular file"
                    )));
                }
                let packing = Packing::sniff(&file)?;
                return Ok((snap, file, packing));
            }
            Err(Errno::ENOENT) => {}
            Err(Errno::ELOOP) => {
                return Err(Error::FailedPrecondition(format!(
                    "snapshot archive {dir}/{name} is a symlink"
                )));
            }
            Err(e) => return Err(Error::errno(format!("open {dir}/{name}"), e)),
        }
    }
    Err(missing())
}

/// Removes csi-driver-nfs's archive of the snapshot `dir` of the volume `source` on `root`
/// (`<dir>/<source>.tar.gz` and `<dir>/<source>.tar`, regular files only, never through a
/// symlink), then `<dir>` if that left it empty: what its own DeleteSnapshot removes, and nothing
/// else (other files keep the directory; a hidden directory is never entered). Returns whether an
/// archive went; a snapshot already gone is fine.
pub fn remove_archive(root: &ShareRoot, dir: &str, source: &str) -> Result<bool> {
    if dir.starts_with('.') {
        return Ok(false);
    }
    let snap = match open_dir(root.dir(), dir) {
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(false),
        other => other.map_err(|e| Error::errno(format!("open snapshot {dir}"), e))?,
    };
    let mut removed = false;
    for suffix in SUFFIXES {
        let name = format!("{source}{suffix}");
        match lstat(&snap, name.as_str()) {
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::errno(format!("stat {dir}/{name}"), e)),
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG => {
                unlink(&snap, name.as_ref(), false)
                    .map_err(|e| Error::errno(format!("remove {dir}/{name}"), e))?;
                removed = true;
            }
            Ok(_) => tracing::warn!(
                archive = %format!("{dir}/{name}"),
                "not a regular file: left in place"
            ),
        }
    }
    if removed {
        match unlink(root.dir(), dir.as_ref(), true) {
            Ok(()) | Err(Errno::ENOTEMPTY | Errno::EEXIST) => {}
            Err(e) => return Err(Error::errno(format!("remove directory {dir}"), e)),
        }
    }
    Ok(removed)
}

/// One path component that cannot leave its directory or hide: not empty, `.`, `..`, no `/`,
/// no NUL, short enough for an archive name built from it.
fn is_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ids_csi_driver_nfs_writes() {
        let raw = "nfs-server.default.svc.cluster.local#share#snapshot-016f#snapshot-016f#pvc-4bcb";
        let s = CsiDriverNfsSnapshot::parse(raw, &["nfsvers=4.1".into()])
            .unwrap()
            .expect("its form");
        assert_eq!(
            s.share.server.as_deref(),
            Some("nfs-server.default.svc.cluster.local")
        );
        assert_eq!(s.share.path, "/share");
        assert_eq!(s.share.mount_options, ["nfsvers=4.1"]);
        assert_eq!(
            (s.dir.as_str(), s.source.as_str()),
            ("snapshot-016f", "pvc-4bcb")
        );
        let names: Vec<String> = s.archives().collect();
        assert_eq!(names, ["pvc-4bcb.tar.gz", "pvc-4bcb.tar"]);
        // A nested base directory, and an empty server (a pre-mounted share).
        let s = CsiDriverNfsSnapshot::parse("#srv/nfs#snap-1#snap-1#pvc-1", &[])
            .unwrap()
            .unwrap();
        assert!(!s.share.is_nfs());
        assert_eq!(s.share.path, "/srv/nfs");
    }

    #[test]
    fn other_forms_are_not_its_snapshots() {
        for other in [
            "",
            "nss1##/srv#snap#copy#pvc-1#",
            "srv#share#pvc-1##",
            "srv#share#snap-a#snap-b#pvc-1",
            "srv#share#snap#snap#pvc#extra",
            "fake-snapshot-id",
        ] {
            assert_eq!(
                CsiDriverNfsSnapshot::parse(other, &[]).unwrap(),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn hostile_fields_are_invalid() {
        for hostile in [
            "srv#share#..#..#pvc-1",
            "srv#share#.#.#pvc-1",
            "srv#share#snap#snap#..",
            "srv#share#snap#snap#../../etc/passwd",
            "srv#share#snap#snap#a/b",
            "srv#share#snap#snap#",
            "srv#../..#snap#snap#pvc-1",
            "evil,host#share#snap#snap#pvc-1",
            "srv#share#snap#snap#pvc\n1",
        ] {
            let e = CsiDriverNfsSnapshot::parse(hostile, &[]).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{hostile}: {e}");
        }
    }
}
