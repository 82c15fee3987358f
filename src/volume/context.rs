//! The volume context: what CreateVolume hands to nodes (and a static PV may give instead) so a
//! node can mount the volume without parsing its id. One type, written by the controller and read
//! by the node; its keys exist only here.

use super::{ShareSpec, SubDir, VolumeId, add_mount_options, mode};
use crate::error::Result;

/// Key of the NFS server (absent for a pre-mounted share).
pub const SERVER: &str = "server";
/// Key of the export path or pre-mounted share path.
pub const SHARE: &str = "share";
/// Key of the volume's directory below the share (absent or empty: the share root).
pub const SUB_DIR: &str = "subDir";
/// Key of the comma-separated mount options the share needs.
pub const MOUNT_OPTIONS: &str = "mountOptions";
/// Key of the mode (octal) the node gives the mount point after mounting (csi-driver-nfs's).
pub const MOUNT_PERMISSIONS: &str = "mountPermissions";

/// Where a volume's data is: a share and, optionally, a directory in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeContext {
    /// The share.
    pub share: ShareSpec,
    /// The volume's directory; `None` mounts the share root (static volumes).
    pub sub_dir: Option<SubDir>,
    /// Mode the node gives the mount point after mounting; `None` (or 0) leaves it alone.
    pub mount_permissions: Option<u32>,
}

impl VolumeContext {
    /// The context of a volume the driver made.
    pub fn of(id: &VolumeId) -> Self {
        VolumeContext {
            share: id.share.clone(),
            sub_dir: Some(id.sub_dir.clone()),
            mount_permissions: None,
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
        if let Some(m) = self.mount_permissions {
            ctx.push((MOUNT_PERMISSIONS.to_owned(), format!("{m:04o}")));
        }
        ctx
    }

    /// Reads a CSI volume context (keys case-insensitive); `None` when it names no share (then
    /// the volume id says where the volume is). Malformed values are refused.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)> + Clone,
    ) -> Result<Option<Self>> {
        let get = |k: &str| get(pairs.clone(), k);
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
            mount_permissions: mount_permissions(pairs)?,
        }))
    }
}

/// The `mountPermissions` of a CSI volume context (key case-insensitive), whether or not it names
/// a share: `None` when absent, empty or `0` (leave the mode alone); a bad value is refused.
pub fn mount_permissions<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<Option<u32>> {
    Ok(get(pairs, MOUNT_PERMISSIONS)
        .map(|v| mode::parse_permissions(&v))
        .transpose()?
        .flatten()
        .filter(|m| *m != 0))
}

fn get<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
    key: &str,
) -> Option<String> {
    pairs
        .into_iter()
        .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_ref().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_reads_back_as_written() {
        let id = VolumeId::parse("nsc1#nfs.example.com#/exports#ns/pvc-1#delete#nfsvers=4.1,hard")
            .unwrap();
        let mut ctx = VolumeContext::of(&id);
        assert_eq!(ctx.mount_permissions, None);
        ctx.mount_permissions = Some(0o2770);
        let pairs = ctx.to_pairs();
        assert_eq!(
            pairs,
            [
                (SERVER.to_owned(), "nfs.example.com".to_owned()),
                (SHARE.to_owned(), "/exports".to_owned()),
                (SUB_DIR.to_owned(), "ns/pvc-1".to_owned()),
                (MOUNT_OPTIONS.to_owned(), "nfsvers=4.1,hard".to_owned()),
                (MOUNT_PERMISSIONS.to_owned(), "2770".to_owned()),
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

    #[test]
    fn mount_permissions_of_csi_driver_nfs_attributes() {
        // Its PVs carry the class's parameters as volume attributes, mountPermissions included.
        let its = [
            ("server", "nfs.example.com"),
            ("share", "/exports"),
            ("subdir", "pvc-1"),
            ("mountPermissions", "0777"),
            ("onDelete", "archive"),
            ("csi.storage.k8s.io/pv/name", "pvc-1"),
        ];
        let ctx = VolumeContext::from_pairs(its).unwrap().unwrap();
        assert_eq!(ctx.mount_permissions, Some(0o777));
        for (v, want) in [
            ("0", None),
            ("", None),
            ("0750", Some(0o750)),
            ("2775", Some(0o2775)),
        ] {
            assert_eq!(
                mount_permissions([("MOUNTPERMISSIONS", v)]).unwrap(),
                want,
                "{v:?}"
            );
        }
        assert_eq!(mount_permissions([("subDir", "x")]).unwrap(), None);
        for bad in ["rwx", "10000", "0o777", "-1"] {
            let err = mount_permissions([("mountPermissions", bad)]).unwrap_err();
            assert!(
                matches!(&err, crate::error::Error::InvalidArgument(m) if m.contains("mountPermissions")),
                "{bad:?}: {err}"
            );
            assert!(
                VolumeContext::from_pairs([("share", "/s"), ("mountPermissions", bad)]).is_err()
            );
        }
    }
}
