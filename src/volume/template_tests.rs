//! subDir and pathPattern templates: variables, fallbacks, and values that must not climb out.

use super::*;

fn meta() -> Metadata {
    Metadata {
        pvc_name: Some("data-redis-0".into()),
        pvc_namespace: Some("prod".into()),
        pv_name: Some("pvc-123".into()),
        labels: [("app".into(), "redis".into())].into(),
        annotations: [("nfs.io/storage-path".into(), "data/one".into())].into(),
    }
}

fn expand(t: &Template, m: &Metadata) -> Option<String> {
    t.expand(m).unwrap().map(|d| d.as_str().to_owned())
}

#[test]
fn expands_labels_and_annotations() {
    let t = Template::parse("${pvc.metadata.labels.app}/${pvc.metadata.name}").unwrap();
    assert_eq!(expand(&t, &meta()).as_deref(), Some("redis/data-redis-0"));
    // In subDir a value is one plain component; a missing one is an error.
    let a = Template::parse("${pvc.metadata.annotations.nfs.io/storage-path}").unwrap();
    assert!(a.expand(&meta()).is_err(), "value with '/' accepted");
    let l = Template::parse("${pvc.metadata.labels.missing}").unwrap();
    assert!(l.expand(&meta()).is_err(), "missing label accepted");
    for bad in ["${pvc.metadata.labels.}", "${pvc.metadata.annotations.}"] {
        assert!(Template::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn path_pattern_reads_like_nfs_subdir_external_provisioner() {
    let p = |raw: &str| Template::parse_path_pattern(raw).unwrap();
    let m = meta();
    assert_eq!(
        expand(&p("${.PVC.namespace}-${.PVC.name}"), &m).as_deref(),
        Some("prod-data-redis-0")
    );
    assert_eq!(
        expand(
            &p("${.PVC.namespace}/${.PVC.annotations.nfs.io/storage-path}"),
            &m
        )
        .as_deref(),
        Some("prod/data/one"),
        "annotation values may hold '/'"
    );
    // A missing value is empty and empty components vanish, as with Go's filepath.Join.
    assert_eq!(
        expand(&p("/${.PVC.labels.tier}/${.PVC.labels.app}/"), &m).as_deref(),
        Some("redis")
    );
    assert_eq!(
        expand(&p("${.PVC.labels.tier}"), &m),
        None,
        "empty: default dir"
    );
    assert_eq!(
        expand(&p("static"), &Metadata::default()).as_deref(),
        Some("static")
    );
    for bad in [
        "${.PV.name}",
        "${pvc.metadata.name}",
        "${.PVC.labels.}",
        "${.PVC.name",
        "../x",
    ] {
        assert!(Template::parse_path_pattern(bad).is_err(), "{bad:?}");
    }
    // Values still cannot climb out of the share or into the driver's state.
    for hostile in ["..", "a/../../b", ".nfs-subdir-csi"] {
        let m = Metadata {
            labels: [("app".into(), hostile.into())].into(),
            ..meta()
        };
        assert!(
            p("${.PVC.labels.app}").expand(&m).is_err(),
            "{hostile:?} accepted"
        );
    }
}

#[test]
fn expands_known_variables() {
    let t = Template::parse("${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}")
        .unwrap();
    assert_eq!(
        t.expand(&meta()).unwrap().unwrap().as_str(),
        "prod/data-redis-0-pvc-123"
    );
    assert_eq!(
        Template::parse("fixed/dir")
            .unwrap()
            .expand(&Metadata::default())
            .unwrap()
            .unwrap()
            .as_str(),
        "fixed/dir"
    );
}

#[test]
fn refuses_bad_templates_and_values() {
    for bad in [
        "${pvc.metadata.labels}",
        "${pvc.metadata.name",
        "../x",
        "/abs",
        "a//b",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad:?}");
    }
    let t = Template::parse("${pvc.metadata.name}").unwrap();
    assert!(
        t.expand(&Metadata::default()).is_err(),
        "missing value accepted"
    );
    for hostile in ["..", "a/b", ".", "x\0"] {
        let m = Metadata {
            pvc_name: Some(hostile.into()),
            ..meta()
        };
        assert!(t.expand(&m).is_err(), "{hostile:?} accepted");
    }
    // Text around variables cannot climb out either.
    let climb = Template::parse("../${pvc.metadata.name}").unwrap();
    assert!(climb.expand(&meta()).is_err());
}

#[test]
fn fallbacks_fill_missing_or_empty_values_and_are_checked_too() {
    let t = Template::parse("${pvc.metadata.labels.tier:-standard}/${pvc.metadata.name}").unwrap();
    assert!(t.needs_claim());
    assert!(
        !Template::parse("${pvc.metadata.name:-x}")
            .unwrap()
            .needs_claim()
    );
    assert_eq!(
        expand(&t, &meta()).as_deref(),
        Some("standard/data-redis-0")
    );
    let mut m = meta();
    m.labels.insert("tier".into(), "gold".into());
    assert_eq!(expand(&t, &m).as_deref(), Some("gold/data-redis-0"));
    m.labels.insert("tier".into(), String::new());
    assert_eq!(
        expand(&t, &m).as_deref(),
        Some("standard/data-redis-0"),
        "empty = missing"
    );
    // The label's own value still passes the safe-path check; a fallback does not hide it.
    m.labels.insert("tier".into(), "..".into());
    assert!(t.expand(&m).is_err());
    // A fallback that is not a plain name is refused when the class is read.
    for bad in [
        "${pvc.metadata.labels.a:-..}",
        "${pvc.metadata.labels.a:-x/y}",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad:?}");
    }
    // pathPattern takes them too (nfs-subdir-external-provisioner #234).
    let p = Template::parse_path_pattern("${.PVC.labels.team:-shared}/${.PVC.name}").unwrap();
    assert_eq!(expand(&p, &meta()).as_deref(), Some("shared/data-redis-0"));
    // Without a fallback a missing label is a clear error naming the fix.
    let err = Template::parse("${pvc.metadata.labels.tier}")
        .unwrap()
        .expand(&meta())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pvc.metadata.labels.tier") && err.contains(":-"),
        "{err}"
    );
}
