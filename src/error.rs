//! The crate's one error type. Domain code returns it; `csi::status` maps it to gRPC codes in one place.

use std::io;

/// Everything that can go wrong while serving a volume request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field, parameter, id or template is missing or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The volume (or the path named in the request) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A volume of that name exists with properties that differ from the request.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request conflicts with the volume's current state (e.g. a second single-writer target).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// Another operation on the same volume is still running.
    #[error("an operation on {0} is already in progress")]
    Busy(String),
    /// A ListVolumes starting token that this driver did not issue.
    #[error("bad starting token: {0}")]
    BadToken(String),
    /// A filesystem or mount call did not finish within its deadline.
    #[error("{what} did not finish within {millis} ms")]
    Timeout {
        /// What was being done.
        what: String,
        /// The deadline that passed.
        millis: u128,
    },
    /// The share cannot be reached right now (server down, mount failed, stale handle).
    #[error("share unavailable: {0}")]
    Unavailable(String),
    /// The share has no room left.
    #[error("no space: {0}")]
    NoSpace(String),
    /// The share is exported (or mounted) read-only: nothing can be made or removed on it until
    /// an administrator exports it read-write.
    #[error(
        "share is read-only: {0} (export it read-write: Access_Type = RW in ganesha, rw in \
         /etc/exports)"
    )]
    ReadOnly(String),
    /// The server refused a change for want of permission: usually root_squash, which maps the
    /// driver's root to an unprivileged user that does not own the directory.
    #[error(
        "permission denied: {0} (the server squashes root or the directory is not writable: \
         export with no_root_squash, or all_squash with anonuid/anongid owning the share, or \
         make the share directory writable by the anonymous user)"
    )]
    PermissionDenied(String),
    /// A filesystem call failed for another reason.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path involved.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Short form for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A timeout names the call's whole `deadline`, not what was left of it for the last step.
    pub fn with_whole_deadline(self, deadline: std::time::Duration) -> Self {
        match self {
            Error::Timeout { what, .. } => Error::Timeout {
                what,
                millis: deadline.as_millis(),
            },
            e => e,
        }
    }

    /// Wraps an I/O error with what was being done. Errors that mean "the share is gone or stale"
    /// become [`Error::Unavailable`], a full disk [`Error::NoSpace`], a read-only share
    /// [`Error::ReadOnly`] and a refusal [`Error::PermissionDenied`], so callers can react to them.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        match source.raw_os_error() {
            // Errno 0: a soft NFS mount whose server stopped answering can fail a call without
            // saying why (seen with mkdirat on a kept directory descriptor).
            Some(
                0 | libc::ESTALE | libc::ETIMEDOUT | libc::EIO | libc::ENOTCONN | libc::EHOSTDOWN,
            ) => Error::Unavailable(format!("{context}: {source}")),
            Some(libc::ENOSPC | libc::EDQUOT) => Error::NoSpace(format!("{context}: {source}")),
            Some(libc::EROFS) => Error::ReadOnly(format!("{context}: {source}")),
            Some(libc::EACCES | libc::EPERM) => {
                Error::PermissionDenied(format!("{context}: {source}"))
            }
            _ => Error::Io { context, source },
        }
    }

    /// Wraps a `nix` errno the same way as [`Error::io`].
    pub fn errno(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Self::io(context, io::Error::from_raw_os_error(errno as i32))
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// True when the error says the share is stale or unreachable (a remount may help).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Timeout { .. })
    }
}
