//! The one mapping from the crate's [`Error`] to gRPC status codes.

use crate::error::Error;
use crate::escape;
use tonic::{Code, Status};

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Busy(_) | Error::BadToken(_) => Code::Aborted,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::Unavailable(_) => Code::Unavailable,
            Error::NoSpace(_) => Code::ResourceExhausted,
            // An administrator must change the export; retrying the same call cannot help.
            Error::ReadOnly(_) => Code::FailedPrecondition,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Io { .. } => Code::Internal,
        };
        // User-supplied text (ids, parameters, paths) is in many messages: escaped here, once.
        Status::new(code, escape::controls(&e.to_string()).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_csi_spec() {
        let cases = [
            (Error::invalid("x"), Code::InvalidArgument),
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::Busy("v".into()), Code::Aborted),
            (Error::BadToken("t".into()), Code::Aborted),
            (
                Error::Timeout {
                    what: "w".into(),
                    millis: 1,
                },
                Code::DeadlineExceeded,
            ),
            (
                Error::io("stat", std::io::Error::from_raw_os_error(libc::ESTALE)),
                Code::Unavailable,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(0)),
                Code::Unavailable,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(libc::ENOSPC)),
                Code::ResourceExhausted,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(libc::EPERM)),
                Code::PermissionDenied,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(libc::EACCES)),
                Code::PermissionDenied,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(libc::EROFS)),
                Code::FailedPrecondition,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(libc::EIO)),
                Code::Unavailable,
            ),
            (
                Error::io("mkdir", std::io::Error::from_raw_os_error(libc::EINVAL)),
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }

    #[test]
    fn export_faults_name_their_fix() {
        let ro = Status::from(Error::io(
            "mkdir pvc-1",
            std::io::Error::from_raw_os_error(libc::EROFS),
        ));
        assert!(ro.message().contains("read-only") && ro.message().contains("Access_Type = RW"));
        let squashed = Status::from(Error::io(
            "mkdir pvc-1",
            std::io::Error::from_raw_os_error(libc::EACCES),
        ));
        assert!(
            squashed.message().contains("no_root_squash"),
            "{squashed:?}"
        );
        assert!(squashed.message().contains("mkdir pvc-1"), "{squashed:?}");
    }

    #[test]
    fn user_text_cannot_forge_lines_in_details() {
        let hostile = "/srv/x\r\nERROR forged line\x1b[2J\0";
        for err in [
            Error::Unavailable(format!("share root {hostile}: gone")),
            Error::invalid(hostile),
            Error::io(hostile, std::io::Error::from_raw_os_error(libc::EPERM)),
        ] {
            let msg = Status::from(err).message().to_owned();
            assert!(
                !msg.contains(['\r', '\n', '\x1b', '\0']),
                "raw control character in {msg:?}"
            );
            assert!(
                msg.contains("\\r\\nERROR forged line\\u{1b}[2J\\0"),
                "{msg}"
            );
        }
    }
}
