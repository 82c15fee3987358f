//! The background removal of trashed volume directories: one thread per controller, started at
//! the first delete, removes the entries in the order they come, each with the bounded pool of
//! [`crate::share::remove`]. A thousand entries left by an earlier run thus cost one thread and a
//! queue, not a thousand blocking tasks competing with the calls being answered.

use crate::metrics::Metrics;
use crate::share::TrashEntry;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

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
                .spawn(move || {
                    for entry in rx {
                        remove(entry, &metrics);
                    }
                });
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

fn remove(entry: TrashEntry, metrics: &Metrics) {
    let name = entry.name().to_owned();
    match entry.purge() {
        Ok(n) => {
            tracing::debug!(trash = %name, entries = n, "trash entry removed");
            metrics.trash_removed();
            metrics.trash_entries_add(-1.0);
        }
        Err(e) => {
            tracing::warn!(trash = %name, error = %e, "trash entry not removed; retried at next start");
            metrics.trash_removal_failed(&format!("{e:?}"));
        }
    }
}
