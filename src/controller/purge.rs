//! The background removal of trashed volume directories: one thread per controller, started at
//! the first delete, removes the entries in the order they come, each with the bounded pool of
//! [`crate::share::remove`]. A thousand entries left by an earlier run thus cost one thread and a
//! queue, not a thousand blocking tasks competing with the calls being answered.
//!
//! An entry that cannot be removed yet (root_squash, a read-only export, a stale handle, a server
//! away) stays in the trash backlog and is queued again after a wait that doubles from
//! [`RETRY_FIRST`] to [`RETRY_MAX`]; meanwhile the entries behind it go on. Whoever fixes the cause
//! thus sees the backlog drain without a restart, and a restart finds what is left in the trash.

use crate::metrics::Metrics;
use crate::share::TrashEntry;
use nix::errno::Errno;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// The first wait before a trash entry that could not be removed is tried again; it doubles up
/// to [`RETRY_MAX`].
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between two tries at one trash entry.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(120);

/// The queue of trash entries to remove; its thread ends when the queue is dropped.
#[derive(Debug)]
pub(crate) struct Purger {
    metrics: Metrics,
    queue: Mutex<Option<Sender<TrashEntry>>>,
}

impl Purger {
    /// A queue whose thread starts with the first entry; results go to `metrics`.
    pub(crate) fn new(metrics: Metrics) -> Self {
        Purger {
            metrics,
            queue: Mutex::new(None),
        }
    }

    /// Queues `entry` for removal (never blocks). If no thread can be started the entry stays in
    /// the trash, where the next start finds it.
    pub(crate) fn purge(&self, entry: TrashEntry) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_none() {
            let (tx, rx) = channel::<TrashEntry>();
            let metrics = self.metrics.clone();
            let started = std::thread::Builder::new()
                .name("trash-purge".into())
                .spawn(move || run(rx, &metrics));
            match started {
                Ok(_) => *queue = Some(tx),
                Err(e) => {
                    tracing::warn!(trash = %entry.name(), error = %e, "cannot start the trash removal; retried at next start");
                    return;
                }
            }
        }
        if let Some(Err(e)) = queue.as_ref().map(|q| q.send(entry)) {
            tracing::warn!(trash = %e.0.name(), "trash removal stopped; retried at next start");
        }
    }
}

/// An entry that failed, waiting for its next try.
struct Retry {
    entry: TrashEntry,
    due: Instant,
    /// The wait after the next failure.
    wait: Duration,
}

/// The purge thread: new entries as they come, and failed ones again once their wait is over
/// (before new ones, so a steady stream of deletes cannot starve them).
fn run(rx: Receiver<TrashEntry>, metrics: &Metrics) {
    let mut waiting: Vec<Retry> = Vec::new();
    loop {
        let now = Instant::now();
        if let Some(i) = waiting.iter().position(|r| r.due <= now) {
            let r = waiting.swap_remove(i);
            if let Err(e) = attempt(r.entry, r.wait, metrics) {
                waiting.push(e);
            }
            continue;
        }
        let next = match waiting.iter().map(|r| r.due).min() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(now)),
        };
        match next {
            Ok(entry) => {
                if let Err(e) = attempt(entry, RETRY_FIRST, metrics) {
                    waiting.push(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The controller is gone; what is left stays in the trash for the next start.
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One try at `entry`; on failure, the entry to try again after `wait`.
fn attempt(entry: TrashEntry, wait: Duration, metrics: &Metrics) -> Result<(), Retry> {
    let name = entry.name().to_owned();
    match entry.purge() {
        Ok(n) => {
            tracing::debug!(trash = %name, entries = n, "trash entry removed");
            metrics.trash_removed();
            metrics.trash_entries_add(-1.0);
            Ok(())
        }
        Err(err) => {
            tracing::warn!(trash = %name, error = %err, retry_in_s = wait.as_secs(), hint = hint(err),
                "trash entry not removed; it stays in the trash backlog and is tried again");
            metrics.trash_removal_failed(&format!("{err:?}"));
            Err(Retry {
                entry,
                due: Instant::now() + wait,
                wait: (wait * 2).min(RETRY_MAX),
            })
        }
    }
}

/// What the operator can do about a failed removal, where the errno says.
fn hint(err: Errno) -> &'static str {
    match err {
        Errno::EACCES | Errno::EPERM => {
            "the server refuses the removal (root_squash and files of another owner?): \
             export with no_root_squash, or all_squash with anonuid owning the data"
        }
        Errno::EROFS => "the share is read-only: export it read-write",
        _ => "",
    }
}
