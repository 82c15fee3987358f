//! Command line: clap derive with an environment fallback for every flag, turned into typed config.

use crate::endpoint::Endpoint;
use crate::volume::{OnDelete, params::parse_mode};
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
    /// Provision claims straight from the Kubernetes API (kube-rs; no CSI sidecars).
    Provisioner(ProvisionerArgs),
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
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix://./csi.sock", value_parser = Endpoint::parse)]
    pub endpoint: Endpoint,
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
    /// Serve GET /healthz and GET /metrics over HTTP on this address (`:29663` or
    /// `host:port`); empty: off, and no metrics are recorded.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "")]
    pub http_address: String,
    /// Kubelet's plugins_registry directory (e.g. /var/lib/kubelet/plugins_registry): register
    /// with kubelet by serving `<dir>/<drivername>-reg.sock`, as node-driver-registrar would.
    /// Needs the node role. Off when not given.
    #[arg(long, env = "KUBELET_REGISTRATION_PATH")]
    pub kubelet_registration_path: Option<PathBuf>,
    /// The CSI socket path as kubelet sees it on the host, told to kubelet at registration
    /// (default: the --endpoint unix path, made absolute).
    #[arg(long, env = "KUBELET_CSI_SOCKET")]
    pub kubelet_csi_socket: Option<String>,
    /// Shares, defaults and deadlines shared with `provisioner`.
    #[command(flatten)]
    pub volumes: VolumeArgs,
}

/// Flags of `provisioner`. The volume flags mean what they mean for `serve`; the NFS and leader
/// election flags follow nfs-subdir-external-provisioner and client-go.
#[derive(Debug, Args)]
pub struct ProvisionerArgs {
    /// The provisioner name StorageClasses give; also written to each PV's
    /// `pv.kubernetes.io/provisioned-by`. Set it to an old provisioner's name to take its classes over.
    #[arg(long, env = "PROVISIONER_NAME", default_value = "nfs-subdir.csi.rs")]
    pub provisioner_name: String,
    /// CSI driver named by PVs with a CSI source (volumeSource csi).
    #[arg(long, env = "DRIVER_NAME", default_value = "nfs-subdir.csi.rs")]
    pub drivername: String,
    /// NFS server that exports the default share, for PVs with the in-tree `nfs:` source.
    #[arg(long, env = "NFS_SERVER", requires = "nfs_path")]
    pub nfs_server: Option<String>,
    /// Export path of the default share on --nfs-server.
    #[arg(long, env = "NFS_PATH", requires = "nfs_server")]
    pub nfs_path: Option<String>,
    /// Shares, defaults and deadlines, as for `serve`.
    #[command(flatten)]
    pub volumes: VolumeArgs,
    /// Serve GET /healthz and GET /metrics over HTTP on this address (`:29652` or
    /// `host:port`); empty: off.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "")]
    pub http_address: String,
    /// Take part in leader election (a Lease), so that only one replica acts at a time.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,
    /// Name of the Lease (default: derived from the provisioner name).
    #[arg(long, env = "LEADER_ELECTION_NAME")]
    pub leader_election_name: Option<String>,
    /// This replica's identity in the Lease (default: host name plus a random suffix).
    #[arg(long, env = "LEADER_ELECTION_IDENTITY")]
    pub leader_election_identity: Option<String>,
    /// Seconds a leader's Lease stays valid without renewal.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value_t = 15)]
    pub leader_election_lease_duration: u64,
    /// Seconds a leader keeps trying to renew before it gives up and exits.
    #[arg(long, env = "LEADER_ELECTION_RENEW_DEADLINE", default_value_t = 10)]
    pub leader_election_renew_deadline: u64,
    /// Seconds between attempts to acquire or renew.
    #[arg(long, env = "LEADER_ELECTION_RETRY_PERIOD", default_value_t = 2)]
    pub leader_election_retry_period: u64,
}

/// Flags both `serve` and `provisioner` use to reach shares and make volume directories.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// A directory used as the share when a StorageClass names none (created if missing): the
    /// zero-setup local share. Must be mounted at the same path on every node in a cluster.
    #[arg(long, env = "DEFAULT_SHARE")]
    pub default_share: Option<PathBuf>,
    /// Where the controller keeps its NFS working mounts.
    #[arg(long, env = "WORKING_MOUNT_DIR", default_value = "/tmp/nfs-subdir-csi")]
    pub working_mount_dir: PathBuf,
    /// What DeleteVolume does when a StorageClass does not say: delete, retain or archive.
    #[arg(long, env = "DEFAULT_ONDELETE_POLICY", default_value = "delete")]
    pub default_ondelete_policy: OnDelete,
    /// Mode of new volume directories, octal (`0` = 0755).
    #[arg(long, env = "MOUNT_PERMISSIONS", default_value = "0777", value_parser = parse_mode)]
    pub mount_permissions: u32,
    /// Longest time, in seconds, any one call may take (a CSI caller's shorter deadline wins).
    #[arg(long, env = "OPERATION_TIMEOUT", default_value_t = 30)]
    pub operation_timeout: u64,
    /// `server:/export=/local/path`: the export's filesystem is mounted here on the controller's
    /// machine, so volumes on it get project quotas (StorageClass parameter `quota`). Repeatable;
    /// the environment variable takes a comma-separated list.
    #[arg(long = "export-path", env = "EXPORT_PATHS", value_delimiter = ',')]
    pub export_paths: Vec<crate::quota::ExportPath>,
    /// Fault injection for the guest suite's crash test, hidden: `abort-before-quota` makes
    /// CreateVolume abort the process between making a directory and setting its quota.
    #[arg(long, env = "NSC_FAULT", hide = true)]
    pub fault: Option<crate::controller::Fault>,
}
