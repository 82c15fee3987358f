//! csi-driver-nfs volumes on a real NFS export (csi-driver-nfs): directories as it made them, its
//! volume handles and volume attributes as its PVs carry them (facts from
//! kubernetes-csi/csi-driver-nfs pkg/nfs/controllerserver.go and nodeserver.go: handle
//! `server#share-without-slash#subDir#uuid#onDelete`, onDelete written only for retain/archive;
//! attributes server/share/subdir/mountPermissions/onDelete/csi.storage.k8s.io/*; archive renames
//! to `archived-<subDir>`; mount options at delete time from the provisioner secret's
//! `mountOptions`). NodePublish mounts `server:share/subdir` and chmods the mount point to its
//! mountPermissions (a bad one is refused); DeleteVolume deletes, archives, retains, and refuses a
//! hostile handle. Its VolumeSnapshot (`<share>/<name>/<pv>.tar.gz`, id
//! `server#share#name#name#pv`) restores through CreateVolume.

use crate::class::pod_target;
use crate::csi::{Csi, DL, connect};
use crate::harness::record_deleted;
use crate::mounts::{RawMount, mounted_at};
use crate::{Env, Report, info};
use nfs_subdir_csi::csi::client::mount_capability;
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use std::collections::HashMap;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use tonic::Code;

pub async fn csi_driver_nfs(env: &Env, rep: &mut Report) {
    let Some(raw) = rep.require("legacy-raw-mount", RawMount::uncached(env, "4.1")) else {
        return;
    };
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let dirs = [
        format!("pvc-del-{tag}"),
        format!("pvc-arch-{tag}"),
        format!("ns-{tag}/pvc-nested"),
        format!("pvc-keep-{tag}"),
    ];
    for d in &dirs {
        let made = std::fs::create_dir_all(raw.path.join(d))
            .and_then(|()| std::fs::write(raw.path.join(d).join("file"), d));
        if rep
            .require(&format!("legacy: its directory {d}"), made)
            .is_none()
        {
            return;
        }
    }
    let csi = connect(&env.socket).await;
    let share = env.share.trim_matches('/');
    let handle =
        |sub: &str, uuid: &str, od: &str| format!("{}#{share}#{sub}#{uuid}#{od}", env.server);
    let opts = env.version_opts("4.1");
    let flags: Vec<String> = opts.split(',').map(str::to_owned).collect();

    // NodePublish exactly as kubelet sends it for one of its PVs. Its directory starts at 0750 so
    // that its mountPermissions 0777 shows: csi-driver-nfs chmods the mount point after mounting.
    let mode_of = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    };
    let _ = std::fs::set_permissions(raw.path.join(&dirs[0]), Permissions::from_mode(0o750));
    let id = handle(&dirs[0], "", "");
    let context: HashMap<String, String> = [
        ("server", env.server.as_str()),
        ("share", env.share.as_str()),
        ("subdir", dirs[0].as_str()),
        ("mountPermissions", "0777"),
        ("onDelete", "delete"),
        ("csi.storage.k8s.io/pv/name", dirs[0].as_str()),
        ("csi.storage.k8s.io/pvc/name", "data"),
        ("csi.storage.k8s.io/pvc/namespace", "default"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let target = pod_target(&dirs[0]);
    let publish = pb::NodePublishVolumeRequest {
        volume_id: id.clone(),
        target_path: target.display().to_string(),
        volume_capability: Some(mount_capability(Mode::MultiNodeMultiWriter, &flags)),
        volume_context: context,
        ..Default::default()
    };
    let published = csi.publish(publish.clone(), DL).await;
    let source = mounted_at(&target).map(|(_, s, _)| s).unwrap_or_default();
    let want = format!(
        "{}:{}/{}",
        env.server,
        env.share.trim_end_matches('/'),
        dirs[0]
    );
    rep.check(
        "legacy: NodePublish of a csi-driver-nfs PV mounts server:share/subdir",
        published.ok() && source == want,
        format!("{}; source {source}", published.describe()),
    );
    let (seen, on_server) = (mode_of(&target), mode_of(&raw.path.join(&dirs[0])));
    rep.check(
        "legacy: mountPermissions 0777 applied to the mount point after mounting",
        seen == 0o777 && on_server == 0o777,
        format!("mount point {seen:04o}, on the export {on_server:04o} (was 0750)"),
    );
    let read = std::fs::read_to_string(target.join("file")).unwrap_or_default();
    rep.check(
        "legacy: its data read through the mount",
        read == dirs[0],
        &read,
    );
    let gone = csi.unpublish(&id, &target, DL).await;
    rep.check("legacy: NodeUnpublish", gone.ok(), gone.describe());
    let mut bad = publish.clone();
    bad.volume_context
        .insert("mountPermissions".into(), "0o777".into());
    let bad_target = pod_target(&format!("{}-bad", dirs[0]));
    bad.target_path = bad_target.display().to_string();
    let r = csi.publish(bad, DL).await;
    let refused = matches!(&r.result, Some(Err(s)) if s.code() == Code::InvalidArgument
        && s.message().contains("mountPermissions"));
    rep.check(
        "legacy: a bad mountPermissions is INVALID_ARGUMENT naming it, nothing mounted",
        refused && mounted_at(&bad_target).is_none(),
        r.describe(),
    );

    // DeleteVolume as csi-provisioner sends it, with the provisioner secret.
    let delete = |id: String| {
        let csi = csi.clone();
        let secrets: HashMap<String, String> = [("mountOptions".to_owned(), opts.clone())].into();
        async move { csi.delete_with_secrets(&id, secrets, DL).await }
    };
    let cases = [
        (
            "empty onDelete (driver default delete)",
            handle(&dirs[0], "", ""),
        ),
        ("archive", handle(&dirs[1], "", "archive")),
        (
            "archive, nested subDir",
            handle(&dirs[2], "pvc-nested", "archive"),
        ),
        ("retain", handle(&dirs[3], &dirs[3], "retain")),
        (
            "missing directory",
            handle(&format!("pvc-none-{tag}"), "", "archive"),
        ),
    ];
    for (what, id) in cases {
        let r = delete(id.clone()).await;
        rep.check(
            &format!("legacy: DeleteVolume {what}"),
            r.ok(),
            format!("{id}: {}", r.describe()),
        );
    }
    let has = |p: &str, content: &str| {
        std::fs::read_to_string(raw.path.join(p).join("file")).is_ok_and(|c| c == content)
    };
    rep.check(
        "legacy: deleted directory gone",
        !raw.path.join(&dirs[0]).exists(),
        &dirs[0],
    );
    rep.check(
        "legacy: archived to archived-<subDir>",
        has(&format!("archived-{}", dirs[1]), &dirs[1]) && !raw.path.join(&dirs[1]).exists(),
        &dirs[1],
    );
    rep.check(
        "legacy: nested archived to archived-<whole subDir>",
        has(&format!("archived-{}", dirs[2]), &dirs[2]) && !raw.path.join(&dirs[2]).exists(),
        &dirs[2],
    );
    rep.check(
        "legacy: retained directory untouched",
        has(&dirs[3], &dirs[3]),
        &dirs[3],
    );
    for hostile in [handle("../escape", "", ""), handle("ok", "", "shred")] {
        let r = delete(hostile.clone()).await;
        let refused = matches!(&r.result, Some(Err(s)) if s.code() == Code::InvalidArgument);
        rep.check(
            "legacy: hostile handle refused with INVALID_ARGUMENT",
            refused,
            format!("{hostile}: {}", r.describe()),
        );
    }
    restore_its_snapshot(env, rep, &csi, &raw.path, tag, &flags).await;
    info(format!(
        "export after: {:?}",
        std::fs::read_dir(&raw.path)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    ));
}

/// Its VolumeSnapshot as its CreateSnapshot leaves it, `<share>/<name>/<pv>.tar.gz` packed with
/// `tar czf` (busybox's here), restored by a CreateVolume naming its snapshot id.
async fn restore_its_snapshot(
    env: &Env,
    rep: &mut Report,
    csi: &Csi,
    export: &std::path::Path,
    tag: &str,
    flags: &[String],
) {
    let (src, snap) = (format!("pvc-snapsrc-{tag}"), format!("snapshot-{tag}"));
    let dir = export.join(&src);
    let archive = export.join(&snap).join(format!("{src}.tar.gz"));
    let made = std::fs::create_dir_all(dir.join("sub"))
        .and_then(|()| std::fs::write(dir.join("sub/data"), &src))
        .and_then(|()| std::fs::create_dir_all(export.join(&snap)))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let out = std::process::Command::new("tar")
                .arg("czf")
                .arg(&archive)
                .arg("-C")
                .arg(&dir)
                .arg(".")
                .output()
                .map_err(|e| e.to_string())?;
            match out.status.success() {
                true => Ok(()),
                false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            }
        });
    if rep
        .require("legacy: its snapshot archive made with tar czf", made)
        .is_none()
    {
        return;
    }
    let id = format!(
        "{}#{}#{snap}#{snap}#{src}",
        env.server,
        env.share.trim_matches('/')
    );
    let name = format!("pvc-restored-{tag}");
    let req = pb::CreateVolumeRequest {
        name: name.clone(),
        parameters: [
            ("server", env.server.as_str()),
            ("share", env.share.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        volume_capabilities: vec![mount_capability(Mode::MultiNodeMultiWriter, flags)],
        volume_content_source: Some(pb::VolumeContentSource {
            r#type: Some(pb::volume_content_source::Type::Snapshot(
                pb::volume_content_source::SnapshotSource {
                    snapshot_id: id.clone(),
                },
            )),
        }),
        ..Default::default()
    };
    let r = csi.create(req, DL).await;
    let describe = r.describe();
    let read = std::fs::read_to_string(export.join(&name).join("sub/data")).unwrap_or_default();
    let restored = r.value();
    rep.check(
        "legacy: CreateVolume from its .tar.gz snapshot restores its files",
        restored.is_ok() && read == src,
        format!("{id}: {describe}; sub/data {read:?}"),
    );
    if let Ok(vol) = restored {
        let _ = csi.delete(&vol.volume_id, DL).await;
        record_deleted(env, &[name]);
    }
    // A VolumeSnapshotContent of its with deletionPolicy Delete going away: the archive and its
    // then empty directory go, as with csi-driver-nfs.
    let d = csi.delete_snapshot(&id, DL).await;
    let left = export.join(&snap).exists();
    rep.check(
        "legacy: DeleteSnapshot of its id removes its archive and directory",
        d.ok() && !left,
        format!("{id}: {}; {snap} left: {left}", d.describe()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(export.join(&snap));
}
