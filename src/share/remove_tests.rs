//! Tests of the parallel tree removal on a local directory: wide and deep trees, read-only and
//! unreadable entries, and planted symlinks that must be removed without being followed.

use super::*;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// Builds a tree at `root` and returns how many entries it holds (root included).
fn build(root: &Path, outside: &Path) -> u64 {
    let mut n = 1;
    std::fs::create_dir(root).unwrap();
    for d in 0..8 {
        let top = root.join(format!("d{d}"));
        std::fs::create_dir(&top).unwrap();
        n += 1;
        for s in 0..4 {
            let sub = top.join(format!("s{s}"));
            std::fs::create_dir(&sub).unwrap();
            n += 1;
            for f in 0..20 {
                std::fs::write(sub.join(format!("f{f}")), b"x").unwrap();
                n += 1;
            }
        }
        std::fs::write(top.join("file"), b"y").unwrap();
        n += 1;
    }
    let mut deep = root.to_path_buf();
    for i in 0..100 {
        deep = deep.join(format!("deep{i}"));
        n += 1;
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom"), b"z").unwrap();
    n += 1;
    let ro = root.join("readonly");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("locked"), b"x").unwrap();
    std::fs::set_permissions(ro.join("locked"), std::fs::Permissions::from_mode(0o444)).unwrap();
    symlink(outside.join("keep"), ro.join("to-outside-file")).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let closed = root.join("unreadable");
    std::fs::create_dir(&closed).unwrap();
    std::fs::write(closed.join("inside"), b"x").unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    symlink(outside, root.join("to-outside")).unwrap();
    symlink("/", root.join("d0/s0/to-root")).unwrap();
    n + 3 + 2 + 2
}

#[test]
fn parallel_and_sequential_removal_remove_everything_and_follow_no_symlink() {
    let base = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"outside").unwrap();
    let parent = super::super::fs::open_root(base.path()).unwrap();
    for workers in [1, 4, WORKERS] {
        let expected = build(&base.path().join("t"), outside.path());
        let removed = remove_tree_with(&parent, "t", workers).unwrap();
        assert_eq!(removed, expected, "{workers} workers");
        assert!(!base.path().join("t").exists(), "{workers} workers");
        assert_eq!(
            std::fs::read(outside.path().join("keep")).unwrap(),
            b"outside"
        );
    }
    assert!(Path::new("/etc/passwd").exists());
    // Gone already, a plain file, an empty directory.
    assert_eq!(remove_tree(&parent, "t").unwrap(), 0);
    std::fs::write(base.path().join("plain"), b"x").unwrap();
    assert_eq!(remove_tree(&parent, "plain").unwrap(), 1);
    std::fs::create_dir(base.path().join("empty")).unwrap();
    assert_eq!(remove_tree(&parent, "empty").unwrap(), 1);
    assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
}

#[test]
fn a_top_that_is_a_symlink_is_removed_not_followed() {
    let base = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"outside").unwrap();
    symlink(outside.path(), base.path().join("link")).unwrap();
    let parent = super::super::fs::open_root(base.path()).unwrap();
    assert_eq!(remove_tree(&parent, "link").unwrap(), 1);
    assert!(outside.path().join("keep").exists());
}

#[test]
fn the_first_rmdir_does_not_follow_a_symlink_to_an_empty_directory() {
    let base = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("empty")).unwrap();
    symlink(outside.path().join("empty"), base.path().join("link")).unwrap();
    let parent = super::super::fs::open_root(base.path()).unwrap();
    assert_eq!(remove_tree(&parent, "link").unwrap(), 1);
    assert!(
        outside.path().join("empty").is_dir(),
        "followed the symlink"
    );
}
