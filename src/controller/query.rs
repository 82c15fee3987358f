//! The volume operations that only read: look a volume up, list volumes, free space of a share.
//! A volume with a project quota reports its project's limit as its capacity (see [`crate::quota`]).

use super::listing::Listing;
use super::{Page, Volume, Volumes};
use crate::error::{Error, Result};
use crate::token;
use crate::volume::{Params, VolumeContext, VolumeId};
use std::sync::Arc;
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
        let key = crate::share::record::key(&id.sub_dir);
        let limits = self
            .quota_limits(&id.share, vec![key.clone()], deadline)
            .await;
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
    /// project's limit as its capacity where it has one, else its recorded size. A first page
    /// lists the names of every record and keeps that listing briefly ([`super::listing::Listings`]); the pages
    /// after it page that listing, and every page reads only its own records.
    pub async fn list(&self, token: &str, max: usize, deadline: Duration) -> Result<Page> {
        let after = token::decode(token)?;
        let listing = match after.as_ref().and_then(|_| self.listings.fresh()) {
            Some(kept) => kept,
            None => Arc::new(self.list_names(deadline).await?),
        };
        let (runs, next) = listing.page(after.as_deref(), max);
        if next.is_empty() {
            self.listings.drop_last();
        } else {
            self.listings.keep(listing.clone());
        }
        let mut volumes = Vec::with_capacity(runs.iter().map(|(_, keys)| keys.len()).sum());
        for (share, keys) in runs {
            let spec = &listing.specs[share];
            let records = self
                .on_share(spec, "list volumes", deadline, move |root| {
                    root.records_of(&keys)
                })
                .await?;
            let keys = records.iter().map(|(key, _)| key.clone()).collect();
            let limits = self.quota_limits(spec, keys, deadline).await;
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

    /// The names of the records on every known share.
    async fn list_names(&self, deadline: Duration) -> Result<Listing> {
        let specs = self.shares.known().await;
        let mut keys = Vec::with_capacity(specs.len());
        for spec in &specs {
            keys.push(
                self.on_share(spec, "list volumes", deadline, |root| root.record_keys())
                    .await?,
            );
        }
        Ok(Listing::new(specs, keys))
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
