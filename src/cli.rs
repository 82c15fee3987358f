//! Command line: clap derive with an environment fallback for every flag, turned into typed config.

use crate::volume::OnDelete;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// nfs-subdir-csi: every PersistentVolumeClaim gets its own directory on an existing NFS export.
#[derive(Debug, Parser)]
#[command(name = "nfs-subdir-csi", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The binary's roles.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the CSI gRPC API (Identity plus Controller and/or Node).
    Serve(ServeArgs),
}

/// Which CSI services to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The Controller service (volume directories).
    Controller,
    /// The Node service (mounts).
    Node,
}

/// Flags of `serve`; names follow csi-driver-nfs where they overlap.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///path/csi.sock (or unix://relative.sock) or tcp://host:port.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix://./csi.sock")]
    pub endpoint: String,
    /// This node's id (default: the host name).
    #[arg(long, env = "NODE_ID")]
    pub nodeid: Option<String>,
    /// CSI driver name; StorageClasses name it as their provisioner.
    #[arg(long, env = "DRIVER_NAME", default_value = "nfs-subdir.csi.rs")]
    pub drivername: String,
    /// Services to serve, comma separated.
    #[arg(
        long,
        env = "CSI_ROLES",
        value_enum,
        value_delimiter = ',',
        default_value = "controller,node"
    )]
    pub roles: Vec<Role>,
    /// Where the controller keeps its NFS working mounts.
    #[arg(long, env = "WORKING_MOUNT_DIR", default_value = "/tmp/nfs-subdir-csi")]
    pub working_mount_dir: PathBuf,
    /// What DeleteVolume does when a StorageClass does not say: delete, retain or archive.
    #[arg(long, env = "DEFAULT_ONDELETE_POLICY", default_value = "delete")]
    pub default_ondelete_policy: OnDelete,
    /// Mode of new volume directories, octal.
    #[arg(long, env = "MOUNT_PERMISSIONS", default_value = "0777")]
    pub mount_permissions: String,
    /// A directory used as the share when a StorageClass names none (created if missing): the
    /// zero-setup local share. Must be mounted at the same path on every node in a cluster.
    #[arg(long, env = "DEFAULT_SHARE")]
    pub default_share: Option<PathBuf>,
    /// Longest time, in seconds, any one CSI call may take (a caller's shorter deadline wins).
    #[arg(long, env = "OPERATION_TIMEOUT", default_value_t = 30)]
    pub operation_timeout: u64,
}
