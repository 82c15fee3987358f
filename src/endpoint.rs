//! The CSI endpoint the server listens on, parsed at the edge (clap hands it over typed).

use crate::error::{Error, Result};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// Parses `unix:///abs/path`, `unix://relative/path`, `unix:/path` or `tcp://host:port`.
    pub fn parse(raw: &str) -> Result<Self> {
        if let Some(path) = raw
            .strip_prefix("unix://")
            .or_else(|| raw.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(Error::invalid("endpoint unix:// needs a path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = raw.strip_prefix("tcp://") {
            return addr
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|e| Error::invalid(format!("endpoint {raw:?}: {e}")));
        }
        Err(Error::invalid(format!(
            "endpoint {raw:?}: expected unix:///path or tcp://host:port"
        )))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///csi/csi.sock").unwrap(),
            Endpoint::Unix("/csi/csi.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix://./csi.sock").unwrap(),
            Endpoint::Unix("./csi.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:10000").unwrap(),
            Endpoint::Tcp("127.0.0.1:10000".parse().unwrap())
        );
        let shown = Endpoint::parse("unix:///csi/csi.sock").unwrap().to_string();
        assert_eq!(shown, "unix:///csi/csi.sock");
        for bad in ["", "unix://", "http://x", "tcp://nohost"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
