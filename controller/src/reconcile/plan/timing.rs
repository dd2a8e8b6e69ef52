//! The planner's waits: a recorded object's absence confirmed, and the read lag after its own write.

use chrono::{DateTime, Utc};

use super::*;
use crate::crd::{ExpeditedDeployment, ExpeditedDeploymentStatus};

/// While a recorded object's absence is being confirmed: when it was first seen missing (RFC 3339; `at`
/// for a first 404) and how long is left of `--absence-confirm`. `None` once it has stayed missing long
/// enough to be created again.
pub(super) fn absence_wait(
    first_missing: Option<&str>,
    at: DateTime<Utc>,
    cfg: &PlanConfig,
) -> Option<(String, std::time::Duration)> {
    let since = first_missing
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t <= at)
        .unwrap_or(at);
    let waited = (at - since).to_std().unwrap_or_default();
    let left = cfg.absence_confirm.checked_sub(waited).filter(|l| !l.is_zero())?;
    Some((since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), left))
}

/// How much of the read-lag budget is left after the object's last write, when the spec is the one that
/// write carried out.
pub(super) fn lag_left(
    obj: &ExpeditedDeployment,
    status: &ExpeditedDeploymentStatus,
    now: DateTime<Utc>,
    cfg: &PlanConfig,
) -> Option<std::time::Duration> {
    if status.observed_generation.is_none() || status.observed_generation != obj.metadata.generation {
        return None;
    }
    let wrote = DateTime::parse_from_rfc3339(status.last_write_time.as_deref()?).ok()?;
    let since = (now - wrote.with_timezone(&Utc)).to_std().unwrap_or_default();
    cfg.read_lag_budget.checked_sub(since).filter(|l| !l.is_zero())
}
