//! The volume context: what CreateVolume hands to nodes (and a static PV may give instead) so a
//! node can mount the volume without parsing its id. One type, written by the controller and read
//! by the node; its keys exist only here.

use super::{ShareSpec, SubDir, VolumeId, add_mount_options};
use crate::error::Result;

/// Key of the NFS server (absent for a pre-mounted share).
pub const SERVER: &str = "server";
/// Key of the export path or pre-mounted share path.
pub const SHARE: &str = "share";
/// Key of the volume's directory below the share (absent or empty: the share root).
pub const SUB_DIR: &str = "subDir";
/// Key of the comma-separated mount options the share needs.
pub const MOUNT_OPTIONS: &str = "mountOptions";

/// Where a volume's data is: a share and, optionally, a directory in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeContext {
    /// The share.
    pub share: ShareSpec,
    /// The volume's directory; `None` mounts the share root (static volumes).
    pub sub_dir: Option<SubDir>,
}

impl VolumeContext {
    /// The context of a volume the driver made.
    pub fn of(id: &VolumeId) -> Self {
        VolumeContext {
            share: id.share.clone(),
            sub_dir: Some(id.sub_dir.clone()),
        }
    }

    /// As the key/value pairs of a CSI volume context.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut ctx = Vec::new();
        if let Some(server) = &self.share.server {
            ctx.push((SERVER.to_owned(), server.clone()));
        }
        ctx.push((SHARE.to_owned(), self.share.path.clone()));
        if let Some(sub) = &self.sub_dir {
            ctx.push((SUB_DIR.to_owned(), sub.to_string()));
        }
        if !self.share.mount_options.is_empty() {
            ctx.push((MOUNT_OPTIONS.to_owned(), self.share.mount_options.join(",")));
        }
        ctx
    }

    /// Reads a CSI volume context (keys case-insensitive); `None` when it names no share (then
    /// the volume id says where the volume is). Malformed values are refused.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)> + Clone,
    ) -> Result<Option<Self>> {
        let get = |k: &str| {
            pairs
                .clone()
                .into_iter()
                .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_ref().to_owned())
        };
        let Some(share) = get(SHARE) else {
            return Ok(None);
        };
        let mut options = Vec::new();
        if let Some(text) = get(MOUNT_OPTIONS) {
            add_mount_options(&mut options, &text)?;
        }
        Ok(Some(VolumeContext {
            share: ShareSpec::new(get(SERVER).as_deref(), &share, options)?,
            sub_dir: get(SUB_DIR)
                .filter(|s| !s.is_empty())
                .map(|s| SubDir::parse(&s))
                .transpose()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_reads_back_as_written() {
        let id = VolumeId::parse("nsc1#nfs.example.com#/exports#ns/pvc-1#delete#nfsvers=4.1,hard")
            .unwrap();
        let ctx = VolumeContext::of(&id);
        let pairs = ctx.to_pairs();
        assert_eq!(
            pairs,
            [
                (SERVER.to_owned(), "nfs.example.com".to_owned()),
                (SHARE.to_owned(), "/exports".to_owned()),
                (SUB_DIR.to_owned(), "ns/pvc-1".to_owned()),
                (MOUNT_OPTIONS.to_owned(), "nfsvers=4.1,hard".to_owned()),
            ]
        );
        assert_eq!(
            VolumeContext::from_pairs(pairs.iter().cloned()).unwrap(),
            Some(ctx)
        );
    }

    #[test]
    fn static_contexts_and_bad_values() {
        let root = VolumeContext::from_pairs([("Share", "/srv/data"), ("subdir", "")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (root.share.path.as_str(), root.sub_dir),
            ("/srv/data", None)
        );
        assert_eq!(VolumeContext::from_pairs([("subDir", "x")]).unwrap(), None);
        assert!(VolumeContext::from_pairs([("share", "/s"), ("subDir", "../up")]).is_err());
        assert!(VolumeContext::from_pairs([("share", "/s"), ("mountOptions", "a b")]).is_err());
    }
}
