//! Per-volume records on the share: a symlink whose target holds the requested capacity and the
//! volume id, so repeated CreateVolume calls and ListVolumes need no state in memory.

use crate::volume::SubDir;
use nix::errno::Errno;
use std::os::fd::OwnedFd;

/// What is remembered about a volume on its share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Capacity requested at creation, in bytes (0 when none was asked for).
    pub capacity: u64,
    /// The volume id handed out at creation.
    pub volume_id: String,
}

const VERSION: &str = "1";

/// The record's file name for a volume directory: the sub-directory with `%` and `/` escaped, or a
/// name-based UUID when that would be too long for one directory entry.
pub fn key(sub: &SubDir) -> String {
    let escaped = sub.as_str().replace('%', "%25").replace('/', "%2F");
    if escaped.len() <= 240 {
        escaped
    } else {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, sub.as_str().as_bytes());
        format!("~{id}")
    }
}

impl Record {
    fn encode(&self) -> String {
        format!("{VERSION} {} {}", self.capacity, self.volume_id)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ' ');
        if parts.next()? != VERSION {
            return None;
        }
        let capacity = parts.next()?.parse().ok()?;
        let volume_id = parts.next()?.to_owned();
        Some(Record {
            capacity,
            volume_id,
        })
    }
}

/// Reads the record named `key`, if there is a readable one.
pub fn read(records: &OwnedFd, key: &str) -> nix::Result<Option<Record>> {
    match nix::fcntl::readlinkat(records, key) {
        Ok(target) => Ok(target.to_str().and_then(Record::decode)),
        Err(Errno::ENOENT | Errno::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the record named `key` if there is none (`EEXIST` if there is).
pub fn create(records: &OwnedFd, key: &str, record: &Record) -> nix::Result<()> {
    nix::unistd::symlinkat(record.encode().as_str(), records, key)
}

/// Writes (or replaces) the record named `key`, atomically: the new record is made under a
/// temporary name and renamed over the old one, so a crash leaves the old record or the new one,
/// never none (an expansion killed midway is retried against the old record and completes). A
/// temporary record a crash left is replaced by the retry; callers hold the volume's guard.
pub fn write(records: &OwnedFd, key: &str, record: &Record) -> nix::Result<()> {
    let (temp, target) = (temp_key(key), record.encode());
    match nix::unistd::symlinkat(target.as_str(), records, temp.as_str()) {
        Err(Errno::EEXIST) => {
            super::fs::unlink(records, temp.as_ref(), false)?;
            nix::unistd::symlinkat(target.as_str(), records, temp.as_str())?;
        }
        other => other?,
    }
    nix::fcntl::renameat(records, temp.as_str(), records, key)
}

/// Removes the record named `key`; a missing record is fine. One call: a temporary record a crash
/// left beside it goes with the next [`write`] of the key or the start's [`sweep_temps`].
pub fn remove(records: &OwnedFd, key: &str) -> nix::Result<()> {
    super::fs::unlink(records, key.as_ref(), false)
}

/// Removes every temporary record a crash left (once per share after a start, beside the trash
/// sweep); returns how many went. A write racing it fails its rename and is retried by the CO.
pub fn sweep_temps(records: &OwnedFd) -> crate::error::Result<usize> {
    let temps: Vec<String> = super::fs::list(records)?
        .into_iter()
        .filter(|name| is_temp(name))
        .collect();
    for name in &temps {
        super::fs::unlink(records, name.as_ref(), false).map_err(|e| {
            crate::error::Error::errno(format!("remove temporary record {name}"), e)
        })?;
    }
    Ok(temps.len())
}

/// Marks a temporary record: `%` followed by `t` is never in a key (every `%` of a key is
/// escaped as `%25` or `%2F`).
const TEMP: &str = "%tmp-";

/// The temporary name [`write`] uses for `key`.
fn temp_key(key: &str) -> String {
    format!("{TEMP}{key}")
}

/// True for a temporary record (not a volume's; listings skip it).
pub fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_single_components() {
        assert_eq!(key(&SubDir::parse("pvc-1").unwrap()), "pvc-1");
        assert_eq!(key(&SubDir::parse("ns/a%b").unwrap()), "ns%2Fa%25b");
        let long = SubDir::parse(&format!("{}/{}", "a".repeat(200), "b".repeat(200))).unwrap();
        let k = key(&long);
        assert!(
            k.starts_with('~') && k.len() < 64 && !k.contains('/'),
            "{k}"
        );
    }

    #[test]
    fn records_round_trip() {
        let r = Record {
            capacity: 1 << 30,
            volume_id: "nsc1##/s#pvc 1#delete#".into(),
        };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        assert_eq!(Record::decode("2 5 x"), None);
        assert_eq!(Record::decode("1 notanumber x"), None);
    }

    #[test]
    fn a_rewrite_replaces_atomically_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let records: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        let rec = |capacity| Record {
            capacity,
            volume_id: "nsc1##/s#pvc-1#delete#".into(),
        };
        create(&records, "pvc-1", &rec(1)).unwrap();
        // What a crash between the temporary record and the rename leaves: both.
        nix::unistd::symlinkat(rec(2).encode().as_str(), &records, "%tmp-pvc-1").unwrap();
        assert!(is_temp("%tmp-pvc-1") && !is_temp(&key(&SubDir::parse("%tmp-x").unwrap())));
        assert_eq!(read(&records, "pvc-1").unwrap(), Some(rec(1)));
        write(&records, "pvc-1", &rec(3)).unwrap();
        assert_eq!(read(&records, "pvc-1").unwrap(), Some(rec(3)));
        let names = || crate::share::fs::list(&records).unwrap();
        assert_eq!(names(), ["pvc-1"]);
        nix::unistd::symlinkat(rec(4).encode().as_str(), &records, "%tmp-pvc-1").unwrap();
        remove(&records, "pvc-1").unwrap();
        assert_eq!(names(), ["%tmp-pvc-1"]);
        assert_eq!(sweep_temps(&records).unwrap(), 1);
        assert_eq!(names(), Vec::<String>::new());
    }
}
