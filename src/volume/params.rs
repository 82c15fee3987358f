//! StorageClass parameters: parsed and checked at the edge into typed values, then combined with
//! the driver's defaults into everything CreateVolume needs.

use super::template::{Metadata, Template};
use super::{OnDelete, ShareSpec, SubDir, add_mount_options, mode, path::shorten};
use crate::error::{Error, Result};

pub use super::mode::parse_mode;

/// Parameters of a StorageClass (or of a test's CreateVolume call), typed and validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// `server`: NFS server; absent for a pre-mounted share.
    pub server: Option<String>,
    /// `share`: export path on the server, or a pre-mounted absolute path.
    pub share: Option<String>,
    /// `subDir` (or nfs-subdir-external-provisioner's `pathPattern`): template for the volume's
    /// directory; default is the volume name.
    pub sub_dir: Option<Template>,
    /// `onDelete`: what DeleteVolume does with the directory.
    pub on_delete: Option<OnDelete>,
    /// `archiveOnDelete` (nfs-subdir-external-provisioner): `true` archives, `false` deletes;
    /// `onDelete` wins when both are given.
    pub archive_on_delete: Option<bool>,
    /// `volumeSource`: what kind of PersistentVolume the `provisioner` mode makes. The CSI path
    /// (csi-provisioner) always makes CSI volumes and ignores it.
    pub volume_source: Option<VolumeSource>,
    /// `mountPermissions` as written (octal; `0` kept): mode of the new directory (`0`: 0755)
    /// and, when non-zero, the mode nodes give the mount point (csi-driver-nfs's semantics).
    pub mount_permissions: Option<u32>,
    /// `mountOptions`: options for mounting the export.
    pub mount_options: Vec<String>,
    /// `quota`: enforce, best-effort (default) or off (see [`crate::quota::Mode`]).
    pub quota: Option<crate::quota::Mode>,
    /// Claim metadata passed by the provisioner, for templates.
    pub metadata: Metadata,
}

/// The volume source of PersistentVolumes made by the `provisioner` mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VolumeSource {
    /// `csi`: a CSI volume of this driver; nodes need the node plugin.
    #[default]
    Csi,
    /// `nfs`: the in-tree `nfs:` volume, mounted by kubelet itself; no node plugin needed.
    Nfs,
}

impl std::str::FromStr for VolumeSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csi" => Ok(VolumeSource::Csi),
            "nfs" => Ok(VolumeSource::Nfs),
            _ => Err(Error::invalid(format!(
                "volumeSource {:?}: expected csi or nfs",
                shorten(s)
            ))),
        }
    }
}

/// Driver-wide defaults that apply when a StorageClass is silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Pre-mounted share used when neither `server` nor `share` is given.
    pub share: Option<String>,
    /// `--default-ondelete-policy`
    pub on_delete: OnDelete,
    /// `--mount-permissions`
    pub mount_permissions: u32,
}

/// Everything CreateVolume needs to make a volume's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateParams {
    /// Where the directory goes.
    pub share: ShareSpec,
    /// The directory below the share root.
    pub sub_dir: SubDir,
    /// Policy recorded in the id for DeleteVolume.
    pub on_delete: OnDelete,
    /// Mode of the new directory.
    pub mode: u32,
}

impl Params {
    /// Parses a parameter map. Keys are case-insensitive; unknown keys are refused, except the
    /// `csi.storage.k8s.io/` keys the Kubernetes provisioner adds.
    /// Takes any map or list of string pairs (a StorageClass's `parameters`, a CreateVolume's).
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut p = Params::default();
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key.to_ascii_lowercase().as_str() {
                "server" => p.server = non_empty(value),
                "share" => p.share = non_empty(value),
                "subdir" => set_template(&mut p.sub_dir, Template::parse(value)?)?,
                "pathpattern" => {
                    set_template(&mut p.sub_dir, Template::parse_path_pattern(value)?)?
                }
                "ondelete" => p.on_delete = Some(value.parse()?),
                "archiveondelete" => p.archive_on_delete = Some(parse_bool(key, value)?),
                "volumesource" => p.volume_source = Some(value.parse()?),
                "mountpermissions" => p.mount_permissions = mode::parse_permissions(value)?,
                "mountoptions" => add_mount_options(&mut p.mount_options, value)?,
                "quota" => p.quota = Some(value.parse()?),
                "csi.storage.k8s.io/pvc/name" => p.metadata.pvc_name = non_empty(value),
                "csi.storage.k8s.io/pvc/namespace" => p.metadata.pvc_namespace = non_empty(value),
                "csi.storage.k8s.io/pv/name" => p.metadata.pv_name = non_empty(value),
                k if k.starts_with("csi.storage.k8s.io/") => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "unknown parameter {:?}; known: server, share, subDir, onDelete, \
                         mountPermissions, mountOptions, pathPattern, archiveOnDelete, \
                         volumeSource, quota",
                        shorten(key)
                    )));
                }
            }
        }
        if p.server.is_some() && p.share.is_none() {
            return Err(Error::invalid(
                "parameter server needs share (the export path)",
            ));
        }
        Ok(p)
    }

    /// Combines the parameters with the volume `name`, extra mount flags (the StorageClass's
    /// mountOptions as they arrive in the volume capabilities) and the driver's defaults.
    pub fn resolve(
        &self,
        name: &str,
        mount_flags: &[String],
        defaults: &Defaults,
    ) -> Result<CreateParams> {
        let share = self.share_spec(mount_flags, defaults)?;
        let mut metadata = self.metadata.clone();
        metadata.pv_name.get_or_insert_with(|| name.to_owned());
        let sub_dir = match self
            .sub_dir
            .as_ref()
            .map(|t| t.expand(&metadata))
            .transpose()?
        {
            Some(Some(dir)) => dir,
            _ => SubDir::parse(name).and_then(|d| match d.components().count() {
                1 => Ok(d),
                _ => Err(Error::invalid("volume name must not contain '/'")),
            })?,
        };
        Ok(CreateParams {
            share,
            sub_dir,
            on_delete: self.on_delete_policy().unwrap_or(defaults.on_delete),
            mode: self
                .mount_permissions
                .map_or(defaults.mount_permissions, mode::dir_mode),
        })
    }
}

impl Params {
    /// The mode nodes give the volume's mount point after mounting it: `mountPermissions` when
    /// the parameters set it non-zero (csi-driver-nfs puts its parameters in the volume context
    /// and its nodes chmod to that mode), else none.
    pub fn publish_permissions(&self) -> Option<u32> {
        self.mount_permissions.filter(|m| *m != 0)
    }

    /// The delete policy the parameters ask for: `onDelete`, else nfs-subdir-external-provisioner's
    /// `archiveOnDelete` (true = archive, false = delete), else none.
    pub fn on_delete_policy(&self) -> Option<OnDelete> {
        self.on_delete.or(self.archive_on_delete.map(|archive| {
            if archive {
                OnDelete::Archive
            } else {
                OnDelete::Delete
            }
        }))
    }

    /// The share these parameters name, with `mount_flags` merged into its mount options, or the
    /// default share when they name none.
    pub fn share_spec(&self, mount_flags: &[String], defaults: &Defaults) -> Result<ShareSpec> {
        let mut options = self.mount_options.clone();
        for flag in mount_flags {
            add_mount_options(&mut options, flag)?;
        }
        match (&self.server, &self.share, &defaults.share) {
            (Some(server), Some(path), _) => ShareSpec::new(Some(server), path, options),
            (None, Some(path), _) | (None, None, Some(path)) => {
                ShareSpec::new(None, path, Vec::new())
            }
            _ => Err(Error::invalid(
                "no share: set the StorageClass parameters server and share (an NFS export) or \
                 share (a pre-mounted path), or start the driver with --default-share",
            )),
        }
    }
}

fn set_template(slot: &mut Option<Template>, t: Template) -> Result<()> {
    if slot.replace(t).is_some() {
        return Err(Error::invalid("give subDir or pathPattern, not both"));
    }
    Ok(())
}

/// Reads a boolean the way Go's strconv.ParseBool does, as nfs-subdir-external-provisioner did.
fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Error::invalid(format!(
            "{key} {:?}: expected true or false",
            shorten(v)
        ))),
    }
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            share: Some("/srv/default".into()),
            on_delete: OnDelete::Delete,
            mount_permissions: 0o777,
        }
    }

    #[test]
    fn parses_case_insensitive_keys() {
        let p = Params::parse([
            ("Server", "nfs.local"),
            ("SHARE", "/exports"),
            ("subdir", "${pvc.metadata.namespace}/${pvc.metadata.name}"),
            ("onDelete", "archive"),
            ("mountPermissions", "0750"),
            ("mountOptions", "nfsvers=4.1, hard"),
            ("csi.storage.k8s.io/pvc/name", "data-0"),
            ("csi.storage.k8s.io/pvc/namespace", "ns"),
            ("csi.storage.k8s.io/provisioner-secret-name", "ignored"),
        ])
        .unwrap();
        let c = p
            .resolve("pvc-1", &["noatime".into()], &defaults())
            .unwrap();
        assert_eq!(c.share.server.as_deref(), Some("nfs.local"));
        assert_eq!(
            c.share.mount_options,
            vec!["nfsvers=4.1", "hard", "noatime"]
        );
        assert_eq!(c.sub_dir.as_str(), "ns/data-0");
        assert_eq!(c.on_delete, OnDelete::Archive);
        assert_eq!((c.mode, p.publish_permissions()), (0o750, Some(0o750)));
    }

    #[test]
    fn falls_back_to_defaults() {
        let c = Params::parse::<&str, &str>([])
            .unwrap()
            .resolve("pvc-9", &[], &defaults())
            .unwrap();
        assert_eq!(c.share.path, "/srv/default");
        assert!(!c.share.is_nfs());
        assert_eq!(c.sub_dir.as_str(), "pvc-9");
        assert_eq!((c.on_delete, c.mode), (OnDelete::Delete, 0o777));
        let none = Defaults {
            share: None,
            ..defaults()
        };
        assert!(
            Params::parse::<&str, &str>([])
                .unwrap()
                .resolve("pvc-9", &[], &none)
                .is_err()
        );
    }

    #[test]
    fn refuses_bad_parameters() {
        for (k, v) in [
            ("color", "blue"),
            ("mountPermissions", "rwx"),
            ("mountPermissions", "99999"),
            ("onDelete", "shred"),
            ("subDir", "../x"),
            ("mountOptions", "a b"),
        ] {
            assert!(Params::parse([(k, v)]).is_err(), "{k}={v}");
        }
        assert!(
            Params::parse([("server", "x")]).is_err(),
            "server without share"
        );
        let p = Params::parse::<&str, &str>([]).unwrap();
        for bad_name in ["../x", "a/b", "", ".."] {
            assert!(
                p.resolve(bad_name, &[], &defaults()).is_err(),
                "{bad_name:?}"
            );
        }
        let zero = Params::parse([("mountPermissions", "0")]).unwrap();
        let c = zero.resolve("pvc-0", &[], &defaults()).unwrap();
        assert_eq!((c.mode, zero.publish_permissions()), (0o755, None));
        let empty = Params::parse([("mountPermissions", "")]).unwrap();
        assert_eq!(
            empty.resolve("pvc-0", &[], &defaults()).unwrap().mode,
            0o777
        );
        for (k, v) in [("archiveOnDelete", "maybe"), ("volumeSource", "iscsi")] {
            assert!(Params::parse([(k, v)]).is_err(), "{k}={v}");
        }
        assert!(
            Params::parse([("subDir", "a"), ("pathPattern", "b")]).is_err(),
            "subDir and pathPattern together"
        );
    }

    #[test]
    fn reads_nfs_subdir_external_provisioner_parameters() {
        let resolve = |pairs: &[(&str, &str)]| {
            let mut p = Params::parse(pairs.iter().copied()).unwrap();
            p.metadata.pvc_name = Some("data".into());
            p.metadata.pvc_namespace = Some("ns".into());
            p.metadata.labels.insert("app".into(), "redis".into());
            p.resolve("pvc-7", &[], &defaults()).unwrap()
        };
        let c = resolve(&[("pathPattern", "${.PVC.namespace}/${.PVC.labels.app}")]);
        assert_eq!(
            (c.sub_dir.as_str(), c.on_delete),
            ("ns/redis", OnDelete::Delete)
        );
        let c = resolve(&[
            ("pathPattern", "${.PVC.labels.none}"),
            ("archiveOnDelete", "true"),
        ]);
        assert_eq!(
            (c.sub_dir.as_str(), c.on_delete),
            ("pvc-7", OnDelete::Archive)
        );
        assert_eq!(
            resolve(&[("archiveOnDelete", "false")]).on_delete,
            OnDelete::Delete
        );
        let both = resolve(&[("archiveOnDelete", "true"), ("onDelete", "retain")]);
        assert_eq!(both.on_delete, OnDelete::Retain, "onDelete wins");
        let p = Params::parse([("quota", "Enforce")]).unwrap();
        assert_eq!(p.quota, Some(crate::quota::Mode::Enforce));
        assert!(Params::parse([("quota", "hard")]).is_err());
        let p = Params::parse([("volumeSource", "NFS")]).unwrap();
        assert_eq!(p.volume_source, Some(VolumeSource::Nfs));
    }
}
