//! The copy engine behind snapshots, restores and clones: copies a directory tree between two open
//! directories without ever following a symlink, keeping what a backup must keep.
//!
//! - Regular files: FICLONE first (shared blocks on a reflink filesystem, or NFSv4.2 CLONE to a
//!   server that offers it), then `copy_file_range` (NFSv4.2 server-side COPY), then read/write;
//!   holes found with SEEK_DATA/SEEK_HOLE stay holes.
//! - Owner, mode (set-id bits too), access and modification times to the nanosecond, extended
//!   attributes (`user.*`, and ACLs and `security.*` where the target allows), for files and
//!   directories; symlinks are copied as symlinks (owner and times too), hard links stay hard
//!   links (one inode in the copy for one inode in the source).
//! - FIFOs are made again (they hold no data). Sockets and device nodes are skipped and counted:
//!   a socket is meaningless without its process, and a device node in a volume that a pod mounts
//!   would be a way out of the volume.
//! - Files are copied in parallel by a bounded pool of threads; every entry is reached through
//!   directory descriptors opened with `O_NOFOLLOW`, so a hostile tree (symlinked parents,
//!   `..`-looking names) is copied as data and can never make the copy write outside its target.

mod data;
mod meta;
mod walk;

pub use data::{Method, dense, write_data_runs};
pub use walk::copy_tree;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How a copy runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Threads copying files at the same time (at least 1).
    pub threads: usize,
    /// Set to stop the copy early; it then fails with `Interrupted`.
    pub cancel: Arc<AtomicBool>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 8,
            cancel: Arc::default(),
        }
    }
}

/// Running counters of a copy, shared by its threads.
#[derive(Debug, Default)]
pub struct Counts {
    /// Directories made.
    pub dirs: AtomicU64,
    /// Regular files copied (each inode once).
    pub files: AtomicU64,
    /// Files whose blocks were cloned (FICLONE).
    pub cloned: AtomicU64,
    /// Files copied with `copy_file_range`.
    pub copy_range: AtomicU64,
    /// Files copied by reads and writes.
    pub read_write: AtomicU64,
    /// Bytes of data moved (not counting cloned files or holes).
    pub bytes: AtomicU64,
    /// Symlinks made.
    pub symlinks: AtomicU64,
    /// Extra hard links made to an inode already copied.
    pub hard_links: AtomicU64,
    /// FIFOs made.
    pub fifos: AtomicU64,
    /// Sockets and device nodes skipped.
    pub skipped: AtomicU64,
    /// Entries whose owner could not be set (not running as root).
    pub owners_kept_back: AtomicU64,
    /// Extended attributes the target refused.
    pub xattrs_dropped: AtomicU64,
}

impl Counts {
    fn add(&self, counter: &AtomicU64, n: u64) {
        let _ = self;
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn method(&self, m: Method, bytes: u64) {
        let counter = match m {
            Method::Empty => &self.files,
            Method::Cloned => &self.cloned,
            Method::CopyRange => &self.copy_range,
            Method::ReadWrite => &self.read_write,
        };
        if m != Method::Empty {
            self.add(counter, 1);
        }
        self.add(&self.files, 1);
        self.add(&self.bytes, bytes);
    }

    /// A plain-number summary for logs and tests.
    pub fn summary(&self) -> Summary {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            dirs: g(&self.dirs),
            files: g(&self.files),
            cloned: g(&self.cloned),
            copy_range: g(&self.copy_range),
            read_write: g(&self.read_write),
            bytes: g(&self.bytes),
            symlinks: g(&self.symlinks),
            hard_links: g(&self.hard_links),
            fifos: g(&self.fifos),
            skipped: g(&self.skipped),
            owners_kept_back: g(&self.owners_kept_back),
            xattrs_dropped: g(&self.xattrs_dropped),
        }
    }
}

/// What a finished copy did (see [`Counts`] for each field).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub cloned: u64,
    pub copy_range: u64,
    pub read_write: u64,
    pub bytes: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub fifos: u64,
    pub skipped: u64,
    pub owners_kept_back: u64,
    pub xattrs_dropped: u64,
}

/// What a tree holds: for the free-space check before a copy and the size a snapshot reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated to regular files (each inode once), as `du` counts them.
    pub allocated: u64,
    /// Entries in the tree, the top directory included.
    pub entries: u64,
}

/// Measures the tree below the directory `dir` (never following symlinks).
pub fn measure(dir: &OwnedFd) -> std::io::Result<Usage> {
    walk::measure(dir)
}

#[cfg(test)]
mod tests;
