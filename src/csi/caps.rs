//! Checks of requested volume capabilities: which access modes this driver serves, and what a
//! capability means for a mount.

use super::pb::VolumeCapability;
use super::pb::volume_capability::{AccessType, access_mode::Mode};
use crate::error::{Error, Result};

/// What a set of capabilities asks of a mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountNeeds {
    /// Mount flags of the capabilities (the StorageClass's or PV's mountOptions).
    pub flags: Vec<String>,
    /// The access mode is a reader-only one.
    pub reader_only: bool,
    /// The access mode is SINGLE_NODE_SINGLE_WRITER.
    pub single_writer: bool,
}

/// Checks one capability; block access and unknown modes are refused.
pub fn check(cap: &VolumeCapability) -> Result<(Mode, Vec<String>)> {
    let mode = cap
        .access_mode
        .as_ref()
        .map(|m| Mode::try_from(m.mode).unwrap_or(Mode::Unknown))
        .unwrap_or(Mode::Unknown);
    if mode == Mode::Unknown {
        return Err(Error::invalid("volume capability has no known access mode"));
    }
    match &cap.access_type {
        Some(AccessType::Mount(m)) => Ok((mode, m.mount_flags.clone())),
        Some(AccessType::Block(_)) => Err(Error::invalid(
            "block access is not supported: NFS directories are filesystems",
        )),
        None => Err(Error::invalid("volume capability has no access type")),
    }
}

/// Checks every capability and merges what they need.
pub fn check_all(caps: &[VolumeCapability]) -> Result<MountNeeds> {
    if caps.is_empty() {
        return Err(Error::invalid("volume capabilities are missing"));
    }
    let mut needs = MountNeeds::default();
    for cap in caps {
        let (mode, flags) = check(cap)?;
        needs.reader_only |= matches!(mode, Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly);
        needs.single_writer |= mode == Mode::SingleNodeSingleWriter;
        for f in &flags {
            crate::volume::add_mount_options(&mut needs.flags, f)?;
        }
    }
    Ok(needs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csi::pb::volume_capability::{AccessMode, BlockVolume, MountVolume};

    fn cap(mode: Mode, block: bool) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode as i32 }),
            access_type: Some(if block {
                AccessType::Block(BlockVolume {})
            } else {
                AccessType::Mount(MountVolume {
                    mount_flags: vec!["nfsvers=4.1".into()],
                    ..Default::default()
                })
            }),
        }
    }

    #[test]
    fn every_file_access_mode_is_served() {
        for mode in [
            Mode::SingleNodeWriter,
            Mode::SingleNodeReaderOnly,
            Mode::MultiNodeReaderOnly,
            Mode::MultiNodeSingleWriter,
            Mode::MultiNodeMultiWriter,
            Mode::SingleNodeSingleWriter,
            Mode::SingleNodeMultiWriter,
        ] {
            let needs = check_all(&[cap(mode, false)]).unwrap();
            assert_eq!(needs.flags, vec!["nfsvers=4.1"]);
            assert_eq!(needs.single_writer, mode == Mode::SingleNodeSingleWriter);
        }
    }

    #[test]
    fn block_unknown_and_empty_are_refused() {
        assert!(check_all(&[]).is_err());
        assert!(check_all(&[cap(Mode::MultiNodeMultiWriter, true)]).is_err());
        assert!(check_all(&[cap(Mode::Unknown, false)]).is_err());
        assert!(check_all(&[VolumeCapability::default()]).is_err());
    }
}
