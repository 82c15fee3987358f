//! Properties of StorageClass parameters and of subDir / pathPattern templates: hostile maps and
//! templates never panic, and whatever they resolve to stays inside the share.

use crate::strategies::{hostile, path_like, text};
use crate::{assert_inside, check};
use nfs_subdir_csi::volume::params::Defaults;
use nfs_subdir_csi::volume::template::{Metadata, Template};
use nfs_subdir_csi::volume::{OnDelete, Params, check_mount_option};
use proptest::prelude::*;
use proptest::sample::select;

const KEYS: &[&str] = &[
    "server",
    "SHARE",
    "share",
    "subDir",
    "pathPattern",
    "onDelete",
    "archiveOnDelete",
    "volumeSource",
    "mountPermissions",
    "mountOptions",
    "csi.storage.k8s.io/pvc/name",
    "csi.storage.k8s.io/pvc/namespace",
    "csi.storage.k8s.io/pv/name",
    "csi.storage.k8s.io/provisioner-secret-name",
    "color",
];

/// Template-shaped text: variables of both syntaxes, path pieces and hostile text.
fn template_like() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        select(vec![
            "${pvc.metadata.name}",
            "${pvc.metadata.namespace}",
            "${pv.metadata.name}",
            "${pvc.metadata.labels.app}",
            "${pvc.metadata.annotations.a/b}",
            "${pvc.metadata.labels.}",
            "${.PVC.name}",
            "${.PVC.namespace}",
            "${ .PVC.labels.app }",
            "${.PVC.annotations.path}",
            "${",
            "}",
            "/",
            "..",
            ".",
            ".nfs-subdir-csi",
        ])
        .prop_map(str::to_owned),
        hostile(6),
    ];
    prop_oneof![
        4 => proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        1 => text(40),
    ]
    .boxed()
}

/// Claim metadata whose values are hostile (slashes, dots, NUL, control characters).
fn metadata() -> impl Strategy<Value = Metadata> {
    let value = || proptest::option::of(prop_oneof![path_like(), hostile(10)]);
    (value(), value(), value(), value(), value()).prop_map(|(name, ns, pv, app, path)| {
        let mut m = Metadata {
            pvc_name: name,
            pvc_namespace: ns,
            pv_name: pv,
            ..Metadata::default()
        };
        if let Some(app) = app {
            m.labels.insert("app".into(), app);
        }
        if let Some(path) = path {
            m.annotations.insert("a/b".into(), path.clone());
            m.annotations.insert("path".into(), path);
        }
        m
    })
}

#[test]
fn templates_never_panic_and_expand_inside_the_share() {
    check(
        "template_expand",
        (template_like(), any::<bool>(), metadata()),
        |(raw, path_pattern, meta)| {
            let parsed = if path_pattern {
                Template::parse_path_pattern(&raw)
            } else {
                Template::parse(&raw)
            };
            if let Ok(t) = parsed {
                if let Ok(Some(sub)) = t.expand(&meta) {
                    assert_inside(&sub)?;
                }
            }
            Ok(())
        },
    );
}

fn defaults() -> Defaults {
    Defaults {
        share: Some("/srv/default".into()),
        on_delete: OnDelete::Delete,
        mount_permissions: 0o777,
    }
}

#[test]
fn parameters_never_panic_and_resolve_inside_the_share() {
    let value = prop_oneof![
        3 => hostile(12),
        2 => path_like(),
        1 => template_like(),
        1 => select(vec!["0750", "archive", "true", "nfs", "hard,nfsvers=4.1"]).prop_map(str::to_owned),
    ];
    let pairs = proptest::collection::vec((select(KEYS), value), 0..6);
    let name = prop_oneof![Just("pvc-1".to_owned()), path_like()];
    let flags = proptest::collection::vec(hostile(8), 0..3);
    check(
        "params_resolve",
        (pairs, name, flags),
        |(pairs, name, flags)| {
            let Ok(params) = Params::parse(pairs.iter().cloned()) else {
                return Ok(());
            };
            if let Ok(c) = params.resolve(&name, &flags, &defaults()) {
                assert_inside(&c.sub_dir)?;
                let path = c.share.path.as_str();
                prop_assert!(path.starts_with('/') && !path.contains("/../"), "{path:?}");
                prop_assert!(c.mode <= 0o7777);
                for o in &c.share.mount_options {
                    prop_assert!(check_mount_option(o).is_ok(), "{o:?}");
                }
                let id = nfs_subdir_csi::volume::VolumeId {
                    share: c.share.clone(),
                    sub_dir: c.sub_dir.clone(),
                    on_delete: c.on_delete,
                };
                if let Ok(text) = id.to_printed() {
                    prop_assert_eq!(
                        nfs_subdir_csi::volume::VolumeId::parse(&text).ok(),
                        Some(id)
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn arbitrary_keys_and_values_never_panic() {
    let pairs = proptest::collection::vec((text(24), text(24)), 0..5);
    check("params_parse_arbitrary", pairs, |pairs| {
        if let Ok(p) = Params::parse(pairs) {
            let _ = p.resolve("pvc-1", &[], &defaults());
        }
        Ok(())
    });
}
