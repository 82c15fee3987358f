//! How shares are reached and what is done on them: safe directory walks, volume directories,
//! records, trash and recursive removal, and the controller's NFS working mounts.

pub mod access;
pub mod cache;
pub mod fs;
pub mod record;
pub mod remove;
pub mod root;
pub mod working;

pub use access::Shares;
pub use cache::RootCache;
pub use root::{Created, Disposed, FsStats, ShareRoot, TrashEntry};
