//! The progress poll a pass makes after it acts, and when the pass looks again: decided here, from the
//! observation's time, so the driver only carries them out.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crd::{ExpeditedDeployment, RolloutStatus};
use crate::reconcile::outcome::Next;

/// A progress poll: the devices whose progress is read this pass (the audience's, and with waves each
/// wave sent apart, for the gates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// How old the tenant's device signals may be.
    pub interval: Duration,
    /// With waves: each wave's name, and whether it was sent.
    pub waves: Option<Vec<(String, bool)>>,
}

impl Poll {
    /// Which waves were sent (every wave's devices count when `None`: there are no waves).
    pub fn promoted(&self) -> Option<Vec<bool>> {
        self.waves
            .as_ref()
            .map(|w| w.iter().map(|(_, sent)| *sent).collect())
    }
}

/// What the poll gave, for when to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// New figures were read.
    Read,
    /// No snapshot of the device signals yet (one is being read), or the entry's revisions could not
    /// be read: look again soon.
    Waiting,
    /// Not due, or nothing to count.
    NotDue,
}

/// The object's progress poll interval: its annotation, else `default` (`--progress-interval`).
pub fn progress_interval(obj: &ExpeditedDeployment, default: Duration) -> Duration {
    crate::crd::annotations::interval(
        obj.metadata.annotations.as_ref(),
        crate::crd::annotations::Interval::Progress,
    )
    .unwrap_or(default)
}

/// Whether the last recorded progress is older than `interval` at `at` (or there is none). Due a little
/// early (95%), so a pass scheduled for the interval finds it due.
pub fn progress_due(obj: &ExpeditedDeployment, interval: Duration, at: DateTime<Utc>) -> bool {
    let last = obj
        .status
        .as_ref()
        .and_then(|s| s.progress.as_ref())
        .and_then(|p| p.observed_time.as_deref())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    last.is_none_or(|t| {
        let age = at.signed_duration_since(t);
        age.to_std().unwrap_or_default() >= interval - interval / 20
    })
}

/// The poll a pass makes, when it is due: over the waves the pass's rollout status lists.
pub fn poll(
    obj: &ExpeditedDeployment,
    rollout: Option<&RolloutStatus>,
    default_interval: Duration,
    at: DateTime<Utc>,
) -> Option<Poll> {
    let interval = progress_interval(obj, default_interval);
    progress_due(obj, interval, at).then(|| Poll {
        interval,
        waves: rollout.map(|r| {
            r.waves
                .iter()
                .map(|w| (w.name.clone(), w.promoted_time.is_some()))
                .collect()
        }),
    })
}

/// When a pass with a deployment looks again: when the planner said, but no later than the progress
/// poll is next due, soon when the device signals are still being read, and at once when new figures
/// may open a gate or halt the rollout (`gated`: a rollout neither halted nor aborted). `resync` is the
/// object's jittered resync.
pub fn next_look(
    next: Next,
    has_deployment: bool,
    gated: bool,
    polled: Polled,
    interval: Duration,
    resync: Duration,
) -> Next {
    match next {
        Next::Resync | Next::After(_) if has_deployment => {
            let wait = match polled {
                Polled::Waiting => Duration::from_secs(5),
                Polled::Read if gated => Duration::from_secs(1),
                _ => interval,
            };
            let planned = match next {
                Next::After(d) => d,
                _ => resync,
            };
            // A gate's time is kept, and so is the progress poll, whichever comes first.
            Next::After(planned.min(wait))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_look_keeps_the_earliest_of_the_plan_the_poll_and_new_figures() {
        let (min, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
        let look = |next, deployment, gated, polled| next_look(next, deployment, gated, polled, min, hour);
        assert_eq!(look(Next::Resync, true, false, Polled::NotDue), Next::After(min));
        assert_eq!(
            look(Next::Resync, true, false, Polled::Waiting),
            Next::After(Duration::from_secs(5))
        );
        assert_eq!(
            look(Next::Resync, true, true, Polled::Read),
            Next::After(Duration::from_secs(1))
        );
        assert_eq!(look(Next::Resync, true, false, Polled::Read), Next::After(min));
        assert_eq!(
            look(Next::After(Duration::from_secs(7)), true, false, Polled::NotDue),
            Next::After(Duration::from_secs(7)),
            "a gate's time is kept"
        );
        assert_eq!(
            look(Next::Resync, false, false, Polled::NotDue),
            Next::Resync,
            "no deployment: no poll"
        );
        assert_eq!(look(Next::Verify, true, true, Polled::Read), Next::Verify);
    }

    #[test]
    fn progress_is_due_by_the_observation_time() {
        let obj: ExpeditedDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
            "metadata": {"name": "r", "namespace": "n", "annotations": {"wufb.dev/progress-interval": "10m"}},
            "spec": {"content": {"latest": true}},
            "status": {"progress": {"targeted": 1, "upToDate": 0, "pending": 1, "failed": 0, "notReporting": 0, "observedTime": "2026-12-01T10:00:00Z"}}
        }))
        .unwrap();
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let interval = progress_interval(&obj, Duration::from_secs(300));
        assert_eq!(interval, Duration::from_secs(600), "the annotation wins");
        assert!(!progress_due(&obj, interval, at("2026-12-01T10:05:00Z")));
        assert!(
            progress_due(&obj, interval, at("2026-12-01T10:09:40Z")),
            "due a little early"
        );
        let p = poll(&obj, None, Duration::from_secs(300), at("2026-12-01T11:00:00Z")).unwrap();
        assert_eq!(p.interval, interval);
        assert_eq!(p.promoted(), None);
    }
}
