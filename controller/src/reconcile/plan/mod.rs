//! plan: every decision of a pass, pure, over an [`Observation`]. No I/O; `plan` (the CLI) and the
//! controller run the same functions, so a preview cannot disagree with what the controller then does.
//!
//! The rules, in the order they apply:
//! 1. **Pause first.** A paused spec with a known deployment that is not paused gets the pause before
//!    anything else, whatever else blocks the pass (an invalid spec, a waiting group, the blast-radius
//!    guard, a failed read). It is the one write a blocked spec may cause. ObserveOnly never writes.
//! 2. **Blocked passes write nothing else.** Each [`Blocker`] says why, in the words status and Events
//!    use.
//! 3. **Changes** go in a safe order: a new deployment is paused (when asked) before it gets an audience;
//!    exclusions are added before members and removed last; a resume goes last; a content change creates
//!    the replacement with the same audience before the old one is deleted. Audience writes are set
//!    differences, batched, never re-sending what is there.
//!
//! The planner by concept: [`step`] (the writes), [`blocker`] (why a pass writes nothing),
//! [`content`] (catalog resolution), [`audience`] (set arithmetic and blast radius), [`changes`] (the
//! writes in a safe order), `timing` (absence and read-lag waits), [`cleanup`] and [`group`] (the
//! DeviceGroup planner); this file chains them into one pass.

use crate::crd::annotations::Request;
use crate::crd::validate;
use crate::crd::{AudienceStatus, DeviceError, ExpeditedDeployment, ManagementPolicy, ResolvedContent};
use crate::graph::AssetRef;
use crate::reconcile::adopt;
use crate::reconcile::observe::{DeployedContent, Known, Observation, content_source};
use crate::reconcile::outcome::{Next, Outcome};
use crate::reconcile::reasons::Reason;

pub mod audience;
pub mod blocker;
pub mod changes;
pub mod cleanup;
pub mod content;
pub mod group;
mod ignored;
pub mod step;
mod timing;

pub use audience::*;
pub use blocker::*;
pub use changes::*;
pub use cleanup::*;
pub use content::*;
pub use group::*;
pub use step::*;
use timing::*;

pub use crate::reconcile::outcome::{End, Notice};

/// What the planner needs besides the object and its observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// The operator-wide device limit (`--max-audience-devices`).
    pub operator_limit: Option<u64>,
    /// Assets per audience or group write.
    pub batch_size: usize,
    /// How long a recorded deployment must stay missing before it is created again.
    pub absence_confirm: std::time::Duration,
    /// See `Settings::read_lag_budget`.
    pub read_lag_budget: std::time::Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            operator_limit: None,
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
            absence_confirm: crate::reconcile::settings::DEFAULT_ABSENCE_CONFIRM,
            read_lag_budget: std::time::Duration::ZERO,
        }
    }
}

impl From<&crate::reconcile::settings::Settings> for PlanConfig {
    /// The planner's settings from the operator's: what `run` and every CLI command that plans use.
    fn from(s: &crate::reconcile::settings::Settings) -> Self {
        PlanConfig {
            operator_limit: s.max_audience_devices,
            batch_size: s.connections.batch_size,
            absence_confirm: s.absence_confirm,
            read_lag_budget: s.read_lag_budget,
        }
    }
}

/// The status facts a pass reports besides its outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub content: Option<ResolvedContent>,
    pub audience: Option<AudienceStatus>,
    pub device_errors: Vec<DeviceError>,
    /// The deployment as observed: id, effective state and state reasons.
    pub deployment: Option<(String, Option<String>, Vec<String>)>,
    /// When the recorded deployment was first seen missing, while that is being confirmed.
    pub missing_since: Option<String>,
    /// The observed deployment's audience id.
    pub audience_id: Option<String>,
    /// Where `spec.rollout` stands after this pass, when the pass decided it.
    pub rollout: Option<crate::crd::RolloutStatus>,
}

/// The plan of an ExpeditedDeployment pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub notices: Vec<Notice>,
    pub steps: Vec<Step>,
    pub end: End,
    pub facts: Facts,
    /// What the spec resolved to, when it resolved.
    pub desired: Option<Desired>,
    /// Why the pass writes nothing (but the pause), when it does not.
    pub blocker: Option<Blocker>,
}

impl Plan {
    /// Whether the pass's own Warnings already tell the stall it ends in (a halt or an abort sends its
    /// Warning as it happens): the stall then gets no second Warning.
    pub fn stall_told(&self, outcome: &Outcome) -> bool {
        outcome.is_stalled()
            && self
                .notices
                .iter()
                .any(|n| n.warning && n.reason == outcome.reason())
    }

    /// Whether Graph already matches: no step, and nothing blocks.
    pub fn is_converged(&self) -> bool {
        self.steps.is_empty() && self.blocker.is_none() && self.end != End::ObserveFailed
    }

    /// Every Graph write the plan makes, by operation.
    pub fn graph_writes(&self) -> Vec<&'static str> {
        self.steps.iter().flat_map(Step::graph_writes).collect()
    }
}

/// The brake: a pause for a known deployment the spec (or a rollout's halt or abort) wants paused and
/// Graph does not hold paused. A
/// deployment that could not be read is paused anyway (the write is idempotent).
pub fn brake(obj: &ExpeditedDeployment, obs: &Observation, hold: bool) -> Option<Step> {
    if !(obj.spec.paused || hold) || obj.spec.management_policy == ManagementPolicy::ObserveOnly {
        return None;
    }
    let id = match &obs.deployment {
        Known::Found(d) if !d.observed.paused_requested => d.observed.id.clone(),
        Known::Unread(id) => id.clone(),
        _ => return None,
    };
    Some(Step::SetPaused {
        target: Target::Existing(id),
        paused: true,
    })
}

/// Plans a pass over an ExpeditedDeployment.
pub fn plan(obj: &ExpeditedDeployment, obs: &Observation, cfg: &PlanConfig) -> Plan {
    let mut p = plan_pass(obj, obs, cfg);
    let old = obj.status.as_ref().map(|s| s.conditions.as_slice());
    ignored::note(&obj.metadata, old, &mut p.end, &mut p.notices);
    p
}

fn plan_pass(obj: &ExpeditedDeployment, obs: &Observation, cfg: &PlanConfig) -> Plan {
    let status = obj.status.clone().unwrap_or_default();
    let observe_only = obj.spec.management_policy == ManagementPolicy::ObserveOnly;
    let found = obs.deployment.found();
    let mut p = Plan {
        notices: Vec::new(),
        steps: Vec::new(),
        end: End::ObserveFailed,
        facts: Facts {
            content: None,
            audience: None,
            device_errors: found.map(|d| d.device_errors.clone()).unwrap_or_default(),
            missing_since: None,
            audience_id: found.and_then(|d| d.audience_id.clone()),
            rollout: None,
            deployment: found.map(|d| {
                (
                    d.observed.id.clone(),
                    d.graph_state.clone(),
                    d.state_reasons.clone(),
                )
            }),
        },
        desired: None,
        blocker: None,
    };
    if let Some(adopt::Decision::Adopt(id)) = &obs.adoption {
        p.steps.push(Step::Adopt { id: id.clone() });
    }
    let problems = validate::expedited_deployment(&obj.spec);
    // The rollout's decision comes before the brake: a halt or an abort is a pause, and a pause goes
    // first. A spec that cannot be read keeps a halt or abort recorded before.
    let mut rollout = obj
        .spec
        .rollout
        .as_ref()
        .filter(|_| problems.is_empty())
        .map(|r| {
            let facts = obs.audience.as_ref().map(wave_facts);
            // The entry this pass deploys: when it is not the one the waves were sent for, they move
            // to the new deployment and the gates measure it afresh.
            let entry = obs
                .content
                .as_ref()
                .and_then(|c| resolve_content(content_source(&obj.spec), c, obs.at).ok())
                .map(|c| c.catalog_entry_id);
            let note = |k| crate::crd::annotations::request(obj.metadata.annotations.as_ref(), k);
            super::rollout::decide(super::rollout::Inputs {
                spec: r,
                paused: obj.spec.paused,
                generation: obj.metadata.generation.unwrap_or_default(),
                promote: note(Request::Promote),
                abort: note(Request::Abort),
                retry: note(Request::Retry),
                recorded: status.rollout.as_ref(),
                waves: facts.as_deref(),
                content: entry.as_deref(),
                now: obs.at,
            })
        });
    let hold = match &rollout {
        Some(d) => d.hold.is_some(),
        None => {
            !problems.is_empty()
                && (super::rollout::recorded_hold(status.rollout.as_ref())
                    || super::rollout::abort_requested(
                        crate::crd::annotations::request(obj.metadata.annotations.as_ref(), Request::Abort),
                        status.rollout.as_ref(),
                    ))
        }
    };
    p.steps.extend(brake(obj, obs, hold));
    let braked = p
        .steps
        .iter()
        .any(|s| matches!(s, Step::SetPaused { paused: true, .. }));
    // A pass that stops early records a new halt or abort (its pause was written), nothing else of the
    // rollout: a wave is recorded as sent only by a pass that sends it.
    let held = rollout
        .as_ref()
        .filter(|d| d.hold.is_some() && obs.failed.is_none())
        .map(|d| (d.status.clone(), d.notices.clone()));
    let block = |mut p: Plan, b: Blocker| {
        p.end = End::Report {
            outcome: b.outcome(),
            next: b.next(),
        };
        p.blocker = Some(b);
        if let Some((st, notices)) = &held {
            p.facts.rollout = Some(st.clone());
            p.notices.extend(notices.iter().cloned());
        }
        p
    };

    if !problems.is_empty() {
        return block(p, Blocker::InvalidSpec(problems));
    }
    if let Some(adopt::Decision::Ambiguous(ids)) = &obs.adoption {
        let since = status.create_intent.map(|i| i.started_at).unwrap_or_default();
        return block(
            p,
            Blocker::AmbiguousAdoption {
                ids: ids.clone(),
                since,
            },
        );
    }
    if obs.failed.is_some() {
        p.end = End::ObserveFailed;
        return p;
    }
    let (Some(audience), Some(catalog)) = (&obs.audience, &obs.content) else {
        // Not read although nothing failed: only an invalid spec skips the reads, and that ended above.
        p.end = End::ObserveFailed;
        return p;
    };
    if let Some(w) = waiting(obj, audience, rollout.as_ref()) {
        return block(p, w);
    }
    let content = match resolve_content(content_source(&obj.spec), catalog, obs.at) {
        Ok(c) => c,
        Err(b) => return block(p, b),
    };
    if content.expired_at(obs.at) {
        let b = Blocker::Content {
            reason: Reason::CONTENT_EXPIRED,
            message: format!(
                "spec.content: catalog entry {} ({}) was deployable until {} and Graph no longer deploys it; choose newer content (content.latest, or a newer catalogEntryId or releaseDate)",
                content.catalog_entry_id,
                content.display_name.as_deref().unwrap_or("no display name"),
                content.deployable_until.as_deref().unwrap_or_default()
            ),
        };
        p.facts.content = Some(content);
        return block(p, b);
    }
    p.facts.content = Some(content.clone());
    let mut desired = desired(obj, audience, &content, cfg, rollout.as_ref());
    // Sent waves removed from the spec keep their devices offered until withdrawnWaves names them:
    // nothing Graph's audience holds is taken out meanwhile.
    let retained_waves: Vec<String> = rollout
        .as_ref()
        .map(|d| d.status.retained_waves.clone())
        .unwrap_or_default();
    if !retained_waves.is_empty()
        && let (Some(d), Some(r)) = (found, rollout.as_mut())
    {
        let kept: Vec<AssetRef> = d.observed.members.difference(&desired.members).cloned().collect();
        r.status.retained_devices = Some(kept.len() as u64);
        desired.members.extend(kept);
    }

    if observe_only {
        p.facts.audience = found.map(|d| AudienceStatus {
            members: d.observed.members.len() as u64,
            exclusions: d.observed.exclusions.len() as u64,
            devices: 0,
        });
        p.desired = Some(desired);
        return match found {
            Some(d) => {
                p.end = End::Report {
                    outcome: Outcome::converged(format!(
                        "observing deployment {} (ObserveOnly: nothing is written)",
                        d.observed.id
                    )),
                    next: Next::Resync,
                };
                p
            }
            None => block(p, Blocker::NothingToObserve),
        };
    }

    // Graph lists no audience: for an adopted deployment that may be one Intune manages (whose audience
    // Graph does not expose, a documented known issue), which the operator must not write. For its own
    // deployment it only means empty or not visible yet (a read lagging the audience write, or the 404
    // the service answers for an audience that never had members): the lists read as empty, and the
    // writes, which are set operations, are sent again.
    if let Some(d) = found
        && d.audience_never_listed
        && desired.adopted
    {
        let id = d.observed.id.clone();
        p.desired = Some(desired);
        return block(p, Blocker::AudienceNotManageable { id });
    }
    if let Some((limit, source)) = desired.device_limit
        && desired.devices.max(desired.rollout_devices) > limit
    {
        // A rollout is bounded as a whole: every wave counts, sent or not.
        let devices = desired.devices.max(desired.rollout_devices);
        p.desired = Some(desired);
        return block(
            p,
            Blocker::AudienceTooLarge {
                devices,
                limit,
                source,
            },
        );
    }
    if desired.adopted {
        let id = obj.spec.deployment_id.clone().unwrap_or_default();
        match found {
            None => {
                p.desired = Some(desired);
                return block(p, Blocker::AdoptedDeploymentMissing { id });
            }
            Some(d) if !content_matches(&desired, &d.observed.content) => {
                let b = Blocker::AdoptedContentDiffers {
                    id,
                    deployed: describe_content(&d.observed.content),
                    wanted: content.catalog_entry_id.clone(),
                };
                p.desired = Some(desired);
                return block(p, b);
            }
            Some(d) if d.observed.content == DeployedContent::Unknown => {
                // Graph did not name the adopted deployment's catalog entry: it is managed as asked, and
                // the admin is told that its content could not be checked.
                p.notices.push(Notice {
                    warning: true,
                    reason: Reason::CONTENT_UNVERIFIED,
                    action: "Adopt",
                    message: format!(
                        "Graph does not name the catalog entry of adopted deployment {id}, so the operator cannot check that it deploys {}; check it in Graph",
                        content.catalog_entry_id
                    ),
                });
            }
            Some(_) => {}
        }
    }

    // A recorded deployment Graph answers 404 for is created again only when it stays missing: a read
    // can lag the write that made it, and one 404 must never make a second deployment.
    if found.is_none()
        && let (Some(id), Known::Missing(_)) = (&status.deployment_id, &obs.deployment)
        && !desired.adopted
    {
        if let Some((since, left)) = absence_wait(status.missing_since.as_deref(), obs.at, cfg) {
            p.facts.missing_since = Some(since);
            p.end = End::Report {
                outcome: Outcome::progressing(
                    Reason::CONFIRMING_ABSENCE,
                    format!(
                        "Graph answered 404 for deployment {id}; reading it again in {}s before creating it again (a read can lag a write, so one 404 is not proof it is gone)",
                        left.as_secs().max(1)
                    ),
                ),
                // Read again soon (most lag is seconds), and at the latest when the wait is over.
                next: Next::After(left.clamp(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(5),
                )),
            };
            p.desired = Some(desired);
            return p;
        }
        p.notices.push(Notice {
            warning: true,
            reason: Reason::DEPLOYMENT_MISSING,
            action: "Recreate",
            message: format!(
                "deployment {id} was deleted outside the operator (Graph answered 404 for at least {}s); creating it again",
                cfg.absence_confirm.as_secs()
            ),
        });
    }

    // Nothing blocks: the changes, after the brake (whose pause they need not repeat).
    let observed = found.map(|d| {
        let mut o = d.observed.clone();
        o.paused_requested |= braked;
        o
    });
    let changes = changes(&desired, observed.as_ref(), cfg.batch_size);
    // With waves, taking devices out of the audience is worth a Warning: what was offered is withdrawn.
    let withdrawn: usize = changes
        .iter()
        .map(|s| match s {
            Step::UpdateAudience { diff, .. } => diff.remove_members.len(),
            _ => 0,
        })
        .sum();
    if obj.spec.rollout.is_some() && withdrawn > 0 {
        p.notices.push(Notice {
            warning: true,
            reason: Reason::MEMBERS_WITHDRAWN,
            action: "Withdraw",
            message: format!(
                "withdrawing {withdrawn} audience member(s) the spec no longer lists: they are no longer offered the update"
            ),
        });
    }
    p.facts.audience = Some(AudienceStatus {
        members: desired.members.len() as u64,
        exclusions: audience.exclusions.len() as u64,
        devices: desired.devices,
    });
    // The spec is the one the last write carried out, and that write is recent: what Graph does not show
    // may be lag, so it is waited for (within the budget) instead of sent twice. A create is never
    // waited for (its absence is confirmed above), nor is the brake.
    // A rollout that moved this pass (a wave sent, a halt lifted) asks for something new: not lag.
    let moved = rollout
        .as_ref()
        .is_some_and(|d| super::rollout::moved_from(d, status.rollout.as_ref()));
    if let Some(left) = lag_left(obj, &status, obs.at, cfg)
        && !moved
        && !changes.is_empty()
        && !changes.iter().any(|s| matches!(s, Step::Create { .. }))
        && !p.steps.iter().any(|s| matches!(s, Step::Adopt { .. }))
    {
        p.end = End::Report {
            outcome: Outcome::progressing(
                Reason::VERIFYING,
                format!(
                    "Graph does not show all of the last write yet (reads can lag writes); waiting up to {}s more (--read-lag-budget) before sending what is still missing",
                    left.as_secs().max(1)
                ),
            ),
            next: Next::After(left.min(std::time::Duration::from_secs(5))),
        };
        return p;
    }
    if let Some(intent) = status.create_intent.as_ref().filter(|i| i.audience_id.is_none())
        && changes.iter().any(|s| matches!(s, Step::Create { .. }))
    {
        // Audiences carry no name or time to find one by: the one an interrupted create may have made
        // cannot be found again.
        p.notices.push(Notice {
            warning: true,
            reason: Reason::CREATE_INTERRUPTED,
            action: "Create",
            message: format!(
                "a create started at {} was interrupted before its audience id was recorded; an empty deploymentAudience may be left in the tenant (no deployment uses it); creating the audience again",
                intent.started_at
            ),
        });
    }
    p.steps.extend(changes.into_iter().map(|s| match s {
        // An interrupted create's audience is used again, not made twice.
        Step::Create {
            content, settings, ..
        } => Step::Create {
            content,
            settings,
            audience: status.create_intent.as_ref().and_then(|i| i.audience_id.clone()),
        },
        other => other,
    }));
    // The brake's pause, too, shows in Graph before an audience write.
    p.steps = await_pauses(std::mem::take(&mut p.steps));
    if let Some(d) = rollout {
        p.notices.extend(d.notices);
        p.facts.rollout = Some(d.status);
        let next = if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        };
        if let Some(h) = d.hold {
            p.end = End::Report {
                outcome: Outcome::stalled(h.reason(), h.message()),
                next,
            };
            p.desired = Some(desired);
            return p;
        }
        if !retained_waves.is_empty() && p.steps.is_empty() {
            let kept = p
                .facts
                .rollout
                .as_ref()
                .and_then(|r| r.retained_devices)
                .unwrap_or_default();
            p.end = End::Report {
                outcome: Outcome::progressing(
                    Reason::WITHDRAWAL_NOT_CONFIRMED,
                    format!(
                        "spec.rollout.waves no longer lists sent wave(s) {}: their devices stay offered ({kept} audience member(s) kept) until spec.rollout.withdrawnWaves names them, or rename a wave with renamedFrom",
                        retained_waves.join(", ")
                    ),
                ),
                next: Next::Resync,
            };
            p.desired = Some(desired);
            return p;
        }
        if let (Some((message, after)), true) = (d.waiting, p.steps.is_empty()) {
            p.end = End::Report {
                outcome: Outcome::progressing(Reason::WAITING_FOR_GATE, message),
                next: after.map_or(Next::Resync, |a| {
                    Next::After(a.max(std::time::Duration::from_secs(1)))
                }),
            };
            p.desired = Some(desired);
            return p;
        }
    }
    p.end = End::Report {
        outcome: if p.steps.is_empty() {
            Outcome::converged("Graph matches the spec")
        } else {
            let n = p
                .steps
                .iter()
                .filter(|s| !matches!(s, Step::Adopt { .. } | Step::AwaitPaused { .. }))
                .count();
            Outcome::progressing(
                Reason::VERIFYING,
                format!("sent {n} change(s) to Graph; verifying"),
            )
        },
        next: if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        },
    };
    p.desired = Some(desired);
    p
}

#[cfg(test)]
mod tests;
