//! The volume records of one share root (the capacity and id of each volume, read for lookups and
//! ListVolumes) and the entries waiting in its trash.

use super::super::fs::{self, dup};
use super::super::record::{self, Record};
use super::{ShareRoot, TrashEntry};
use crate::error::{Error, Result};
use crate::volume::SubDir;

impl ShareRoot {
    /// The record of the volume `sub`, if any.
    pub fn record(&self, sub: &SubDir) -> Result<Option<Record>> {
        let Some(state) = self.state(false)? else {
            return Ok(None);
        };
        record::read(&state.records, &record::key(sub)).map_err(|e| Error::errno("read record", e))
    }

    /// The keys of all volume records on this share, sorted (names only: nothing is read; a
    /// temporary record a crash left is none).
    pub fn record_keys(&self) -> Result<Vec<String>> {
        let Some(state) = self.state(false)? else {
            return Ok(Vec::new());
        };
        Ok(fs::list(&state.records)?
            .into_iter()
            .filter(|k| !record::is_temp(k))
            .collect())
    }

    /// The records named `keys` (those still there and readable).
    pub fn records_of(&self, keys: &[String]) -> Result<Vec<(String, Record)>> {
        let Some(state) = self.state(false)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(rec) =
                record::read(&state.records, key).map_err(|e| Error::errno("read record", e))?
            {
                out.push((key.clone(), rec));
            }
        }
        Ok(out)
    }

    /// All volume records on this share, sorted by key.
    pub fn records(&self) -> Result<Vec<(String, Record)>> {
        let Some(state) = self.state(false)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for key in fs::list(&state.records)? {
            if record::is_temp(&key) {
                continue;
            }
            if let Some(rec) =
                record::read(&state.records, &key).map_err(|e| Error::errno("read record", e))?
            {
                out.push((key, rec));
            }
        }
        Ok(out)
    }

    /// Entries left in the trash (by a crash or a restart), to be removed in the background; the
    /// temporary records a crash left go first.
    pub fn pending_trash(&self) -> Result<Vec<TrashEntry>> {
        let Some(state) = self.state(false)? else {
            return Ok(Vec::new());
        };
        record::sweep_temps(&state.records)?;
        fs::list(&state.trash)?
            .into_iter()
            .map(|name| {
                Ok(TrashEntry {
                    trash: dup(&state.trash)?,
                    name,
                })
            })
            .collect()
    }
}

impl TrashEntry {
    /// Removes the trashed tree; returns how many entries went, or the errno that stopped it.
    pub fn purge(&self) -> nix::Result<u64> {
        super::super::remove::remove_tree(&self.trash, &self.name)
    }

    /// The entry's name in the trash directory.
    pub fn name(&self) -> &str {
        &self.name
    }
}
