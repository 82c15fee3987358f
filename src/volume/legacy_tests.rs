//! The anchors' formats as their sources write them (kubernetes-csi/csi-driver-nfs
//! pkg/nfs/controllerserver.go: getVolumeIDFromNfsVol / getNfsVolFromID, DeleteVolume;
//! kubernetes-sigs/nfs-subdir-external-provisioner cmd/nfs-subdir-external-provisioner/
//! provisioner.go: Delete), read into this driver's terms.

use super::*;

fn handle(raw: &str) -> CsiDriverNfsHandle {
    CsiDriverNfsHandle::parse(raw).unwrap().unwrap()
}

#[test]
fn reads_every_csi_driver_nfs_handle_shape() {
    // Default subDir (the PV name), no onDelete written (delete is never written): 5 fields.
    let h = handle("nfs-server.default.svc.cluster.local#share#pvc-4bcb##");
    assert_eq!(
        h.share.server.as_deref(),
        Some("nfs-server.default.svc.cluster.local")
    );
    assert_eq!(
        h.share.path, "/share",
        "the share is written without its leading '/'"
    );
    assert_eq!((h.sub_dir.as_str(), h.on_delete), ("pvc-4bcb", None));
    // A subDir template: uuid = PV name, onDelete retain/archive written (any case).
    let h = handle("10.0.0.5#exports/k8s#ns/data-0#pvc-1#Archive");
    assert_eq!(h.share.path, "/exports/k8s");
    assert_eq!(h.sub_dir.as_str(), "ns/data-0");
    assert_eq!(h.on_delete, Some(OnDelete::Archive));
    // Older releases: four or three fields; share "/" written empty.
    assert_eq!(handle("srv##pvc-2#").share.path, "/");
    assert_eq!(handle("srv#share#pvc-3").sub_dir.as_str(), "pvc-3");
    // The oldest form, '/'-separated.
    let h = handle("nfs-server.default.svc.cluster.local/share/pvc-4");
    assert_eq!(
        (h.share.path.as_str(), h.sub_dir.as_str()),
        ("/share", "pvc-4")
    );
    assert_eq!(handle("srv/a/b/pvc-5").share.path, "/a/b");
    // IPv6 servers in brackets.
    assert!(handle("[fd00::1]#export#pvc-6##").share.is_nfs());
}

#[test]
fn ours_and_theirs_are_never_confused() {
    for ours in [
        "nsc1#nfs.example.com#/exports#pvc-1#delete#nfsvers=4.1",
        "nsc1##/srv/share#pvc-1#retain#",
    ] {
        assert_eq!(CsiDriverNfsHandle::parse(ours).unwrap(), None, "{ours}");
        let d = Disposal::parse(ours, OnDelete::Retain, SecretOptions::default()).unwrap();
        assert_eq!(d.archive, ArchiveNaming::Sibling);
    }
    // A csi-driver-nfs server that happens to be called nsc1 stays theirs.
    let d = Disposal::parse(
        "nsc1#share#pvc-1##",
        OnDelete::Delete,
        SecretOptions::default(),
    )
    .unwrap();
    assert_eq!(d.archive, ArchiveNaming::WholePath);
    assert_eq!(d.id.share.server.as_deref(), Some("nsc1"));
    for foreign in ["garbage", "a#b", "fake-vol-id", "a/b", "#share#pvc##"] {
        assert_eq!(
            CsiDriverNfsHandle::parse(foreign).unwrap(),
            None,
            "{foreign}"
        );
        assert!(matches!(
            Disposal::parse(foreign, OnDelete::Delete, SecretOptions::default()),
            Err(Error::NotFound(_))
        ));
    }
}

#[test]
fn hostile_handles_are_invalid_arguments() {
    for bad in [
        "srv#share#..##",
        "srv#share#../etc##",
        "srv#share#a/../../b##",
        "srv#../../etc#pvc##",
        "srv#share#.nfs-subdir-csi##",
        "srv#share#pvc#uuid#shred",
        "evil,host#share#pvc##",
        "srv#share#a\0b##",
        "srv/../../etc/passwd",
        "srv#share###",
    ] {
        let err = CsiDriverNfsHandle::parse(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
        assert!(matches!(
            VolumeId::parse(bad),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn empty_on_delete_takes_the_driver_default_and_secret_options_reach_the_share() {
    let opts = || SecretOptions::parse(["nfsvers=4.1"], &[]).unwrap();
    let d = Disposal::parse("srv#share#pvc-1##", OnDelete::Retain, opts()).unwrap();
    assert_eq!(d.id.on_delete, OnDelete::Retain);
    assert_eq!(d.id.share.all_mount_options(), ["nfsvers=4.1"]);
    assert!(
        d.id.share.mount_options.is_empty(),
        "never printed into an id"
    );
    let d = Disposal::parse(
        "srv#share#pvc-1#pvc-1#archive",
        OnDelete::Retain,
        SecretOptions::default(),
    )
    .unwrap();
    assert_eq!(d.id.on_delete, OnDelete::Archive);
    // Our ids keep their own options; the secret's come after them.
    let ours = "nsc1#srv#/share#pvc-1#delete#hard";
    let d = Disposal::parse(ours, OnDelete::Retain, opts()).unwrap();
    assert_eq!(d.id.share.mount_options, ["hard"]);
    assert_eq!(d.id.share.all_mount_options(), ["hard", "nfsvers=4.1"]);
}

#[test]
fn nfs_subdir_policy_is_its_delete_function() {
    let class = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let policy = |pairs: &[(&str, &str)]| nfs_subdir_policy(Some(&class(pairs))).unwrap();
    assert_eq!(policy(&[]), OnDelete::Archive, "neither set: archive");
    assert_eq!(policy(&[("onDelete", "delete")]), OnDelete::Delete);
    assert_eq!(policy(&[("onDelete", "retain")]), OnDelete::Retain);
    assert_eq!(
        policy(&[("onDelete", "retain"), ("archiveOnDelete", "false")]),
        OnDelete::Retain,
        "onDelete first"
    );
    assert_eq!(policy(&[("archiveOnDelete", "false")]), OnDelete::Delete);
    assert_eq!(policy(&[("archiveOnDelete", "F")]), OnDelete::Delete);
    assert_eq!(policy(&[("archiveOnDelete", "true")]), OnDelete::Archive);
    // Its switch is exact: other spellings fall through to archiveOnDelete.
    assert_eq!(policy(&[("onDelete", "Delete")]), OnDelete::Archive);
    assert!(nfs_subdir_policy(Some(&class(&[("archiveOnDelete", "yes")]))).is_err());
    let gone: Option<&std::collections::BTreeMap<String, String>> = None;
    assert_eq!(nfs_subdir_policy(gone).unwrap(), OnDelete::Archive);
}

#[test]
fn its_own_parameters_keep_its_naming() {
    let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for taking_over in [false, true] {
        assert!(speaks_nfs_subdir(&keys(&["archiveOnDelete"]), taking_over));
        assert!(speaks_nfs_subdir(
            &keys(&["pathPattern", "onDelete"]),
            taking_over
        ));
        assert!(!speaks_nfs_subdir(
            &keys(&["archiveOnDelete", "subDir"]),
            taking_over
        ));
        assert!(!speaks_nfs_subdir(&keys(&["server", "share"]), taking_over));
        assert!(
            !speaks_nfs_subdir(&keys(&["onDelete"]), taking_over),
            "ours too"
        );
    }
    // No parameters: its class only when running under its name.
    assert!(speaks_nfs_subdir(&keys(&[]), true));
    assert!(!speaks_nfs_subdir(&keys(&[]), false));
}
