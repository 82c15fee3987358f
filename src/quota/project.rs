//! Project ids for volumes: derived from the volume's record key, claimed on the filesystem itself
//! (so they are stable across restarts and shared by every controller), probed past collisions.
//!
//! A claim is a symlink `<root>/.nfs-subdir-csi/projects/<id>` whose target is the volume's record
//! key; `symlinkat` is atomic, so two controllers can never claim one id. An id is taken when it
//! has a claim, or when the filesystem still charges something to it or limits it (a tree in the
//! trash being removed, or a project someone else made): such ids are skipped.

use super::sys;
use crate::share::fs::open_dir;
use crate::volume::path::STATE_DIR;
use nix::errno::Errno;
use nix::sys::stat::{Mode, mkdirat};
use std::os::fd::OwnedFd;

/// First project id handed out (ids below are left to administrators).
pub const FIRST_ID: u32 = 1 << 20;
/// One past the last project id handed out.
pub const END_ID: u32 = 1 << 31;
/// How many ids are tried for one volume before giving up.
pub const PROBES: u32 = 64;
const CLAIMS: &str = "projects";

/// The `n`-th candidate project id of the volume with record key `key` (FNV-1a, then linear
/// probing inside [`FIRST_ID`, [`END_ID`])).
pub fn candidate(key: &str, n: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let span = u64::from(END_ID - FIRST_ID);
    FIRST_ID + ((h % span + u64::from(n)) % span) as u32
}

/// The claims directory below the filesystem root `root` (created when `create`).
pub fn claims(root: &OwnedFd, create: bool) -> nix::Result<Option<OwnedFd>> {
    let open = |parent: &OwnedFd, name: &str, mode: u32| match open_dir(parent, name) {
        Err(Errno::ENOENT) if create => {
            match mkdirat(parent, name, Mode::from_bits_truncate(mode)) {
                Ok(()) | Err(Errno::EEXIST) => open_dir(parent, name).map(Some),
                Err(e) => Err(e),
            }
        }
        Err(Errno::ENOENT) => Ok(None),
        other => other.map(Some),
    };
    match open(root, STATE_DIR, 0o755)? {
        Some(state) => open(&state, CLAIMS, 0o755),
        None => Ok(None),
    }
}

fn owner(claims: &OwnedFd, id: u32) -> nix::Result<Option<String>> {
    match nix::fcntl::readlinkat(claims, id.to_string().as_str()) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The id the volume `key` has claimed, if any.
pub fn find(claims: &OwnedFd, key: &str) -> nix::Result<Option<u32>> {
    for n in 0..PROBES {
        let id = candidate(key, n);
        if owner(claims, id)?.as_deref() == Some(key) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The id of the volume `key`: its earlier claim, else the first free candidate, claimed now.
/// `fs` is any descriptor on the filesystem (for the usage check). `None`: every candidate taken.
pub fn claim(fs: &OwnedFd, claims: &OwnedFd, key: &str) -> nix::Result<Option<u32>> {
    if let Some(id) = find(claims, key)? {
        return Ok(Some(id));
    }
    for n in 0..PROBES {
        let id = candidate(key, n);
        if owner(claims, id)?.is_some() || !sys::get(fs, id)?.is_empty() {
            continue;
        }
        match nix::unistd::symlinkat(key, claims, id.to_string().as_str()) {
            Ok(()) => return Ok(Some(id)),
            // another controller was quicker: ours only if it claimed for the same volume
            Err(Errno::EEXIST) if owner(claims, id)?.as_deref() == Some(key) => {
                return Ok(Some(id));
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Drops the claim of `id` (a missing claim is fine).
pub fn release(claims: &OwnedFd, id: u32) -> nix::Result<()> {
    crate::share::fs::unlink(claims, id.to_string().as_ref(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_stable_distinct_and_in_range() {
        let a = candidate("pvc-1", 0);
        assert_eq!(a, candidate("pvc-1", 0), "same key, same id");
        assert_ne!(a, candidate("pvc-2", 0));
        assert_eq!(candidate("pvc-1", 1), a + 1);
        for n in 0..PROBES {
            let id = candidate("ns%2Fdata", n);
            assert!((FIRST_ID..END_ID).contains(&id), "{id}");
        }
    }

    #[test]
    fn claims_are_found_again_and_collisions_probe_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::share::fs::open_root(dir.path()).unwrap();
        assert!(claims(&root, false).unwrap().is_none(), "nothing made");
        let c = claims(&root, true).unwrap().unwrap();
        // another volume holds this key's first candidate
        let first = candidate("pvc-a", 0);
        nix::unistd::symlinkat("pvc-other", &c, first.to_string().as_str()).unwrap();
        // (the temp filesystem has no quotas: every usage reads as empty)
        let id = claim(&root, &c, "pvc-a").unwrap().unwrap();
        assert_eq!(id, candidate("pvc-a", 1));
        assert_eq!(claim(&root, &c, "pvc-a").unwrap(), Some(id), "a retry");
        release(&c, first).unwrap();
        assert_eq!(
            find(&c, "pvc-a").unwrap(),
            Some(id),
            "kept after the other left"
        );
        release(&c, id).unwrap();
        assert_eq!(find(&c, "pvc-a").unwrap(), None);
    }
}
