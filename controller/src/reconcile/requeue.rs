//! When a pass runs again: the resync of a converged object (jittered, per-object annotation), the
//! backoff after an error (honouring Retry-After), and the delay before a write is verified.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Resource;
use kube::runtime::controller::Action;

use super::error::Error;

/// After a pass failed: when the failure was a conflict on a Kubernetes write and nothing was sent to
/// Graph yet, someone (or this process, through a stale copy) changed the object since it was read; it is
/// read again at once, with no Warning and no status write.
pub fn reread_on_conflict(err: &Error, graph_calls: usize) -> Option<Action> {
    (err.category() == super::reasons::Category::KubernetesConflict && graph_calls == 0).then(|| {
        tracing::info!(error = %err, "the object changed since it was read; reading it again");
        Action::requeue(Duration::from_millis(100))
    })
}

/// The resync delay of an object: its annotation (within its bounds), or the operator default, jittered
/// by up to 10%.
pub fn resync_after(obj: &impl Resource, default: Duration) -> Duration {
    let base = crate::crd::annotations::interval(
        obj.meta().annotations.as_ref(),
        crate::crd::annotations::Interval::Resync,
    )
    .unwrap_or(default);
    let seed = obj
        .meta()
        .uid
        .as_deref()
        .unwrap_or("")
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    jittered(base, (seed ^ u64::from(nanos)) % 1000)
}

/// `base` lengthened by `permille` tenths of a percent (0 to 999: up to 10%), in integer arithmetic
/// that cannot overflow.
fn jittered(base: Duration, permille: u64) -> Duration {
    let extra = base / 10_000 * u32::try_from(permille.min(999)).unwrap_or(0);
    base.saturating_add(extra)
}

pub use super::outcome::Next;

/// Turns the planner's [`Next`] into the controller's action.
pub fn action(next: Next, obj: &impl Resource, settings: &super::settings::Settings) -> Action {
    match next {
        Next::Verify => Action::requeue(settings.verify_delay),
        Next::Soon => Action::requeue(Duration::from_secs(15)),
        Next::Resync => Action::requeue(resync_after(obj, settings.resync)),
        Next::Change => Action::await_change(),
        Next::After(d) => Action::requeue(d),
    }
}

/// What follows a reported error: a transient one goes back to the error policy (backoff honouring
/// Retry-After); a permanent one waits for the resync (a fixed permission or tenant works again without a
/// spec change).
pub fn after_error<K: Resource>(obj: &K, err: Error, resync: Duration) -> Result<Action, Error> {
    if err.is_transient() {
        Err(err)
    } else {
        Ok(Action::requeue(resync_after(obj, resync)))
    }
}

/// Per-object failure counts for exponential requeue backoff.
#[derive(Default)]
pub struct Backoff(std::sync::Mutex<BTreeMap<String, u32>>);

impl Backoff {
    /// The wait before the next try: what the service asked for, else 1 s doubling up to 5 min.
    pub fn next(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        *n = (*n + 1).min(16);
        let exp = Duration::from_secs(1)
            .saturating_mul(1 << (*n - 1).min(9))
            .min(Duration::from_secs(300));
        retry_after.map_or(exp, |r| r.max(Duration::from_millis(100)))
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_adds_at_most_a_tenth_and_never_overflows() {
        let d = Duration::from_secs(600);
        assert_eq!(jittered(d, 0), d);
        assert_eq!(jittered(d, 999), Duration::from_millis(659_940));
        assert_eq!(jittered(Duration::MAX, 999), Duration::MAX);
    }

    #[test]
    fn backoff_doubles_and_honours_retry_after() {
        let b = Backoff::default();
        assert_eq!(b.next("a", None), Duration::from_secs(1));
        assert_eq!(b.next("a", None), Duration::from_secs(2));
        assert_eq!(b.next("a", Some(Duration::from_secs(7))), Duration::from_secs(7));
        b.reset("a");
        assert_eq!(b.next("a", None), Duration::from_secs(1));
    }
}
