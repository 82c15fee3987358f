//! What the guest kernel shows: mounts from /proc/self/mountinfo, reads and statfs that may hang
//! on a dead server, the driver's threads stuck in the kernel, and a raw NFS mount of the export
//! for changing things behind the driver's back.

use crate::Env;
use nfs_subdir_csi::mount::mountinfo::{self, Mount};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// This process's mount table.
fn table() -> Vec<Mount> {
    mountinfo::read().expect("read /proc/self/mountinfo")
}

/// The topmost mount at `path`: (fstype, source, super options).
pub fn mounted_at(path: &Path) -> Option<(String, String, String)> {
    mountinfo::at(&table(), path)
        .map(|m| (m.fstype.clone(), m.source.clone(), m.super_options.clone()))
}

/// How many mounts are stacked at `path`.
pub fn mounts_at(path: &Path) -> usize {
    table().iter().filter(|m| m.mount_point == path).count()
}

/// The topmost mount at `path` is read-only (per mount or for the whole superblock).
pub fn read_only_at(path: &Path) -> bool {
    mountinfo::at(&table(), path).is_some_and(|m| m.read_only() || m.super_read_only())
}

/// A driver's working mounts (NFS mounts at `<dir>/<key>-<random>/root`): (mount point, fstype,
/// super options).
pub fn working_mounts(dir: &Path) -> Vec<(PathBuf, String, String)> {
    table()
        .into_iter()
        .filter(|m| {
            m.mount_point.parent().and_then(Path::parent) == Some(dir)
                && m.fstype.starts_with("nfs")
        })
        .map(|m| (m.mount_point, m.fstype, m.super_options))
        .collect()
}

/// A mount of type `fstype` with `opts` shows NFS version `vers`.
pub fn version_shown(vers: &str, fstype: &str, opts: &str) -> bool {
    let want_type = if vers == "3" { "nfs" } else { "nfs4" };
    fstype == want_type && opts.split(',').any(|o| o == format!("vers={vers}"))
}

/// Reads a file with a time bound (the server may be down).
pub async fn read_bounded(path: &Path, within: Duration) -> Result<String, String> {
    let p = path.to_owned();
    let task = tokio::task::spawn_blocking(move || std::fs::read_to_string(p));
    match tokio::time::timeout(within, task).await {
        Ok(Ok(Ok(s))) => Ok(s),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
    }
}

/// statfs of `path`: "ok" or the errno (ESTALE for a stale handle).
pub fn errno_of(path: &Path) -> String {
    match nix::sys::statvfs::statvfs(path) {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e}"),
    }
}

/// Threads of the driver (NSC_DRIVER_PID) in uninterruptible sleep: stuck in the kernel, usually
/// on an NFS server that does not answer. `None` without a pid.
pub fn stuck_threads() -> Option<usize> {
    let pid = std::env::var("NSC_DRIVER_PID").ok()?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .and_then(|st| st.rsplit_once(") ").map(|(_, r)| r.starts_with('D')))
                    .unwrap_or(false)
            })
            .count(),
    )
}

/// A mount of the whole export made by the test itself, to change things behind the driver's back.
pub struct RawMount {
    pub path: PathBuf,
}

impl RawMount {
    pub fn new(env: &Env, vers: &str) -> Result<RawMount, String> {
        Self::with(env, &env.share, vers, "")
    }

    /// Without attribute and lookup caches: what another client (the driver's own mount) did
    /// shows at once.
    pub fn uncached(env: &Env, vers: &str) -> Result<RawMount, String> {
        Self::with(env, &env.share, vers, ",noac,lookupcache=none")
    }

    /// Another export of the harness's ganesha (fault-exports.sh), uncached.
    pub fn export(env: &Env, export: &str, vers: &str) -> Result<RawMount, String> {
        Self::with(env, export, vers, ",noac,lookupcache=none")
    }

    fn with(env: &Env, export: &str, vers: &str, extra: &str) -> Result<RawMount, String> {
        let tag = if export == env.share {
            String::new()
        } else {
            export.replace('/', "-")
        };
        let path = PathBuf::from(format!(
            "/tmp/raw{tag}-v{vers}{}",
            extra.replace([',', '='], "-")
        ));
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let mut data = format!(
            "vers={vers},addr={}{}{extra}",
            env.server,
            env.port_opts(vers)
        );
        if vers == "3" {
            data.push_str(",nolock");
        }
        nix::mount::mount(
            Some(format!("{}:{export}", env.server).as_str()),
            &path,
            Some("nfs"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| format!("mount {data}: {e}"))?;
        Ok(RawMount { path })
    }

    /// Replaces the directory `name` on the server by a new one holding `files` (name, content):
    /// handles to the old directory go stale.
    pub fn replace_dir(&self, name: &str, files: &[(&str, &str)]) -> std::io::Result<()> {
        let dir = self.path.join(name);
        let old = self.path.join(format!("{name}-old"));
        std::fs::rename(&dir, &old)?;
        std::fs::create_dir(&dir)?;
        for (file, content) in files {
            std::fs::write(dir.join(file), content)?;
        }
        std::fs::remove_dir_all(&old)
    }
}

impl Drop for RawMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}
