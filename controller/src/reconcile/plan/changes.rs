//! The writes that make a deployment match what the spec asks for, in a safe order.

use std::collections::BTreeSet;

use super::*;
use crate::graph::SettingsRequest;
use crate::graph::models::{Expedite, SettingsPatch};
use crate::reconcile::observe::ObservedDeployment;

/// The PATCH that makes the observed settings match, if any: each owned part that differs, with the
/// unowned `userExperience` fields Graph holds sent back unchanged.
pub(super) fn settings_patch(desired: &SettingsRequest, o: &ObservedDeployment) -> Option<SettingsPatch> {
    let observed = &o.settings;
    let ux_differs = (desired.days_until_forced_reboot.is_some()
        && desired.days_until_forced_reboot != observed.days_until_forced_reboot)
        || (desired.offer_as_optional.is_some() && desired.offer_as_optional != observed.offer_as_optional);
    let patch = SettingsPatch {
        user_experience: ux_differs.then(|| {
            let mut ux = o.ux_unowned.clone();
            let days = desired
                .days_until_forced_reboot
                .or(observed.days_until_forced_reboot);
            let optional = desired.offer_as_optional.or(observed.offer_as_optional);
            if let Some(d) = days {
                ux.insert("daysUntilForcedReboot".into(), d.into());
            }
            if let Some(b) = optional {
                ux.insert("offerAsOptional".into(), b.into());
            }
            ux
        }),
        expedite: (desired.readiness_test != observed.readiness_test).then_some(Expedite {
            is_expedited: true,
            is_readiness_test: desired.readiness_test,
        }),
    };
    (patch != SettingsPatch::default()).then_some(patch)
}

pub(super) fn audience_step(target: Target, d: AudienceDiff, batch: usize) -> Option<Step> {
    (!d.is_empty()).then_some(Step::UpdateAudience {
        target,
        diff: d,
        batch,
    })
}

/// The writes that make `observed` match `desired` (nothing blocks them). Property-tested below.
pub fn changes(desired: &Desired, observed: Option<&ObservedDeployment>, batch: usize) -> Vec<Step> {
    let fresh = |steps: &mut Vec<Step>| {
        steps.push(Step::Create {
            content: desired.content.clone(),
            settings: desired.settings.clone(),
            audience: None,
        });
        if desired.paused {
            steps.push(Step::SetPaused {
                target: Target::New,
                paused: true,
            });
        }
        steps.extend(audience_step(
            Target::New,
            diff(desired, &BTreeSet::new(), &BTreeSet::new()),
            batch,
        ));
    };
    let mut steps = Vec::new();
    match observed {
        None => fresh(&mut steps),
        Some(o) if !content_matches(desired, &o.content) => {
            // Content cannot change in Graph: create the new deployment with the same audience, then
            // delete the old one, so no device loses the update in between.
            fresh(&mut steps);
            steps.push(Step::DeleteReplaced { id: o.id.clone() });
        }
        Some(o) => {
            let target = Target::Existing(o.id.clone());
            if desired.paused && !o.paused_requested {
                steps.push(Step::SetPaused {
                    target: target.clone(),
                    paused: true,
                });
            }
            if let Some(patch) = settings_patch(&desired.settings, o) {
                steps.push(Step::UpdateSettings {
                    id: o.id.clone(),
                    settings: desired.settings.clone(),
                    patch,
                    legacy: o.legacy,
                });
            }
            steps.extend(audience_step(
                target.clone(),
                diff(desired, &o.members, &o.exclusions),
                batch,
            ));
            if !desired.paused && o.paused_requested {
                steps.push(Step::SetPaused {
                    target,
                    paused: false,
                });
            }
        }
    }
    await_pauses(steps)
}

/// Puts a wait for the pause to show between a pause and the audience write that follows it (once).
pub(super) fn await_pauses(steps: Vec<Step>) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len() + 1);
    for (i, step) in steps.iter().enumerate() {
        out.push(step.clone());
        if let Step::SetPaused { target, paused: true } = step
            && !matches!(steps.get(i + 1), Some(Step::AwaitPaused { target: t }) if t == target)
            && steps[i + 1..]
                .iter()
                .any(|s| matches!(s, Step::UpdateAudience { target: t, .. } if t == target))
        {
            out.push(Step::AwaitPaused {
                target: target.clone(),
            });
        }
    }
    out
}
