//! The volume operations that only read: look a volume up, list volumes, free space of a share.
//! A volume with a project quota reports its project's limit as its capacity (see [`crate::quota`]).

use super::{Page, Volume, Volumes};
use crate::error::{Error, Result};
use crate::token;
use crate::volume::{Params, VolumeContext, VolumeId};
use std::time::Duration;

impl Volumes {
    /// Looks a volume up: its capacity (its project's limit, else the recorded size), and
    /// `Some(reason)` if it is not healthy.
    pub async fn get(&self, raw_id: &str, deadline: Duration) -> Result<(Volume, Option<String>)> {
        let id = VolumeId::parse(raw_id)?;
        let sub = id.sub_dir.clone();
        let (exists, record) = self
            .on_share(
                &id.share,
                &format!("look up {sub}"),
                deadline,
                move |root| Ok((root.volume_exists(&sub)?, root.record(&sub)?)),
            )
            .await?;
        if !exists && record.is_none() {
            return Err(Error::NotFound(format!(
                "volume {raw_id}: no directory {}",
                id.sub_dir
            )));
        }
        let abnormal =
            (!exists).then(|| format!("directory {} is missing on {}", id.sub_dir, id.share));
        let limits = self.quota_limits(&id.share, deadline).await;
        let key = crate::share::record::key(&id.sub_dir);
        let capacity = match limits.get(&key) {
            Some(limit) => *limit,
            None => record.map(|r| r.capacity).unwrap_or_default(),
        };
        Ok((
            Volume {
                context: VolumeContext::of(&id),
                id: raw_id.to_owned(),
                capacity,
            },
            abnormal,
        ))
    }

    /// Lists volumes on every known share, `max` at a time (0: all), after `token`; each with its
    /// project's limit as its capacity where it has one, else its recorded size. Only the page's
    /// records are read: the names of all of them page the list (so reading every page costs
    /// one listing of names per page, and each record once).
    pub async fn list(&self, token: &str, max: usize, deadline: Duration) -> Result<Page> {
        let after = token::decode(token)?;
        let specs = self.shares.known().await;
        let mut all = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let keys = self
                .on_share(spec, "list volumes", deadline, |root| root.record_keys())
                .await?;
            let prefix = spec.to_string();
            all.extend(
                keys.into_iter()
                    .map(|key| (format!("{prefix}\0{key}"), (i, key))),
            );
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        // The same export reached with different mount options holds the same records.
        all.dedup_by(|a, b| a.0 == b.0);
        let (page, next) = token::page(all, after.as_deref(), max);
        let mut volumes = Vec::with_capacity(page.len());
        // The page is sorted by share, so each share's part is one run.
        let mut rest = page.as_slice();
        while let Some(((_, (i, _)), _)) = rest.split_first() {
            let share = *i;
            let run = rest.iter().take_while(|(_, (j, _))| *j == share).count();
            let keys: Vec<String> = rest[..run].iter().map(|(_, (_, k))| k.clone()).collect();
            rest = &rest[run..];
            let spec = &specs[share];
            let records = self
                .on_share(spec, "list volumes", deadline, move |root| {
                    root.records_of(&keys)
                })
                .await?;
            let limits = self.quota_limits(spec, deadline).await;
            volumes.extend(records.into_iter().filter_map(|(key, rec)| {
                match VolumeId::parse(&rec.volume_id) {
                    Ok(id) => Some(Volume {
                        context: VolumeContext::of(&id),
                        id: rec.volume_id,
                        capacity: limits.get(&key).copied().unwrap_or(rec.capacity),
                    }),
                    Err(e) => {
                        tracing::warn!(share = %spec, record = %key, error = %e, "record with a foreign id not listed");
                        None
                    }
                }
            }));
        }
        Ok(Page { volumes, next })
    }

    /// Free bytes on the share the parameters name (or the default share); 0 when none is known.
    /// Also with project quotas: a new volume can be given at most what the filesystem has free
    /// (limits are not reservations, so the sum of the limits may exceed it).
    pub async fn capacity(
        &self,
        params: &Params,
        mount_flags: &[String],
        deadline: Duration,
    ) -> Result<u64> {
        let spec = match params.share_spec(mount_flags, &self.defaults) {
            Ok(spec) => spec,
            Err(_) if params.server.is_none() && params.share.is_none() => return Ok(0),
            Err(e) => return Err(e),
        };
        let stats = self
            .on_share(&spec, "statvfs", deadline, |root| root.stats())
            .await?;
        Ok(stats.available_bytes)
    }
}
