//! ShareRoot on a temp dir, without the binary or gRPC in between: create (modes, records,
//! idempotency, conflicts), look-ups and expansion, delete by each policy, the trash across a
//! restart, removal of deep and read-only trees, and planted symlinks that must not be followed.

use super::*;
use crate::volume::OnDelete;
use std::os::unix::fs::{PermissionsExt, symlink};

const GIB: u64 = 1 << 30;

fn sub(s: &str) -> SubDir {
    SubDir::parse(s).unwrap()
}

fn share() -> (tempfile::TempDir, ShareRoot) {
    let dir = tempfile::tempdir().unwrap();
    let root = ShareRoot::open(dir.path()).unwrap();
    (dir, root)
}

/// The process's umask, read from /proc without changing it (umask(2) would, for every thread).
fn process_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = status.lines().find_map(|l| l.strip_prefix("Umask:"));
    u32::from_str_radix(field.expect("Umask in /proc/self/status").trim(), 8).unwrap()
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_create_whose_record_cannot_be_written_leaves_no_directory() {
    let (dir, root) = share();
    let v = sub("pvc-half");
    // Something the record cannot replace sits at its name (on a full share it is the missing
    // inode): the directory made a moment before must go again.
    let records = dir.path().join(STATE_DIR).join("volumes");
    std::fs::create_dir_all(records.join(record::key(&v))).unwrap();
    let made = root.create_volume(&v, 0o777, 0o022, GIB, "id-half");
    assert!(made.is_err(), "{made:?}");
    assert!(!dir.path().join("pvc-half").exists(), "half volume left");
    // once the obstacle is gone the same call succeeds
    std::fs::remove_dir(records.join(record::key(&v))).unwrap();
    let made = root
        .create_volume(&v, 0o777, 0o022, GIB, "id-half")
        .unwrap();
    assert_eq!(made, Created::New);
}

#[test]
fn create_makes_the_directory_and_its_record_once() {
    let (dir, root) = share();
    let v = sub("ns/pvc-a");
    assert_eq!(
        root.create_volume(&v, 0o777, 0o022, GIB, "id-a").unwrap(),
        Created::New
    );
    // the mode is the one asked for, also the bits the umask would have cleared
    assert_eq!(mode_of(&dir.path().join("ns/pvc-a")), 0o777);
    let rec = root.record(&v).unwrap().unwrap();
    assert_eq!((rec.capacity, rec.volume_id.as_str()), (GIB, "id-a"));

    // a retry is Existing; another size or another id is AlreadyExists
    assert_eq!(
        root.create_volume(&v, 0o777, 0o022, GIB, "id-a").unwrap(),
        Created::Existing
    );
    let other_size = root.create_volume(&v, 0o777, 0o022, 2 * GIB, "id-a");
    assert!(
        matches!(other_size, Err(Error::AlreadyExists(_))),
        "{other_size:?}"
    );
    let other_id = root.create_volume(&v, 0o777, 0o022, GIB, "id-b");
    assert!(
        matches!(other_id, Err(Error::AlreadyExists(_))),
        "{other_id:?}"
    );
    assert_eq!(root.record(&v).unwrap().unwrap().volume_id, "id-a");

    // a restricted mode stays restricted
    let w = sub("pvc-w");
    root.create_volume(&w, 0o750, 0o022, 0, "id-w").unwrap();
    assert_eq!(mode_of(&dir.path().join("pvc-w")), 0o750);

    // setgid and sticky, which mkdir(2) alone does not set on Linux (setgid), under the process's
    // real umask (022 in a shell; 0 once a Controller in this test process has cleared it)
    for (name, mode) in [("pvc-g", 0o2775), ("pvc-t", 0o1777)] {
        root.create_volume(&sub(name), mode, process_umask(), 0, name)
            .unwrap();
        assert_eq!(mode_of(&dir.path().join(name)), mode, "{name}");
    }
}

#[test]
fn create_adopts_a_bare_directory_and_refuses_a_file() {
    let (dir, root) = share();
    std::fs::create_dir(dir.path().join("pvc-kept")).unwrap();
    let kept = sub("pvc-kept");
    assert_eq!(
        root.create_volume(&kept, 0o777, 0, GIB, "id-kept").unwrap(),
        Created::Existing
    );
    assert_eq!(root.record(&kept).unwrap().unwrap().volume_id, "id-kept");

    std::fs::write(dir.path().join("pvc-file"), "x").unwrap();
    let file = root.create_volume(&sub("pvc-file"), 0o777, 0, GIB, "id-f");
    assert!(matches!(file, Err(Error::AlreadyExists(_))), "{file:?}");
    assert_eq!(root.record(&sub("pvc-file")).unwrap(), None);
}

#[test]
fn a_new_volume_replaces_the_record_of_a_gone_one() {
    // A record whose directory went (removed by hand, or a crash between the two halves of a
    // delete): the next volume of that name is new and its record replaces the old one.
    let (dir, root) = share();
    let v = sub("pvc-again");
    root.create_volume(&v, 0o777, 0, GIB, "id-old").unwrap();
    std::fs::remove_dir(dir.path().join("pvc-again")).unwrap();
    assert_eq!(
        root.create_volume(&v, 0o777, 0, 2 * GIB, "id-new").unwrap(),
        Created::New
    );
    let rec = root.record(&v).unwrap().unwrap();
    assert_eq!((rec.capacity, rec.volume_id.as_str()), (2 * GIB, "id-new"));
    // and a delete takes directory and record away together: empty, the directory goes at once
    // (no trash entry, nothing left for the background removal)
    assert!(matches!(
        root.delete_volume(&v, OnDelete::Delete, true).unwrap(),
        Disposed::Removed
    ));
    assert_eq!(root.record(&v).unwrap(), None);
    assert!(!dir.path().join("pvc-again").exists());
    assert!(names(&dir.path().join(STATE_DIR).join("trash")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_busy_share_runs_the_second_call_of_a_pair_on_the_same_thread() {
    use std::sync::atomic::Ordering::Relaxed;
    let ((_dir, mut root), here) = (share(), std::thread::current().id());
    assert!(!root.remote, "a temp dir is a local filesystem");
    root.remote = true; // as on NFS: alone, the second call may go to a pool thread
    assert_eq!(root.pair(|| 1, move || 2), (1, 2));
    root.pairs.store(super::OVERLAP_UP_TO, Relaxed);
    let (a, (b, thread)) = root.pair(std::time::Instant::now, || {
        (std::time::Instant::now(), std::thread::current().id())
    });
    assert!(thread == here && b >= a, "busy: here, after the first");
    assert_eq!(
        root.pairs.load(Relaxed),
        super::OVERLAP_UP_TO,
        "count given back"
    );
}

#[test]
fn records_list_and_expansion_only_grows() {
    let (_dir, root) = share();
    assert!(root.records().unwrap().is_empty());
    for (name, id) in [("pvc-1", "id-1"), ("ns/pvc-2", "id-2")] {
        root.create_volume(&sub(name), 0o777, 0, GIB, id).unwrap();
    }
    let ids: Vec<String> = root
        .records()
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.volume_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&"id-1".into()) && ids.contains(&"id-2".into()),
        "{ids:?}"
    );

    let v = sub("pvc-1");
    assert_eq!(root.expand(&v, 2 * GIB).unwrap(), 2 * GIB);
    assert_eq!(root.expand(&v, GIB).unwrap(), 2 * GIB, "never shrinks");
    assert_eq!(root.record(&v).unwrap().unwrap().capacity, 2 * GIB);
    let missing = root.expand(&sub("pvc-none"), GIB);
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
}

#[test]
fn delete_applies_each_policy_and_forgets_the_record() {
    let (dir, root) = share();
    for name in ["pvc-del", "pvc-arch", "pvc-keep"] {
        root.create_volume(&sub(name), 0o777, 0, GIB, name).unwrap();
        std::fs::write(dir.path().join(name).join("data"), name).unwrap();
    }
    let entry = root
        .delete_volume(&sub("pvc-del"), OnDelete::Delete, true)
        .map(Disposed::trash_entry)
        .unwrap()
        .expect("a trash entry");
    assert!(!dir.path().join("pvc-del").exists());
    let trash = dir.path().join(STATE_DIR).join("trash");
    assert_eq!(names(&trash), vec![entry.name().to_owned()]);
    assert_eq!(entry.purge().unwrap(), 2, "the directory and its file");
    assert!(names(&trash).is_empty());

    assert!(
        root.delete_volume(&sub("pvc-arch"), OnDelete::Archive, true)
            .map(Disposed::trash_entry)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("archived-pvc-arch/data")).unwrap(),
        "pvc-arch"
    );
    assert!(
        root.delete_volume(&sub("pvc-keep"), OnDelete::Retain, true)
            .map(Disposed::trash_entry)
            .unwrap()
            .is_none()
    );
    assert!(dir.path().join("pvc-keep/data").exists());
    assert!(root.records().unwrap().is_empty(), "every record forgotten");

    // already gone: fine, twice
    for _ in 0..2 {
        assert!(
            root.delete_volume(&sub("pvc-del"), OnDelete::Delete, true)
                .map(Disposed::trash_entry)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn an_unused_share_is_left_untouched_by_a_delete() {
    let (dir, root) = share();
    std::fs::create_dir(dir.path().join("pvc-x")).unwrap();
    let r = root
        .delete_volume(&sub("pvc-x"), OnDelete::Delete, false)
        .map(Disposed::trash_entry)
        .unwrap();
    assert!(r.is_none());
    assert_eq!(
        names(dir.path()),
        vec!["pvc-x"],
        "no state dir, nothing moved"
    );
}

#[test]
fn the_trash_survives_a_restart_and_deep_read_only_trees_go() {
    let (dir, root) = share();
    let v = sub("pvc-deep");
    root.create_volume(&v, 0o777, 0, GIB, "deep").unwrap();
    // 300 levels, every directory and file read-only
    let mut p = dir.path().join("pvc-deep");
    let mut made = Vec::new();
    for i in 0..300 {
        p = p.join(format!("d{i}"));
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("f"), "x").unwrap();
        made.push(p.clone());
    }
    for d in made.iter().rev() {
        std::fs::set_permissions(d.join("f"), std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let entry = root
        .delete_volume(&v, OnDelete::Delete, true)
        .map(Disposed::trash_entry)
        .unwrap();
    drop(entry); // not purged: as if the process died here
    drop(root);

    let again = ShareRoot::open(dir.path()).unwrap();
    let pending = again.pending_trash().unwrap();
    assert_eq!(pending.len(), 1);
    let removed: u64 = pending.into_iter().map(|e| e.purge().unwrap()).sum();
    assert_eq!(removed, 1 + 300 * 2);
    assert!(again.pending_trash().unwrap().is_empty());
}

#[test]
fn planted_symlinks_are_never_followed() {
    let (dir, root) = share();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), "keep").unwrap();

    // a volume directory swapped for a symlink: refused, not opened, not deleted through
    root.create_volume(&sub("pvc-s"), 0o777, 0, GIB, "s")
        .unwrap();
    std::fs::remove_dir(dir.path().join("pvc-s")).unwrap();
    symlink(outside.path(), dir.path().join("pvc-s")).unwrap();
    let exists = root.volume_exists(&sub("pvc-s"));
    assert!(
        matches!(exists, Err(Error::FailedPrecondition(_))),
        "{exists:?}"
    );
    let opened = root.open_volume(&sub("pvc-s"));
    assert!(
        matches!(opened, Err(Error::FailedPrecondition(_))),
        "{opened:?}"
    );
    if let Some(entry) = root
        .delete_volume(&sub("pvc-s"), OnDelete::Delete, true)
        .map(Disposed::trash_entry)
        .unwrap()
    {
        entry.purge().unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("precious")).unwrap(),
        "keep"
    );

    // a parent that is a symlink: nothing is made through it
    symlink(outside.path(), dir.path().join("ns")).unwrap();
    let through = root.create_volume(&sub("ns/pvc-t"), 0o777, 0, GIB, "t");
    assert!(through.is_err(), "{through:?}");
    assert_eq!(names(outside.path()), vec!["precious"]);

    // a symlink inside a trashed tree is removed, not followed
    root.create_volume(&sub("pvc-l"), 0o777, 0, GIB, "l")
        .unwrap();
    symlink(outside.path(), dir.path().join("pvc-l/link")).unwrap();
    let entry = root
        .delete_volume(&sub("pvc-l"), OnDelete::Delete, true)
        .map(Disposed::trash_entry)
        .unwrap()
        .unwrap();
    assert_eq!(entry.purge().unwrap(), 2);
    assert_eq!(names(outside.path()), vec!["precious"]);
}

#[test]
fn archives_are_named_the_way_each_tool_named_them() {
    use crate::volume::legacy::ArchiveNaming;
    let (dir, root) = share();
    let nested = |name: &str| {
        let v = sub(&format!("ns/{name}"));
        root.create_volume(&v, 0o777, 0, GIB, name).unwrap();
        std::fs::write(dir.path().join("ns").join(name).join("data"), name).unwrap();
        v
    };
    let arch = |v: &SubDir, naming| {
        let gone = root
            .delete_volume_as(v, OnDelete::Archive, naming, true)
            .map(Disposed::trash_entry);
        assert!(gone.unwrap().is_none());
    };
    // Ours: next to it. csi-driver-nfs: the prefix on the whole sub-path. nfs-subdir-external-
    // provisioner: the last component at the share root.
    arch(&nested("a"), ArchiveNaming::Sibling);
    arch(&nested("b"), ArchiveNaming::WholePath);
    arch(&nested("c"), ArchiveNaming::Root);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    assert_eq!(read("ns/archived-a/data"), "a");
    assert_eq!(read("archived-ns/b/data"), "b");
    assert_eq!(read("archived-c/data"), "c");
    // A second archive of the same name never replaces the first; a missing source is fine.
    let again = nested("c");
    arch(&again, ArchiveNaming::Root);
    assert_eq!(read("archived-c/data"), "c");
    let names = names(dir.path());
    assert!(
        names.iter().any(|n| n.starts_with("archived-c-")),
        "{names:?}"
    );
    for naming in [
        ArchiveNaming::Sibling,
        ArchiveNaming::WholePath,
        ArchiveNaming::Root,
    ] {
        arch(&sub("ns/never-made"), naming);
        arch(&sub("no-parent/x"), naming);
    }
    assert!(!dir.path().join("archived-ns/never-made").exists());
}

#[test]
fn a_temporary_record_a_crash_left_is_not_listed_as_a_volume() {
    let (dir, root) = share();
    root.create_volume(&sub("pvc-a"), 0o777, 0, GIB, "id-a")
        .unwrap();
    let records = dir.path().join(STATE_DIR).join("volumes");
    let key = names(&records).pop().unwrap();
    // as if a crash stopped an expansion between its temporary record and the rename
    symlink("left", records.join(format!("%tmp-{key}"))).unwrap();
    let fresh = ShareRoot::open(dir.path()).unwrap();
    assert_eq!(fresh.record_keys().unwrap(), vec![key.clone()]);
    let listed: Vec<String> = fresh.records().unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(listed, vec![key]);
}
