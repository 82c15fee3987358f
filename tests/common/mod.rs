//! Shared fixtures of the integration tests: a real driver process on a real Unix socket over a
//! temporary local share, and small builders for CSI requests.

#![allow(dead_code)]

pub mod crash;
pub mod h2raw;
pub mod http;
pub mod load;
pub mod node;
pub mod snap;

use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, identity_client::IdentityClient,
    node_client::NodeClient, volume_capability::access_mode::Mode,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A running `nfs-subdir-csi serve` with its own temp dir, killed on drop.
pub struct Driver {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub channel: Channel,
}

impl Driver {
    /// Starts the driver with a default share at `<tmp>/share` and waits until Probe answers.
    pub async fn start(extra: &[&str]) -> Driver {
        Self::start_in(tempdir(), extra).await
    }

    /// Starts the driver in an existing temp dir (to test restarts).
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Driver {
        let share = format!("--default-share={}", dir.path().join("share").display());
        Self::launch(dir, &[&[share.as_str()], extra].concat()).await
    }

    /// Starts the driver with no default share, as a StorageClass naming its `share` runs it.
    pub async fn start_without_default_share(extra: &[&str]) -> Driver {
        Self::launch(tempdir(), extra).await
    }

    async fn launch(dir: tempfile::TempDir, extra: &[&str]) -> Driver {
        let socket = dir.path().join("csi.sock");
        let log = std::fs::File::create(dir.path().join("driver.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nfs-subdir-csi"))
            .arg("serve")
            .arg(format!("--endpoint=unix://{}", socket.display()))
            .arg(format!(
                "--working-mount-dir={}",
                dir.path().join("work").display()
            ))
            .arg("--nodeid=test-node")
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start driver");
        let channel = connect(&socket).await;
        Driver {
            dir,
            child,
            channel,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("csi.sock")
    }
    pub fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("driver.log")).unwrap_or_default()
    }
    pub fn controller(&self) -> ControllerClient<Channel> {
        ControllerClient::new(self.channel.clone())
    }
    pub fn node(&self) -> NodeClient<Channel> {
        NodeClient::new(self.channel.clone())
    }
    pub fn identity(&self) -> IdentityClient<Channel> {
        IdentityClient::new(self.channel.clone())
    }

    /// Stops the driver with SIGTERM and returns its temp dir.
    pub fn stop(mut self) -> tempfile::TempDir {
        terminate(&mut self.child);
        let dir = tempfile::Builder::new().tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Driver {
    /// Kills the driver with SIGKILL (no clean-up of any kind) and returns its temp dir, so a
    /// restart with [`Driver::start_in`] finds what the dead process left.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::Builder::new().tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Stops the driver with SIGTERM (a connected client holds it for the grace period at most)
    /// and returns how it exited.
    pub fn shutdown(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh temp dir for one driver (socket, share, working mounts, log).
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nsc-it-")
        .tempdir()
        .expect("tempdir")
}

/// Sends SIGTERM and waits for the exit.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    child.wait().expect("wait for driver")
}

/// Connects to a Unix socket once the driver answers Probe (at most 20 s).
pub async fn connect(socket: &Path) -> Channel {
    let endpoint = format!("unix://{}", socket.display());
    client::connect(&endpoint, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A mount capability with `mode`.
pub fn cap(mode: Mode) -> pb::VolumeCapability {
    client::mount_capability(mode, &[])
}

/// A CreateVolume request for `name` with `bytes` and string parameters.
pub fn create_req(name: &str, bytes: i64, params: &[(&str, &str)]) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        name: name.to_owned(),
        capacity_range: Some(pb::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap(Mode::MultiNodeMultiWriter)],
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// Creates a volume that must succeed and returns it.
pub async fn create(
    c: &mut ControllerClient<Channel>,
    name: &str,
    bytes: i64,
    params: &[(&str, &str)],
) -> pb::Volume {
    let resp = c.create_volume(create_req(name, bytes, params)).await;
    resp.unwrap_or_else(|e| panic!("create {name}: {e:?}"))
        .into_inner()
        .volume
        .expect("volume")
}

/// Deletes a volume; the call must succeed.
pub async fn delete(c: &mut ControllerClient<Channel>, id: &str) {
    let req = pb::DeleteVolumeRequest {
        volume_id: id.to_owned(),
        ..Default::default()
    };
    c.delete_volume(req)
        .await
        .unwrap_or_else(|e| panic!("delete {id}: {e:?}"));
}

/// Waits until `cond` holds (at most 10 s); returns whether it did.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Names in a directory, sorted.
pub fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
