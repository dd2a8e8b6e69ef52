//! The DeviceGroup planner.

use std::collections::BTreeSet;

use super::*;
use crate::crd::validate::{self};
use crate::crd::{DeviceError, DeviceGroup, DeviceId};
use crate::reconcile::observe::{GroupObservation, Known};
use crate::reconcile::outcome::{End, Next, Notice, Outcome};
use crate::reconcile::reasons::Reason;

/// One planned write to a Graph group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupStep {
    /// Create the group and record its id.
    Create,
    /// Add and remove devices (the group the plan creates when `target` is `New`), at most `batch` ids a
    /// request (see [`group_batches`]); the requests may go at once, since adds and removes touch
    /// different ids.
    UpdateMembers {
        target: Target,
        add: Vec<DeviceId>,
        remove: Vec<DeviceId>,
        batch: usize,
    },
}

impl GroupStep {
    pub fn describe(&self) -> String {
        match self {
            GroupStep::Create => "create group".into(),
            GroupStep::UpdateMembers { add, remove, .. } => {
                format!("update group devices: +{} -{}", add.len(), remove.len())
            }
        }
    }

    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            GroupStep::Create => vec!["create device group"],
            GroupStep::UpdateMembers {
                add, remove, batch, ..
            } => group_batches(add, remove, *batch)
                .iter()
                .map(|(adding, _)| {
                    if *adding {
                        "add device group members"
                    } else {
                        "remove device group members"
                    }
                })
                .collect(),
        }
    }
}

/// The plan of a DeviceGroup pass.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub notices: Vec<Notice>,
    pub steps: Vec<GroupStep>,
    pub end: End,
    /// Status facts: the group id (when known), the devices the group holds once the plan is applied,
    /// and registration errors.
    pub group_id: Option<String>,
    pub member_count: Option<u64>,
    pub device_errors: Vec<DeviceError>,
    /// When the recorded group was first seen missing, while that is being confirmed.
    pub missing_since: Option<String>,
}

impl GroupPlan {
    pub fn graph_writes(&self) -> Vec<&'static str> {
        self.steps.iter().flat_map(GroupStep::graph_writes).collect()
    }
}

/// Group member writes of at most `batch` ids each: `(true, ids)` adds, `(false, ids)` removes.
pub fn group_batches<'a>(
    add: &'a [DeviceId],
    remove: &'a [DeviceId],
    batch: usize,
) -> Vec<(bool, &'a [DeviceId])> {
    let batch = batch.max(1);
    add.chunks(batch)
        .map(|c| (true, c))
        .chain(remove.chunks(batch).map(|c| (false, c)))
        .collect()
}

/// Plans a pass over a DeviceGroup.
pub fn plan_group(obj: &DeviceGroup, obs: &GroupObservation, cfg: &PlanConfig) -> GroupPlan {
    let mut p = plan_group_pass(obj, obs, cfg);
    let old = obj.status.as_ref().map(|s| s.conditions.as_slice());
    ignored::note(&obj.metadata, old, &mut p.end, &mut p.notices);
    p
}

fn plan_group_pass(obj: &DeviceGroup, obs: &GroupObservation, cfg: &PlanConfig) -> GroupPlan {
    let batch = cfg.batch_size;
    let mut p = GroupPlan {
        notices: Vec::new(),
        steps: Vec::new(),
        end: End::ObserveFailed,
        group_id: None,
        member_count: None,
        device_errors: Vec::new(),
        missing_since: None,
    };
    let problems = validate::device_group(&obj.spec);
    if !problems.is_empty() {
        p.end = End::Report {
            outcome: Blocker::InvalidSpec(problems).outcome(),
            next: Next::Resync,
        };
        return p;
    }
    if obs.failed.is_some() {
        return p;
    }
    let spec_devices;
    let desired: &BTreeSet<DeviceId> = match (&obj.spec.entra_group_id, &obs.entra) {
        (Some(_), Some(Some(devices))) => devices,
        (Some(entra), _) => {
            p.end = End::Report {
                outcome: Outcome::stalled(
                    Reason::ENTRA_GROUP_NOT_FOUND,
                    format!(
                        "spec.entraGroupId: Entra ID has no group {entra} (copy the group's object id from Entra ID; nothing was written)"
                    ),
                ),
                next: Next::Resync,
            };
            return p;
        }
        (None, _) => {
            spec_devices = obj.spec.devices.iter().map(|d| d.to_lowercase()).collect();
            &spec_devices
        }
    };
    let (target, current): (Target, &[DeviceId]) = match &obs.group {
        Known::Found(members) => {
            let id = obj
                .status
                .as_ref()
                .and_then(|s| s.group_id.clone())
                .unwrap_or_default();
            p.group_id = Some(id.clone());
            p.device_errors = members
                .errors
                .iter()
                .filter(|(device, _)| desired.contains(*device))
                .take(crate::reconcile::observe::MAX_DEVICE_ERRORS)
                .map(|(device, reasons)| DeviceError {
                    device_id: device.to_string(),
                    reasons: reasons.clone(),
                })
                .collect();
            (Target::Existing(id), &members.devices)
        }
        Known::Missing(id) => {
            // Created again only when it stays missing: a read can lag the write that made it.
            let first = obj.status.as_ref().and_then(|s| s.missing_since.as_deref());
            if let Some((since, left)) = absence_wait(first, obs.at, cfg) {
                p.group_id = Some(id.clone());
                p.missing_since = Some(since);
                p.end = End::Report {
                    outcome: Outcome::progressing(
                        Reason::CONFIRMING_ABSENCE,
                        format!(
                            "Graph answers 404 for updatableAssetGroup {id} (since {}); it is created again only if it is still missing in {}s, as a read can lag a write",
                            p.missing_since.as_deref().unwrap_or_default(),
                            left.as_secs().max(1)
                        ),
                    ),
                    next: Next::After(left.min(std::time::Duration::from_secs(5))),
                };
                return p;
            }
            p.notices.push(Notice {
                warning: true,
                reason: Reason::GROUP_MISSING,
                action: "Recreate",
                message: format!(
                    "updatableAssetGroup {id} was deleted outside the operator (Graph answered 404 for the group and its members for at least {}s); creating it again",
                    cfg.absence_confirm.as_secs()
                ),
            });
            p.steps.push(GroupStep::Create);
            (Target::New, &[])
        }
        Known::None | Known::Unread(_) => {
            if let Some(intent) = obj.status.as_ref().and_then(|s| s.create_intent.as_ref()) {
                // Graph groups carry no name or creation time to find one by: the group an interrupted
                // create may have made cannot be adopted, and is at worst left empty and unused.
                p.notices.push(Notice {
                    warning: true,
                    reason: Reason::CREATE_INTERRUPTED,
                    action: "Create",
                    message: format!(
                        "a group create started at {} was interrupted before its id was recorded; an empty updatableAssetGroup may be left in the tenant (it holds no devices and no deployment uses it); creating the group again",
                        intent.started_at
                    ),
                });
            }
            p.steps.push(GroupStep::Create);
            (Target::New, &[])
        }
    };
    let (add, remove) = sorted_diff(desired, current);
    p.member_count = Some(desired.len() as u64);
    if !add.is_empty() || !remove.is_empty() {
        p.steps.push(GroupStep::UpdateMembers {
            target,
            add,
            remove,
            batch,
        });
    }
    p.end = End::Report {
        outcome: match (&p.steps.last(), &p.group_id) {
            (Some(GroupStep::UpdateMembers { add, remove, .. }), _) => Outcome::progressing(
                Reason::VERIFYING,
                format!(
                    "sent +{} -{} devices to Graph; verifying",
                    add.len(),
                    remove.len()
                ),
            ),
            (Some(GroupStep::Create), _) => {
                Outcome::progressing(Reason::VERIFYING, "created the group; verifying")
            }
            (None, Some(id)) if p.device_errors.is_empty() => {
                Outcome::converged(format!("{} devices in group {id}", desired.len()))
            }
            (None, id) => Outcome::converged(format!(
                "{} devices in group {}; {} could not be registered (see status.deviceErrors)",
                desired.len(),
                id.clone().unwrap_or_default(),
                p.device_errors.len()
            )),
        },
        next: if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        },
    };
    p
}

/// What `current` (sorted, each id once) lacks of `desired`, and what it holds beyond it, in one walk
/// of both in order.
pub(super) fn sorted_diff(
    desired: &BTreeSet<DeviceId>,
    current: &[DeviceId],
) -> (Vec<DeviceId>, Vec<DeviceId>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let (mut d, mut c) = (desired.iter().peekable(), current.iter().peekable());
    loop {
        match (d.peek(), c.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => add.extend(d.next().cloned()),
                std::cmp::Ordering::Greater => remove.extend(c.next().cloned()),
                std::cmp::Ordering::Equal => {
                    d.next();
                    c.next();
                }
            },
            (Some(_), None) => add.extend(d.next().cloned()),
            (None, Some(_)) => remove.extend(c.next().cloned()),
            (None, None) => return (add, remove),
        }
    }
}
