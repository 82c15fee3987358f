//! The shared work of a bounded pool of threads: a stack of tasks that the workers take (and add
//! to) until none is queued or running, and the first error, which stops them all. The copy engine
//! (`copy::walk`) and the parallel tree removal (`share::remove`) both run on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Tasks of type `T` for a pool of workers, and the first `E` one of them returned.
pub struct Work<T, E> {
    /// Queued tasks (worked last in, first out) and the number being worked on.
    queue: Mutex<(Vec<T>, usize)>,
    wake: Condvar,
    stop: AtomicBool,
    failed: Mutex<Option<E>>,
}

impl<T, E> Default for Work<T, E> {
    fn default() -> Self {
        Work {
            queue: Mutex::new((Vec::new(), 0)),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            failed: Mutex::new(None),
        }
    }
}

impl<T, E> Work<T, E> {
    /// Queues `tasks` and wakes as many idle workers as they can use.
    pub fn push(&self, tasks: impl IntoIterator<Item = T>) {
        let added = {
            let mut q = lock(&self.queue);
            let before = q.0.len();
            q.0.extend(tasks);
            q.0.len() - before
        };
        match added {
            0 => {}
            1 => self.wake.notify_one(),
            _ => self.wake.notify_all(),
        }
    }

    /// Answers `look` about the tasks queued now.
    pub fn peek<R>(&self, look: impl FnOnce(&[T]) -> R) -> R {
        look(&lock(&self.queue).0)
    }

    /// Works tasks with `run` on the calling thread until none is queued or running, or until a
    /// task (on any thread) failed; the first failure is kept for [`Work::take_error`].
    pub fn work(&self, run: impl Fn(T) -> Result<(), E>) {
        loop {
            let task = {
                let mut q = lock(&self.queue);
                loop {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(t) = q.0.pop() {
                        q.1 += 1;
                        break t;
                    }
                    if q.1 == 0 {
                        return;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            if let Err(e) = run(task) {
                lock(&self.failed).get_or_insert(e);
                self.stop.store(true, Ordering::Relaxed);
            }
            lock(&self.queue).1 -= 1;
            self.wake.notify_all();
        }
    }

    /// The first error a task returned, if any.
    pub fn take_error(&self) -> Option<E> {
        lock(&self.failed).take()
    }
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
