//! Per-volume operation guard: a second operation on a volume that is still busy is refused
//! (ABORTED in CSI terms) instead of racing the first.

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The set of volumes with an operation in flight.
#[derive(Clone, Default, Debug)]
pub struct Locks(Arc<Mutex<HashSet<String>>>);

/// Holds one volume's lock; dropping it releases the volume.
#[derive(Debug)]
pub struct Guard {
    locks: Locks,
    key: String,
}

impl Locks {
    /// Takes the lock for `key`, or fails with [`Error::Busy`] if it is held.
    pub fn try_lock(&self, key: impl Into<String>) -> Result<Guard> {
        let key = key.into();
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(key.clone()) {
            return Err(Error::Busy(key));
        }
        Ok(Guard {
            locks: self.clone(),
            key,
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut held = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_release() {
        let locks = Locks::default();
        let first = locks.try_lock("vol").unwrap();
        assert!(matches!(locks.try_lock("vol"), Err(Error::Busy(_))));
        assert!(locks.try_lock("other").is_ok());
        drop(first);
        assert!(locks.try_lock("vol").is_ok());
    }
}
