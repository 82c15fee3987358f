//! Deleting a volume by its onDelete policy: an empty directory removed at once, any other moved
//! into the trash for the background removal (or archived, or retained), its record forgotten.

use super::super::fs::{self, dup, open_parent};
use super::super::record;
use super::{ShareRoot, State, TrashEntry, unix_secs};
use crate::error::{Error, Result};
use crate::volume::legacy::ArchiveNaming;
use crate::volume::{OnDelete, SubDir};
use nix::errno::Errno;
use nix::fcntl::renameat;

/// What a delete did with a volume's directory.
#[derive(Debug)]
pub enum Disposed {
    /// Moved into the trash, to be removed in the background.
    Trashed(TrashEntry),
    /// Removed at once (it was empty).
    Removed,
    /// Archived, retained, or not there (already deleted).
    Left,
}

impl Disposed {
    /// The trash entry to remove, if the directory went into the trash.
    pub fn trash_entry(self) -> Option<TrashEntry> {
        match self {
            Disposed::Trashed(entry) => Some(entry),
            Disposed::Removed | Disposed::Left => None,
        }
    }
}

impl ShareRoot {
    /// Applies `on_delete` to the volume directory `sub` and forgets its record. A volume that is
    /// already gone is fine. With [`OnDelete::Delete`] an empty directory is removed at once, any
    /// other is renamed into the trash and returned for removal in the background. `create_state`
    /// false means a share this driver never wrote to is left untouched (the volume is unknown
    /// there).
    pub fn delete_volume(
        &self,
        sub: &SubDir,
        on_delete: OnDelete,
        create_state: bool,
    ) -> Result<Disposed> {
        self.delete_volume_as(sub, on_delete, ArchiveNaming::Sibling, create_state)
    }

    /// [`ShareRoot::delete_volume`] with an archive named as `naming` says (the tool that made
    /// the volume named its archives its own way).
    pub fn delete_volume_as(
        &self,
        sub: &SubDir,
        on_delete: OnDelete,
        naming: ArchiveNaming,
        create_state: bool,
    ) -> Result<Disposed> {
        let Some(state) = self.state(create_state)? else {
            return Ok(Disposed::Left);
        };
        let (parent, last) = match open_parent(&self.fd, sub, None) {
            Err(Error::NotFound(_)) => return forget(state, sub)().map(|()| Disposed::Left),
            other => other?,
        };
        let disposed = match on_delete {
            OnDelete::Retain => Disposed::Left,
            OnDelete::Archive => {
                self.archive(&parent, last, sub, naming)?;
                Disposed::Left
            }
            OnDelete::Delete => {
                let name = format!("{}-{}", unix_secs(), uuid::Uuid::new_v4().simple());
                // An empty volume (never written, or emptied by its user) goes with one rmdir;
                // one that is not empty (or not a directory: a planted file or symlink) is moved
                // into the trash for the background removal. That and the record's removal go
                // out together (one round trip). If the removal fails, the directory stays
                // without its record, as after a crash between the two: the CO retries the delete
                // until it is done.
                let (moved, forgotten) = self.pair(
                    || match fs::unlink(&parent, last.as_ref(), true) {
                        Ok(()) => Ok(false),
                        Err(Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR) => {
                            renameat(&parent, last, &state.trash, name.as_str()).map(|()| true)
                        }
                        // A server away (EIO after the soft timeout), a read-only export, a
                        // refusal: a rename would meet the same, and one sent to a server that
                        // is away may still be carried out after the call gave up, leaving an
                        // entry in the trash that no call knows of.
                        Err(e) => Err(e),
                    },
                    forget(state, sub),
                );
                let entry = match moved {
                    Ok(true) => Disposed::Trashed(TrashEntry {
                        trash: dup(&state.trash)?,
                        name,
                    }),
                    Ok(false) => Disposed::Removed,
                    Err(Errno::ENOENT) => Disposed::Left,
                    Err(e) => return Err(Error::errno(format!("delete {sub}"), e)),
                };
                forgotten?;
                return Ok(entry);
            }
        };
        forget(state, sub)()?;
        Ok(disposed)
    }
}

/// The removal of the volume `sub`'s record, ready to run on any thread.
fn forget(state: &State, sub: &SubDir) -> impl FnOnce() -> Result<()> + Send + 'static {
    let (records, key, sub) = (state.records.clone(), record::key(sub), sub.clone());
    move || {
        record::remove(&records, &key)
            .map_err(|e| Error::errno(format!("remove record of {sub}"), e))
    }
}
