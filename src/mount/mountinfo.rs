//! Parsing of /proc/self/mountinfo: which paths are mount points, and what is mounted where.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The mount's id (as `statx` reports it in `stx_mnt_id`).
    pub id: u64,
    /// `major:minor` of the filesystem.
    pub device: String,
    /// Path inside the filesystem that is mounted (differs from `/` for bind mounts).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`ro`, `rw`, …).
    pub options: String,
    /// Filesystem type (`nfs`, `nfs4`, `tmpfs`, …).
    pub fstype: String,
    /// Mount source (`server:/export/dir` for NFS).
    pub source: String,
    /// Options of the filesystem itself (`vers=4.1,addr=…` for NFS).
    pub super_options: String,
}

impl Mount {
    /// True when mounted read-only.
    pub fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }

    /// True when the filesystem itself is read-only (every mount of it is).
    pub fn super_read_only(&self) -> bool {
        self.super_options.split(',').any(|o| o == "ro")
    }
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let f: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if f.len() < 6 || r.len() < 2 {
        return None;
    }
    Some(Mount {
        id: f[0].parse().ok()?,
        device: f[2].to_owned(),
        root: unescape(f[3]),
        mount_point: PathBuf::from(unescape(f[4])),
        options: f[5].to_owned(),
        fstype: r[0].to_owned(),
        source: unescape(r[1]),
        super_options: r.get(2).copied().unwrap_or_default().to_owned(),
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads this process's mount table.
pub fn read() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The topmost mount at exactly `path`, if `path` is a mount point.
pub fn at<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:33 /srv/share/pvc-1 /var/lib/kubelet/pods/a/vol\\040x rw,relatime shared:2 - ext4 /dev/vda rw
41 22 0:52 / /mnt/nfs ro,relatime - nfs4 10.0.2.2:/export/pvc-2 ro,vers=4.1,addr=10.0.2.2
bogus line
";

    #[test]
    fn parses_lines_and_escapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, Path::new("/var/lib/kubelet/pods/a/vol x"));
        assert_eq!(m[1].root, "/srv/share/pvc-1");
        assert!(!m[1].read_only());
        assert_eq!(m[2].fstype, "nfs4");
        assert_eq!(m[2].source, "10.0.2.2:/export/pvc-2");
        assert!(m[2].read_only() && m[2].super_read_only());
        assert_eq!(m[2].super_options, "ro,vers=4.1,addr=10.0.2.2");
        assert!(!m[1].super_read_only());
        assert_eq!(at(&m, Path::new("/mnt/nfs")).unwrap().device, "0:52");
        assert_eq!(at(&m, Path::new("/mnt/nfs")).unwrap().id, 41);
        assert!(at(&m, Path::new("/mnt")).is_none());
    }
}
