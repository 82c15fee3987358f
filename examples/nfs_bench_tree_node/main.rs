//! Benchmark client for tests/e2e/nfs-guest/bench-guest.sh, the issue-15 rows "Deleting big
//! volumes" and "Node", run inside the QEMU guest against ganesha:
//! - a 10,000-file, 1,000-directory tree removed by the driver in the background (DeleteVolume, then
//!   until its trash counter moves on /metrics) vs `rm -rf` of an identical tree on the driver's own
//!   working mount of the same export; bench.sh makes both trees in the exported directory on the
//!   host before the boot (`.bench-trees/rm-R`, `.bench-trees/drv-R`; making them through NFS
//!   under TCG takes longer than the whole run may), the driver's is moved into its volume here;
//! - NodePublishVolume vs a bare mount(2) of the same subdirectory with the same options; the
//!   second publish of the same volume (another pod's target) vs a bind mount of the first.
//!
//! Not a test and not run by CI. Built by `bash tests/e2e/nfs-guest/bench.sh`. Environment (set by
//! bench-guest.sh): NSC_BENCH_SOCKET (a driver with the controller and node roles),
//! NSC_BENCH_METRICS_PORT (its --http-address port), NSC_BENCH_MOUNT, NSC_BENCH_WORKDIR,
//! NSC_BENCH_SERVER, NSC_BENCH_SHARE, NSC_BENCH_MOUNT_OPTIONS (`nfsvers=4.1[,port=N]`),
//! NSC_BENCH_TREE_ROUNDS (default 3), NSC_BENCH_TREE_FILES (default 10000), NSC_BENCH_NODE_N
//! (default 30). Prints medians and `ROW name | figure | target` lines; asserts nothing about time.

#[path = "../../benches/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../nfs_bench/util.rs"]
mod util;

use common::median;
use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, node_client::NodeClient,
    volume_capability::access_mode::Mode,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use util::{Res, env, env_num, ms};

struct Bench {
    ctl: ControllerClient<Channel>,
    node: NodeClient<Channel>,
    params: HashMap<String, String>,
    mount: PathBuf,
    run: String,
}

impl Bench {
    async fn create(&mut self, name: &str) -> Res<pb::Volume> {
        let req = pb::CreateVolumeRequest {
            name: name.to_owned(),
            volume_capabilities: vec![client::mount_capability(Mode::MultiNodeMultiWriter, &[])],
            parameters: self.params.clone(),
            ..Default::default()
        };
        let v = self.ctl.create_volume(req).await?.into_inner().volume;
        Ok(v.ok_or("CreateVolume returned no volume")?)
    }

    async fn delete(&mut self, id: &str) -> Res<()> {
        let req = pb::DeleteVolumeRequest {
            volume_id: id.to_owned(),
            ..Default::default()
        };
        self.ctl.delete_volume(req).await?;
        Ok(())
    }
}

/// A counter or gauge from the driver's /metrics (0 when absent).
fn metric(port: u16, name: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The driver's working mount of the export: the NFS mount under `workdir`.
fn working_mount(workdir: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/mounts").ok()?;
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .find(|at| at.starts_with(&format!("{workdir}/")))
        .map(PathBuf::from)
}

async fn tree(b: &mut Bench, port: u16, workdir: &str) -> Res<()> {
    let rounds = env_num("NSC_BENCH_TREE_ROUNDS", 3);
    let files = env_num("NSC_BENCH_TREE_FILES", 10_000);
    let (mut rm, mut drv) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // A volume first: its CreateVolume also mounts the working share.
        let name = format!("pvc-tree-{}-{r}", b.run);
        let vol = b.create(&name).await?;
        let wm = working_mount(workdir).ok_or("no working mount under the workdir")?;
        let trees = b.mount.join(".bench-trees");
        std::fs::rename(
            trees.join(format!("drv-{r}")),
            b.mount.join(&name).join("tree"),
        )?;
        let plain = format!(".bench-trees/rm-{r}");
        // rm -rf on the driver's own mount, then the driver; the next round swaps the order.
        let rm_once = || -> Res<Duration> {
            let t = Instant::now();
            let st = std::process::Command::new("rm")
                .arg("-rf")
                .arg(wm.join(&plain))
                .status()?;
            if !st.success() {
                return Err(format!("rm -rf: {st}").into());
            }
            Ok(t.elapsed())
        };
        if r % 2 == 0 {
            rm.push(rm_once()?);
        }
        let before = metric(port, "nfs_subdir_csi_trash_removed_total");
        let t = Instant::now();
        b.delete(&vol.volume_id).await?;
        while metric(port, "nfs_subdir_csi_trash_removed_total") <= before {
            if t.elapsed() > Duration::from_secs(900) {
                return Err("the driver did not remove the tree within 15 min".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drv.push(t.elapsed());
        if r % 2 == 1 {
            rm.push(rm_once()?);
        }
        println!(
            "round {r}: rm -rf {:.2} s, driver {:.2} s",
            rm[r].as_secs_f64(),
            drv[r].as_secs_f64()
        );
    }
    let (mr, md) = (median(&rm), median(&drv));
    let f = |d: Duration| files as f64 / d.as_secs_f64();
    println!(
        "tree of {files} files and 1000 directories, {rounds} rounds, medians: \
         rm -rf {:.2} s ({:.0} files/s), driver {:.2} s ({:.0} files/s)",
        mr.as_secs_f64(),
        f(mr),
        md.as_secs_f64(),
        f(md)
    );
    println!(
        "ROW Deleting big volumes: driver vs rm -rf (files/s) | {:.0} vs {:.0} files/s = {:.2}x | >= 2x",
        f(md),
        f(mr),
        mr.as_secs_f64() / md.as_secs_f64()
    );
    Ok(())
}

mod node;

#[tokio::main]
async fn main() -> Res<()> {
    let sock = env("NSC_BENCH_SOCKET");
    let port: u16 = env("NSC_BENCH_METRICS_PORT").parse()?;
    let workdir = env("NSC_BENCH_WORKDIR");
    let channel = client::connect(&format!("unix://{sock}"), Duration::from_secs(10)).await?;
    let mut b = Bench {
        ctl: ControllerClient::new(channel.clone()),
        node: NodeClient::new(channel),
        params: HashMap::from([
            ("server".to_owned(), env("NSC_BENCH_SERVER")),
            ("share".to_owned(), env("NSC_BENCH_SHARE")),
            ("mountOptions".to_owned(), env("NSC_BENCH_MOUNT_OPTIONS")),
        ]),
        mount: PathBuf::from(env("NSC_BENCH_MOUNT")),
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
    };
    node::node(&mut b).await?;
    if env_num("NSC_BENCH_TREE_ROUNDS", 3) > 0 {
        tree(&mut b, port, &workdir).await?;
    }
    Ok(())
}
