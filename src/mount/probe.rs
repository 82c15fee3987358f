//! Whether a mounted NFS filesystem still answers: one statfs round trip to its server, bounded in
//! time, with at most one check in flight per path (a node's own state, not the process's).

use nix::errno::Errno;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a mounted filesystem failed its [`Probes::probe`].
#[derive(Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Its handles are stale (the directory was replaced on the server): a fresh mount helps.
    Stale(String),
    /// It did not answer in time or failed otherwise (its server down or cut off): a fresh mount
    /// would not answer either.
    NoAnswer(String),
}

/// The paths whose last check has not come back yet.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    pending: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl Probes {
    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<PathBuf>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the filesystem mounted at `path` for its usage — for NFS always a round trip to the
    /// server, never answered from a cache — and waits at most `within`. `Err(why)` when it fails
    /// (ESTALE after the directory was replaced on the server, EIO, …) or does not answer in time.
    /// The call runs on another thread, left behind if the server never answers; while a
    /// check of `path` is still stuck, the next one reports it unresponsive at once instead of
    /// adding a thread.
    pub fn probe(&self, path: &Path, within: Duration) -> Result<(), Unusable> {
        if !self.pending().insert(path.to_owned()) {
            return Err(Unusable::NoAnswer(
                "an earlier check of it has not returned".into(),
            ));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (p, me) = (path.to_owned(), self.clone());
        let check = move || {
            let result = nix::sys::statvfs::statvfs(&p);
            me.pending().remove(&p);
            let _ = tx.send(result);
        };
        // An idle thread of the runtime's blocking pool where there is one (no thread started
        // per check), else a thread of its own.
        let spawned = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                drop(runtime.spawn_blocking(check));
                Ok(())
            }
            Err(_) => std::thread::Builder::new()
                .name("nfs-probe".into())
                .spawn(check)
                .map(drop),
        };
        if let Err(e) = spawned {
            self.pending().remove(path);
            return Err(Unusable::NoAnswer(format!("cannot start a check: {e}")));
        }
        match rx.recv_timeout(within) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e @ Errno::ESTALE)) => Err(Unusable::Stale(format!("statfs: {e}"))),
            Ok(Err(e)) => Err(Unusable::NoAnswer(format!("statfs: {e}"))),
            Err(_) => Err(Unusable::NoAnswer(format!(
                "statfs did not answer within {} ms",
                within.as_millis()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_for_a_live_directory() {
        let (dir, probes) = (tempfile::tempdir().unwrap(), Probes::default());
        assert_eq!(probes.probe(dir.path(), Duration::from_secs(5)), Ok(()));
        // only a stale handle asks for a fresh mount; anything else is no answer
        assert!(matches!(
            probes.probe(&dir.path().join("missing"), Duration::from_secs(5)),
            Err(Unusable::NoAnswer(_))
        ));
        assert!(probes.pending().is_empty());
    }
}
