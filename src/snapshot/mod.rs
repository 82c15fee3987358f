//! Snapshots, restores and clones, in domain terms: self-contained snapshot ids, the crash-safe
//! store on the share, the background copies, and the operations the CSI adapter calls (as methods
//! of [`crate::controller::Volumes`], which owns the share access and the per-id guards).

mod archive;
pub mod id;
pub mod jobs;
pub mod legacy;
mod list;
mod ops;
mod restore;
mod space;
pub mod store;

pub use id::{Format, SnapshotId};
pub use jobs::Jobs;

use crate::error::{Error, Result};
use std::time::{Duration, SystemTime};

/// A snapshot as the controller reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot id.
    pub id: String,
    /// The id of the volume it was cut from.
    pub source_volume_id: String,
    /// Bytes allocated to the source's files when it was cut (0 while not ready).
    pub size_bytes: u64,
    /// When it was asked for.
    pub created: SystemTime,
    /// True once the copy is complete, synced and in place.
    pub ready: bool,
}

/// A CreateSnapshot request, validated.
#[derive(Clone, Debug)]
pub struct NewSnapshot {
    /// The CO's name for the snapshot.
    pub name: String,
    /// The id of the volume to snapshot.
    pub source_volume_id: String,
    /// VolumeSnapshotClass parameters.
    pub params: SnapshotParams,
}

/// VolumeSnapshotClass parameters, typed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotParams {
    /// `format`: how the snapshot is stored (default `copy`).
    pub format: Format,
}

impl SnapshotParams {
    /// Parses a parameter map: keys are case-insensitive, unknown keys are refused except the
    /// `csi.storage.k8s.io/` ones the snapshotter adds.
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut p = SnapshotParams::default();
        for (key, value) in pairs {
            match key.as_ref().to_ascii_lowercase().as_str() {
                "format" => p.format = value.as_ref().parse()?,
                k if k.starts_with("csi.storage.k8s.io/") => {}
                k => {
                    return Err(Error::invalid(format!(
                        "unknown snapshot parameter {:?}; known: format",
                        crate::volume::path::shorten(k)
                    )));
                }
            }
        }
        Ok(p)
    }
}

/// What a new volume is filled from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentSource {
    /// A snapshot, by id.
    Snapshot(String),
    /// Another volume (a clone), by id.
    Volume(String),
}

/// A page of ListSnapshots.
#[derive(Debug, Default)]
pub struct Page {
    /// The snapshots on this page.
    pub snapshots: Vec<Snapshot>,
    /// Token for the next page; empty when this is the last.
    pub next: String,
}

/// How long CreateSnapshot waits for a copy before answering "not ready yet": small volumes are
/// ready in the first answer, big ones never meet the caller's deadline.
const READY_WAIT: Duration = Duration::from_secs(2);

/// The key of a snapshot in the job map, the per-id guards and listings.
fn key(id: &SnapshotId) -> String {
    format!("snap:{}\0{}", id.share, id.dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let p = SnapshotParams::parse([("Format", "COPY")]).unwrap();
        assert_eq!(p.format, Format::Copy);
        assert!(SnapshotParams::parse([("csi.storage.k8s.io/volumesnapshot/name", "x")]).is_ok());
        let tar = SnapshotParams::parse([("format", "Tar.Zst")]).unwrap();
        assert_eq!(tar.format, Format::TarZst);
        for (k, v) in [("format", "zip"), ("color", "blue"), ("format", "tar")] {
            assert!(SnapshotParams::parse([(k, v)]).is_err(), "{k}={v}");
        }
    }
}
