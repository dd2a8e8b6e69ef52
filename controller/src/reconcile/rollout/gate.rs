//! A wave's gate: what it still waits for (time, health figures, a person), and from when the figures it
//! judges by may be trusted (the last retry, or the content taking over the waves).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;

/// What wave `k`'s gate still waits for, if anything; `since` is when the figures it may trust start
/// (see [`trusted_since`]; figures read before it or before the previous wave was sent are not).
pub(super) fn gate_wait(
    i: &Inputs<'_>,
    k: usize,
    waves: &[WaveStatus],
    promoted: &[bool],
    (since, because): (Option<DateTime<Utc>>, &str),
) -> Option<(String, Option<Duration>)> {
    let name = &waves[k].name;
    let gate = i.spec.waves[k].gate.clone().unwrap_or_default();
    if gate.manual == Some(true) {
        return Some((
            format!(
                "wave {name} waits for approval: run `wufb-operator promote <object> --wave {name}` (it sets wufb.dev/promote: {name})"
            ),
            None,
        ));
    }
    // The last send of any wave, also of one since removed from the spec (its devices stay offered):
    // removing a wave just sent does not let the next one skip its wait.
    let recorded = i
        .recorded
        .into_iter()
        .flat_map(|r| &r.waves)
        .filter_map(|w| parse(w.promoted_time.as_deref()));
    let last = waves
        .iter()
        .zip(promoted)
        .filter(|(_, p)| **p)
        .filter_map(|(w, _)| parse(w.promoted_time.as_deref()))
        .chain(recorded)
        .max();
    let previous = waves[..k]
        .iter()
        .zip(promoted)
        .filter(|(_, p)| **p)
        .map(|(w, _)| w.name.as_str())
        .next_back()
        .unwrap_or_default();
    if let (Some(wait), Some(last)) = (gate.wait.as_deref(), last)
        && let Ok(d) = crate::crd::duration::GATE_WAIT.parse(wait)
        && let Ok(cd) = chrono::Duration::from_std(d)
        && let Some(until) = last.checked_add_signed(cd)
        && i.now < until
    {
        let left = (until - i.now).to_std().unwrap_or_default();
        return Some((
            format!(
                "wave {name} waits until {} (spec.rollout.waves[{k}].gate.wait {wait} after wave {previous} was sent)",
                time(until)
            ),
            Some(left),
        ));
    }
    if gate.min_up_to_date_percent.is_none() && gate.max_failed_percent.is_none() {
        return None;
    }
    let Some((devices, up, failed)) = figures(waves, promoted, last.max(since)) else {
        let after = if since > last {
            because.to_string()
        } else {
            format!("wave {previous} was sent")
        };
        return Some((
            format!(
                "wave {name} waits for progress figures read after {after} (read once per progress interval)"
            ),
            None,
        ));
    };
    if let Some(min) = gate.min_up_to_date_percent
        && !share_at_least(up, devices, min)
    {
        return Some((
            format!(
                "wave {name} waits: {up} of {devices} devices of the earlier waves are up to date ({}), spec.rollout.waves[{k}].gate.minUpToDatePercent needs {min}%",
                percent(up, devices)
            ),
            None,
        ));
    }
    // Every limit of the gate is checked where the wave would be sent (a failed share above it
    // normally halted the rollout before the gate was asked).
    if let Some(max) = gate.max_failed_percent
        && share_above(failed, devices, max)
    {
        return Some((
            format!(
                "wave {name} waits: {failed} of {devices} devices of the earlier waves failed ({}), spec.rollout.waves[{k}].gate.maxFailedPercent allows {max}%",
                percent(failed, devices)
            ),
            None,
        ));
    }
    None
}

/// When the figures a decision may trust start, and what started it: the current content taking over
/// the waves, or the last retry (a retry measures afresh; figures read before it halted the rollout).
pub(super) fn trusted_since(st: &RolloutStatus) -> (Option<DateTime<Utc>>, &'static str) {
    let (content, retry) = (content_since(st), retried(st));
    if retry > content {
        (retry, "the retry")
    } else {
        (content, "the content changed (they measure the new deployment)")
    }
}

/// Just after the last retry. Times are whole seconds: figures read in the second of the retry may
/// predate it.
pub(super) fn retried(st: &RolloutStatus) -> Option<DateTime<Utc>> {
    parse(st.last_retry.as_ref().map(|r| r.time.as_str()))
        .and_then(|t| t.checked_add_signed(chrono::Duration::seconds(1)))
}

/// When the current deployment took over the waves from a replaced one, if it did.
pub(super) fn content_since(st: &RolloutStatus) -> Option<DateTime<Utc>> {
    parse(st.content_time.as_deref())
}

/// Whether the pass deploys another catalog entry than the one the rollout's figures measured.
pub(super) fn content_changed(recorded: Option<&RolloutStatus>, content: Option<&str>) -> bool {
    matches!(
        (recorded.and_then(|r| r.catalog_entry_id.as_deref()), content),
        (Some(a), Some(b)) if a != b
    )
}
