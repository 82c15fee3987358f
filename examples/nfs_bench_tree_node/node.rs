//! The "Node" rows of the guest benchmark: NodePublishVolume vs a bare mount(2) of the same
//! subdirectory with the same options, and a second publish of the same volume vs a bind mount.

use super::{Bench, Res, env, env_num, ms};
use crate::common::median;
use nfs_subdir_csi::csi::client;
use nfs_subdir_csi::csi::pb::{self, volume_capability::access_mode::Mode};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::Path;
use std::time::{Duration, Instant};

/// The kernel option text the driver derives from `nfsvers=V[,port=N]` for server `server`.
fn bare_options(server: &str) -> String {
    let mut out = Vec::new();
    for o in env("NSC_BENCH_MOUNT_OPTIONS").split(',') {
        match o.split_once('=') {
            Some(("nfsvers" | "vers", v)) => out.insert(0, format!("vers={v}")),
            _ => out.push(o.to_owned()),
        }
    }
    out.insert(1, format!("addr={server}"));
    out.join(",")
}

async fn publish(b: &mut Bench, v: &pb::Volume, target: &Path) -> Res<Duration> {
    let req = pb::NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: target.display().to_string(),
        volume_capability: Some(client::mount_capability(Mode::MultiNodeMultiWriter, &[])),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    };
    let t = Instant::now();
    b.node.node_publish_volume(req).await?;
    Ok(t.elapsed())
}

async fn unpublish(b: &mut Bench, v: &pb::Volume, target: &Path) -> Res<()> {
    let req = pb::NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: target.display().to_string(),
    };
    b.node.node_unpublish_volume(req).await?;
    Ok(())
}

fn timed_mount(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Res<Duration> {
    std::fs::create_dir_all(target)?;
    let t = Instant::now();
    mount(Some(source), target, fstype, flags, data)?;
    Ok(t.elapsed())
}

pub async fn node(b: &mut Bench) -> Res<()> {
    let n = env_num("NSC_BENCH_NODE_N", 30);
    let server = env("NSC_BENCH_SERVER");
    let name = format!("pvc-node-{}", b.run);
    let v = b.create(&name).await?;
    let source = format!(
        "{server}:{}/{name}",
        env("NSC_BENCH_SHARE").trim_end_matches('/')
    );
    let data = bare_options(&server);
    println!("node: bare mount(2) of {source} with \"{data}\"");
    let dir = Path::new("/tmp/nsc-bench-node");
    let (mut first, mut bare, mut second, mut bind) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let (a, a2) = (dir.join(format!("a{i}")), dir.join(format!("a2-{i}")));
        let (m, m2) = (dir.join(format!("m{i}")), dir.join(format!("m2-{i}")));
        std::fs::create_dir_all(dir)?;
        let bare_once = || timed_mount(&source, &m, Some("nfs"), MsFlags::empty(), Some(&data));
        if i % 2 == 0 {
            bare.push(bare_once()?);
            first.push(publish(b, &v, &a).await?);
        } else {
            first.push(publish(b, &v, &a).await?);
            bare.push(bare_once()?);
        }
        let bind_once = || timed_mount(&a.display().to_string(), &m2, None, MsFlags::MS_BIND, None);
        if i % 2 == 0 {
            bind.push(bind_once()?);
            second.push(publish(b, &v, &a2).await?);
        } else {
            second.push(publish(b, &v, &a2).await?);
            bind.push(bind_once()?);
        }
        for t in [&m2, &m] {
            umount2(t.as_path(), MntFlags::empty())?;
            std::fs::remove_dir(t)?;
        }
        unpublish(b, &v, &a2).await?;
        unpublish(b, &v, &a).await?;
    }
    b.delete(&v.volume_id).await?;
    let (f, m, s, k) = (
        median(&first),
        median(&bare),
        median(&second),
        median(&bind),
    );
    println!(
        "node, {n} rounds, medians: NodePublishVolume {:.3} ms, bare mount(2) {:.3} ms; \
         second NodePublishVolume {:.3} ms, bind mount {:.3} ms",
        ms(f),
        ms(m),
        ms(s),
        ms(k)
    );
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "ROW Node: NodePublishVolume vs bare mount(2) | {:.2} vs {:.2} ms = {:.2}x | <= 1.2x",
        ms(f),
        ms(m),
        r(f, m)
    );
    println!(
        "ROW Node: second publish vs bind mount | {:.3} vs {:.3} ms = {:.2}x | <= 1.2x",
        ms(s),
        ms(k),
        r(s, k)
    );
    Ok(())
}
