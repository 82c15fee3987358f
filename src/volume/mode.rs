//! Directory modes written as text: the `mountPermissions` StorageClass parameter and volume
//! attribute (csi-driver-nfs's, read the same way here) and the `--mount-permissions` flag.
//!
//! csi-driver-nfs reads `mountPermissions` as an octal number (an empty value means "not given");
//! a non-zero value is the mode of a new volume's directory and the mode its node gives the mount
//! point after mounting; `0` leaves the mode alone. Values above `7777` are refused here.

use super::path::shorten;
use crate::error::{Error, Result};

/// The mode a directory gets when `0` is asked for: what a plain `mkdir` gives under the usual
/// umask 022 (csi-driver-nfs makes directories with 0777 and leaves the umask to clear bits).
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// Parses an octal mode such as `0777`, `777`, `2775` or `0` for the parameter `key`: octal
/// digits only (no sign, no `0o`), at most `7777`. `0` stays `0`. A bad value is
/// [`Error::InvalidArgument`] naming `key`.
pub fn parse_octal(key: &str, v: &str) -> Result<u32> {
    let t = v.trim();
    let digits = !t.is_empty() && t.bytes().all(|b| (b'0'..=b'7').contains(&b));
    digits
        .then(|| u32::from_str_radix(t, 8).ok())
        .flatten()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{key} {:?}: expected an octal mode from 0 to 7777, like 0777",
                shorten(v)
            ))
        })
}

/// The `mountPermissions` parameter or volume attribute: `None` when empty (csi-driver-nfs
/// ignores an empty value), else its octal value (`0` included).
pub fn parse_permissions(v: &str) -> Result<Option<u32>> {
    if v.trim().is_empty() {
        return Ok(None);
    }
    parse_octal("mountPermissions", v).map(Some)
}

/// The mode a new directory gets for `mountPermissions` = `m`: `m`, or [`DEFAULT_DIR_MODE`] for 0.
pub fn dir_mode(m: u32) -> u32 {
    if m == 0 { DEFAULT_DIR_MODE } else { m }
}

/// `--mount-permissions`: an octal mode; `0` means [`DEFAULT_DIR_MODE`].
pub fn parse_mode(v: &str) -> Result<u32> {
    parse_octal("--mount-permissions", v).map(dir_mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes_read_as_csi_driver_nfs_writes_them() {
        for (text, mode) in [
            ("0777", 0o777),
            ("777", 0o777),
            ("0750", 0o750),
            ("2775", 0o2775),
            ("01777", 0o1777),
            ("7777", 0o7777),
            (" 0700 ", 0o700),
            ("0", 0),
            ("0000", 0),
        ] {
            assert_eq!(
                parse_octal("mountPermissions", text).unwrap(),
                mode,
                "{text:?}"
            );
            assert_eq!(parse_permissions(text).unwrap(), Some(mode), "{text:?}");
        }
        assert_eq!(parse_permissions("").unwrap(), None);
        assert_eq!(parse_permissions("  ").unwrap(), None);
    }

    #[test]
    fn bad_modes_are_invalid_and_name_the_parameter() {
        for bad in [
            "rwx",
            "0o777",
            "8",
            "0778",
            "10000",
            "77777",
            "-1",
            "+777",
            "0x1ff",
            "7 7",
            "a+rwx",
            "99999999999999999999",
        ] {
            let err = parse_permissions(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.starts_with("mountPermissions ")),
                "{bad:?}: {err}"
            );
        }
        let err = parse_mode("1e3").unwrap_err();
        assert!(err.to_string().contains("--mount-permissions"), "{err}");
    }

    #[test]
    fn zero_makes_the_usual_directory_mode() {
        assert_eq!(dir_mode(0), 0o755);
        assert_eq!(dir_mode(0o2770), 0o2770);
        assert_eq!(parse_mode("0").unwrap(), 0o755);
        assert_eq!(parse_mode("0777").unwrap(), 0o777);
    }
}
