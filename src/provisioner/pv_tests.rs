//! Unit tests of `pv`: claim decisions, quantities, and the PV built from a claim and its class.

use super::*;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

const PROV: &str = "nfs-subdir.csi.rs";

/// A claim as kube-controller-manager leaves it for an external provisioner.
pub fn claim() -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data-0".into()),
            namespace: Some("ns".into()),
            uid: Some("1234-abcd".into()),
            resource_version: Some("42".into()),
            labels: Some([("app".to_owned(), "redis".to_owned())].into()),
            annotations: Some([(STORAGE_PROVISIONER[0].to_owned(), PROV.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            storage_class_name: Some("nfs-client".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), Quantity("100Mi".into()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// A class of this provisioner.
pub fn class(reclaim: Option<&str>) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some("nfs-client".into()),
            ..ObjectMeta::default()
        },
        provisioner: PROV.into(),
        reclaim_policy: reclaim.map(Into::into),
        mount_options: Some(vec!["nfsvers=4.1".into()]),
        ..StorageClass::default()
    }
}

#[test]
fn acts_only_on_unbound_claims_handed_to_it() {
    assert_eq!(claim_step(&claim(), PROV), ClaimStep::Provision);
    let mut beta = claim();
    beta.metadata.annotations = Some([(STORAGE_PROVISIONER[1].to_owned(), PROV.to_owned())].into());
    assert_eq!(claim_step(&beta, PROV), ClaimStep::Provision);
    assert!(matches!(
        claim_step(&claim(), "other.example.com"),
        ClaimStep::Skip(_)
    ));
    let mut bound = claim();
    bound.spec.as_mut().unwrap().volume_name = Some("pvc-1234-abcd".into());
    assert!(matches!(claim_step(&bound, PROV), ClaimStep::Skip(_)));
    let mut deleting = claim();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(matches!(claim_step(&deleting, PROV), ClaimStep::Skip(_)));
    let mut none = claim();
    none.metadata.annotations = None;
    assert!(matches!(claim_step(&none, PROV), ClaimStep::Skip(_)));
}

#[test]
fn checks_what_cannot_be_honoured() {
    assert!(check_claim(&claim(), &class(None), PROV).unwrap());
    assert!(check_claim(&claim(), &class(None), "other").is_err());
    let mut block = claim();
    block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
    assert!(check_claim(&block, &class(None), PROV).is_err());
    let mut wffc = class(None);
    wffc.volume_binding_mode = Some("WaitForFirstConsumer".into());
    assert!(
        !check_claim(&claim(), &wffc, PROV).unwrap(),
        "no node chosen yet"
    );
    let mut chosen = claim();
    chosen
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(SELECTED_NODE.into(), "node-1".into());
    assert!(check_claim(&chosen, &wffc, PROV).unwrap());
}

#[test]
fn names_and_quantities() {
    assert_eq!(pv_name(&claim()).unwrap(), "pvc-1234-abcd");
    let mut no_uid = claim();
    no_uid.metadata.uid = None;
    assert!(pv_name(&no_uid).is_err());
    assert_eq!(requested(&claim()).unwrap().1, 100 << 20);
    for (q, bytes) in [
        ("1Gi", 1 << 30),
        ("1G", 1_000_000_000),
        ("1.5Ki", 1536),
        ("1e3", 1000),
        ("500m", 1),
        ("0", 0),
        ("7", 7),
    ] {
        assert_eq!(parse_quantity(q).unwrap(), bytes, "{q}");
    }
    for bad in ["", "Mi", "1Xi", "-1", "1e", "1.2.3"] {
        assert!(parse_quantity(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn metadata_carries_labels_and_annotations() {
    let m = metadata_of(&claim(), "pvc-1234-abcd");
    assert_eq!(m.pvc_name.as_deref(), Some("data-0"));
    assert_eq!(m.pvc_namespace.as_deref(), Some("ns"));
    assert_eq!(m.pv_name.as_deref(), Some("pvc-1234-abcd"));
    assert_eq!(m.labels.get("app").map(String::as_str), Some("redis"));
    assert!(m.annotations.contains_key(STORAGE_PROVISIONER[0]));
}

fn id(server: Option<&str>, share: &str, sub: &str) -> VolumeContext {
    VolumeContext {
        share: ShareSpec::new(server, share, vec![]).unwrap(),
        sub_dir: Some(SubDir::parse(sub).unwrap()),
        mount_permissions: None,
    }
}

#[test]
fn nfs_locations_map_the_default_share_to_its_export() {
    let export = NfsExport {
        server: "10.0.0.5".into(),
        path: "/exports/".into(),
        local: "/persistentvolumes".into(),
    };
    assert_eq!(
        nfs_location(&id(Some("nfs.local"), "/srv", "pvc-1"), None).unwrap(),
        ("nfs.local".to_owned(), "/srv/pvc-1".to_owned())
    );
    assert_eq!(
        nfs_location(&id(None, "/persistentvolumes", "ns/pvc-1"), Some(&export)).unwrap(),
        ("10.0.0.5".to_owned(), "/exports/ns/pvc-1".to_owned())
    );
    assert!(nfs_location(&id(None, "/elsewhere", "pvc-1"), Some(&export)).is_err());
    assert!(nfs_location(&id(None, "/persistentvolumes", "pvc-1"), None).is_err());
    // and back, for PVs made by nfs-subdir-external-provisioner
    let (share, sub) = sub_dir_below(&export, "10.0.0.5", "/exports/ns-data-pvc-1").unwrap();
    assert_eq!(
        (share.path.as_str(), sub.as_str()),
        ("/persistentvolumes", "ns-data-pvc-1")
    );
    assert!(sub_dir_below(&export, "10.0.0.6", "/exports/x").is_none());
    assert!(
        sub_dir_below(&export, "10.0.0.5", "/exports").is_none(),
        "the root itself"
    );
    assert!(sub_dir_below(&export, "10.0.0.5", "/exportsX/y").is_none());
    assert!(sub_dir_below(&export, "10.0.0.5", "/exports/../etc").is_none());
}

fn new_pv(source: PvSource) -> NewPv {
    NewPv {
        name: "pvc-1234-abcd".into(),
        provisioner: PROV.into(),
        volume_id: "nsc1##/srv#pvc-1234-abcd#delete#".into(),
        source,
        share_mount_options: vec!["nfsvers=4.1".into(), "hard".into()],
    }
}

#[test]
fn builds_a_pre_bound_csi_pv() {
    let attributes = BTreeMap::from([("share".to_owned(), "/srv".to_owned())]);
    let source = PvSource::Csi {
        driver: PROV.into(),
        attributes: attributes.clone(),
    };
    let pv = build_pv(
        &claim(),
        &class(None),
        Quantity("100Mi".into()),
        new_pv(source),
    );
    let meta = &pv.metadata;
    assert_eq!(meta.name.as_deref(), Some("pvc-1234-abcd"));
    let ann = meta.annotations.as_ref().unwrap();
    assert_eq!(ann[PROVISIONED_BY], PROV);
    assert_eq!(ann[VOLUME_ID], "nsc1##/srv#pvc-1234-abcd#delete#");
    assert_eq!(
        meta.finalizers.as_deref(),
        Some(&[FINALIZER.to_owned()][..])
    );
    let spec = pv.spec.unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("nfs-client"));
    assert_eq!(spec.access_modes.unwrap(), vec!["ReadWriteMany"]);
    assert_eq!(spec.capacity.unwrap()["storage"], Quantity("100Mi".into()));
    assert_eq!(
        spec.mount_options.unwrap(),
        vec!["nfsvers=4.1", "hard"],
        "merged, no repeats"
    );
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    let claim_ref = spec.claim_ref.unwrap();
    assert_eq!(
        (
            claim_ref.namespace.as_deref(),
            claim_ref.name.as_deref(),
            claim_ref.uid.as_deref()
        ),
        (Some("ns"), Some("data-0"), Some("1234-abcd"))
    );
    let csi = spec.csi.unwrap();
    assert_eq!(
        (csi.driver.as_str(), csi.volume_handle.as_str()),
        (PROV, "nsc1##/srv#pvc-1234-abcd#delete#")
    );
    assert_eq!(csi.volume_attributes.unwrap(), attributes);
    assert!(spec.nfs.is_none());
}

#[test]
fn builds_an_nfs_pv_and_honours_retain() {
    let source = PvSource::Nfs {
        server: "10.0.0.5".into(),
        path: "/exports/pvc-1234-abcd".into(),
    };
    let pv = build_pv(
        &claim(),
        &class(Some("Retain")),
        Quantity("1Gi".into()),
        new_pv(source),
    );
    assert_eq!(
        pv.metadata.finalizers, None,
        "Retain: no directory to clean up"
    );
    let spec = pv.spec.unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    let nfs = spec.nfs.unwrap();
    assert_eq!(
        (nfs.server.as_str(), nfs.path.as_str()),
        ("10.0.0.5", "/exports/pvc-1234-abcd")
    );
    assert!(spec.csi.is_none());
}
