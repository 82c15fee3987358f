//! The scale rows of `cargo bench --bench local` (issue 15, on a local share): ListVolumes over
//! all pages vs a plain listing of the same records (readdir + readlink of each), and process
//! start to the first Probe answer with the share's volumes and 1,000 entries waiting in its trash
//! (removed in the background), with the resident memory once the trash is empty.

use super::{Running, rss_kib, start, stop};
use crate::common::median;
use nfs_subdir_csi::csi::pb::{self, controller_client::ControllerClient};
use std::path::Path;
use std::time::{Duration, Instant};

/// Entries planted in the trash before each start.
const TRASH: usize = 1000;

/// Every page of ListVolumes, `max` entries a page (0: one call); returns how many were listed.
async fn list_all(r: &Running, max: i32) -> usize {
    let mut ctl = ControllerClient::new(r.channel.clone());
    let (mut token, mut n) = (String::new(), 0);
    loop {
        let page = ctl
            .list_volumes(pb::ListVolumesRequest {
                max_entries: max,
                starting_token: token,
            })
            .await
            .expect("ListVolumes")
            .into_inner();
        n += page.entries.len();
        if page.next_token.is_empty() {
            return n;
        }
        token = page.next_token;
    }
}

/// The same records read by hand: every name in the records directory and its symlink's text.
fn plain_listing(records: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(records).expect("read records") {
        let entry = entry.expect("readdir");
        if std::fs::read_link(entry.path()).is_ok() {
            n += 1;
        }
    }
    n
}

fn plant_trash(share: &Path) {
    let trash = share.join(".nfs-subdir-csi/trash");
    for i in 0..TRASH {
        let e = trash.join(format!("1700000000-left-{i}/data"));
        std::fs::create_dir_all(&e).expect("plant trash");
        std::fs::write(e.join("file"), b"x").expect("plant trash");
    }
}

/// Runs the scale rows on the driver's directory `dir`, whose share already holds `volumes`.
pub async fn rows(dir: &Path, volumes: usize) {
    let share = dir.join("share");
    let records = share.join(".nfs-subdir-csi/volumes");
    let r = start(dir).await;
    let (mut all, mut paged, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut listed = (0, 0, 0);
    for _ in 0..5 {
        let t = Instant::now();
        listed.0 = list_all(&r, 0).await;
        all.push(t.elapsed());
        let t = Instant::now();
        listed.1 = list_all(&r, 500).await;
        paged.push(t.elapsed());
        let t = Instant::now();
        listed.2 = plain_listing(&records);
        plain.push(t.elapsed());
    }
    stop(r);
    let (a, p, l) = (median(&all), median(&paged), median(&plain));
    let ratio = |x: Duration| x.as_secs_f64() / l.as_secs_f64();
    println!(
        "ListVolumes of {} volumes (5 runs, medians): one call {a:?} ({:.2}x), pages of 500 {p:?} \
         ({:.2}x, {} listed); plain readdir + readlink of the {} records {l:?}",
        listed.0,
        ratio(a),
        ratio(p),
        listed.1,
        listed.2
    );
    println!(
        "ROW Scale: ListVolumes all pages (500 a page) vs plain listing, {volumes} volumes, local share | {p:.1?} vs {l:.1?} = {:.2}x | <= 2x",
        ratio(p)
    );

    let mut starts = Vec::new();
    let mut rss = (0, 0);
    for _ in 0..5 {
        plant_trash(&share);
        let r = start(dir).await;
        starts.push(r.started_to_probe);
        rss.0 = rss_kib(r.child.id());
        let trash = share.join(".nfs-subdir-csi/trash");
        let t = Instant::now();
        while std::fs::read_dir(&trash).map(|d| d.count()).unwrap_or(0) > 0 {
            assert!(t.elapsed() < Duration::from_secs(120), "trash not emptied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rss.1 = rss_kib(r.child.id());
        stop(r);
    }
    let s = median(&starts);
    println!(
        "start -> first Probe with {volumes} volumes and {TRASH} trash entries (5 runs): median {s:?}; \
         RSS at the first Probe {:.1} MB, once the trash is empty {:.1} MB",
        rss.0 as f64 / 1024.0,
        rss.1 as f64 / 1024.0
    );
    println!(
        "ROW Scale: start to Probe-ready, {volumes} volumes + {TRASH} trash entries, local share | {s:.1?} | <= 50 ms"
    );
}
