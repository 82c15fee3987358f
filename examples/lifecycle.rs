//! A volume's whole life through the driver's gRPC API, printed step by step.
//!
//! `cargo run --example lifecycle` starts the driver in this process on a temporary local share
//! and drives it over a real Unix socket: create (twice, idempotent), validate, list, capacity,
//! publish at two targets like two pods (needs root for the bind mounts; skipped otherwise, with
//! a message), write through one and read through the other, stats, unpublish, delete.
//! `cargo run --example lifecycle -- unix:///path/csi.sock` drives an already running driver.

use clap::Parser;
use nfs_subdir_csi::cli::{Cli, Command};
use nfs_subdir_csi::csi::pb::{
    self,
    controller_client::ControllerClient,
    identity_client::IdentityClient,
    node_client::NodeClient,
    volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode},
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn step(n: &mut u32, what: &str) {
    *n += 1;
    println!("[{n:>2}] {what}");
}

fn rwx() -> pb::VolumeCapability {
    pb::VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

async fn connect(endpoint: &str) -> Res<Channel> {
    let started = Instant::now();
    loop {
        match Endpoint::try_from(endpoint.to_owned())?.connect().await {
            Ok(ch) => return Ok(ch),
            Err(e) if started.elapsed() > Duration::from_secs(10) => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let given = std::env::args().nth(1);
    let scratch = tempfile::tempdir()?;
    let endpoint = match &given {
        Some(e) => e.clone(),
        None => {
            let sock = scratch.path().join("csi.sock");
            let share = scratch.path().join("share");
            println!(
                "starting the driver in-process: share {}, socket {}",
                share.display(),
                sock.display()
            );
            let cli = Cli::parse_from([
                "nfs-subdir-csi".to_owned(),
                "serve".to_owned(),
                format!("--endpoint=unix://{}", sock.display()),
                format!("--default-share={}", share.display()),
                format!(
                    "--working-mount-dir={}",
                    scratch.path().join("work").display()
                ),
            ]);
            let Command::Serve(args) = cli.command else {
                unreachable!("parsed from a `serve` command line")
            };
            tokio::spawn(async move {
                if let Err(e) = nfs_subdir_csi::server::serve(args).await {
                    eprintln!("driver stopped: {e}");
                }
            });
            format!("unix://{}", sock.display())
        }
    };
    let ch = connect(&endpoint).await?;
    let (mut id, mut ctl, mut node) = (
        IdentityClient::new(ch.clone()),
        ControllerClient::new(ch.clone()),
        NodeClient::new(ch),
    );
    let mut n = 0;

    let info = id
        .get_plugin_info(pb::GetPluginInfoRequest {})
        .await?
        .into_inner();
    step(
        &mut n,
        &format!("GetPluginInfo: {} {}", info.name, info.vendor_version),
    );
    let ready = id.probe(pb::ProbeRequest {}).await?.into_inner().ready;
    step(&mut n, &format!("Probe: ready={}", ready.unwrap_or(false)));

    let name = format!("pvc-{}", uuid::Uuid::new_v4());
    let req = pb::CreateVolumeRequest {
        name: name.clone(),
        capacity_range: Some(pb::CapacityRange {
            required_bytes: 100 << 20,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![rwx()],
        ..Default::default()
    };
    let vol = ctl
        .create_volume(req.clone())
        .await?
        .into_inner()
        .volume
        .ok_or("no volume")?;
    step(
        &mut n,
        &format!(
            "CreateVolume {name}: id {} ({} bytes)",
            vol.volume_id, vol.capacity_bytes
        ),
    );
    let again = ctl
        .create_volume(req)
        .await?
        .into_inner()
        .volume
        .ok_or("no volume")?;
    step(
        &mut n,
        &format!(
            "CreateVolume again: same id = {}",
            again.volume_id == vol.volume_id
        ),
    );
    let dir = vol
        .volume_context
        .get("share")
        .map(|s| Path::new(s).join(&name));
    if let Some(dir) = &dir {
        step(
            &mut n,
            &format!(
                "directory on the share: {} exists = {}",
                dir.display(),
                dir.is_dir()
            ),
        );
    }

    let valid = ctl
        .validate_volume_capabilities(pb::ValidateVolumeCapabilitiesRequest {
            volume_id: vol.volume_id.clone(),
            volume_capabilities: vec![rwx()],
            ..Default::default()
        })
        .await?
        .into_inner();
    step(
        &mut n,
        &format!(
            "ValidateVolumeCapabilities RWX: confirmed = {}",
            valid.confirmed.is_some()
        ),
    );
    let list = ctl
        .list_volumes(pb::ListVolumesRequest::default())
        .await?
        .into_inner();
    step(
        &mut n,
        &format!("ListVolumes: {} volume(s)", list.entries.len()),
    );
    let cap = ctl
        .get_capacity(pb::GetCapacityRequest::default())
        .await?
        .into_inner();
    step(
        &mut n,
        &format!(
            "GetCapacity: {} MiB free on the share",
            cap.available_capacity >> 20
        ),
    );

    if nix::unistd::geteuid().is_root() {
        let pods: Vec<PathBuf> = ["pod-a", "pod-b"]
            .iter()
            .map(|p| scratch.path().join(p))
            .collect();
        for pod in &pods {
            node.node_publish_volume(pb::NodePublishVolumeRequest {
                volume_id: vol.volume_id.clone(),
                target_path: pod.display().to_string(),
                volume_capability: Some(rwx()),
                volume_context: vol.volume_context.clone(),
                ..Default::default()
            })
            .await?;
            step(&mut n, &format!("NodePublishVolume at {}", pod.display()));
        }
        std::fs::write(pods[0].join("greeting"), "hello from pod-a\n")?;
        let seen = std::fs::read_to_string(pods[1].join("greeting"))?;
        step(
            &mut n,
            &format!("wrote through pod-a, pod-b reads: {:?}", seen.trim()),
        );
        let stats = node
            .node_get_volume_stats(pb::NodeGetVolumeStatsRequest {
                volume_id: vol.volume_id.clone(),
                volume_path: pods[0].display().to_string(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let bytes = stats.usage.first().map(|u| u.used).unwrap_or_default();
        step(
            &mut n,
            &format!(
                "NodeGetVolumeStats: {} MiB used on the filesystem",
                bytes >> 20
            ),
        );
        for pod in &pods {
            node.node_unpublish_volume(pb::NodeUnpublishVolumeRequest {
                volume_id: vol.volume_id.clone(),
                target_path: pod.display().to_string(),
            })
            .await?;
            step(
                &mut n,
                &format!(
                    "NodeUnpublishVolume {}: target removed = {}",
                    pod.display(),
                    !pod.exists()
                ),
            );
        }
    } else {
        println!("     (not root: skipping NodePublish/Unpublish, which need mount(2))");
    }

    ctl.delete_volume(pb::DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        ..Default::default()
    })
    .await?;
    step(&mut n, "DeleteVolume");
    if let Some(dir) = &dir {
        step(
            &mut n,
            &format!("directory gone from the share = {}", !dir.exists()),
        );
        if dir.exists() {
            return Err("the volume directory is still there".into());
        }
    }
    println!("lifecycle complete");
    Ok(())
}
