//! What deleting an object does in Graph: the cleanup of an ExpeditedDeployment and of a DeviceGroup, with
//! the Graph writes each makes.

use std::collections::BTreeSet;

use crate::crd::{DeletionPolicy, DeviceGroup, ExpeditedDeployment, ManagementPolicy};
use crate::reconcile::adopt;
use crate::reconcile::outcome::Outcome;
use crate::reconcile::reasons::Reason;

/// What deleting an ExpeditedDeployment does in Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Leave the deployment (deletionPolicy Orphan, or ObserveOnly); `id` when there is one.
    Orphan { id: Option<String> },
    /// Delete these deployments, then these audiences the operator created for them (a 404 is
    /// success).
    Delete {
        ids: Vec<String>,
        audiences: Vec<String>,
    },
    /// A create was in flight and no deployment is recorded, and what it made is not known (`adoption`
    /// was not decided: the spec it would be matched by cannot be read): the finalizer stays until an
    /// admin deletes what it made and removes it.
    Unresolved { started_at: String },
}

impl Cleanup {
    /// What the plan command calls it: `orphan`, `delete` or `waiting`.
    pub fn result(&self) -> &'static str {
        match self {
            Cleanup::Orphan { .. } => "orphan",
            Cleanup::Delete { .. } => "delete",
            Cleanup::Unresolved { .. } => "waiting",
        }
    }

    /// What the cleanup does, one line a change.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Cleanup::Orphan { id: Some(id) } => vec![format!("leave deployment {id} in Graph")],
            Cleanup::Orphan { id: None } => vec!["remove the object (no Graph deployment)".into()],
            Cleanup::Delete { ids, audiences } if ids.is_empty() && audiences.is_empty() => {
                vec!["remove the object (no Graph deployment)".into()]
            }
            Cleanup::Delete { ids, audiences } => ids
                .iter()
                .map(|id| format!("delete deployment {id}"))
                .chain(
                    audiences
                        .iter()
                        .map(|a| format!("delete deployment audience {a}")),
                )
                .collect(),
            Cleanup::Unresolved { started_at } => vec![format!(
                "hold the object: a create started at {started_at} was in flight and what it made is not known"
            )],
        }
    }

    /// The Graph writes the cleanup makes, by operation (as the Graph client names them).
    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            Cleanup::Delete { ids, audiences } => ids
                .iter()
                .map(|_| "delete deployment")
                .chain(audiences.iter().map(|_| "delete deployment audience"))
                .collect(),
            Cleanup::Orphan { .. } | Cleanup::Unresolved { .. } => vec![],
        }
    }

    /// The deployment the cleanup is about.
    pub fn deployment(&self) -> Option<&String> {
        match self {
            Cleanup::Orphan { id } => id.as_ref(),
            Cleanup::Delete { ids, .. } => ids.first(),
            Cleanup::Unresolved { .. } => None,
        }
    }
}

/// Plans the cleanup of a deleted ExpeditedDeployment; `adoption` is what a pending create made.
pub fn plan_cleanup(obj: &ExpeditedDeployment, adoption: Option<&adopt::Decision>) -> Cleanup {
    let status = obj.status.clone().unwrap_or_default();
    if obj.spec.deletion_policy == DeletionPolicy::Orphan
        || obj.spec.management_policy == ManagementPolicy::ObserveOnly
    {
        return Cleanup::Orphan {
            id: status.deployment_id.or(obj.spec.deployment_id.clone()),
        };
    }
    let mut ids: BTreeSet<String> = status
        .deployment_id
        .iter()
        .chain(obj.spec.deployment_id.iter())
        .cloned()
        .collect();
    // The create's answer was lost: delete what it made, if that is unambiguous.
    if ids.is_empty() {
        match (adoption, &status.create_intent) {
            (Some(adopt::Decision::Adopt(id)), _) => {
                ids.insert(id.clone());
            }
            (None, Some(intent)) => {
                return Cleanup::Unresolved {
                    started_at: intent.started_at.clone(),
                };
            }
            _ => {}
        }
    }
    // The audiences this operator created: the recorded one of a deployment it made, and one a create
    // made before it was interrupted.
    let audiences: BTreeSet<String> = status
        .audience_id
        .iter()
        .filter(|_| obj.spec.deployment_id.is_none())
        .chain(status.create_intent.iter().flat_map(|i| i.audience_id.iter()))
        .cloned()
        .collect();
    Cleanup::Delete {
        ids: ids.into_iter().collect(),
        audiences: audiences.into_iter().collect(),
    }
}

/// What deleting a DeviceGroup does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCleanup {
    /// Deployments still use the group: wait (the finalizer stays).
    Wait { users: Vec<String> },
    /// Delete the Graph group (when there is one).
    Delete { id: Option<String> },
}

impl GroupCleanup {
    /// The wait's status.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            GroupCleanup::Wait { users } => Some(Outcome::progressing(
                Reason::IN_USE,
                format!(
                    "still referenced by ExpeditedDeployment {}; the Graph group is removed once they stop using it",
                    users.join(", ")
                ),
            )),
            GroupCleanup::Delete { .. } => None,
        }
    }

    /// What the plan command calls it: `waiting` or `delete`.
    pub fn result(&self) -> &'static str {
        match self {
            GroupCleanup::Wait { .. } => "waiting",
            GroupCleanup::Delete { .. } => "delete",
        }
    }

    /// What the cleanup does, one line a change.
    pub fn describe(&self) -> Vec<String> {
        match self {
            GroupCleanup::Wait { .. } => self
                .outcome()
                .map(|o| o.message().to_string())
                .into_iter()
                .collect(),
            GroupCleanup::Delete { id: Some(id) } => vec![format!("delete group {id}")],
            GroupCleanup::Delete { id: None } => vec!["remove the object (no Graph group)".into()],
        }
    }

    /// The Graph writes the cleanup makes, by operation.
    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            GroupCleanup::Delete { id: Some(_) } => vec!["delete device group"],
            _ => vec![],
        }
    }

    /// Graph refused to delete the group (409): a deployment it knows still uses it, and no object here
    /// lists it, so one outside this cluster does. A clear wait, not a transient error retried forever.
    pub fn refused(id: &str, detail: &str) -> Outcome {
        Outcome::progressing(
            Reason::IN_USE,
            format!(
                "Graph refuses to delete updatableAssetGroup {id} while a deployment uses it ({detail}); no ExpeditedDeployment here lists it, so a deployment outside this cluster does: remove the group from that deployment's audience in Graph; the DeviceGroup goes once Graph lets the group go"
            ),
        )
    }
}

/// Plans the cleanup of a deleted DeviceGroup; `users` are the deployments that reference it.
pub fn plan_group_cleanup(obj: &DeviceGroup, users: Vec<String>) -> GroupCleanup {
    if users.is_empty() {
        GroupCleanup::Delete {
            id: obj.status.as_ref().and_then(|s| s.group_id.clone()),
        }
    } else {
        GroupCleanup::Wait { users }
    }
}
