//! Metric names, their help text, and the fixed label values the domain may use.

/// Calls by CSI method and gRPC code.
pub const GRPC_REQUESTS: &str = "nfs_subdir_csi_grpc_requests_total";
/// Call latency by CSI method.
pub const GRPC_DURATION: &str = "nfs_subdir_csi_grpc_request_duration_seconds";
/// Calls being served, by CSI method.
pub const GRPC_IN_FLIGHT: &str = "nfs_subdir_csi_grpc_requests_in_flight";
/// Calls answered ABORTED because the volume was busy.
pub const ABORTED: &str = "nfs_subdir_csi_operations_aborted_total";
/// Calls answered DEADLINE_EXCEEDED, by operation.
pub const DEADLINE_EXCEEDED: &str = "nfs_subdir_csi_deadline_exceeded_total";
/// Working NFS mounts by state.
pub const WORKING_MOUNTS: &str = "nfs_subdir_csi_working_mounts";
/// Working mounts dropped and made again.
pub const REMOUNTS: &str = "nfs_subdir_csi_working_mount_remounts_total";
/// Node mount and unmount durations.
pub const NODE_MOUNT_DURATION: &str = "nfs_subdir_csi_node_mount_duration_seconds";
/// Entries waiting in trash.
pub const TRASH_ENTRIES: &str = "nfs_subdir_csi_trash_entries";
/// Trash entries removed.
pub const TRASH_REMOVED: &str = "nfs_subdir_csi_trash_removed_total";
/// Trash removals that failed, by errno.
pub const TRASH_FAILURES: &str = "nfs_subdir_csi_trash_removal_failures_total";
/// Volume directories by what happened to them.
pub const VOLUMES: &str = "nfs_subdir_csi_volumes_total";
/// Kubelet's answers to the plugin registration.
pub const REGISTRATIONS: &str = "nfs_subdir_csi_kubelet_registrations_total";
/// Claims the provisioner handled, by result.
pub const CLAIMS: &str = "nfs_subdir_csi_claims_total";
/// Whether this provisioner replica leads.
pub const LEADER: &str = "nfs_subdir_csi_leader";
/// Failed provisioner reconciles, by kind.
pub const RECONCILE_ERRORS: &str = "nfs_subdir_csi_reconcile_errors_total";
/// The running version.
pub const BUILD_INFO: &str = "nfs_subdir_csi_build_info";

/// Which process the metrics belong to; each starts its own fixed-label families at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `serve`: the CSI services.
    Serve,
    /// `provisioner`: the kube-rs controllers.
    Provisioner,
}

/// What kind of metric a name is.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations.
    Histogram,
}

/// Every metric with its kind and HELP line (README's metrics table says the same).
pub const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        GRPC_REQUESTS,
        Kind::Counter,
        "CSI gRPC calls answered, by method and gRPC code.",
    ),
    (
        GRPC_DURATION,
        Kind::Histogram,
        "Time to answer a CSI gRPC call, by method.",
    ),
    (
        GRPC_IN_FLIGHT,
        Kind::Gauge,
        "CSI gRPC calls being served now, by method.",
    ),
    (
        ABORTED,
        Kind::Counter,
        "Calls answered ABORTED because another operation held the volume.",
    ),
    (
        DEADLINE_EXCEEDED,
        Kind::Counter,
        "Calls answered DEADLINE_EXCEEDED, by operation.",
    ),
    (
        WORKING_MOUNTS,
        Kind::Gauge,
        "The controller's NFS working mounts, by state.",
    ),
    (
        REMOUNTS,
        Kind::Counter,
        "Working mounts dropped as stale or unreachable and made again.",
    ),
    (
        NODE_MOUNT_DURATION,
        Kind::Histogram,
        "Time the node took to mount or unmount a volume.",
    ),
    (
        TRASH_ENTRIES,
        Kind::Gauge,
        "Deleted volume directories waiting in trash to be removed.",
    ),
    (
        TRASH_REMOVED,
        Kind::Counter,
        "Trash entries removed for good.",
    ),
    (
        TRASH_FAILURES,
        Kind::Counter,
        "Trash entries that could not be removed, by errno.",
    ),
    (
        VOLUMES,
        Kind::Counter,
        "Volume directories created, deleted, archived or retained.",
    ),
    (
        REGISTRATIONS,
        Kind::Counter,
        "Kubelet's answers to the plugin registration, by result.",
    ),
    (
        CLAIMS,
        Kind::Counter,
        "Claims the provisioner provisioned, released or failed.",
    ),
    (
        LEADER,
        Kind::Gauge,
        "1 while this provisioner replica holds the leader Lease, else 0.",
    ),
    (
        RECONCILE_ERRORS,
        Kind::Counter,
        "Provisioner reconciles that failed, by kind.",
    ),
    (
        BUILD_INFO,
        Kind::Gauge,
        "Always 1; the version label says which build runs.",
    ),
];

/// What happened to a volume directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeAction {
    /// Made by CreateVolume (not counted again for an idempotent repeat).
    Created,
    /// Moved to trash and removed.
    Deleted,
    /// Renamed to `archived-…` and kept.
    Archived,
    /// Left in place.
    Retained,
}

impl VolumeAction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeAction::Created => "created",
            VolumeAction::Deleted => "deleted",
            VolumeAction::Archived => "archived",
            VolumeAction::Retained => "retained",
        }
    }
}

/// The state of a working NFS mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Mounted and answering.
    Ready,
    /// Found stale or unreachable, not yet dropped.
    Stale,
    /// Being mounted (again).
    Remounting,
}

impl MountState {
    /// Every state, for setting all gauges at once.
    pub const ALL: [MountState; 3] = [MountState::Ready, MountState::Stale, MountState::Remounting];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MountState::Ready => "ready",
            MountState::Stale => "stale",
            MountState::Remounting => "remounting",
        }
    }
}

/// A node mount operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountOp {
    /// NodePublishVolume's mount.
    Mount,
    /// NodeUnpublishVolume's unmount.
    Unmount,
}

/// What the provisioner did with a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimResult {
    /// A directory and a PV were made for it.
    Provisioned,
    /// Its volume was released (deleted, archived or retained per policy).
    Released,
    /// Provisioning failed.
    Failed,
}

impl ClaimResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimResult::Provisioned => "provisioned",
            ClaimResult::Released => "released",
            ClaimResult::Failed => "failed",
        }
    }
}

/// Which provisioner controller failed a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileKind {
    /// The claim controller.
    Claim,
    /// The PV (release) controller.
    Volume,
}
