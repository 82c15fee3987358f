//! ListVolumes page tokens: the last key of a page, hex-encoded, so a foreign token is refused.

use crate::error::{Error, Result};

/// The token for the page that starts after `key`.
pub fn encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key a token stands for; `None` for the empty token (the first page). A token this driver
/// did not issue is [`Error::BadToken`] (ABORTED in CSI terms).
pub fn decode(token: &str) -> Result<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::BadToken(format!(
            "{:?} is not a token this driver issued",
            crate::volume::path::shorten(token)
        ))
    };
    if token.len() % 2 != 0 || token.len() > 8192 {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?)
        .map(Some)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let key = "/srv/share\0pvc-1";
        assert_eq!(decode(&encode(key)).unwrap().as_deref(), Some(key));
        assert_eq!(decode("").unwrap(), None);
        for bad in ["invalid-token", "abc", "zz"] {
            assert!(matches!(decode(bad), Err(Error::BadToken(_))), "{bad}");
        }
    }
}
