//! Copies running in the background (snapshots being cut, volumes being filled), by key, so a
//! retried call joins the copy already running instead of starting another, and learns how the
//! last one ended. Each copy runs on its own thread, never on the async runtime's blocking pool.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How a copy ended: `None` while it runs.
type State = Option<std::result::Result<(), Arc<Error>>>;

/// What is known about a running copy before it ends.
#[derive(Clone, Debug)]
pub struct Info {
    /// The id of what is being made.
    pub id: String,
    /// The CO's name of what is being made (snapshot or volume name).
    pub name: String,
    /// The source's id as the request gave it.
    pub source: String,
    /// When the copy was asked for.
    pub created: SystemTime,
}

/// One copy, running or ended with an error not yet reported.
#[derive(Clone, Debug)]
pub struct Job {
    /// What it makes.
    pub info: Info,
    state: watch::Receiver<State>,
    cancel: Arc<AtomicBool>,
}

/// The copies of this process. `run` names this process's temporary directories, so a restart
/// (a new `run`) can tell what an earlier run left.
#[derive(Clone, Debug)]
pub struct Jobs {
    map: Arc<Mutex<HashMap<String, Job>>>,
    run: String,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            map: Arc::default(),
            run: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }
}

impl Jobs {
    /// This process's run id (part of its temporary names).
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The copy under `key`, if one runs or failed without being reported yet.
    pub fn get(&self, key: &str) -> Option<Job> {
        self.lock().get(key).cloned()
    }

    /// Every copy under a key starting with `prefix`, with its key.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, Job)> {
        self.lock()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, j)| (k.clone(), j.clone()))
            .collect()
    }

    /// Starts `work` on a new thread under `key`, handing it the flag that [`Job::cancel`] sets.
    /// When it succeeds the key is forgotten; when it fails the failure stays until
    /// [`Jobs::forget`], so the next call can report it.
    pub fn start<F>(&self, key: &str, info: Info, work: F) -> Job
    where
        F: FnOnce(Arc<AtomicBool>) -> Result<()> + Send + 'static,
    {
        let (tx, rx) = watch::channel(None);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            info,
            state: rx,
            cancel: cancel.clone(),
        };
        self.lock().insert(key.to_owned(), job.clone());
        let (map, key, key_again) = (self.map.clone(), key.to_owned(), key.to_owned());
        let spawned = std::thread::Builder::new()
            .name("nsc-copy".into())
            .spawn(move || {
                let result = work(cancel);
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(()) => {
                        map.remove(&key);
                        let _ = tx.send(Some(Ok(())));
                    }
                    Err(e) => {
                        tracing::warn!(job = %key, error = %e, "background copy failed");
                        let _ = tx.send(Some(Err(Arc::new(e))));
                    }
                }
            });
        if let Err(e) = spawned {
            // The job's sender is gone with the closure: waiters see an error, nothing runs.
            tracing::error!(error = %e, "cannot start a copy thread");
            self.forget(&key_again);
        }
        job
    }

    /// Forgets the (ended) copy under `key`.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Job {
    /// Waits at most `wait` for the copy to end: `None` if it still runs, else its result.
    pub async fn wait(&mut self, wait: Duration) -> Option<Result<()>> {
        let ended = tokio::time::timeout(wait, self.state.wait_for(Option::is_some)).await;
        match ended {
            Err(_) => None,
            Ok(Ok(state)) => state.clone().map(|r| r.map_err(|e| replay(&e))),
            Ok(Err(_)) => Some(Err(Error::io(
                "background copy",
                std::io::Error::other("the copy thread ended without a result"),
            ))),
        }
    }

    /// True while the copy runs.
    pub fn running(&self) -> bool {
        self.state.borrow().is_none()
    }

    /// Asks the copy to stop; it then ends with an error and removes its temporary tree.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// The same error again, for each caller that asks how a copy ended.
fn replay(e: &Error) -> Error {
    match e {
        Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
        Error::NotFound(s) => Error::NotFound(s.clone()),
        Error::AlreadyExists(s) => Error::AlreadyExists(s.clone()),
        Error::FailedPrecondition(s) => Error::FailedPrecondition(s.clone()),
        Error::Busy(s) => Error::Busy(s.clone()),
        Error::BadToken(s) => Error::BadToken(s.clone()),
        Error::Timeout { what, millis } => Error::Timeout {
            what: what.clone(),
            millis: *millis,
        },
        Error::Unavailable(s) => Error::Unavailable(s.clone()),
        Error::NoSpace(s) => Error::NoSpace(s.clone()),
        Error::ReadOnly(s) => Error::ReadOnly(s.clone()),
        Error::PermissionDenied(s) => Error::PermissionDenied(s.clone()),
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Info {
        Info {
            id: "i".into(),
            name: "n".into(),
            source: "s".into(),
            created: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn successes_are_forgotten_failures_kept_until_reported() {
        let jobs = Jobs::default();
        let mut ok = jobs.start("a", info(), |_| Ok(()));
        assert!(matches!(
            ok.wait(Duration::from_secs(5)).await,
            Some(Ok(()))
        ));
        assert!(jobs.get("a").is_none());
        let mut bad = jobs.start("b", info(), |_| Err(Error::NoSpace("full".into())));
        let ended = bad.wait(Duration::from_secs(5)).await;
        assert!(matches!(ended, Some(Err(Error::NoSpace(_)))), "{ended:?}");
        assert!(jobs.get("b").is_some_and(|j| !j.running()));
        jobs.forget("b");
        let mut slow = jobs.start("c", info(), |stop| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Error::io("copy", std::io::ErrorKind::Interrupted.into()))
        });
        assert!(slow.wait(Duration::from_millis(10)).await.is_none());
        assert!(jobs.with_prefix("c").len() == 1);
        slow.cancel();
        assert!(matches!(
            slow.wait(Duration::from_secs(5)).await,
            Some(Err(_))
        ));
    }
}
