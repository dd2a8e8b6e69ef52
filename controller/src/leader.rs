//! Leader election on a `coordination.k8s.io/v1` Lease: one replica writes, the others stand by.
//!
//! Timing follows client-go's leader election: a standby judges a lease expired when its record has not
//! changed for the lease duration *as measured on the standby's own clock* since it last saw it change,
//! never by comparing the holder's `renewTime` with the local clock (clock skew between nodes must not
//! give two leaders). The leader renews every retry period and gives up when it could not renew for the
//! renew deadline, which is shorter than the lease duration, so it stops before anyone may take over. A
//! leader that is shutting down releases the lease, and a standby takes it at its next retry.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// The Lease annotation where the leader records its version (`wufb-operator check` compares it with its
/// own).
pub const VERSION_ANNOTATION: &str = "wufb.dev/operator-version";

/// This build's version, as the Lease records it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Lease's metadata with this replica's version recorded (other annotations kept).
fn with_version(mut meta: ObjectMeta) -> ObjectMeta {
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(VERSION_ANNOTATION.into(), VERSION.into());
    meta
}

/// Who competes for which Lease, and how fast.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid without renewal (client-go: 15 s).
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it gives up (client-go: 10 s).
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby retries (client-go: 2 s).
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What this replica last saw of the lease, and when (by its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    holder: String,
    renew_time: Option<String>,
    transitions: Option<i32>,
}

/// The state of one replica's election: the last record seen and when it changed.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    seen: Option<(Seen, Instant)>,
}

fn spec_for(cfg: &LeaseConfig, old: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let ours = old.is_some_and(|s| s.holder_identity.as_deref() == Some(cfg.identity.as_str()));
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: if ours {
            old.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(
            old.and_then(|s| s.lease_transitions).unwrap_or(0) + i32::from(!ours && old.is_some()),
        ),
        ..Default::default()
    }
}

impl Elector {
    pub fn new(client: &kube::Client, cfg: &LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client.clone(), &cfg.namespace),
            cfg: cfg.clone(),
            seen: None,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Records what the lease says now; returns how long it has gone unchanged on this replica's clock.
    fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Duration {
        let current = Seen {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions,
        };
        match &self.seen {
            Some((last, at)) if *last == current => now.saturating_duration_since(*at),
            _ => {
                self.seen = Some((current, now));
                Duration::ZERO
            }
        }
    }

    /// One attempt to take or renew the lease. `Ok(true)` when this replica holds it afterwards.
    pub async fn try_acquire(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(current) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: with_version(ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                }),
                spec: Some(spec_for(&self.cfg, None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let unchanged_for = self.observe(&spec, Instant::now());
        let holder = spec.holder_identity.as_deref().unwrap_or("");
        let duration = spec
            .lease_duration_seconds
            .map_or(self.cfg.duration, |s| Duration::from_secs(s.max(1) as u64));
        let free = holder.is_empty() || holder == self.cfg.identity || unchanged_for > duration;
        if !free {
            return Ok(false);
        }
        let lease = Lease {
            metadata: with_version(current.metadata.clone()),
            spec: Some(spec_for(&self.cfg, Some(&spec), now)),
        };
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                if let Some(s) = &written.spec {
                    self.observe(s, Instant::now());
                }
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&mut self) {
        let mut logged = false;
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired leadership");
                    return;
                }
                Ok(false) if !logged => {
                    tracing::info!(lease = %self.cfg.name, "another replica leads; standing by");
                    logged = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "failed to read the leader lease"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Renews the lease until it is taken by another replica or cannot be renewed within the renew
    /// deadline; then returns. The caller must stop writing at once.
    pub async fn hold(&mut self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let attempt = tokio::time::timeout(self.cfg.renew_deadline, self.try_acquire()).await;
            match attempt {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!(lease = %self.cfg.name, "leadership lost to another replica");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "failed to renew the leader lease"),
                Err(_) => tracing::warn!("renewing the leader lease timed out"),
            }
            // Stop before another replica may consider the lease expired.
            if renewed.elapsed() + self.cfg.retry_period >= self.cfg.renew_deadline {
                tracing::warn!(lease = %self.cfg.name, "could not renew leadership in time");
                return;
            }
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at its next retry instead of waiting
    /// for expiry. Returns whether the lease was released.
    pub async fn release(&mut self) -> bool {
        let Ok(Some(current)) = self.api.get_opt(&self.cfg.name).await else {
            return false;
        };
        if current.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
            != Some(self.cfg.identity.as_str())
        {
            return false;
        }
        let mut spec = current.spec.clone().unwrap_or_default();
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        // client-go's release: one second, so that anyone reading it sees it free.
        spec.lease_duration_seconds = Some(1);
        let lease = Lease {
            metadata: with_version(current.metadata.clone()),
            spec: Some(spec),
        };
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.cfg.name, "released leadership");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to release the leader lease");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elector() -> Elector {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        Elector::new(&client, &LeaseConfig::new("ns", "l", "me"))
    }

    fn spec(holder: &str, renew: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn expiry_is_measured_on_the_local_clock_from_the_last_change_seen() {
        let mut e = elector();
        // A renewTime far in the past (the holder's clock is behind) is not expiry by itself.
        let start = Instant::now();
        assert_eq!(e.observe(&spec("a", 1_000), start), Duration::ZERO);
        assert_eq!(
            e.observe(&spec("a", 1_000), start + Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        // A renewal, whatever its timestamp says, restarts the count.
        assert_eq!(
            e.observe(&spec("a", 900), start + Duration::from_secs(12)),
            Duration::ZERO
        );
        assert_eq!(
            e.observe(&spec("a", 900), start + Duration::from_secs(28)),
            Duration::from_secs(16)
        );
    }

    #[test]
    fn transitions_count_changes_of_holder() {
        let cfg = LeaseConfig::new("ns", "l", "me");
        let now = Timestamp::now();
        let theirs = LeaseSpec {
            holder_identity: Some("them".into()),
            lease_transitions: Some(2),
            ..Default::default()
        };
        assert_eq!(spec_for(&cfg, Some(&theirs), now).lease_transitions, Some(3));
        let ours = LeaseSpec {
            holder_identity: Some("me".into()),
            lease_transitions: Some(3),
            ..Default::default()
        };
        assert_eq!(spec_for(&cfg, Some(&ours), now).lease_transitions, Some(3));
    }

    #[test]
    fn the_leader_gives_up_before_the_lease_can_expire_elsewhere() {
        let cfg = LeaseConfig::new("ns", "l", "me");
        assert!(cfg.renew_deadline + cfg.retry_period <= cfg.duration);
    }
}
