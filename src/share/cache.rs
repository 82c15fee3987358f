//! Open share roots kept between calls, by local path, so a call on a share reached over NFS does
//! not re-open (and revalidate) the same directories every time.

use super::ShareRoot;
use crate::error::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Open share roots by local path. A remount gets a new path, so a dropped working mount is never
/// reused; callers [`forget`](RootCache::forget) an entry whenever a call on it fails.
#[derive(Clone, Debug, Default)]
pub struct RootCache(Arc<Mutex<HashMap<PathBuf, Arc<ShareRoot>>>>);

impl RootCache {
    /// The open root at `path`, from the cache or opened now (a blocking call).
    pub fn get_or_open(&self, path: &Path) -> Result<Arc<ShareRoot>> {
        if let Some(root) = self.lock().get(path) {
            return Ok(root.clone());
        }
        let root = Arc::new(ShareRoot::open(path)?);
        Ok(self.lock().entry(path.to_owned()).or_insert(root).clone())
    }

    /// Drops the entry for `path`; the next call opens it afresh.
    pub fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<ShareRoot>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_roots_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RootCache::default();
        let a = cache.get_or_open(dir.path()).unwrap();
        let b = cache.get_or_open(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        cache.forget(dir.path());
        let c = cache.get_or_open(dir.path()).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(cache.get_or_open(&dir.path().join("missing")).is_err());
    }
}
