//! The snapshot id: everything a controller needs to find a snapshot, in one versioned,
//! self-contained string, so a fresh controller (or another replica) needs no other state.
//!
//! Format v1 (fields separated by `#`, `%` and `#` inside a field written `%25` and `%23`, as in
//! volume ids):
//!
//! ```text
//! nss1#<server>#<share>#<snapshot dir>#<format>#<source sub-directory>#<mount options>
//! nss1#nfs.example.com#/exports#snapshot-6f1c…#copy#pvc-5d1c…#nfsvers=4.2
//! nss1##/srv/share#snapshot-6f1c…#copy#pvc-5d1c…#          (pre-mounted share: empty server)
//! ```
//!
//! The snapshot lives on the share of its source volume, in
//! `<share>/.nfs-subdir-csi/snapshots/<snapshot dir>`; the directory's name is the snapshot's
//! name when that is a plain name (`snapshot-<uuid>` from the snapshotter), else `~<uuid v5 of
//! the name>`. The source sub-directory tells an operator (and the logs) where the data came from.

use crate::error::{Error, Result};
use crate::volume::id::{escape, unescape};
use crate::volume::{ShareSpec, SubDir};
use std::fmt;
use std::str::FromStr;

const TAG: &str = "nss1";

/// How a snapshot is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// A directory tree (cloned blocks where the filesystem shares them).
    #[default]
    Copy,
    /// One tar archive compressed with zstd (`data.tar.zst`).
    TarZst,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "copy" => Ok(Format::Copy),
            "tar.zst" => Ok(Format::TarZst),
            _ => Err(Error::invalid(format!(
                "snapshot format {:?}: expected copy or tar.zst",
                crate::volume::path::shorten(s)
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Copy => "copy",
            Format::TarZst => "tar.zst",
        })
    }
}

/// A parsed snapshot id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotId {
    /// The share holding the snapshot (its source volume's share).
    pub share: ShareSpec,
    /// The snapshot's directory name below the share's snapshot area.
    pub dir: String,
    /// How the snapshot is stored.
    pub format: Format,
    /// The source volume's directory below the share root.
    pub source: SubDir,
}

/// The directory name for the snapshot called `name`: the name itself when it is plain, else a
/// name-based UUID. Always a single safe path component that cannot start with `.`.
pub fn dir_name(name: &str) -> String {
    if is_plain(name) {
        name.to_owned()
    } else {
        format!(
            "~{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes())
        )
    }
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl SnapshotId {
    /// Parses an id of this driver. Anything else is [`Error::NotFound`] (a snapshot this driver
    /// cannot have made), malformed fields of a v1 id too.
    pub fn parse(raw: &str) -> Result<Self> {
        let unknown = |why: &str| {
            Error::NotFound(format!(
                "snapshot id {:?}: {why}",
                crate::volume::path::shorten(raw)
            ))
        };
        if raw.len() > 4096 {
            return Err(unknown("longer than 4096 bytes"));
        }
        let fields: Vec<&str> = raw.split('#').collect();
        let [TAG, server, share, dir, format, source, options] = fields[..] else {
            return Err(unknown("not a snapshot id of this driver"));
        };
        let plain = |s: &str| is_plain(s) || (s.len() == 37 && s.starts_with('~'));
        if !plain(dir) {
            return Err(unknown("bad snapshot directory"));
        }
        let parse = || -> Result<Self> {
            let options = unescape(options)?
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(SnapshotId {
                share: ShareSpec::new(Some(&unescape(server)?), &unescape(share)?, options)?,
                dir: dir.to_owned(),
                format: format.parse()?,
                source: SubDir::parse(&unescape(source)?)?,
            })
        };
        parse().map_err(|e| unknown(&e.to_string()))
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TAG}#{}#{}#{}#{}#{}#{}",
            escape(self.share.server.as_deref().unwrap_or("")),
            escape(&self.share.path),
            self.dir,
            self.format,
            escape(self.source.as_str()),
            escape(&self.share.mount_options.join(","))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_the_documented_form() {
        let id = SnapshotId {
            share: ShareSpec::new(Some("nfs.local"), "/e#x", vec!["nfsvers=4.2".into()]).unwrap(),
            dir: dir_name("snapshot-1"),
            format: Format::Copy,
            source: SubDir::parse("ns/pvc%1").unwrap(),
        };
        let text = id.to_string();
        assert_eq!(SnapshotId::parse(&text).unwrap(), id, "{text}");
        let local = SnapshotId::parse("nss1##/srv/share#snapshot-1#copy#pvc-1#").unwrap();
        assert!(!local.share.is_nfs());
        assert_eq!(local.dir, "snapshot-1");
    }

    #[test]
    fn names_become_safe_directory_names() {
        assert_eq!(dir_name("snapshot-5d1c"), "snapshot-5d1c");
        for hostile in ["..", ".hidden", "a/b", "x#y", &"n".repeat(300), ""] {
            let d = dir_name(hostile);
            assert!(d.starts_with('~') && d.len() == 37, "{hostile:?} → {d}");
        }
        assert_eq!(dir_name("a/b"), dir_name("a/b"), "stable");
    }

    #[test]
    fn foreign_and_hostile_ids_are_not_found() {
        for bad in [
            "",
            "none-exist-id",
            "nsc1##/s#pvc#delete#",
            "nss1##/s#..#copy#pvc#",
            "nss1##/s#a/b#copy#pvc#",
            "nss1##/s#snap#copy#../etc#",
            "nss1##relative#snap#copy#pvc#",
            "nss1##/s#snap#zip#pvc#",
            "nss1##/s#snap#copy#pvc",
        ] {
            let err = SnapshotId::parse(bad).unwrap_err();
            assert!(matches!(err, Error::NotFound(_)), "{bad:?}: {err}");
        }
    }
}
