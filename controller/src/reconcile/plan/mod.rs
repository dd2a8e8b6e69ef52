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
//! writes in a safe order), `timing` (absence and read-lag waits), [`poll`] (the progress poll and the
//! next look), [`cleanup`] and [`group`] (the DeviceGroup planner); `pass` chains them into one
//! ExpeditedDeployment pass, an ordered list of gates each of which may end it.

use crate::crd::{AudienceStatus, DeviceError, ExpeditedDeployment, ManagementPolicy, ResolvedContent};
use crate::reconcile::observe::{Known, Observation};
use crate::reconcile::outcome::Outcome;

pub mod audience;
pub mod blocker;
pub mod changes;
pub mod cleanup;
pub mod content;
pub mod group;
mod ignored;
mod pass;
pub mod poll;
pub mod step;
mod timing;

pub use audience::*;
pub use blocker::*;
pub use changes::*;
pub use cleanup::*;
pub use content::*;
pub use group::*;
use pass::plan_pass;
pub use poll::{Poll, Polled};
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
    /// How often a deployment's progress is read (`--progress-interval`; per object, its annotation).
    pub progress_interval: std::time::Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            operator_limit: None,
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
            absence_confirm: crate::reconcile::settings::DEFAULT_ABSENCE_CONFIRM,
            read_lag_budget: std::time::Duration::ZERO,
            progress_interval: crate::reconcile::settings::DEFAULT_PROGRESS_INTERVAL,
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
            progress_interval: s.progress_interval,
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
    /// The progress poll the pass makes after it acts, when one is due.
    pub poll: Option<Poll>,
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

    /// Whether `obj` offers the update once this plan is carried out: nothing blocks it, it is not held
    /// paused, and the operator manages it (ObserveOnly writes nothing). What the blast radius counts.
    pub fn offers_update(&self, obj: &ExpeditedDeployment) -> bool {
        self.blocker.is_none()
            && self.desired.as_ref().is_some_and(|d| !d.paused)
            && obj.spec.management_policy == ManagementPolicy::Manage
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
    p.poll = poll::poll(obj, p.facts.rollout.as_ref(), cfg.progress_interval, obs.at);
    p
}

#[cfg(test)]
mod tests;
