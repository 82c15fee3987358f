//! The 64-way throughput rounds of examples/nfs_bench: 64 concurrent CreateVolume calls, 64
//! concurrent bare mkdirs on the bench's own mount of the same export, and 64 concurrent
//! Identity.Probe calls (the gRPC floor), each over the same number of operations.

use crate::{Params, Res, req};
use nfs_subdir_csi::csi::pb::{
    self, controller_client::ControllerClient, identity_client::IdentityClient,
};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tonic::transport::Channel;

/// Concurrent callers in every mode.
pub const WAYS: usize = 64;

/// `n` CreateVolume calls from 64 tasks; returns the seconds taken and the new volume ids.
pub async fn creates(ch: &Channel, p: &Params, n: usize, tag: &str) -> Res<(f64, Vec<String>)> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WAYS {
        let mut c = ControllerClient::new(ch.clone());
        let (p, tag) = (p.clone(), tag.to_owned());
        tasks.spawn(async move {
            let mut got = Vec::new();
            for i in (w..n).step_by(WAYS) {
                let v = c.create_volume(req(format!("pvc-{tag}-{i}"), &p)).await?;
                got.extend(v.into_inner().volume.map(|v| v.volume_id));
            }
            Ok::<_, tonic::Status>(got)
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        ids.extend(r??);
    }
    Ok((t.elapsed().as_secs_f64(), ids))
}

/// Deletes the volumes `ids` from 64 tasks.
pub async fn deletes(ch: &Channel, ids: Vec<String>) -> Res<()> {
    let ids = std::sync::Arc::new(ids);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WAYS {
        let (mut c, ids) = (ControllerClient::new(ch.clone()), ids.clone());
        tasks.spawn(async move {
            for id in ids.iter().skip(w).step_by(WAYS) {
                let req = pb::DeleteVolumeRequest {
                    volume_id: id.clone(),
                    ..Default::default()
                };
                c.delete_volume(req).await?;
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// `n` Identity.Probe calls from 64 tasks; returns the seconds taken.
pub async fn probes(ch: &Channel, n: usize) -> Res<f64> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WAYS {
        let mut c = IdentityClient::new(ch.clone());
        tasks.spawn(async move {
            for _ in (w..n).step_by(WAYS) {
                c.probe(pb::ProbeRequest {}).await?;
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// `n` mkdir(0777) calls in `dir` from 64 threads; returns the seconds taken and the paths made.
pub fn mkdirs(dir: &Path, n: usize, tag: &str) -> Res<(f64, Vec<PathBuf>)> {
    let t = Instant::now();
    let made = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WAYS)
            .map(|w| {
                s.spawn(move || -> std::io::Result<Vec<PathBuf>> {
                    let mut got = Vec::new();
                    for i in (w..n).step_by(WAYS) {
                        let path = dir.join(format!("{tag}-{i}"));
                        std::fs::DirBuilder::new().mode(0o777).create(&path)?;
                        got.push(path);
                    }
                    Ok(got)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for w in workers {
            all.extend(w.join().expect("mkdir worker panicked")?);
        }
        Ok::<_, std::io::Error>(all)
    })?;
    Ok((t.elapsed().as_secs_f64(), made))
}
