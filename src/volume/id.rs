//! The volume id: everything DeleteVolume needs, in one versioned, self-contained string.
//!
//! Format v1 (fields separated by `#`; `%` and `#` inside a field are written `%25` and `%23`):
//!
//! ```text
//! nsc1#<server>#<share>#<subdir>#<onDelete>#<mount options, comma separated>
//! nsc1#nfs.example.com#/exports#pvc-5d1c…#delete#nfsvers=4.1,hard
//! nsc1##/srv/share#pvc-5d1c…#retain#          (pre-mounted share: empty server)
//! ```
//!
//! csi-driver-nfs handles (`server#share#subDir[#uuid[#onDelete]]`, see `legacy.rs`) are read too,
//! so volumes made by it can be mounted and deleted by this driver after a migration.

use super::{OnDelete, ShareSpec, SubDir};
use crate::error::{Error, Result};
use std::fmt;

const TAG: &str = "nsc1";

/// A parsed volume id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VolumeId {
    /// The share the volume's directory lives on.
    pub share: ShareSpec,
    /// The volume's directory below the share root.
    pub sub_dir: SubDir,
    /// What to do with the directory at delete time.
    pub on_delete: OnDelete,
}

impl VolumeId {
    /// Parses an id of this driver (v1) or of csi-driver-nfs.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid("volume id is empty"));
        }
        if raw.len() > 4096 {
            return Err(Error::invalid("volume id is longer than 4096 bytes"));
        }
        let fields: Vec<&str> = raw.split('#').collect();
        // Ours always have six fields; csi-driver-nfs handles at most five, so never both.
        if fields[0] == TAG && fields.len() == 6 {
            return Self::parse_v1(&fields[1..]);
        }
        if let Some(old) = super::legacy::CsiDriverNfsHandle::parse(raw)? {
            return Ok(VolumeId {
                share: old.share,
                sub_dir: old.sub_dir,
                on_delete: old.on_delete.unwrap_or_default(),
            });
        }
        Err(Error::NotFound(format!(
            "volume id {:?} is not in a format of this driver",
            super::path::shorten(raw)
        )))
    }

    fn parse_v1(fields: &[&str]) -> Result<Self> {
        let [server, share, sub_dir, on_delete, options] = fields else {
            return Err(Error::NotFound(format!(
                "volume id has {} fields after {TAG}, expected 5",
                fields.len()
            )));
        };
        let options = unescape(options)?;
        let options = options
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        let server = unescape(server)?;
        Ok(VolumeId {
            share: ShareSpec::new(Some(&server), &unescape(share)?, options)?,
            sub_dir: SubDir::parse(&unescape(sub_dir)?)?,
            on_delete: on_delete.parse()?,
        })
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TAG}#{}#{}#{}#{}#{}",
            escape(self.share.server.as_deref().unwrap_or("")),
            escape(&self.share.path),
            escape(self.sub_dir.as_str()),
            self.on_delete,
            escape(&self.share.mount_options.join(","))
        )
    }
}

/// Writes `%` and `#` inside an id field as `%25` and `%23` (shared with snapshot ids).
pub(crate) fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('#', "%23")
}

/// Reverses [`escape`].
pub(crate) fn unescape(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%23") => out.push('#'),
            _ => return Err(Error::invalid("volume id has a bad %-escape")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(server: Option<&str>, share: &str, sub: &str, od: OnDelete, opts: &[&str]) -> VolumeId {
        VolumeId {
            share: ShareSpec::new(server, share, opts.iter().map(|s| s.to_string()).collect())
                .unwrap(),
            sub_dir: SubDir::parse(sub).unwrap(),
            on_delete: od,
        }
    }

    #[test]
    fn round_trips() {
        let cases = [
            id(Some("10.0.2.2"), "/export", "pvc-1", OnDelete::Delete, &[]),
            id(
                Some("nfs.local"),
                "/e#x",
                "ns/pvc%2",
                OnDelete::Archive,
                &["nfsvers=4.1", "hard"],
            ),
            id(None, "/srv/share", "pvc-x", OnDelete::Retain, &[]),
            id(
                Some("[fd00::1]"),
                "/",
                "a#b%c",
                OnDelete::Delete,
                &["vers=3", "nolock"],
            ),
        ];
        for v in cases {
            let text = v.to_string();
            assert!(text.starts_with("nsc1#"), "{text}");
            assert_eq!(VolumeId::parse(&text).unwrap(), v, "{text}");
        }
    }

    #[test]
    fn documented_example_parses() {
        let v =
            VolumeId::parse("nsc1#nfs.example.com#/exports#pvc-1#delete#nfsvers=4.1,hard").unwrap();
        assert_eq!(v.share.server.as_deref(), Some("nfs.example.com"));
        assert_eq!(v.share.mount_options, vec!["nfsvers=4.1", "hard"]);
        let local = VolumeId::parse("nsc1##/srv/share#pvc-1#retain#").unwrap();
        assert!(!local.share.is_nfs());
        assert_eq!(local.on_delete, OnDelete::Retain);
    }

    #[test]
    fn reads_csi_driver_nfs_ids() {
        let v = VolumeId::parse("10.0.0.5#/exports#pvc-abc#pvc-abc#archive").unwrap();
        assert_eq!(v.share.server.as_deref(), Some("10.0.0.5"));
        assert_eq!(v.sub_dir.as_str(), "pvc-abc");
        assert_eq!(v.on_delete, OnDelete::Archive);
        let short = VolumeId::parse("srv#/base#sub").unwrap();
        assert_eq!(short.on_delete, OnDelete::Delete);
    }

    #[test]
    fn foreign_ids_are_unknown_not_invalid() {
        for foreign in ["garbage", "fake-vol-id-1", "a#b"] {
            let err = VolumeId::parse(foreign).unwrap_err();
            assert!(matches!(err, Error::NotFound(_)), "{foreign:?}: {err}");
        }
    }

    #[test]
    fn hostile_ids_are_refused() {
        let huge = format!("nsc1##/s#{}#delete#", "a".repeat(5000));
        for bad in [
            "",
            "garbage",
            "nsc1#",
            "nsc1##/s#..#delete#",
            "nsc1##/s#../etc#delete#",
            "nsc1##/s#/etc#delete#",
            "nsc1##relative#pvc#delete#",
            "nsc1##/s#pvc#shred#",
            "nsc1##/s#a%2#delete#",
            "nsc1##/s#.nfs-subdir-csi#delete#",
            "nsc1##/s#a\0b#delete#",
            "srv#/base#../x",
            huge.as_str(),
        ] {
            assert!(VolumeId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
