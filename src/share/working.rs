//! The controller's working mounts: one kept NFS mount per (server, export, options), made on first
//! use, reused by every request, dropped and remade when it goes stale.

use crate::blocking;
use crate::error::{Error, Result};
use crate::mount::{self, nfs};
use crate::volume::ShareSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Mutex;

/// Kept NFS mounts below one working directory.
#[derive(Debug)]
pub struct WorkingMounts {
    dir: PathBuf,
    mounted: Mutex<BTreeMap<ShareSpec, PathBuf>>,
}

impl WorkingMounts {
    /// Working mounts live in `dir` (`--working-mount-dir`).
    pub fn new(dir: PathBuf) -> Self {
        WorkingMounts {
            dir,
            mounted: Mutex::new(BTreeMap::new()),
        }
    }

    fn mount_point(&self, spec: &ShareSpec) -> PathBuf {
        let key = format!("{spec}|{}", spec.mount_options.join(","));
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes());
        self.dir.join(id.simple().to_string())
    }

    /// The local root of the export `spec`, mounting it first if this process has not yet.
    /// Concurrent first calls for different shares wait for each other; calls for an already
    /// mounted share only look up the map.
    pub async fn root(&self, spec: &ShareSpec, deadline: Duration) -> Result<PathBuf> {
        let mut mounted = self.mounted.lock().await;
        if let Some(path) = mounted.get(spec) {
            return Ok(path.clone());
        }
        let target = self.mount_point(spec);
        let owned = spec.clone();
        let t = target.clone();
        blocking::run(&format!("mount {spec}"), deadline, move || {
            mount_working(&owned, &t)
        })
        .await?;
        tracing::info!(share = %spec, at = %target.display(), "working mount ready");
        mounted.insert(spec.clone(), target.clone());
        Ok(target)
    }

    /// Drops the working mount of `spec` (lazily unmounted: it may be stale or its server gone).
    /// Returns true if there was one.
    pub async fn forget(&self, spec: &ShareSpec) -> bool {
        let Some(path) = self.mounted.lock().await.remove(spec) else {
            return false;
        };
        tracing::warn!(share = %spec, "dropping working mount; the next call mounts afresh");
        let detach = tokio::task::spawn_blocking(move || mount::unmount_all(&path, true));
        if let Ok(Err(e)) = detach.await {
            tracing::warn!(share = %spec, error = %e, "lazy unmount of working mount failed");
        }
        true
    }

    /// The exports mounted so far.
    pub async fn mounted(&self) -> Vec<ShareSpec> {
        self.mounted.lock().await.keys().cloned().collect()
    }
}

/// Mounts `spec` at `target`, reusing a mount left there by an earlier run of the driver.
fn mount_working(spec: &ShareSpec, target: &Path) -> Result<()> {
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("mkdir {}", target.display()), e))?;
    if mount::is_mount_point(target)? {
        return Ok(());
    }
    let server = spec.server.as_deref().unwrap_or_default();
    let m = nfs::NfsMount {
        server,
        path: &spec.path,
        options: &spec.mount_options,
        read_only: false,
        bounded: true,
    };
    nfs::mount_nfs(&m, target).map(drop)
}
