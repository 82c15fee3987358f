//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas only one acts.
//!
//! The protocol is client-go's: the leader writes its identity and a fresh `renewTime` every retry
//! period; the others take the Lease over only once its record has stayed unchanged for
//! `leaseDurationSeconds` as timed by their own clock (so clock skew between machines does not
//! matter). Every write is an update with the `resourceVersion` that was read, so of two replicas
//! racing for the same Lease the apiserver lets exactly one win (409 Conflict for the other). A
//! leader that cannot renew within its renew deadline (shorter than the lease duration) stops
//! acting before anyone else can take over.

use super::kube_error;
use crate::error::{Error, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::time::Instant;

/// Where the Lease is and how this replica takes part.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, written to `holderIdentity`.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry_period: Duration,
}

/// The part of a Lease the election looks at. Two equal states mean "nothing happened".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// `holderIdentity`; `None` or empty when released.
    pub holder: Option<String>,
    /// `leaseDurationSeconds`.
    pub duration: Duration,
    /// `renewTime`, as written (compared, never used as a clock).
    pub renew_time: Option<String>,
    /// `leaseTransitions`.
    pub transitions: i32,
}

impl LeaseState {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseState {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
            renew_time: spec.renew_time.map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// What to do about the Lease at one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease yet: create it, holding it.
    Create,
    /// We hold it: write a fresh renewTime.
    Renew,
    /// Released, or expired by our clock: take it over.
    TakeOver,
    /// Someone else holds a valid Lease: wait.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decides from the Lease's current record (if any), our identity, and how long that record has
/// been seen unchanged by this replica.
pub fn decide(current: Option<&LeaseState>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(record) = current else {
        return Decision::Create;
    };
    match record.holder.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None => Decision::TakeOver,
        Some(_) if unchanged_for >= record.duration => Decision::TakeOver,
        Some(holder) => Decision::Follow {
            holder: holder.to_owned(),
        },
    }
}

/// Derives a Lease name (a DNS subdomain) from a provisioner name such as
/// `k8s-sigs.io/nfs-subdir-external-provisioner`.
pub fn lease_name(provisioner: &str) -> String {
    let mapped: String = provisioner
        .to_ascii_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = trimmed.chars().take(253).collect();
    if name.is_empty() {
        "nfs-subdir-csi".to_owned()
    } else {
        name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_owned()
    }
}

/// One replica's view of the election.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    observed: Option<(LeaseState, Instant)>,
}

impl Elector {
    /// An elector for the Lease `cfg.namespace/cfg.name`.
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.cfg.identity
    }

    /// One attempt to become or stay the leader. `Ok(true)`: we hold the Lease now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let name = &self.cfg.name;
        let current = self
            .api
            .get_opt(name)
            .await
            .map_err(|e| kube_error(format!("get lease {name}"), e))?;
        let record = current.as_ref().map(LeaseState::of);
        let unchanged_for = match (&self.observed, &record) {
            (Some((seen, since)), Some(now)) if seen == now => since.elapsed(),
            _ => {
                self.observed = record.clone().map(|r| (r, Instant::now()));
                Duration::ZERO
            }
        };
        let decision = decide(record.as_ref(), &self.cfg.identity, unchanged_for);
        let now = Some(MicroTime(Timestamp::now()));
        let duration = Some(self.cfg.lease_duration.as_secs().clamp(1, i32::MAX as u64) as i32);
        let written = match (decision, current) {
            (Decision::Follow { holder }, _) => {
                tracing::debug!(lease = %name, %holder, "another replica leads");
                return Ok(false);
            }
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: duration,
                        acquire_time: now.clone(),
                        renew_time: now,
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.cfg.identity.clone());
                    spec.acquire_time = now.clone();
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = duration;
                spec.renew_time = now;
                // The resourceVersion read above makes this a compare-and-swap.
                self.api.replace(name, &PostParams::default(), &lease).await
            }
            (_, None) => unreachable!("decide returns Create when there is no Lease"),
        };
        match written {
            Ok(lease) => {
                self.observed = Some((LeaseState::of(&lease), Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                tracing::debug!(lease = %name, "lost a race for the lease");
                Ok(false)
            }
            Err(e) => Err(kube_error(format!("write lease {name}"), e)),
        }
    }

    /// Waits until this replica holds the Lease. Errors are logged and retried.
    pub async fn acquire(&mut self) {
        let mut said = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became the leader");
                    return;
                }
                Ok(false) => {
                    let holder = self.observed.as_ref().and_then(|(r, _)| r.holder.clone());
                    if said != holder {
                        tracing::info!(lease = %self.cfg.name, holder = ?holder, "waiting for leadership");
                        said = holder;
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %self.cfg.name, error = %e, "cannot acquire the lease")
                }
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Renews the Lease every retry period for as long as that works. Returns an error once the
    /// Lease could not be renewed for the renew deadline, or is held by someone else: the caller
    /// must stop acting at once.
    pub async fn hold(&mut self) -> Result<()> {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let left = self
                .cfg
                .renew_deadline
                .saturating_sub(last_renewal.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewal = Instant::now(),
                Ok(Ok(false)) => {
                    return Err(Error::FailedPrecondition(format!(
                        "lease {} was taken over by another replica",
                        self.cfg.name
                    )));
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.cfg.name, error = %e, "cannot renew the lease")
                }
                Err(_) => {}
            }
            if last_renewal.elapsed() >= self.cfg.renew_deadline {
                return Err(Error::Unavailable(format!(
                    "lease {} not renewed within {:?}",
                    self.cfg.name, self.cfg.renew_deadline
                )));
            }
        }
    }

    /// Gives the Lease up (on shutdown) so that another replica takes over at once.
    pub async fn release(&mut self) {
        let name = &self.cfg.name;
        let Ok(Some(mut lease)) = self.api.get_opt(name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %name, "released the lease"),
            Err(e) => tracing::warn!(lease = %name, error = %e, "cannot release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str) -> LeaseState {
        LeaseState {
            holder: Some(holder.to_owned()),
            duration: Duration::from_secs(15),
            renew_time: Some("2026-11-26T16:00:00Z".to_owned()),
            transitions: 3,
        }
    }

    #[test]
    fn decides_like_client_go() {
        let s = Duration::from_secs;
        assert_eq!(decide(None, "a", s(0)), Decision::Create);
        assert_eq!(decide(Some(&held_by("a")), "a", s(100)), Decision::Renew);
        assert_eq!(
            decide(Some(&held_by("b")), "a", s(14)),
            Decision::Follow { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&held_by("b")), "a", s(15)),
            Decision::TakeOver,
            "unchanged for a whole lease duration: expired"
        );
        let released = LeaseState {
            holder: None,
            ..held_by("b")
        };
        assert_eq!(decide(Some(&released), "a", s(0)), Decision::TakeOver);
    }

    #[test]
    fn records_read_a_lease() {
        let lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
                ..LeaseSpec::default()
            }),
        };
        let r = LeaseState::of(&lease);
        assert_eq!(r.holder, None, "an empty holder is a released lease");
        assert_eq!(r.duration, Duration::from_secs(15));
        assert_eq!(r.transitions, 0);
        assert!(r.renew_time.is_some());
        assert_eq!(decide(Some(&r), "a", Duration::ZERO), Decision::TakeOver);
        let empty = LeaseState::of(&Lease::default());
        assert_eq!((empty.holder, empty.duration), (None, Duration::ZERO));
    }

    #[test]
    fn lease_names_are_dns_subdomains() {
        assert_eq!(lease_name("nfs-subdir.csi.rs"), "nfs-subdir.csi.rs");
        assert_eq!(
            lease_name("k8s-sigs.io/nfs-subdir-external-provisioner"),
            "k8s-sigs.io-nfs-subdir-external-provisioner"
        );
        assert_eq!(lease_name("/Odd_Name/"), "odd-name");
        assert_eq!(lease_name("///"), "nfs-subdir-csi");
        assert!(lease_name(&"x".repeat(300)).len() <= 253);
    }
}

#[cfg(test)]
#[path = "leader_api_tests.rs"]
mod api_tests;
