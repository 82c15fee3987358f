//! Volumes made by the two tools this driver replaces, read from what they left in Kubernetes:
//! csi-driver-nfs volume handles and nfs-subdir-external-provisioner's release rules. Both are
//! turned into a [`Disposal`]: a [`VolumeId`] plus how that tool named an archived directory.
//!
//! Facts used here (from the tools' sources, see docs/migrate-from-*.md):
//! - csi-driver-nfs writes handles `server#share#subDir#uuid#onDelete` with `share` and `subDir`
//!   trimmed of `/` (so `/exports` is written `exports`), `uuid` empty unless the class set subDir,
//!   and `onDelete` written only for `retain` and `archive` (empty: the driver's
//!   `--default-ondelete-policy`). Its oldest handles are `server/share/subDir`. It archives
//!   `<share>/<subDir>` to `<share>/archived-<subDir>` (the prefix goes on the whole sub-path).
//! - nfs-subdir-external-provisioner releases a PV by its class's `onDelete` (exactly `delete` or
//!   `retain`), else `archiveOnDelete` (Go's ParseBool; `false` deletes), else archives to
//!   `<export root>/archived-<last path component>`.

use super::{OnDelete, SecretOptions, ShareSpec, SubDir, VolumeId, path::shorten};
use crate::error::{Error, Result};

/// Where an archived directory goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchiveNaming {
    /// This driver: `archived-<last>` next to the directory.
    #[default]
    Sibling,
    /// csi-driver-nfs: `archived-<whole sub-path>` below the share root (parents made).
    WholePath,
    /// nfs-subdir-external-provisioner: `archived-<last>` at the share root.
    Root,
}

/// How one volume's directory is released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disposal {
    /// The volume and its policy.
    pub id: VolumeId,
    /// How an archive is named.
    pub archive: ArchiveNaming,
}

impl Disposal {
    /// Reads a volume id of this driver or a csi-driver-nfs handle. A csi-driver-nfs handle with
    /// no onDelete gets `default_on_delete` (as csi-driver-nfs gives its own flag's value).
    /// `secret` (the provisioner secret's mount options, which csi-driver-nfs and this driver
    /// both take at delete time) is added to the share's options for reaching it.
    /// Ids in neither format are [`Error::NotFound`].
    pub fn parse(raw: &str, default_on_delete: OnDelete, secret: SecretOptions) -> Result<Self> {
        if let Some(old) = CsiDriverNfsHandle::parse(raw)? {
            return Ok(Disposal {
                id: VolumeId {
                    share: old.share.with_secret_options(secret),
                    sub_dir: old.sub_dir,
                    on_delete: old.on_delete.unwrap_or(default_on_delete),
                },
                archive: ArchiveNaming::WholePath,
            });
        }
        let mut id = VolumeId::parse(raw)?;
        id.share = id.share.with_secret_options(secret);
        Ok(Disposal {
            id,
            archive: ArchiveNaming::Sibling,
        })
    }
}

/// A csi-driver-nfs volume handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsiDriverNfsHandle {
    /// `server:/share`, no mount options (csi-driver-nfs does not keep them in the handle).
    pub share: ShareSpec,
    /// The volume's directory below the share.
    pub sub_dir: SubDir,
    /// The policy written in the handle, if any.
    pub on_delete: Option<OnDelete>,
}

impl CsiDriverNfsHandle {
    /// `Ok(None)` when `raw` is not in a csi-driver-nfs format (this driver's ids never are: they
    /// have six `#` fields, csi-driver-nfs handles three to five). A handle in its format with a
    /// bad value (`..`, an unknown onDelete, a bad server) is [`Error::InvalidArgument`].
    pub fn parse(raw: &str) -> Result<Option<Self>> {
        if raw.is_empty() || raw.len() > 4096 {
            return Ok(None);
        }
        let fields: Vec<&str> = raw.split('#').collect();
        let (server, share, sub, on_delete) = match fields.as_slice() {
            [server, share, sub, rest @ ..] if rest.len() <= 2 && !server.is_empty() => {
                (*server, *share, *sub, rest.get(1).copied().unwrap_or(""))
            }
            [one] => match slash_form(one) {
                Some((server, share, sub)) => (server, share, sub, ""),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let bad = |why: String| Error::invalid(format!("csi-driver-nfs volume handle: {why}"));
        let on_delete = match on_delete.to_ascii_lowercase().as_str() {
            "" => None,
            "delete" => Some(OnDelete::Delete),
            "retain" => Some(OnDelete::Retain),
            "archive" => Some(OnDelete::Archive),
            other => return Err(bad(format!("unknown onDelete {:?}", shorten(other)))),
        };
        let share_path = format!("/{}", share.trim_matches('/'));
        Ok(Some(CsiDriverNfsHandle {
            share: ShareSpec::new(Some(server), &share_path, Vec::new())
                .map_err(|e| bad(e.to_string()))?,
            sub_dir: SubDir::parse(sub.trim_matches('/')).map_err(|e| bad(e.to_string()))?,
            on_delete,
        }))
    }
}

/// The oldest handle form, `server/share/subDir`: server up to the first `/`, subDir after the
/// last, share in between (possibly empty or nested).
fn slash_form(raw: &str) -> Option<(&str, &str, &str)> {
    let (server, rest) = raw.split_once('/')?;
    let (share, sub) = rest.rsplit_once('/')?;
    (!server.is_empty() && !sub.is_empty()).then_some((server, share, sub))
}

/// The delete policy nfs-subdir-external-provisioner applies to a PV of a class with these
/// parameters: `onDelete` exactly `delete` or `retain`; else `archiveOnDelete` read as Go's
/// ParseBool (`false` deletes, a bad value is an error); else archive. `None` (class gone):
/// archive, which loses nothing.
pub fn nfs_subdir_policy<'a>(
    class_params: Option<impl IntoIterator<Item = (&'a String, &'a String)>>,
) -> Result<OnDelete> {
    let Some(params) = class_params else {
        return Ok(OnDelete::Archive);
    };
    let params: Vec<_> = params.into_iter().collect();
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    };
    match get("onDelete") {
        Some("delete") => return Ok(OnDelete::Delete),
        Some("retain") => return Ok(OnDelete::Retain),
        _ => {}
    }
    match get("archiveOnDelete") {
        None => Ok(OnDelete::Archive),
        Some(v) => match v {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(OnDelete::Archive),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(OnDelete::Delete),
            _ => Err(Error::invalid(format!(
                "archiveOnDelete {:?}: expected true or false",
                shorten(v)
            ))),
        },
    }
}

/// True when a class speaks nfs-subdir-external-provisioner's dialect: only its parameters
/// (`onDelete`, `archiveOnDelete`, `pathPattern`), with `archiveOnDelete` or `pathPattern` among
/// them (its Helm chart always writes `archiveOnDelete`), or none at all while this provisioner
/// runs under another provisioner's name (`taking_over`). New claims then get its directory name
/// `<namespace>-<claim>-<pv>` unless `pathPattern` gives one. Any parameter of this driver
/// (`subDir`, `server`, `share`, …) is an explicit switch to this driver's naming.
pub fn speaks_nfs_subdir<'a>(
    class_params: impl IntoIterator<Item = &'a String>,
    taking_over: bool,
) -> bool {
    let keys: Vec<String> = class_params
        .into_iter()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let only_its = keys
        .iter()
        .all(|k| matches!(k.as_str(), "ondelete" | "archiveondelete" | "pathpattern"));
    let its_own = keys
        .iter()
        .any(|k| matches!(k.as_str(), "archiveondelete" | "pathpattern"));
    only_its && (its_own || (keys.is_empty() && taking_over))
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
