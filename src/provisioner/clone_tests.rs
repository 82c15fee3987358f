//! Unit tests of the provisioner's data-source rules: what is cloned, what is refused and why.

use super::*;
use serde_json::json;

fn claim(data_source: serde_json::Value, request: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "copy", "namespace": "apps", "uid": "u-2"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "nfs",
            "resources": {"requests": {"storage": request}},
            "dataSource": data_source,
        },
        "status": {"phase": "Pending"},
    }))
    .unwrap()
}

fn bound(request: &str, phase: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "data", "namespace": "apps", "uid": "u-1"},
        "spec": {
            "storageClassName": "nfs",
            "resources": {"requests": {"storage": request}},
            "volumeName": "pvc-u-1",
        },
        "status": {"phase": phase},
    }))
    .unwrap()
}

fn volume(by: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": "pvc-u-1", "annotations": {
            PROVISIONED_BY: by,
            VOLUME_ID: "nsc1##/srv#pvc-u-1#delete#",
        }},
    }))
    .unwrap()
}

#[test]
fn claims_without_or_with_a_claim_source() {
    let mut plain = claim(json!(null), "1Gi");
    plain.spec.as_mut().unwrap().data_source = None;
    assert_eq!(wanted(&plain).unwrap(), Wanted::Empty);
    let c = claim(
        json!({"kind": "PersistentVolumeClaim", "name": "data"}),
        "1Gi",
    );
    assert_eq!(wanted(&c).unwrap(), Wanted::Claim("data".into()));
    // dataSourceRef wins; the same namespace named explicitly is fine, another is refused.
    let mut r = c.clone();
    r.spec.as_mut().unwrap().data_source_ref = Some(
        serde_json::from_value(json!({"kind": "PersistentVolumeClaim", "name": "other",
            "namespace": "apps"}))
        .unwrap(),
    );
    assert_eq!(wanted(&r).unwrap(), Wanted::Claim("other".into()));
    r.spec.as_mut().unwrap().data_source_ref = Some(
        serde_json::from_value(json!({"kind": "PersistentVolumeClaim", "name": "other",
            "namespace": "prod"}))
        .unwrap(),
    );
    let e = wanted(&r).unwrap_err();
    assert!(e.to_string().contains("another namespace"), "{e}");
}

#[test]
fn snapshots_and_other_kinds_are_refused_clearly() {
    let snap = claim(
        json!({"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "s1"}),
        "1Gi",
    );
    let e = wanted(&snap).unwrap_err();
    assert!(matches!(e, Error::FailedPrecondition(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("does not restore snapshots") && text.contains("csi-snapshotter"),
        "{text}"
    );
    let other = claim(
        json!({"kind": "Populator", "apiGroup": "example.com", "name": "p"}),
        "1Gi",
    );
    let e = wanted(&other).unwrap_err().to_string();
    assert!(
        e.contains("Populator.example.com p is not supported"),
        "{e}"
    );
}

#[test]
fn a_bound_source_of_this_provisioner_gives_its_volume_id() {
    let id = source_volume(
        "data",
        Some(&bound("1Gi", "Bound")),
        Some(&volume("nfs-subdir")),
        2 << 30,
        "nfs-subdir",
    )
    .unwrap();
    assert_eq!(id, "nsc1##/srv#pvc-u-1#delete#");
    // Equal sizes are fine.
    let same = source_volume(
        "data",
        Some(&bound("1Gi", "Bound")),
        Some(&volume("nfs-subdir")),
        1 << 30,
        "nfs-subdir",
    );
    assert!(same.is_ok(), "{same:?}");
}

#[test]
fn missing_unbound_foreign_and_smaller_are_refused() {
    let p = "nfs-subdir";
    let src = bound("1Gi", "Bound");
    let pv = volume(p);
    let cases: [(Result<String>, &str); 5] = [
        (
            source_volume("data", None, None, 1 << 30, p),
            "does not exist",
        ),
        (
            source_volume("data", Some(&bound("1Gi", "Pending")), None, 1 << 30, p),
            "not Bound",
        ),
        (
            source_volume("data", Some(&src), None, 1 << 30, p),
            "PV pvc-u-1, which does not exist",
        ),
        (
            source_volume("data", Some(&src), Some(&volume("other.io/x")), 1 << 30, p),
            "provisioned by other.io/x",
        ),
        (
            source_volume("data", Some(&src), Some(&pv), 512 << 20, p),
            "at least as large",
        ),
    ];
    for (got, want) in cases {
        let e = got.unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want:?})");
    }
}
