//! List page tokens (ListVolumes, ListSnapshots): the last key of a page, hex-encoded, so a
//! foreign token is refused; and the one paging rule both lists follow.

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
    // Only what `encode` writes: lowercase hex digits (from_str_radix would also take "+f" and
    // "AB", tokens this driver never issued).
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes: Option<Vec<u8>> = token
        .as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?)
        .map(Some)
        .map_err(|_| bad())
}

/// Where the page after the key `after` (from [`decode`]) lies in `sorted` (sorted by `key`,
/// keys distinct): at most `max` items (0: all), and the token of the next page ("" when this page
/// is the last). A key no longer present still places the page: it starts at the first key after it.
pub fn window<T>(
    sorted: &[T],
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    max: usize,
) -> (std::ops::Range<usize>, String) {
    let start = after.map_or(0, |a| sorted.partition_point(|t| key(t) <= a));
    let rest = sorted.len() - start;
    let take = if max == 0 { rest } else { max.min(rest) };
    let end = start + take;
    let next = if end < sorted.len() {
        encode(key(&sorted[end - 1]))
    } else {
        String::new()
    };
    (start..end, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let key = "/srv/share\0pvc-1";
        assert_eq!(decode(&encode(key)).unwrap().as_deref(), Some(key));
        assert_eq!(decode("").unwrap(), None);
        // "+f" and uppercase were once accepted (found by tests/prop_edge).
        for bad in ["invalid-token", "abc", "zz", "+f", "+f+f", "AB", "0A"] {
            assert!(matches!(decode(bad), Err(Error::BadToken(_))), "{bad}");
        }
    }

    #[test]
    fn pages_follow_the_token_of_the_last_key() {
        let all = || (1..=5).map(|i| (format!("k{i}"), i)).collect::<Vec<_>>();
        let page = |after: Option<&str>, max| {
            let all = all();
            let (range, next) = window(&all, |(k, _)| k, after, max);
            (all[range].iter().map(|(_, i)| *i).collect::<Vec<_>>(), next)
        };
        let (first, next) = page(None, 2);
        assert_eq!(first, [1, 2]);
        let after = decode(&next).unwrap();
        let (second, next) = page(after.as_deref(), 2);
        assert_eq!(second, [3, 4]);
        let (last, next) = page(decode(&next).unwrap().as_deref(), 2);
        assert_eq!((last, next.as_str()), (vec![5], ""));
        assert_eq!(page(None, 0).0.len(), 5);
        // the last key of a page deleted before the next one: the page starts after it
        assert_eq!(page(Some("k2a"), 0).0, [3, 4, 5]);
        assert_eq!(page(Some("k9"), 2), (vec![], String::new()));
    }
}
