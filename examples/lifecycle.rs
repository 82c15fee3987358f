//! A volume's whole life through the driver's gRPC API, printed step by step.
//!
//! `cargo run --example lifecycle` starts the driver in this process on a temporary local share
//! and drives it over a real Unix socket: create (twice, idempotent), validate, list, capacity,
//! publish at two targets like two pods (needs root for the bind mounts; skipped otherwise, with
//! a message), write through one and read through the other, stats, unpublish, delete.
//! `cargo run --example lifecycle -- unix:///path/csi.sock` drives an already running driver.
//! Every step that states a fact checks it: the run exits non-zero if any of them is false.

use clap::Parser;
use nfs_subdir_csi::cli::{Cli, Command};
use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, identity_client::IdentityClient,
    node_client::NodeClient, volume_capability::access_mode::Mode,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The numbered steps, and the checks among them that were false.
#[derive(Default)]
struct Steps {
    n: u32,
    false_checks: Vec<String>,
}

impl Steps {
    /// A step that only reports.
    fn say(&mut self, what: &str) {
        self.n += 1;
        println!("[{:>2}] {what}", self.n);
    }

    /// A step that states a fact: `what = ok`, remembered when false.
    fn check(&mut self, what: &str, ok: bool) {
        self.say(&format!("{what} = {ok}"));
        if !ok {
            self.false_checks.push(what.to_owned());
        }
    }
}

fn rwx() -> pb::VolumeCapability {
    client::mount_capability(Mode::MultiNodeMultiWriter, &[])
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
    let ch = client::connect(&endpoint, Duration::from_secs(10)).await?;
    let (mut id, mut ctl, mut node) = (
        IdentityClient::new(ch.clone()),
        ControllerClient::new(ch.clone()),
        NodeClient::new(ch),
    );
    let mut steps = Steps::default();

    let info = id
        .get_plugin_info(pb::GetPluginInfoRequest {})
        .await?
        .into_inner();
    steps.say(&format!(
        "GetPluginInfo: {} {}",
        info.name, info.vendor_version
    ));
    let ready = id.probe(pb::ProbeRequest {}).await?.into_inner().ready;
    steps.check("Probe: ready", ready == Some(true));

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
    steps.say(&format!(
        "CreateVolume {name}: id {} ({} bytes)",
        vol.volume_id, vol.capacity_bytes
    ));
    let again = ctl
        .create_volume(req)
        .await?
        .into_inner()
        .volume
        .ok_or("no volume")?;
    steps.check(
        "CreateVolume again: same id",
        again.volume_id == vol.volume_id,
    );
    let dir = vol
        .volume_context
        .get("share")
        .map(|s| Path::new(s).join(&name));
    steps.check("volume context names the share", dir.is_some());
    if let Some(dir) = &dir {
        steps.check(
            &format!("directory on the share: {} exists", dir.display()),
            dir.is_dir(),
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
    steps.check(
        "ValidateVolumeCapabilities RWX: confirmed",
        valid.confirmed.is_some(),
    );
    let list = ctl
        .list_volumes(pb::ListVolumesRequest::default())
        .await?
        .into_inner();
    let listed = list
        .entries
        .iter()
        .any(|e| e.volume.as_ref().map(|v| &v.volume_id) == Some(&vol.volume_id));
    steps.check(
        &format!(
            "ListVolumes: {} volume(s); the new one among them",
            list.entries.len()
        ),
        listed,
    );
    let cap = ctl
        .get_capacity(pb::GetCapacityRequest::default())
        .await?
        .into_inner();
    steps.say(&format!(
        "GetCapacity: {} MiB free on the share",
        cap.available_capacity >> 20
    ));

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
            steps.say(&format!("NodePublishVolume at {}", pod.display()));
        }
        std::fs::write(pods[0].join("greeting"), "hello from pod-a\n")?;
        let seen = std::fs::read_to_string(pods[1].join("greeting"))?;
        steps.check(
            &format!(
                "wrote through pod-a, pod-b reads it back ({:?})",
                seen.trim()
            ),
            seen == "hello from pod-a\n",
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
        steps.say(&format!(
            "NodeGetVolumeStats: {} MiB used on the filesystem",
            bytes >> 20
        ));
        for pod in &pods {
            node.node_unpublish_volume(pb::NodeUnpublishVolumeRequest {
                volume_id: vol.volume_id.clone(),
                target_path: pod.display().to_string(),
            })
            .await?;
            steps.check(
                &format!("NodeUnpublishVolume {}: target removed", pod.display()),
                !pod.exists(),
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
    steps.say("DeleteVolume");
    if let Some(dir) = &dir {
        steps.check("directory gone from the share", !dir.exists());
    }
    if !steps.false_checks.is_empty() {
        return Err(format!("false: {}", steps.false_checks.join("; ")).into());
    }
    println!("lifecycle complete");
    Ok(())
}
