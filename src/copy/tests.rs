//! Tests of the copy engine on the local filesystem: what a copy keeps, and that hostile trees are
//! copied as data.

use super::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

fn open_dir(p: &Path) -> OwnedFd {
    fs::File::open(p).unwrap().into()
}

fn copy(src: &Path, dst: &Path) -> Summary {
    fs::create_dir(dst).unwrap();
    copy_tree(&open_dir(src), &open_dir(dst), &Options::default()).unwrap()
}

#[test]
fn keeps_modes_times_links_holes_and_xattrs() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("plain"), b"hello").unwrap();
    fs::set_permissions(src.join("plain"), fs::Permissions::from_mode(0o4751)).unwrap();
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    fs::write(src.join("sub/deeper/data"), vec![7u8; 100_000]).unwrap();
    fs::hard_link(src.join("sub/deeper/data"), src.join("link-to-data")).unwrap();
    symlink("/etc/passwd", src.join("abs-link")).unwrap();
    symlink("../../outside", src.join("sub/rel-link")).unwrap();
    nix::unistd::mkfifo(
        &src.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let xattr = rustix::fs::setxattr(
        src.join("plain"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o555)).unwrap();
    let old = filetime(1_500_000_000, 123_456_789);
    rustix::fs::utimensat(
        rustix::fs::CWD,
        src.join("sub"),
        &old,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    rustix::fs::utimensat(
        rustix::fs::CWD,
        src.join("abs-link"),
        &old,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();

    let sum = copy(&src, &dst);
    assert_eq!(sum.hard_links, 1, "{sum:?}");
    assert_eq!(sum.symlinks, 2, "{sum:?}");
    assert_eq!(sum.fifos, 1, "{sum:?}");

    let m = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
    let s = |p: &str| fs::symlink_metadata(src.join(p)).unwrap();
    assert_eq!(fs::read(dst.join("plain")).unwrap(), b"hello");
    assert_eq!(m("plain").mode() & 0o7777, 0o4751);
    assert_eq!(m("sub").mode() & 0o7777, 0o555);
    assert_eq!(
        (m("sub").mtime(), m("sub").mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );
    assert_eq!(m("plain").mtime_nsec(), s("plain").mtime_nsec());
    assert_eq!(m("plain").atime(), s("plain").atime());
    assert_eq!(m("abs-link").mtime(), 1_500_000_000, "symlink times kept");
    assert_eq!(
        fs::read_link(dst.join("abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(m("abs-link").file_type().is_symlink());
    assert_eq!(
        fs::read_link(dst.join("sub/rel-link")).unwrap(),
        Path::new("../../outside")
    );
    assert_eq!(m("link-to-data").ino(), m("sub/deeper/data").ino());
    assert_eq!(m("link-to-data").nlink(), 2);
    assert_eq!(
        fs::read(dst.join("link-to-data")).unwrap(),
        vec![7u8; 100_000]
    );
    assert_eq!(m("sparse").len(), 64 << 20);
    assert!(
        m("sparse").blocks() * 512 < 1 << 20,
        "sparse file allocated {} blocks",
        m("sparse").blocks()
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(m("fifo").file_type().is_fifo());
    assert_eq!(m("fifo").mode() & 0o777, 0o640);
    assert_eq!(
        (m("plain").uid(), m("plain").gid()),
        (s("plain").uid(), s("plain").gid())
    );
    if xattr {
        let mut buf = vec![0u8; 16];
        let n = rustix::fs::getxattr(dst.join("plain"), "user.note", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"kept");
    } else {
        eprintln!("SKIP xattr check: the temp filesystem has no user.* xattrs");
    }
    // Make the read-only directories removable for the temp dir's cleanup.
    for d in [&src, &dst] {
        fs::set_permissions(d.join("sub"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn filetime(sec: i64, nsec: i64) -> rustix::fs::Timestamps {
    let ts = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

#[test]
fn hostile_trees_are_copied_as_data() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst, outside) = (
        t.path().join("src"),
        t.path().join("dst"),
        t.path().join("out"),
    );
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(src.join("dir")).unwrap();
    // A symlinked "parent": a copy that followed it would write into `outside`.
    symlink(&outside, src.join("escape")).unwrap();
    fs::write(src.join("dir/..."), b"dots").unwrap();
    fs::write(src.join("dir/-rf"), b"dash").unwrap();
    fs::write(src.join("dir/new\nline"), b"nl").unwrap();
    let sum = copy(&src, &dst);
    assert_eq!(sum.files, 3, "{sum:?}");
    assert!(
        fs::symlink_metadata(dst.join("escape"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert_eq!(fs::read(dst.join("dir/new\nline")).unwrap(), b"nl");
    let u = measure(&open_dir(&src)).unwrap();
    assert_eq!(u.entries, 6, "{u:?}");
}

#[test]
fn a_cancelled_copy_fails() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    fs::create_dir(&dst).unwrap();
    let opts = Options::default();
    opts.cancel
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err = copy_tree(&open_dir(&src), &open_dir(&dst), &opts).unwrap_err();
    assert!(err.to_string().contains("nterrupted"), "{err}");
}
