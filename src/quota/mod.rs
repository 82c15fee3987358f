//! Enforced capacity: project quotas on the filesystem behind a share (XFS `prjquota`, ext4 with
//! the `project` and `quota` features). A volume's directory gets a project id with the inherit
//! flag and a hard block limit of its capacity; the NFS server writes through that filesystem, so
//! writes beyond it fail and `statfs` (df) shows the limit. Reached through a local path: a
//! pre-mounted share is one, an NFS export needs `--export-path server:/export=/local/path`
//! (the controller runs where the export's filesystem is). Directories are still made through the
//! share's safe-path code; only the quota calls use the local path. Blocking calls throughout.

pub mod project;
pub mod sys;

use crate::error::{Error, Result};
use crate::share::fs::{open_root, open_volume_dir};
use crate::share::record;
use crate::volume::{ShareSpec, SubDir, path::shorten};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use sys::{State, Usage};

/// The StorageClass parameter `quota`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `enforce`: the volume gets a project quota or CreateVolume fails (FAILED_PRECONDITION).
    Enforce,
    /// `best-effort` (default): a project quota where the filesystem is reachable and has them;
    /// elsewhere the size is only recorded.
    #[default]
    BestEffort,
    /// `off`: the size is only recorded.
    Off,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "enforce" => Ok(Mode::Enforce),
            "best-effort" | "besteffort" => Ok(Mode::BestEffort),
            "off" => Ok(Mode::Off),
            _ => Err(Error::invalid(format!(
                "quota {:?}: expected enforce, best-effort or off",
                shorten(s)
            ))),
        }
    }
}

/// One `--export-path server:/export=/local/path`: where an NFS export's filesystem is mounted on
/// the controller's machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportPath {
    /// The NFS server as StorageClasses name it.
    pub server: String,
    /// The export path on it.
    pub export: String,
    /// The same directory on this machine.
    pub local: PathBuf,
}

impl std::str::FromStr for ExportPath {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?}: expected server:/export=/local/path");
        let (server, rest) = s.split_once(":/").ok_or_else(bad)?;
        let (export, local) = rest.split_once('=').ok_or_else(bad)?;
        let export = format!("/{}", export.trim_end_matches('/'));
        if server.trim().is_empty() || !local.starts_with('/') {
            return Err(bad());
        }
        Ok(ExportPath {
            server: server.trim().to_owned(),
            export: if export.len() > 1 { export } else { "/".into() },
            local: PathBuf::from(local),
        })
    }
}

/// How long a filesystem found without project quotas is taken to still have none: a `best-effort`
/// CreateVolume then skips the check (a trip through the blocking pool and a quotactl), and a
/// filesystem remounted with quotas is picked up this long after.
const NONE_FOR: Duration = Duration::from_secs(30);

/// Which shares' filesystems this controller can reach, for project quotas.
#[derive(Clone, Debug, Default)]
pub struct Quotas {
    exports: Vec<ExportPath>,
    /// Local roots last found without project quotas, and when.
    none_seen: Arc<Mutex<HashMap<PathBuf, Instant>>>,
}

impl Quotas {
    /// Quotas reaching pre-mounted shares and the NFS exports `exports` maps.
    pub fn new(exports: Vec<ExportPath>) -> Self {
        Quotas {
            exports,
            none_seen: Default::default(),
        }
    }

    /// True when `spec`'s filesystem was found without project quotas in the last [`NONE_FOR`]:
    /// a `best-effort` plan would be `None` again.
    pub fn recently_none(&self, spec: &ShareSpec) -> bool {
        let Some(local) = self.local_root(spec) else {
            return false;
        };
        let seen = self.none_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&local).is_some_and(|at| at.elapsed() < NONE_FOR)
    }

    fn note_none(&self, local: &Path, none: bool) {
        let mut seen = self.none_seen.lock().unwrap_or_else(|p| p.into_inner());
        if none {
            seen.insert(local.to_owned(), Instant::now());
        } else {
            seen.remove(local);
        }
    }

    /// The local directory of `spec`'s root, if this machine has one.
    pub fn local_root(&self, spec: &ShareSpec) -> Option<PathBuf> {
        let Some(server) = &spec.server else {
            return Some(PathBuf::from(&spec.path));
        };
        self.exports
            .iter()
            .find(|e| &e.server == server && e.export == spec.path)
            .map(|e| e.local.clone())
    }

    /// Before a volume is made on `spec`: the local root where its project quota goes, or `None`
    /// when it only gets its size recorded. With [`Mode::Enforce`] a share whose filesystem has
    /// no enforced project quotas is [`Error::FailedPrecondition`] naming the fix. Blocking.
    pub fn plan(&self, spec: &ShareSpec, mode: Mode) -> Result<Option<PathBuf>> {
        if mode == Mode::Off {
            return Ok(None);
        }
        let Some(local) = self.local_root(spec) else {
            return match mode {
                Mode::Enforce => Err(Error::FailedPrecondition(format!(
                    "quota: enforce needs the filesystem of {spec} on the controller: start it \
                     with --export-path {}:{}=<local path of that export>",
                    spec.server.as_deref().unwrap_or_default(),
                    spec.path
                ))),
                _ => Ok(None),
            };
        };
        let state = open_root(&local)
            .and_then(|fd| sys::state(&fd).map_err(|e| Error::errno("quotactl", e)));
        self.note_none(
            &local,
            !matches!(state, Ok(State::Enforced | State::Accounting)),
        );
        match (state, mode) {
            (Ok(State::Enforced), _) => Ok(Some(local)),
            (Ok(State::Accounting), Mode::BestEffort) => Ok(Some(local)),
            (Ok(s), Mode::Enforce) => Err(Error::FailedPrecondition(format!(
                "quota: enforce, but the filesystem at {} has no enforced project quotas ({s:?}): \
                 mount XFS with -o prjquota, or ext4 made with -O quota,project (tune2fs -O \
                 project,quota on an unmounted one) with -o prjquota",
                local.display()
            ))),
            (Err(e), Mode::Enforce) => Err(e),
            (other, _) => {
                tracing::debug!(share = %spec, state = ?other, "no project quota; size recorded only");
                Ok(None)
            }
        }
    }
}

/// Gives the volume directory `sub` below the local root `root` its project id (claimed now, or
/// the one claimed by an earlier try) and a hard limit of `bytes` (0: none). Idempotent.
pub fn apply(root: &Path, sub: &SubDir, bytes: u64) -> Result<u32> {
    let fs = open_root(root)?;
    let ctx = |what: &str| format!("{what} for {sub} on {}", root.display());
    let claims = project::claims(&fs, true)
        .map_err(|e| Error::errno(ctx("project claims"), e))?
        .expect("created on demand");
    let id = project::claim(&fs, &claims, &record::key(sub))
        .map_err(|e| Error::errno(ctx("claim a project id"), e))?
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "{}: all {} candidate project ids are taken",
                ctx("quota"),
                project::PROBES
            ))
        })?;
    let dir = open_volume_dir(&fs, sub)?;
    let (had, inherit) = sys::project_of(&dir).map_err(|e| Error::errno(ctx("get project"), e))?;
    if had != id || !inherit {
        sys::set_project(&dir, id).map_err(|e| Error::errno(ctx("set project"), e))?;
    }
    sys::set_limit(&fs, id, bytes).map_err(|e| Error::errno(ctx("set quota"), e))?;
    Ok(id)
}

/// Sets the limit of the volume `sub`'s project to `bytes`; `None` when it has no project.
pub fn resize(root: &Path, sub: &SubDir, bytes: u64) -> Result<Option<u32>> {
    let ctx = |what: &str| format!("{what} for {sub} on {}", root.display());
    let Some((fs, _, id)) = volume_project(root, sub)? else {
        return Ok(None);
    };
    sys::set_limit(&fs, id, bytes).map_err(|e| Error::errno(ctx("set quota"), e))?;
    Ok(Some(id))
}

/// The volume `sub` is being deleted: its project's limit is cleared and the id released. What is
/// still charged to the project (a tree in the trash) keeps the id from being handed out again
/// until it is gone. Returns the released id, if the volume had one.
pub fn release(root: &Path, sub: &SubDir) -> Result<Option<u32>> {
    let ctx = |what: &str| format!("{what} for {sub} on {}", root.display());
    let Some((fs, claims, id)) = volume_project(root, sub)? else {
        return Ok(None);
    };
    sys::set_limit(&fs, id, 0).map_err(|e| Error::errno(ctx("clear quota"), e))?;
    project::release(&claims, id).map_err(|e| Error::errno(ctx("release project"), e))?;
    Ok(Some(id))
}

/// The project id and its limit and usage of the volume `sub`, if it has a project.
pub fn usage(root: &Path, sub: &SubDir) -> Result<Option<(u32, Usage)>> {
    let Some((fs, claims)) = open_claims(root)? else {
        return Ok(None);
    };
    let Some(id) =
        project::find(&claims, &record::key(sub)).map_err(|e| Error::errno("find project", e))?
    else {
        return Ok(None);
    };
    let usage = sys::get(&fs, id).map_err(|e| Error::errno("get quota", e))?;
    Ok(Some((id, usage)))
}

/// The project limits (bytes, nonzero only) of the volumes `keys` (record keys) below the local
/// root `root`, for those that have a project: what ListVolumes and ControllerGetVolume report as
/// their capacity. Only those volumes' claims are read (at most [`project::PROBES`] names each),
/// so a page of ListVolumes costs its own length, not every claim on the filesystem.
pub fn limits(root: &Path, keys: &[String]) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let Some((fs, claims)) = open_claims(root)? else {
        return Ok(out);
    };
    for key in keys {
        let found =
            project::find(&claims, key).map_err(|e| Error::errno("read project claim", e))?;
        let Some(id) = found else {
            continue;
        };
        let limit = sys::get(&fs, id).map_err(|e| Error::errno("get quota", e))?;
        if limit.limit_bytes > 0 {
            out.insert(key.clone(), limit.limit_bytes);
        }
    }
    Ok(out)
}

type Opened = (OwnedFd, OwnedFd);

/// The project claimed for the volume `sub`, with the filesystem and its claims opened; `None`
/// when the filesystem has no claims or the volume no project.
fn volume_project(root: &Path, sub: &SubDir) -> Result<Option<(OwnedFd, OwnedFd, u32)>> {
    let Some((fs, claims)) = open_claims(root)? else {
        return Ok(None);
    };
    let found = project::find(&claims, &record::key(sub))
        .map_err(|e| Error::errno(format!("find project for {sub} on {}", root.display()), e))?;
    Ok(found.map(|id| (fs, claims, id)))
}

fn open_claims(root: &Path) -> Result<Option<Opened>> {
    let fs = open_root(root)?;
    let claims = project::claims(&fs, false)
        .map_err(|e| Error::errno(format!("project claims on {}", root.display()), e))?;
    Ok(claims.map(|c| (fs, c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_and_export_paths() {
        assert_eq!("Enforce".parse::<Mode>().unwrap(), Mode::Enforce);
        assert_eq!("best-effort".parse::<Mode>().unwrap(), Mode::BestEffort);
        assert_eq!("off".parse::<Mode>().unwrap(), Mode::Off);
        assert!("strict".parse::<Mode>().is_err());
        let e: ExportPath = "nfs1:/srv/export/=/mnt/x".parse().unwrap();
        assert_eq!(
            (e.server.as_str(), e.export.as_str(), e.local.as_path()),
            ("nfs1", "/srv/export", Path::new("/mnt/x"))
        );
        for bad in ["nfs1:/x", "/x=/y", ":/x=/y", "nfs1:/x=rel"] {
            assert!(bad.parse::<ExportPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_shares_to_local_roots_and_refuses_enforce_without_one() {
        let q = Quotas::new(vec!["nfs1:/srv=/data/srv".parse().unwrap()]);
        let nfs = |server: &str, path: &str| ShareSpec::new(Some(server), path, vec![]).unwrap();
        assert_eq!(
            q.local_root(&nfs("nfs1", "/srv")),
            Some(PathBuf::from("/data/srv"))
        );
        assert_eq!(q.local_root(&nfs("nfs2", "/srv")), None);
        let local = ShareSpec::new(None, "/mnt/share", vec![]).unwrap();
        assert_eq!(q.local_root(&local), Some(PathBuf::from("/mnt/share")));
        let err = q.plan(&nfs("nfs2", "/srv"), Mode::Enforce).unwrap_err();
        assert!(
            matches!(&err, Error::FailedPrecondition(m) if m.contains("--export-path nfs2:/srv=")),
            "{err}"
        );
        assert_eq!(
            q.plan(&nfs("nfs2", "/srv"), Mode::BestEffort).unwrap(),
            None
        );
        assert_eq!(q.plan(&nfs("nfs1", "/srv"), Mode::Off).unwrap(), None);
    }

    #[test]
    fn enforce_on_a_filesystem_without_project_quotas_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ShareSpec::new(None, dir.path().to_str().unwrap(), vec![]).unwrap();
        let q = Quotas::default();
        assert!(!q.recently_none(&spec), "nothing checked yet");
        let err = q.plan(&spec, Mode::Enforce).unwrap_err();
        assert!(
            matches!(&err, Error::FailedPrecondition(m) if m.contains("prjquota")),
            "{err}"
        );
        assert_eq!(q.plan(&spec, Mode::BestEffort).unwrap(), None);
        // Remembered, by every clone (the controller hands clones to the blocking pool), and
        // only for that filesystem.
        assert!(q.clone().recently_none(&spec));
        let other = ShareSpec::new(None, "/elsewhere", vec![]).unwrap();
        assert!(!q.recently_none(&other));
        let nfs = ShareSpec::new(Some("nfs1"), "/srv", vec![]).unwrap();
        assert!(!q.recently_none(&nfs), "no local root: nothing to remember");
    }
}
