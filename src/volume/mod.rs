//! Volume-level domain types: what a volume is, where it lives, and how its names are checked.

pub mod context;
pub mod id;
pub mod legacy;
pub mod mode;
pub mod params;
pub mod path;
pub mod secret;
pub mod template;

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

pub use context::VolumeContext;
pub use id::VolumeId;
pub use params::{CreateParams, Params};
pub use path::SubDir;
pub use secret::SecretOptions;

/// What DeleteVolume does with the volume's directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OnDelete {
    /// Move it to the trash and remove it in the background.
    #[default]
    Delete,
    /// Leave it untouched.
    Retain,
    /// Rename it to `archived-<name>` next to where it was.
    Archive,
}

impl FromStr for OnDelete {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "delete" => Ok(OnDelete::Delete),
            "retain" => Ok(OnDelete::Retain),
            "archive" => Ok(OnDelete::Archive),
            _ => Err(Error::invalid(format!(
                "onDelete {:?}: expected delete, retain or archive",
                path::shorten(s)
            ))),
        }
    }
}

impl fmt::Display for OnDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnDelete::Delete => "delete",
            OnDelete::Retain => "retain",
            OnDelete::Archive => "archive",
        })
    }
}

/// Where a share is: an NFS export (`server` set) or a path already mounted on every node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareSpec {
    /// NFS server host name or address; `None` for a pre-mounted path.
    pub server: Option<String>,
    /// Absolute path: the export on the server, or the local mount point.
    pub path: String,
    /// Mount options needed to reach the export (ignored for pre-mounted paths).
    pub mount_options: Vec<String>,
    /// More options from a secret: used to mount, never printed, not part of the identity.
    pub secret_options: SecretOptions,
}

impl ShareSpec {
    /// Validates the pieces of a share. The path is normalised (no trailing `/`).
    pub fn new(server: Option<&str>, path: &str, mount_options: Vec<String>) -> Result<Self> {
        let server = match server.map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(check_server(s)?.to_owned()),
        };
        for opt in &mount_options {
            check_mount_option(opt)?;
        }
        Ok(ShareSpec {
            server,
            path: normalise_share_path(path)?,
            mount_options,
            secret_options: SecretOptions::default(),
        })
    }

    /// The same share reached with `secret` options added (see [`SecretOptions`]).
    pub fn with_secret_options(mut self, secret: SecretOptions) -> Self {
        self.secret_options = secret;
        self
    }

    /// Every option to mount the share with: the public ones, then the secret ones.
    pub fn all_mount_options(&self) -> Vec<String> {
        let mut all = self.mount_options.clone();
        push_new(&mut all, self.secret_options.reveal().iter().cloned());
        all
    }

    /// True when the share is an NFS export reached through the driver's own mounts.
    pub fn is_nfs(&self) -> bool {
        self.server.is_some()
    }
}

impl fmt::Display for ShareSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Some(server) => write!(f, "{server}:{}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

fn check_server(s: &str) -> Result<&str> {
    let ok = s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    if ok {
        Ok(s)
    } else {
        Err(Error::invalid(format!(
            "server {:?}: expected a host name or an IP address",
            path::shorten(s)
        )))
    }
}

/// Adds the comma-separated mount options of `text` (spaces around them ignored) to `options`,
/// each checked with [`check_mount_option`], none twice. The one way options are merged: a
/// StorageClass's `mountOptions` parameter, the capability's mount flags, the volume context.
pub fn add_mount_options(options: &mut Vec<String>, text: &str) -> Result<()> {
    for opt in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        check_mount_option(opt)?;
        push_new(options, [opt.to_owned()]);
    }
    Ok(())
}

/// Appends those of `new` that `options` does not hold yet, in order.
pub fn push_new(options: &mut Vec<String>, new: impl IntoIterator<Item = String>) {
    for opt in new {
        if !options.contains(&opt) {
            options.push(opt);
        }
    }
}

/// Checks one mount option: no separators or control characters that could smuggle in others.
pub fn check_mount_option(opt: &str) -> Result<()> {
    let ok = !opt.is_empty()
        && opt.len() <= 256
        && !opt
            .chars()
            .any(|c| c == ',' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "mount option {:?} is malformed",
            path::shorten(opt)
        )))
    }
}

fn normalise_share_path(p: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("share {:?}: {why}", path::shorten(p)));
    if !p.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    if p.len() > 1024 || p.contains('\0') {
        return Err(bad("too long or contains NUL"));
    }
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return Err(bad("'.' and '..' are not allowed"));
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options_merge_checked_and_once() {
        let mut opts = vec!["nfsvers=4.1".to_owned()];
        add_mount_options(&mut opts, " hard, nfsvers=4.1 ,,timeo=600").unwrap();
        assert_eq!(opts, ["nfsvers=4.1", "hard", "timeo=600"]);
        let before = opts.clone();
        assert!(add_mount_options(&mut opts, "ro,bad\toption").is_err());
        assert_eq!(opts[..before.len()], before[..], "earlier options kept");
        push_new(&mut opts, ["hard".to_owned(), "noac".to_owned()]);
        assert_eq!(opts.last().map(String::as_str), Some("noac"));
        assert_eq!(opts.iter().filter(|o| *o == "hard").count(), 1);
    }

    #[test]
    fn share_paths_are_normalised_and_checked() {
        let s = ShareSpec::new(Some("nfs.example.com"), "/exports//data/", vec![]).unwrap();
        assert_eq!(s.path, "/exports/data");
        assert!(s.is_nfs());
        assert_eq!(ShareSpec::new(None, "/", vec![]).unwrap().path, "/");
        for bad in ["relative", "/a/../b", "/a/./b", "/a\0b"] {
            assert!(ShareSpec::new(None, bad, vec![]).is_err(), "{bad:?}");
        }
        assert!(ShareSpec::new(Some("evil,host"), "/x", vec![]).is_err());
        assert!(ShareSpec::new(Some("a b"), "/x", vec![]).is_err());
        assert!(ShareSpec::new(Some("h"), "/x", vec!["vers=4,addr=1.2.3.4".into()]).is_err());
        assert!(ShareSpec::new(Some("[fd00::1]"), "/x", vec!["nfsvers=4.1".into()]).is_ok());
    }

    #[test]
    fn on_delete_parses_case_insensitively() {
        assert_eq!("Archive".parse::<OnDelete>().unwrap(), OnDelete::Archive);
        assert_eq!("RETAIN".parse::<OnDelete>().unwrap(), OnDelete::Retain);
        assert!("shred".parse::<OnDelete>().is_err());
    }
}
