//! ListVolumes' paging snapshot: the sorted record names of every known share, taken for a first
//! page and kept a short while, so the pages after it read only their own records instead of
//! listing every share again (with 10,000 volumes in pages of 500 that was 20 listings of 10,000
//! names for one pass).
//!
//! The token stays the last key of a page, so a page whose snapshot is gone (expired, replaced by
//! another pass, or a restarted controller) lists the shares afresh and goes on from the same key.
//! A volume deleted between pages is skipped (its record is gone when the page reads it); one
//! created after the first page is listed by the next pass (CSI asks no more of paging).

use crate::volume::ShareSpec;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a snapshot serves the pages after the first.
const KEEP: Duration = Duration::from_secs(30);

/// One listing of every known share's record names.
#[derive(Debug)]
pub(crate) struct Listing {
    /// The shares listed, as `known()` gave them.
    pub specs: Vec<ShareSpec>,
    /// Each share's prefix in the sort keys (its display form).
    prefixes: Vec<String>,
    /// `prefix\0record key` and the share's index in `specs`: sorted, without duplicates (the
    /// same export reached with different mount options holds the same records).
    entries: Vec<(Box<str>, usize)>,
}

impl Listing {
    /// Sorts the record keys found on each of `specs` (`keys[i]` on `specs[i]`).
    pub fn new(specs: Vec<ShareSpec>, keys: Vec<Vec<String>>) -> Self {
        let prefixes: Vec<String> = specs.iter().map(ToString::to_string).collect();
        let mut entries: Vec<(Box<str>, usize)> = keys
            .into_iter()
            .enumerate()
            .flat_map(|(i, keys)| {
                let prefix = &prefixes[i];
                keys.into_iter()
                    .map(move |k| (format!("{prefix}\0{k}").into_boxed_str(), i))
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Listing {
            specs,
            prefixes,
            entries,
        }
    }

    /// The page after the sort key `after`, at most `max` long (0: all), as runs of one share
    /// each (the share's index and its record keys, in order), and the next page's token.
    pub fn page(&self, after: Option<&str>, max: usize) -> (Vec<(usize, Vec<String>)>, String) {
        let (range, next) = crate::token::window(&self.entries, |e| &e.0, after, max);
        let mut runs: Vec<(usize, Vec<String>)> = Vec::new();
        for (sort, share) in &self.entries[range] {
            let key = sort[self.prefixes[*share].len() + 1..].to_owned();
            match runs.last_mut() {
                Some((s, keys)) if s == share => keys.push(key),
                _ => runs.push((*share, vec![key])),
            }
        }
        (runs, next)
    }
}

/// The last snapshot taken, while it is fresh.
#[derive(Debug, Default)]
pub(crate) struct Listings {
    last: Mutex<Option<(Instant, Arc<Listing>)>>,
}

impl Listings {
    /// The snapshot to page on, if one was taken less than [`KEEP`] ago.
    pub fn fresh(&self) -> Option<Arc<Listing>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((taken, listing)) if taken.elapsed() < KEEP => Some(listing.clone()),
            _ => None,
        }
    }

    /// Keeps `listing` for the pages after the one it was taken for (replacing any older one).
    pub fn keep(&self, listing: Arc<Listing>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), listing));
    }

    /// Forgets the snapshot (after the last page, so its memory goes at once).
    pub fn drop_last(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str) -> ShareSpec {
        ShareSpec::new(None, path, vec![]).unwrap()
    }

    #[test]
    fn pages_run_by_share_in_order_and_resume_from_a_key() {
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let l = Listing::new(
            vec![spec("/b"), spec("/a"), spec("/a")],
            vec![keys(&["y", "x"]), keys(&["z", "w"]), keys(&["w"])],
        );
        let (runs, next) = l.page(None, 3);
        assert_eq!(runs, vec![(1, keys(&["w", "z"])), (0, keys(&["x"]))]);
        let after = crate::token::decode(&next).unwrap();
        assert_eq!(after.as_deref(), Some("/b\0x"));
        let (runs, next) = l.page(after.as_deref(), 3);
        assert_eq!((runs, next.as_str()), (vec![(0, keys(&["y"]))], ""));
        // a key that is no longer listed still places the page
        let (runs, _) = l.page(Some("/a\0x"), 0);
        assert_eq!(runs, vec![(1, keys(&["z"])), (0, keys(&["x", "y"]))]);
    }
}
