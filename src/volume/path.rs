//! Safe relative paths below a share root: the only way a name from a request, an id or a template
//! becomes a path on the share.

use crate::error::{Error, Result};
use std::fmt;

/// The directory below the share root where this driver keeps its own state (trash, records).
pub const STATE_DIR: &str = ".nfs-subdir-csi";
/// Longest accepted component, the usual NAME_MAX.
const MAX_COMPONENT: usize = 255;
/// Longest accepted relative path; well above what Kubernetes names produce.
const MAX_PATH: usize = 1024;

/// A validated relative path of one or more plain components below a share root.
///
/// Guarantees: not empty, not absolute, no `.` or `..` components, no empty components, no NUL,
/// each component at most 255 bytes, the whole at most 1024 bytes, and the first component is not
/// the driver's own state directory. Such a path can only name something strictly inside the root;
/// symlinks are dealt with by the share layer, which never follows them while walking it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubDir(String);

impl SubDir {
    /// Validates `raw` as a path below a share root.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("sub-directory {:?}: {why}", shorten(raw)));
        if raw.is_empty() {
            return Err(bad("empty"));
        }
        if raw.len() > MAX_PATH {
            return Err(bad("longer than 1024 bytes"));
        }
        if raw.starts_with('/') {
            return Err(bad("absolute paths are not allowed"));
        }
        for (i, part) in raw.split('/').enumerate() {
            check_component(part).map_err(|why| bad(&why))?;
            if i == 0 && part == STATE_DIR {
                return Err(bad("names the driver's state directory"));
            }
        }
        Ok(SubDir(raw.to_owned()))
    }

    /// The path as a string, components separated by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, parents first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The parent components and the last one.
    pub fn split_last(&self) -> (Vec<&str>, &str) {
        let mut parts: Vec<&str> = self.components().collect();
        let last = parts.pop().unwrap_or_default();
        (parts, last)
    }
}

impl fmt::Display for SubDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one path component: a plain file name.
pub fn check_component(part: &str) -> std::result::Result<(), String> {
    match part {
        "" => Err("empty path component".into()),
        "." | ".." => Err(format!("component {part:?} is not allowed")),
        _ if part.len() > MAX_COMPONENT => Err("component longer than 255 bytes".into()),
        _ if part.contains('\0') => Err("contains NUL".into()),
        _ if part.contains('/') => Err("contains '/'".into()),
        _ => Ok(()),
    }
}

/// Cuts long hostile input down before it goes into an error message or a log line.
pub fn shorten(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_owned();
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_nested_names() {
        assert_eq!(SubDir::parse("pvc-1").unwrap().as_str(), "pvc-1");
        let nested = SubDir::parse("ns/claim").unwrap();
        assert_eq!(nested.split_last(), (vec!["ns"], "claim"));
        assert!(SubDir::parse("archived-pvc-1").is_ok());
        assert!(SubDir::parse(".hidden").is_ok());
    }

    #[test]
    fn refuses_hostile_names() {
        let long_component = "a".repeat(256);
        let four_k = "b/".repeat(2048);
        for bad in [
            "",
            "/",
            "/etc",
            "..",
            ".",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "x\0y",
            long_component.as_str(),
            four_k.as_str(),
            STATE_DIR,
            ".nfs-subdir-csi/trash/x",
        ] {
            let err = SubDir::parse(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn shortens_long_input_in_messages() {
        let msg = SubDir::parse(&"z".repeat(5000)).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }
}
