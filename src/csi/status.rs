//! The one mapping from the crate's [`Error`] to gRPC status codes.

use crate::error::Error;
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
            Error::Io { .. } => Code::Internal,
        };
        Status::new(code, e.to_string())
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
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
    }
}
