//! Snapshot operations of the crash-under-load test (tests/crash_load.rs) and their checks: a
//! snapshot cut from a volume whose files the test wrote, a restore or clone whose files must be
//! what the source held, a delete, and, after the last restart, the check that every acknowledged
//! snapshot is listed and restores and nothing else is left in the snapshot area.

use super::create_req;
use super::load::{Counts, Tree, read_tree, settle};
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, volume_content_source::Type,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const MIB: i64 = 1 << 20;

/// A volume a client made and has not deleted.
pub struct Vol {
    pub id: String,
    pub capacity: i64,
    /// Where it is published, if it is.
    pub target: Option<PathBuf>,
    /// What its directory on the share holds (written by the test, or restored).
    pub tree: Tree,
}

/// A snapshot a client was told is ready and has not deleted.
#[derive(Clone)]
pub struct Snap {
    pub id: String,
    pub name: String,
    /// What the source volume held when the snapshot was cut.
    pub tree: Tree,
}

/// What every operation needs: the controller, the share, and the shared counters.
#[derive(Clone)]
pub struct Ctx {
    pub c: ControllerClient<Channel>,
    pub share: PathBuf,
    pub retries: Counts,
    /// Acknowledged operations by kind.
    pub acked: Counts,
}

/// Writes a marker (and a note, so trees grow with nesting) into the volume `vol_name`'s
/// directory on the share, then cuts the snapshot `name` in `format`, calling again until it is
/// ready as the snapshotter does.
pub async fn snapshot(ctx: &Ctx, vol_name: &str, vol: &mut Vol, name: &str, format: &str) -> Snap {
    let dir = ctx.share.join(vol_name);
    std::fs::write(dir.join("marker"), name).unwrap();
    std::fs::create_dir_all(dir.join("notes")).unwrap();
    std::fs::write(
        dir.join("notes").join(name),
        format!("{name} of {vol_name}"),
    )
    .unwrap();
    vol.tree = read_tree(&dir);
    let req = pb::CreateSnapshotRequest {
        name: name.into(),
        source_volume_id: vol.id.clone(),
        parameters: [("format".to_string(), format.to_string())].into(),
        ..Default::default()
    };
    let started = Instant::now();
    let snapshot = loop {
        let got = settle("create snapshot", &ctx.retries, || {
            crate::call!(ctx.c, create_snapshot, req)
        })
        .await;
        let s = got.snapshot.expect("snapshot");
        if s.ready_to_use {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{name} never became ready"
        );
        ctx.retries.add("not ready yet");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(snapshot.source_volume_id, vol.id, "{name}: source");
    ctx.acked.add(format!("snapshot ({format})"));
    Snap {
        id: snapshot.snapshot_id,
        name: name.into(),
        tree: vol.tree.clone(),
    }
}

/// DeleteSnapshot until acknowledged.
pub async fn delete_snapshot(ctx: &Ctx, snap: Snap) {
    let req = pb::DeleteSnapshotRequest {
        snapshot_id: snap.id,
        ..Default::default()
    };
    settle("delete snapshot", &ctx.retries, || {
        crate::call!(ctx.c, delete_snapshot, req)
    })
    .await;
    ctx.acked.add("delete snapshot");
}

/// CreateVolume `name` filled from `source` (a snapshot: restore; a volume: clone) until
/// acknowledged; its directory must then hold exactly `expect`.
pub async fn fill(ctx: &Ctx, name: &str, source: Type, expect: &Tree) -> Vol {
    let kind = match source {
        Type::Snapshot(_) => "restore",
        Type::Volume(_) => "clone",
    };
    let req = pb::CreateVolumeRequest {
        volume_content_source: Some(pb::VolumeContentSource {
            r#type: Some(source),
        }),
        ..create_req(name, MIB, &[])
    };
    let got = settle(kind, &ctx.retries, || {
        crate::call!(ctx.c, create_volume, req)
    })
    .await;
    let v = got.volume.expect("volume");
    assert!(
        v.content_source.is_some(),
        "{kind} {name}: no content source"
    );
    let tree = read_tree(&ctx.share.join(name));
    assert!(tree == *expect, "{kind} {name}: {tree:?} != {expect:?}");
    ctx.acked.add(kind);
    Vol {
        id: v.volume_id,
        capacity: MIB,
        target: None,
        tree,
    }
}

/// The restore content source of `snap`.
pub fn from_snapshot(snap: &Snap) -> Type {
    Type::Snapshot(pb::volume_content_source::SnapshotSource {
        snapshot_id: snap.id.clone(),
    })
}

/// The clone content source of the volume `vol`.
pub fn from_volume(vol: &Vol) -> Type {
    Type::Volume(pb::volume_content_source::VolumeSource {
        volume_id: vol.id.clone(),
    })
}

/// After the last restart: exactly the acknowledged snapshots are on the share (no temporary
/// trees left in the snapshot and restore areas once the sweep ran); each one is listed by id,
/// ready; and each restores (in parallel) into a volume holding what its source held, which is
/// then deleted. Returns how many were restored.
pub async fn check_snapshots(ctx: &Ctx, snaps: Vec<Snap>) -> usize {
    let state = ctx.share.join(".nfs-subdir-csi");
    let (area, restores) = (state.join("snapshots"), state.join("restore"));
    let swept = super::eventually(|| {
        let tmp = |d| super::ls(d).into_iter().any(|n| n.starts_with(".tmp-"));
        !tmp(&area) && !tmp(&restores)
    })
    .await;
    assert!(
        swept,
        "temporary trees left: {:?} {:?}",
        super::ls(&area),
        super::ls(&restores)
    );
    assert_eq!(super::ls(&restores), Vec::<String>::new(), "restore area");
    let want: BTreeSet<String> = snaps.iter().map(|s| s.name.clone()).collect();
    let have: BTreeSet<String> = super::ls(&area).into_iter().collect();
    assert_eq!(
        have, want,
        "snapshots on the share vs acknowledged - deleted"
    );
    let all = settle("list snapshots", &ctx.retries, || {
        crate::call!(ctx.c, list_snapshots, pb::ListSnapshotsRequest::default())
    })
    .await;
    assert_eq!(all.entries.len(), snaps.len(), "ListSnapshots entries");
    let mut tasks = Vec::new();
    for (i, snap) in snaps.into_iter().enumerate() {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let req = pb::ListSnapshotsRequest {
                snapshot_id: snap.id.clone(),
                ..Default::default()
            };
            let listed = settle("list snapshot", &ctx.retries, || {
                crate::call!(ctx.c, list_snapshots, req)
            })
            .await;
            let entry = listed.entries.first().and_then(|e| e.snapshot.as_ref());
            assert!(
                entry.is_some_and(|s| s.ready_to_use && s.snapshot_id == snap.id),
                "{} not listed ready: {:?}",
                snap.name,
                listed.entries
            );
            let name = format!("pvc-check-{i}");
            let vol = fill(&ctx, &name, from_snapshot(&snap), &snap.tree).await;
            let req = pb::DeleteVolumeRequest {
                volume_id: vol.id,
                ..Default::default()
            };
            settle("delete", &ctx.retries, || {
                crate::call!(ctx.c, delete_volume, req)
            })
            .await;
        }));
    }
    let n = tasks.len();
    for t in tasks {
        t.await.expect("restore check");
    }
    n
}
