//! A rollout's waves as the plan sees them: what each adds to the blast radius, and when it goes.

use super::WavePlan;
use crate::reconcile::observe;
use crate::reconcile::plan::{Plan, offered_devices_of, wave_devices};

/// What a gate waits for, in words.
pub fn describe_gate(gate: Option<&crate::crd::GateSpec>) -> String {
    let Some(g) = gate else {
        return "at once".into();
    };
    if g.manual == Some(true) {
        return "when promoted (wufb-operator promote)".into();
    }
    let mut parts = Vec::new();
    if let Some(w) = &g.wait {
        parts.push(format!("{w} after the previous wave"));
    }
    if let Some(p) = g.min_up_to_date_percent {
        parts.push(format!("{p}% of the earlier waves up to date"));
    }
    if let Some(p) = g.max_failed_percent {
        parts.push(format!("at most {p}% failed"));
    }
    if parts.is_empty() {
        "when the previous wave is sent".into()
    } else {
        parts.join(", ")
    }
}

/// The waves of a rollout: what each adds, the blast radius once it is sent, and when it goes. A wave
/// is `now` when the plan's pass sends it (its decision promotes it and nothing blocks the pass).
pub fn wave_plans(
    rollout: &crate::crd::RolloutSpec,
    audience: &observe::AudienceFacts,
    live: Option<&crate::crd::ExpeditedDeploymentStatus>,
    p: &Plan,
) -> Vec<WavePlan> {
    let sent_before = |name: &str| {
        live.and_then(|s| s.rollout.as_ref())
            .and_then(|r| r.waves.iter().find(|w| w.name == name))
            .and_then(|w| w.promoted_time.clone())
    };
    let decided = p.facts.rollout.as_ref().filter(|_| p.blocker.is_none());
    let per_wave = wave_devices(audience);
    let mut upto = vec![false; rollout.waves.len()];
    rollout
        .waves
        .iter()
        .enumerate()
        .map(|(k, w)| {
            upto[k] = true;
            let (state, when) = match sent_before(&w.name) {
                Some(t) => ("sent", t),
                None if decided.is_some_and(|d| {
                    d.waves
                        .iter()
                        .any(|x| x.name == w.name && x.promoted_time.is_some())
                }) =>
                {
                    ("now", "at once".to_string())
                }
                None => ("gated", describe_gate(w.gate.as_ref())),
            };
            WavePlan {
                name: w.name.clone(),
                devices: per_wave.get(k).map_or(0, |d| d.len() as u64),
                blast_radius: offered_devices_of(audience, Some(&upto)).len() as u64,
                state: state.into(),
                when,
            }
        })
        .collect()
}
