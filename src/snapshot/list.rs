//! ListSnapshots in domain terms: the ready snapshots on every known share plus the ones this
//! process is still cutting, filtered by id or source volume, in pages.

use super::store;
use super::{Page, Snapshot};
use crate::controller::Volumes;
use crate::error::{Error, Result};
use crate::token;
use std::time::Duration;

impl Volumes {
    /// Lists snapshots `max` at a time (0: all) after `token`. A `snapshot_id` filter gives that
    /// snapshot or nothing; a `source_volume_id` filter keeps the snapshots of that volume.
    pub async fn list_snapshots(
        &self,
        token: &str,
        max: usize,
        snapshot_id: &str,
        source_volume_id: &str,
        deadline: Duration,
    ) -> Result<Page> {
        let after = token::decode(token)?;
        let wanted =
            |s: &Snapshot| source_volume_id.is_empty() || s.source_volume_id == source_volume_id;
        if !snapshot_id.is_empty() {
            let snapshots = match self.get_snapshot(snapshot_id, deadline).await {
                Ok(s) if wanted(&s) && after.is_none() => vec![s],
                Ok(_) | Err(Error::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            };
            return Ok(Page {
                snapshots,
                next: String::new(),
            });
        }
        let mut all: Vec<(String, Snapshot)> = Vec::new();
        for spec in self.shares.known().await {
            let found = self
                .on_share(&spec, "list snapshots", deadline, store::list)
                .await?;
            all.extend(
                found
                    .into_iter()
                    .map(|(dir, meta)| (format!("{spec}\0{dir}"), Snapshot::from_meta(meta))),
            );
        }
        for (key, job) in self.jobs.with_prefix("snap:") {
            if job.running() {
                let key = key.trim_start_matches("snap:").to_owned();
                all.push((key, Snapshot::from_info(&job.info)));
            }
        }
        all.retain(|(_, s)| wanted(s));
        // Ready copies first, so a snapshot that just became ready is listed once, as ready.
        all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.ready.cmp(&a.1.ready)));
        all.dedup_by(|a, b| a.0 == b.0);
        let (page, next) = token::window(&all, |(k, _)| k, after.as_deref(), max);
        Ok(Page {
            snapshots: all.drain(page).map(|(_, s)| s).collect(),
            next,
        })
    }
}
