//! Controller service over a real Unix socket against a real local share: idempotency, capacity
//! records, refused input, templates, pagination, lookups, expansion and the `quota` parameter.

mod common;

use common::{Driver, cap, create, create_req, delete, ls};
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, volume_capability::access_mode::Mode,
};
use std::os::unix::fs::PermissionsExt;
use tonic::Code;
use tonic::transport::Channel;

const GIB: i64 = 1 << 30;

#[tokio::test]
async fn create_is_idempotent_and_capacity_is_recorded() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let v1 = create(&mut c, "pvc-a", GIB, &[]).await;
    assert_eq!(v1.capacity_bytes, GIB);
    assert!(v1.volume_id.starts_with("nsc1##"), "{}", v1.volume_id);
    let dir = d.share().join("pvc-a");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o777
    );

    let again = create(&mut c, "pvc-a", GIB, &[]).await;
    assert_eq!(again.volume_id, v1.volume_id);
    let err = c
        .create_volume(create_req("pvc-a", 2 * GIB, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = c
        .create_volume(create_req("pvc-a", GIB, &[("onDelete", "retain")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "other parameters: {err:?}");

    let mode = c
        .create_volume(create_req("pvc-b", 0, &[("mountPermissions", "0750")]))
        .await
        .unwrap();
    assert_eq!(mode.into_inner().volume.unwrap().capacity_bytes, 0);
    assert_eq!(
        std::fs::metadata(d.share().join("pvc-b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_touches_nothing() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let before = ls(&d.share());
    let mut block = create_req("pvc-block", GIB, &[]);
    block.volume_capabilities[0].access_type = Some(pb::volume_capability::AccessType::Block(
        pb::volume_capability::BlockVolume {},
    ));
    let long_name = "n".repeat(4096);
    let cases = vec![
        create_req("pvc-x", GIB, &[("color", "blue")]),
        create_req("pvc-x", GIB, &[("subDir", "../escape")]),
        create_req("pvc-x", GIB, &[("subDir", "/etc")]),
        create_req(
            "pvc-x",
            GIB,
            &[
                ("subDir", "${pvc.metadata.name}"),
                ("csi.storage.k8s.io/pvc/name", ".."),
            ],
        ),
        create_req("pvc-x", GIB, &[("mountPermissions", "rwx")]),
        create_req("pvc-x", GIB, &[("onDelete", "shred")]),
        create_req("pvc-x", GIB, &[("quota", "strict")]),
        create_req("../pvc-x", GIB, &[]),
        create_req("a\0b", GIB, &[]),
        create_req(&long_name, GIB, &[]),
        create_req("", GIB, &[]),
        block,
        pb::CreateVolumeRequest {
            name: "pvc-nocaps".into(),
            ..Default::default()
        },
    ];
    for req in cases {
        let name = req.name.chars().take(40).collect::<String>();
        let err = c.create_volume(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err:?}");
    }
    assert_eq!(
        ls(&d.share()),
        before,
        "a refused request left something behind"
    );
    assert!(
        ls(d.share().parent().unwrap())
            .iter()
            .all(|n| n != "escape" && n != "pvc-x")
    );

    let hostile_ids = [
        format!("nsc1##{}#..#delete#", d.share().display()),
        format!("nsc1##{}#../share#delete#", d.share().display()),
        format!("nsc1##{}#/etc#delete#", d.share().display()),
        format!("nsc1##{}#.nfs-subdir-csi#delete#", d.share().display()),
    ];
    for id in hostile_ids {
        let err = c
            .delete_volume(pb::DeleteVolumeRequest {
                volume_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id}: {err:?}");
    }
    // A well-formed id for a share this driver never used: nothing is touched, and it is OK.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("data")).unwrap();
    let foreign = format!("nsc1##{}#data#delete#", outside.path().display());
    delete(&mut c, &foreign).await;
    assert!(outside.path().join("data").is_dir());
    assert_eq!(ls(outside.path()), vec!["data"]);
}

#[tokio::test]
async fn templates_place_directories_by_claim() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let params = [
        ("subDir", "${pvc.metadata.namespace}/${pvc.metadata.name}"),
        (
            "csi.storage.k8s.io/pvc/name",
            "redis-100m-pvc-redis-pv-sts-0",
        ),
        ("csi.storage.k8s.io/pvc/namespace", "default"),
        ("csi.storage.k8s.io/pv/name", "pvc-1234"),
    ];
    let v = create(&mut c, "pvc-1234", GIB, &params).await;
    assert!(
        d.share()
            .join("default/redis-100m-pvc-redis-pv-sts-0")
            .is_dir()
    );
    assert_eq!(
        v.volume_context.get("subDir").map(String::as_str),
        Some("default/redis-100m-pvc-redis-pv-sts-0")
    );
    delete(&mut c, &v.volume_id).await;
    assert!(
        !d.share()
            .join("default/redis-100m-pvc-redis-pv-sts-0")
            .exists()
    );
}

#[tokio::test]
async fn list_pages_through_every_volume_and_refuses_foreign_tokens() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            create(&mut c, &format!("pvc-{i}"), GIB, &[])
                .await
                .volume_id,
        );
    }
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = c
            .list_volumes(pb::ListVolumesRequest {
                max_entries: 3,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 3);
        seen.extend(
            page.entries
                .into_iter()
                .map(|e| e.volume.unwrap().volume_id),
        );
        pages += 1;
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    seen.sort();
    made.sort();
    assert_eq!((seen, pages), (made, 3));
    let err = c
        .list_volumes(pb::ListVolumesRequest {
            max_entries: 1,
            starting_token: "invalid-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
}

/// The ids ListVolumes returns, all pages.
async fn listed(c: &mut ControllerClient<Channel>) -> Vec<String> {
    let page = c
        .list_volumes(pb::ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_token.is_empty());
    page.entries
        .into_iter()
        .map(|e| e.volume.unwrap().volume_id)
        .collect()
}

/// csi-sanity's "ListVolumes check the presence of new volumes and absence of deleted ones" as a
/// StorageClass runs it: no default share, a pre-mounted `share` named by the parameters.
#[tokio::test]
async fn list_sees_volumes_on_a_share_named_by_parameters() {
    let d = Driver::start_without_default_share(&[]).await;
    let mut c = d.controller();
    let share = d.dir.path().join("by-parameters");
    std::fs::create_dir(&share).unwrap();
    let params = [("share", share.to_str().unwrap())];
    assert_eq!(listed(&mut c).await, Vec::<String>::new());
    let v = create(&mut c, "pvc-listed", GIB, &params).await;
    assert_eq!(listed(&mut c).await, vec![v.volume_id.clone()]);
    let other = create(&mut c, "pvc-other", GIB, &params).await;
    delete(&mut c, &v.volume_id).await;
    assert_eq!(listed(&mut c).await, vec![other.volume_id]);
}

#[tokio::test]
async fn lookups_report_missing_volumes_and_real_capacity() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let err = c
        .validate_volume_capabilities(pb::ValidateVolumeCapabilitiesRequest {
            volume_id: "no-such-volume".into(),
            volume_capabilities: vec![cap(Mode::MultiNodeMultiWriter)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let v = create(&mut c, "pvc-gone", GIB, &[]).await;
    std::fs::remove_dir(d.share().join("pvc-gone")).unwrap();
    let got = c
        .controller_get_volume(pb::ControllerGetVolumeRequest {
            volume_id: v.volume_id,
        })
        .await
        .unwrap()
        .into_inner();
    let cond = got.status.unwrap().volume_condition.unwrap();
    assert!(
        cond.abnormal && cond.message.contains("missing"),
        "{cond:?}"
    );
    let cap = c
        .get_capacity(pb::GetCapacityRequest::default())
        .await
        .unwrap()
        .into_inner();
    let expect = nix::sys::statvfs::statvfs(&d.share()).unwrap();
    let free = (expect.blocks_available() * expect.fragment_size()) as i64;
    assert!(
        cap.available_capacity > 0 && (cap.available_capacity - free).abs() < 64 << 20,
        "{cap:?} vs {free}"
    );
}

#[tokio::test]
async fn expansion_records_the_larger_size() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let v = create(&mut c, "pvc-grow", GIB, &[]).await;
    let expand = |bytes: i64| pb::ControllerExpandVolumeRequest {
        volume_id: v.volume_id.clone(),
        capacity_range: Some(pb::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        ..Default::default()
    };
    let grown = c
        .controller_expand_volume(expand(3 * GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (grown.capacity_bytes, grown.node_expansion_required),
        (3 * GIB, false)
    );
    let smaller = c
        .controller_expand_volume(expand(GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        smaller.capacity_bytes,
        3 * GIB,
        "a shrink request keeps the larger size"
    );
    let got = c
        .controller_get_volume(pb::ControllerGetVolumeRequest {
            volume_id: v.volume_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().volume.unwrap().capacity_bytes, 3 * GIB);
    let err = c
        .controller_expand_volume(pb::ControllerExpandVolumeRequest {
            volume_id: "no-such-volume".into(),
            capacity_range: Some(pb::CapacityRange {
                required_bytes: GIB,
                limit_bytes: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// `quota: enforce` on a share without project quotas (the test's temp directory) is refused
/// before anything is made, naming the fix; `best-effort` makes the volume and records its size.
#[tokio::test]
async fn enforced_quota_without_project_quotas_is_refused() {
    let d = Driver::start(&[]).await;
    let mut c = d.controller();
    let before = ls(&d.share());
    let err = c
        .create_volume(create_req("pvc-q", GIB, &[("quota", "enforce")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("prjquota"), "{}", err.message());
    assert_eq!(
        ls(&d.share()),
        before,
        "a refused request left something behind"
    );
    let v = create(&mut c, "pvc-q", GIB, &[("quota", "best-effort")]).await;
    assert_eq!(v.capacity_bytes, GIB);
    assert!(d.share().join("pvc-q").is_dir());
}
