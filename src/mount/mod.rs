//! Mounting on Linux: bind mounts of pre-mounted shares, NFS mounts through mount(2), bounded
//! unmounts, and the mount table.

pub mod mountinfo;
pub mod nfs;
pub mod ops;
pub mod probe;

pub use ops::{bind_existing, bind_volume, is_mount_point, refuse_second_writer, unmount_all};
pub use probe::{Probes, Unusable};
