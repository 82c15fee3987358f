//! Client for the snapshot benchmark (tests/e2e/nfs-guest/snapshot-bench-guest.sh): one CSI call
//! per run, timed end to end, so the shell script can interleave the driver's snapshots with
//! csi-driver-nfs's `tar czf` / `tar xzf` on the same mount. Not a test and not run by CI.
//!
//! Usage (environment NSC_BENCH_SOCKET = the driver's Unix socket, NSC_BENCH_SERVER and
//! NSC_BENCH_SHARE = the StorageClass's server and share):
//!   snapshot_bench volume NAME MOUNT_OPTIONS        → prints the volume id
//!   snapshot_bench snap FORMAT VOLUME_ID NAME       → prints "<seconds> <size_bytes> <snapshot id>"
//!       (CreateSnapshot, called again at once while ready_to_use is false: each call waits up to
//!       2 s for the copy, so the time is when the snapshot became ready, not a polling interval)
//!   snapshot_bench restore SNAPSHOT_ID NAME MOUNT_OPTIONS → prints "<seconds> <volume id>"
//!       (CreateVolume from the snapshot, called again on DEADLINE_EXCEEDED until the copy is in place)
//!   snapshot_bench rm-snap ID | rm-vol ID
//! Exit status 1 with the gRPC status on stderr when a call fails.

use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, volume_capability::access_mode::Mode,
    volume_content_source::SnapshotSource, volume_content_source::Type,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Request};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The deadline of each call: a copy that takes longer goes on in the background and the next
/// call picks it up.
const CALL: Duration = Duration::from_secs(60);
/// No single benchmark step may take longer than this.
const GIVE_UP: Duration = Duration::from_secs(1800);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn req<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(CALL);
    r
}

fn volume_req(name: &str, mount_options: &str) -> pb::CreateVolumeRequest {
    let params = HashMap::from([
        ("server".to_owned(), env("NSC_BENCH_SERVER")),
        ("share".to_owned(), env("NSC_BENCH_SHARE")),
        ("mountOptions".to_owned(), mount_options.to_owned()),
    ]);
    pb::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(pb::CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![client::mount_capability(Mode::MultiNodeMultiWriter, &[])],
        parameters: params,
        ..Default::default()
    }
}

async fn snap(ctl: &mut ControllerClient<Channel>, format: &str, vol: &str, name: &str) -> Res<()> {
    let t = Instant::now();
    loop {
        let r = pb::CreateSnapshotRequest {
            name: name.into(),
            source_volume_id: vol.into(),
            parameters: HashMap::from([("format".to_owned(), format.to_owned())]),
            ..Default::default()
        };
        let s = ctl
            .create_snapshot(req(r))
            .await?
            .into_inner()
            .snapshot
            .ok_or("CreateSnapshot returned no snapshot")?;
        if s.ready_to_use {
            let secs = t.elapsed().as_secs_f64();
            println!("{secs:.3} {} {}", s.size_bytes, s.snapshot_id);
            return Ok(());
        }
        if t.elapsed() > GIVE_UP {
            return Err(format!("snapshot not ready after {GIVE_UP:?}").into());
        }
    }
}

async fn restore(ctl: &mut ControllerClient<Channel>, snap: &str, name: &str, mo: &str) -> Res<()> {
    let t = Instant::now();
    let mut r = volume_req(name, mo);
    r.volume_content_source = Some(pb::VolumeContentSource {
        r#type: Some(Type::Snapshot(SnapshotSource {
            snapshot_id: snap.into(),
        })),
    });
    loop {
        match ctl.create_volume(req(r.clone())).await {
            Ok(v) => {
                let v = v
                    .into_inner()
                    .volume
                    .ok_or("CreateVolume returned no volume")?;
                println!("{:.3} {}", t.elapsed().as_secs_f64(), v.volume_id);
                return Ok(());
            }
            // The copy goes on in the background; the retry waits for the same copy.
            Err(s) if s.code() == Code::DeadlineExceeded && t.elapsed() < GIVE_UP => {}
            Err(s) => return Err(s.into()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoint = format!("unix://{}", env("NSC_BENCH_SOCKET"));
    let ch = client::connect(&endpoint, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("connect {endpoint}: {e}"));
    let mut ctl = ControllerClient::new(ch);
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let r: Res<()> = match a(0) {
        "volume" => match ctl.create_volume(req(volume_req(a(1), a(2)))).await {
            Ok(v) => {
                println!("{}", v.into_inner().volume.unwrap_or_default().volume_id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        "snap" => snap(&mut ctl, a(1), a(2), a(3)).await,
        "restore" => restore(&mut ctl, a(1), a(2), a(3)).await,
        "rm-snap" => ctl
            .delete_snapshot(req(pb::DeleteSnapshotRequest {
                snapshot_id: a(1).into(),
                ..Default::default()
            }))
            .await
            .map(drop)
            .map_err(Into::into),
        "rm-vol" => ctl
            .delete_volume(req(pb::DeleteVolumeRequest {
                volume_id: a(1).into(),
                ..Default::default()
            }))
            .await
            .map(drop)
            .map_err(Into::into),
        other => Err(format!("unknown command {other:?}; see the file's header").into()),
    };
    if let Err(e) = r {
        eprintln!("snapshot_bench {}: {e}", args.join(" "));
        std::process::exit(1);
    }
}
