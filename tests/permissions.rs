//! `mountPermissions` (csi-driver-nfs's parameter and volume attribute) over a real Unix socket on
//! a real local share: CreateVolume makes the directory with that mode and hands a non-zero mode to
//! nodes in the volume context; NodePublish (real bind mounts, needs root) gives the mount point
//! that mode after mounting, leaves it alone for `0`, absent or read-only; bad values are
//! INVALID_ARGUMENT naming the parameter and touch nothing.

mod common;

use common::{Driver, cap, create, create_req, ls};
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use nfs_subdir_csi::mount::mountinfo;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tonic::Code;

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mounted(path: &Path) -> bool {
    mountinfo::at(&mountinfo::read().unwrap(), path).is_some()
}

#[tokio::test]
async fn create_makes_the_directory_with_mount_permissions() {
    // The driver's default (--mount-permissions) is 0777; 0 means a plain directory (0755).
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    for (name, given, dir_mode, in_context) in [
        ("pvc-0750", Some("0750"), 0o750, Some("0750")),
        ("pvc-2775", Some("2775"), 0o2775, Some("2775")),
        ("pvc-777", Some("777"), 0o777, Some("0777")),
        ("pvc-zero", Some("0"), 0o755, None),
        ("pvc-empty", Some(""), 0o777, None),
        ("pvc-none", None, 0o777, None),
    ] {
        let params: Vec<(&str, &str)> =
            given.map(|g| ("mountPermissions", g)).into_iter().collect();
        let vol = create(&mut c, name, 0, &params).await;
        assert_eq!(mode_of(&d.share().join(name)), dir_mode, "{name}");
        assert_eq!(
            vol.volume_context
                .get("mountPermissions")
                .map(String::as_str),
            in_context,
            "{name}: {:?}",
            vol.volume_context
        );
    }
    let before = ls(&d.share());
    for bad in ["rwx", "0o777", "8", "0778", "10000", "-1", "+777", "0x1ff"] {
        let err = c
            .create_volume(create_req("pvc-bad", 0, &[("mountPermissions", bad)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
        assert!(
            err.message().contains("mountPermissions"),
            "{bad:?}: {}",
            err.message()
        );
    }
    assert_eq!(
        ls(&d.share()),
        before,
        "a refused mode left something behind"
    );

    let d = Driver::start(&["--mount-permissions=0770"]).await;
    let mut c = d.controller();
    let vol = create(&mut c, "pvc-flag", 0, &[]).await;
    assert_eq!(mode_of(&d.share().join("pvc-flag")), 0o770);
    assert!(!vol.volume_context.contains_key("mountPermissions"));
}

fn publish(
    id: &str,
    target: &Path,
    context: &[(&str, &str)],
    readonly: bool,
) -> pb::NodePublishVolumeRequest {
    pb::NodePublishVolumeRequest {
        volume_id: id.to_owned(),
        target_path: target.display().to_string(),
        volume_capability: Some(cap(Mode::MultiNodeMultiWriter)),
        readonly,
        volume_context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

fn unpublish(id: &str, target: &Path) -> pb::NodeUnpublishVolumeRequest {
    pb::NodeUnpublishVolumeRequest {
        volume_id: id.to_owned(),
        target_path: target.display().to_string(),
    }
}

#[tokio::test]
async fn publish_gives_the_mount_point_its_mount_permissions() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes real bind mounts and must run as root (CI does)"
    );
    let d = Driver::start(&[]).await;
    let (mut c, mut n) = (d.controller(), d.node());
    let pods = d.dir.path().join("pods");
    std::fs::create_dir(&pods).unwrap();

    // A volume made with mountPermissions: its context carries the mode, and a publish restores
    // it after a pod changed it (as csi-driver-nfs's node does).
    let vol = create(&mut c, "pvc-made", 0, &[("mountPermissions", "0770")]).await;
    let dir = d.share().join("pvc-made");
    chmod(&dir, 0o700);
    let ctx: Vec<(&str, &str)> = vol
        .volume_context
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let t = pods.join("made");
    n.node_publish_volume(publish(&vol.volume_id, &t, &ctx, false))
        .await
        .unwrap();
    assert!(mounted(&t));
    assert_eq!((mode_of(&t), mode_of(&dir)), (0o770, 0o770));
    n.node_unpublish_volume(unpublish(&vol.volume_id, &t))
        .await
        .unwrap();

    // A csi-driver-nfs-shaped static context on this local share: its attribute keys as its PVs
    // carry them (subdir lower-case, mountPermissions, onDelete, csi.storage.k8s.io/*).
    let share = d.share().display().to_string();
    let legacy = d.share().join("legacy");
    std::fs::create_dir(&legacy).unwrap();
    let its = |perm: &'static str| {
        vec![
            ("share", share.as_str()),
            ("subdir", "legacy"),
            ("mountPermissions", perm),
            ("onDelete", "delete"),
            ("csi.storage.k8s.io/pv/name", "legacy"),
        ]
    };
    let id = "legacy-volume";
    for (perm, readonly, want) in [
        ("0", false, 0o700),
        ("", false, 0o700),
        ("0777", true, 0o700),
        ("0777", false, 0o777),
        ("2750", false, 0o2750),
    ] {
        chmod(&legacy, 0o700);
        let t = pods.join("legacy");
        n.node_publish_volume(publish(id, &t, &its(perm), readonly))
            .await
            .unwrap_or_else(|e| panic!("{perm:?} ro={readonly}: {e:?}"));
        assert!(mounted(&t));
        assert_eq!(mode_of(&legacy), want, "{perm:?} read-only={readonly}");
        // Already mounted: publishing again is fine and does not chmod again.
        chmod(&legacy, 0o711);
        n.node_publish_volume(publish(id, &t, &its(perm), readonly))
            .await
            .unwrap();
        assert_eq!(mode_of(&legacy), 0o711);
        n.node_unpublish_volume(unpublish(id, &t)).await.unwrap();
    }

    // A bad mode is refused before anything is made or mounted.
    chmod(&legacy, 0o700);
    for bad in ["rwx", "10000", "0o777"] {
        let t = pods.join("bad");
        let err = n
            .node_publish_volume(publish(id, &t, &its(bad), false))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
        assert!(
            err.message().contains("mountPermissions"),
            "{}",
            err.message()
        );
        assert!(!t.exists() && !mounted(&t), "{bad:?} left a target");
        assert_eq!(mode_of(&legacy), 0o700);
    }
}
