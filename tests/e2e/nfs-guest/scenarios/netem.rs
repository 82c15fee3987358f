//! A slow link to the server (slow-server): the volume life cycle (CreateVolume, NodePublish, a
//! write and a read through the pod's mount, NodeUnpublish, DeleteVolume) on a plain link, with
//! tc netem's 100 ms delay, then with 5 % loss, on what the guest sends. Every cycle must give the
//! right results; the median time of each call per link is printed.

use crate::class::{Class, dir_of, new_name, pod_target};
use crate::csi::{Csi, DL, connect};
use crate::harness::record_deleted;
use crate::link::{heal, median_ms, netem, qdiscs};
use crate::{Env, Report};
use std::time::{Duration, Instant};

/// Cycles per link.
const CYCLES: usize = 3;
/// What each cycle writes and reads back.
const BYTES: usize = 256 << 10;

/// One link's times per step.
#[derive(Default)]
struct Times {
    create: Vec<Duration>,
    publish: Vec<Duration>,
    write: Vec<Duration>,
    read: Vec<Duration>,
    unpublish: Vec<Duration>,
    delete: Vec<Duration>,
}

/// One life cycle; `Err(step and why)` on a wrong result.
async fn cycle(
    csi: &Csi,
    class: &Class,
    n: usize,
    t: &mut Times,
    deleted: &mut Vec<String>,
) -> Result<(), String> {
    let name = new_name("pvc-slow");
    let r = csi
        .create(class.create(&name, &format!("slow-{n}")), DL)
        .await;
    t.create.push(r.took);
    let vol = r.value().map_err(|e| format!("CreateVolume: {e}"))?;
    deleted.push(dir_of(&vol));
    let target = pod_target(&dir_of(&vol));
    let r = csi.publish(class.publish(&vol, &target), DL).await;
    t.publish.push(r.took);
    r.value().map_err(|e| format!("NodePublish: {e}"))?;
    let data: Vec<u8> = (0..BYTES).map(|i| (i * 31 + n) as u8).collect();
    let file = target.join("data");
    let (wrote, read) = tokio::task::spawn_blocking({
        let (file, data) = (file.clone(), data.clone());
        move || {
            let s = Instant::now();
            std::fs::write(&file, &data)?;
            // fsync: the data has reached the server, not only the page cache
            std::fs::File::open(&file)?.sync_all()?;
            let wrote = s.elapsed();
            let s = Instant::now();
            // from the server, not the page cache: drop the guest's clean pages first
            std::fs::write("/proc/sys/vm/drop_caches", "1")?;
            let back = std::fs::read(&file)?;
            if back != data {
                return Err(std::io::Error::other(
                    "read back differs from what was written",
                ));
            }
            Ok::<_, std::io::Error>((wrote, s.elapsed()))
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("write/read: {e}"))?;
    t.write.push(wrote);
    t.read.push(read);
    let r = csi.unpublish(&vol.volume_id, &target, DL).await;
    t.unpublish.push(r.took);
    r.value().map_err(|e| format!("NodeUnpublish: {e}"))?;
    let r = csi.delete(&vol.volume_id, DL).await;
    t.delete.push(r.took);
    r.value().map_err(|e| format!("DeleteVolume: {e}"))?;
    Ok(())
}

pub async fn slow_server(env: &Env, rep: &mut Report) {
    let csi = connect(&env.socket).await;
    let class = Class::with_flags(env, &env.share, "4.1");
    let mut deleted = Vec::new();
    for (link, spec) in [
        ("plain", None),
        ("delay-100ms", Some("delay 100ms")),
        ("loss-5pct", Some("loss 5%")),
    ] {
        if let Some(spec) = spec {
            let set = netem(spec);
            if !rep.check(
                &format!("slow-server-{link}-set"),
                set.is_ok(),
                format!("{set:?} {:?}", qdiscs()),
            ) {
                break;
            }
        }
        let mut times = Times::default();
        let started = Instant::now();
        let mut wrong = Vec::new();
        for n in 0..CYCLES {
            if let Err(e) = cycle(&csi, &class, n, &mut times, &mut deleted).await {
                wrong.push(format!("cycle {n}: {e}"));
            }
        }
        rep.check(
            &format!("slow-server-{link}-cycles-correct"),
            wrong.is_empty(),
            format!(
                "{CYCLES} create/publish/write+read {} KiB/unpublish/delete cycles in {} ms{}",
                BYTES >> 10,
                started.elapsed().as_millis(),
                if wrong.is_empty() {
                    String::new()
                } else {
                    format!(": {wrong:?}")
                }
            ),
        );
        println!(
            "MEASURE slow-server {link}: median ms over {CYCLES} cycles: CreateVolume {} | NodePublish {} | \
             write+fsync 256 KiB {} | read 256 KiB {} | NodeUnpublish {} | DeleteVolume {}",
            median_ms(&times.create),
            median_ms(&times.publish),
            median_ms(&times.write),
            median_ms(&times.read),
            median_ms(&times.unpublish),
            median_ms(&times.delete)
        );
    }
    let healed = heal();
    rep.check(
        "slow-server-link-restored",
        healed.is_ok(),
        format!("{healed:?}"),
    );
    record_deleted(env, &deleted);
}
