//! Leader election on a `coordination.k8s.io/v1` Lease: one replica writes, the others wait. A leader
//! that cannot renew within the lease duration stops (the process exits and restarts as a standby).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Who competes for which Lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the leader renews, and a standby retries.
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    now.as_second() > renew.0.as_second() + secs
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

/// One attempt to take or renew the lease. `Ok(true)` when this replica holds it afterwards.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec_for(cfg, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(current) => {
            let spec = current.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.as_deref().unwrap_or("");
            if !(holder.is_empty() || holder == cfg.identity || expired(&spec, now)) {
                return Ok(false);
            }
            let lease = Lease {
                metadata: current.metadata.clone(),
                spec: Some(spec_for(cfg, Some(&spec), now)),
            };
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: &kube::Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut logged = false;
    loop {
        match try_acquire(&api, cfg).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired leadership");
                return;
            }
            Ok(false) if !logged => {
                tracing::info!(lease = %cfg.name, "another replica leads; standing by");
                logged = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "failed to read the leader lease"),
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
}

/// Renews the lease until it is lost or cannot be renewed within its duration; then returns.
pub async fn hold(client: &kube::Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_acquire(&api, cfg).await {
            Ok(true) => last = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(lease = %cfg.name, "leadership lost to another replica");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "failed to renew the leader lease"),
        }
        // Stop before another replica may consider the lease expired.
        if last.elapsed() + cfg.renew_every >= cfg.duration {
            tracing::warn!(lease = %cfg.name, "could not renew leadership in time");
            return;
        }
    }
}

/// Gives the lease up (on shutdown), so a standby takes over without waiting for expiry.
pub async fn release(client: &kube::Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    if let Ok(Some(current)) = api.get_opt(&cfg.name).await
        && current.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(cfg.identity.as_str())
    {
        let mut spec = current.spec.clone().unwrap_or_default();
        spec.holder_identity = None;
        spec.renew_time = None;
        let lease = Lease {
            metadata: current.metadata.clone(),
            spec: Some(spec),
        };
        let _ = api.replace(&cfg.name, &PostParams::default(), &lease).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let now = Timestamp::now();
        let spec = |ago: i64| LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::from_second(now.as_second() - ago).unwrap_or(now),
            )),
            ..Default::default()
        };
        assert!(!expired(&spec(5), now));
        assert!(expired(&spec(20), now));
        assert!(expired(&LeaseSpec::default(), now));
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
}
