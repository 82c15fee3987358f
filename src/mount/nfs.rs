//! NFS mounts through mount(2) with the kernel's own option text, so no mount.nfs helper is needed:
//! the server name is resolved here, generic options become mount flags, and without an explicit
//! version 4.2 → 4.1 → 4.0 → 3 are tried in turn as mount.nfs does.
//!
//! Options the kernel needs that mount.nfs would otherwise add:
//! - `addr=<ip>` always (mount(2) does not resolve the host name in the source);
//! - `clientaddr=<local ip>` for NFSv4.0 (its callback channel), unless given;
//! - `nolock` for NFSv3 unless the user wrote `lock` or `nolock`: with NLM locking the kernel starts
//!   lockd, which must register with an rpcbind on this machine; a node image without rpcbind then
//!   gets ECONNREFUSED from mount(2). With `nolock`, fcntl/flock locks are local to the node, as
//!   csi-driver-nfs users get when they mount v3 without rpc.statd. Users who need cluster-wide
//!   NLM locks run rpcbind on the node and pass `lock`.
//! - `port=` and `mountport=` are the user's (NFSv4 assumes 2049 without `port=`; NFSv3 asks the
//!   server's rpcbind) and pass through unchanged.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;

/// Versions tried, newest first, when the options name none.
const VERSIONS: [&str; 4] = ["4.2", "4.1", "4.0", "3"];

/// What to mount where.
#[derive(Clone, Debug)]
pub struct NfsMount<'a> {
    /// Server host name or address (IPv6 may be in brackets).
    pub server: &'a str,
    /// Absolute path on the server (export plus sub-directory).
    pub path: &'a str,
    /// User options in mount.nfs spelling (`nfsvers=4.1`, `hard`, `noatime`, …).
    pub options: &'a [String],
    /// Mount read-only.
    pub read_only: bool,
    /// Controller working mount: force `soft` with bounded timeouts.
    pub bounded: bool,
}

/// Mount flags that mount.nfs turns into MS_* flags instead of passing them to the kernel.
fn generic_flag(opt: &str) -> Option<(MsFlags, bool)> {
    Some(match opt {
        "ro" => (MsFlags::MS_RDONLY, true),
        "rw" => (MsFlags::MS_RDONLY, false),
        "noatime" => (MsFlags::MS_NOATIME, true),
        "atime" => (MsFlags::MS_NOATIME, false),
        "nodiratime" => (MsFlags::MS_NODIRATIME, true),
        "relatime" => (MsFlags::MS_RELATIME, true),
        "strictatime" => (MsFlags::MS_STRICTATIME, true),
        "nosuid" => (MsFlags::MS_NOSUID, true),
        "suid" => (MsFlags::MS_NOSUID, false),
        "nodev" => (MsFlags::MS_NODEV, true),
        "dev" => (MsFlags::MS_NODEV, false),
        "noexec" => (MsFlags::MS_NOEXEC, true),
        "exec" => (MsFlags::MS_NOEXEC, false),
        "sync" => (MsFlags::MS_SYNCHRONOUS, true),
        "async" => (MsFlags::MS_SYNCHRONOUS, false),
        "defaults" | "auto" | "noauto" | "user" | "nouser" | "_netdev" => (MsFlags::empty(), true),
        _ => return None,
    })
}

/// Soft-mount options of the controller's working mounts. Its work is metadata only, so an error
/// is better than a hang: each RPC times out after 5 s (`timeo` is in tenths of a second) and is
/// sent once more (TCP backs off linearly: 5 s + 10 s), so a thread stuck on a dead server gets EIO
/// after about 15 s, within the default 30 s operation timeout. Requests give up earlier at their
/// own deadline; [`crate::share::working`] then force-unmounts the share, which ends such RPCs at once.
pub const BOUNDED: [&str; 3] = ["soft", "timeo=50", "retrans=1"];

/// What mount(2) gets from the options: mount flags, the kernel's text options (without `vers`,
/// `addr`) and the version asked for, if any.
fn kernel_call_parts(m: &NfsMount<'_>) -> (MsFlags, Vec<String>, Option<String>) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut version = None;
    for opt in m.options {
        if let Some((flag, on)) = generic_flag(opt) {
            flags.set(flag, on);
            continue;
        }
        match opt.split_once('=') {
            Some(("vers" | "nfsvers", v)) => version = Some(v.to_owned()),
            // mount.nfs-only (retry) or computed here (addr).
            Some(("retry" | "addr", _)) => {}
            _ if m.bounded
                && (opt == "hard"
                    || opt == "soft"
                    || opt.starts_with("timeo=")
                    || opt.starts_with("retrans=")) => {}
            _ => data.push(opt.clone()),
        }
    }
    if m.bounded {
        data.extend(BOUNDED.iter().map(|o| o.to_string()));
    }
    if m.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    (flags, data, version)
}

/// The full kernel option text for one attempt at version `vers`.
fn attempt_options(vers: &str, ip: IpAddr, data: &[String]) -> String {
    let has = |name: &str| {
        data.iter()
            .any(|o| o == name || o.split_once('=').is_some_and(|(k, _)| k == name))
    };
    let mut text = vec![format!("vers={vers}"), format!("addr={ip}")];
    if (vers == "4.0" || vers == "4") && !has("clientaddr") {
        if let Some(local) = local_address(ip) {
            text.push(format!("clientaddr={local}"));
        }
    }
    text.extend(data.iter().cloned());
    // NFSv3 (and 2): see the module notes on `nolock`.
    if (vers == "3" || vers == "2") && !has("lock") && !has("nolock") && !has("local_lock") {
        text.push("nolock".into());
    }
    text.join(",")
}

/// Resolves `server` to an address, preferring IPv4.
pub fn resolve(server: &str) -> Result<IpAddr> {
    resolve_with(server, |host| {
        (host, 2049).to_socket_addrs().map(Iterator::collect)
    })
}

/// [`resolve`] with the name lookup given (the system resolver in production).
fn resolve_with(
    server: &str,
    lookup: impl FnOnce(&str) -> std::io::Result<Vec<SocketAddr>>,
) -> Result<IpAddr> {
    let host = server.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs = lookup(host)
        .map_err(|e| Error::Unavailable(format!("cannot resolve NFS server {host:?}: {e}")))?;
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| Error::Unavailable(format!("NFS server {host:?} has no address")))
}

/// The local address this host uses to reach `server` (NFSv4.0 callbacks need it).
fn local_address(server: IpAddr) -> Option<IpAddr> {
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect((server, 2049)).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

/// Mounts the export at `target`. Returns the NFS version that worked.
pub fn mount_nfs(m: &NfsMount<'_>, target: &Path) -> Result<String> {
    let ip = resolve(m.server)?;
    let (flags, data, version) = kernel_call_parts(m);
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let source = format!("{host}:{}", m.path);
    let tries: Vec<String> = match version {
        Some(v) => vec![v],
        None => VERSIONS.iter().map(|v| v.to_string()).collect(),
    };
    let mut last = Errno::EINVAL;
    for vers in &tries {
        let text = attempt_options(vers, ip, &data);
        match mount(
            Some(source.as_str()),
            target,
            Some("nfs"),
            flags,
            Some(text.as_str()),
        ) {
            Ok(()) => return Ok(vers.clone()),
            // The server does not speak this version: try the next one.
            Err(e @ (Errno::EPROTONOSUPPORT | Errno::EOPNOTSUPP | Errno::EINVAL))
                if tries.len() > 1 =>
            {
                tracing::debug!(%source, vers, error = %e, "NFS version refused, trying the next");
                last = e;
            }
            Err(e) => return Err(mount_error(&source, target, e)),
        }
    }
    Err(mount_error(&source, target, last))
}

fn mount_error(source: &str, target: &Path, e: Errno) -> Error {
    let what = format!("mount {source} at {}", target.display());
    match e {
        Errno::ENOENT => Error::NotFound(format!("{what}: no such export or directory")),
        Errno::EACCES | Errno::EPERM => {
            Error::FailedPrecondition(format!("{what}: access denied: {e}"))
        }
        Errno::ECONNREFUSED
        | Errno::ETIMEDOUT
        | Errno::EHOSTUNREACH
        | Errno::ENETUNREACH
        | Errno::EIO => Error::Unavailable(format!("{what}: {e}")),
        e => Error::errno(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_options_become_flags_and_controller_mounts_are_bounded() {
        let opts: Vec<String> = ["nfsvers=4.1", "hard", "noatime", "timeo=600", "rsize=65536"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = NfsMount {
            server: "h",
            path: "/e",
            options: &opts,
            read_only: true,
            bounded: false,
        };
        let (flags, data, vers) = kernel_call_parts(&m);
        assert!(flags.contains(MsFlags::MS_NOATIME | MsFlags::MS_RDONLY));
        assert_eq!(vers.as_deref(), Some("4.1"));
        assert_eq!(data, vec!["hard", "timeo=600", "rsize=65536"]);
        let bounded = NfsMount {
            bounded: true,
            read_only: false,
            ..m
        };
        let (flags, data, _) = kernel_call_parts(&bounded);
        assert!(!flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(data, vec!["rsize=65536", "soft", "timeo=50", "retrans=1"]);
    }

    #[test]
    fn v3_gets_nolock_unless_locking_is_chosen_and_ports_pass_through() {
        let ip: IpAddr = "10.0.2.2".parse().unwrap();
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            attempt_options("3", ip, &opts(&["port=12049", "mountport=12048"])),
            "vers=3,addr=10.0.2.2,port=12049,mountport=12048,nolock"
        );
        for chosen in ["lock", "nolock", "local_lock=all"] {
            let text = attempt_options("3", ip, &opts(&[chosen]));
            assert_eq!(text, format!("vers=3,addr=10.0.2.2,{chosen}"));
        }
        assert_eq!(
            attempt_options("4.1", ip, &opts(&["port=12049"])),
            "vers=4.1,addr=10.0.2.2,port=12049"
        );
        let v40 = attempt_options("4.0", ip, &opts(&["clientaddr=10.0.2.15"]));
        assert_eq!(v40, "vers=4.0,addr=10.0.2.2,clientaddr=10.0.2.15");
    }

    #[test]
    fn resolves_literal_addresses() {
        assert_eq!(resolve("10.0.2.2").unwrap().to_string(), "10.0.2.2");
        assert_eq!(resolve("[fd00::1]").unwrap().to_string(), "fd00::1");
    }

    #[test]
    fn names_resolve_through_the_lookup_preferring_ipv4() {
        let v6: SocketAddr = "[fd00::7]:2049".parse().unwrap();
        let v4: SocketAddr = "192.0.2.7:2049".parse().unwrap();
        let asked = std::cell::RefCell::new(Vec::new());
        let found = resolve_with("[nfs.example]", |host| {
            asked.borrow_mut().push(host.to_owned());
            Ok(vec![v6, v4])
        });
        assert_eq!(found.unwrap(), v4.ip());
        assert_eq!(asked.into_inner(), ["nfs.example"]);
        assert_eq!(resolve_with("nfs6", |_| Ok(vec![v6])).unwrap(), v6.ip());
        let literal = resolve_with("10.0.2.2", |_| panic!("a literal address needs no lookup"));
        assert_eq!(literal.unwrap().to_string(), "10.0.2.2");
        let none = resolve_with("empty", |_| Ok(Vec::new())).unwrap_err();
        assert!(
            matches!(&none, Error::Unavailable(m) if m.contains("no address")),
            "{none:?}"
        );
        let failed = resolve_with("nxdomain", |_| Err(std::io::ErrorKind::NotFound.into()));
        assert!(
            matches!(&failed, Err(Error::Unavailable(m)) if m.contains("cannot resolve NFS server \"nxdomain\"")),
            "{failed:?}"
        );
    }
}
