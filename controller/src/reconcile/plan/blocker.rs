//! Why a pass writes nothing (but the pause), and how status and Events say it.

use crate::crd::validate::FieldError;
use crate::reconcile::outcome::{Next, Outcome};
use crate::reconcile::reasons::Reason;

/// Why a pass writes nothing (but the pause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    InvalidSpec(Vec<FieldError>),
    AmbiguousAdoption {
        ids: Vec<String>,
        since: String,
    },
    /// An audience item cannot be used yet (`field` is its path).
    Waiting {
        field: String,
        why: String,
    },
    Content {
        reason: Reason,
        message: String,
    },
    AudienceNotManageable {
        id: String,
    },
    AudienceTooLarge {
        devices: u64,
        limit: u64,
        source: &'static str,
    },
    AdoptedDeploymentMissing {
        id: String,
    },
    AdoptedContentDiffers {
        id: String,
        deployed: String,
        wanted: String,
    },
    /// ObserveOnly with no deployment to observe.
    NothingToObserve,
}

impl Blocker {
    /// How status and Events say it.
    pub fn outcome(&self) -> Outcome {
        match self {
            Blocker::InvalidSpec(problems) => Outcome::stalled(
                Reason::INVALID_SPEC,
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Blocker::AmbiguousAdoption { ids, since } => Outcome::stalled(
                Reason::AMBIGUOUS_ADOPTION,
                format!(
                    "found {} Graph deployments created since {since} with this object's settings and either its content or content Graph does not name, not claimed by another object: {}; set spec.deploymentId to the right one and delete the others in Graph",
                    ids.len(),
                    ids.join(", ")
                ),
            ),
            Blocker::Waiting { field, why } => Outcome::progressing(
                Reason::WAITING_FOR_DEVICE_GROUP,
                format!("{field}: {why} (nothing is written until it is)"),
            ),
            Blocker::Content { reason, message } => Outcome::stalled(*reason, message.clone()),
            Blocker::AudienceNotManageable { id } => Outcome::stalled(
                Reason::AUDIENCE_NOT_MANAGEABLE,
                format!(
                    "Graph does not expose the audience of deployment {id} (deployments created through Intune cannot be managed through Graph); manage it in Intune, or remove spec.deploymentId"
                ),
            ),
            Blocker::AudienceTooLarge {
                devices,
                limit,
                source,
            } => Outcome::stalled(
                Reason::AUDIENCE_TOO_LARGE,
                format!(
                    "the audience reaches {devices} devices, more than the limit of {limit} set by {source}; nothing was sent to Graph (raise the limit or shrink the audience)"
                ),
            ),
            Blocker::AdoptedDeploymentMissing { id } => Outcome::stalled(
                Reason::DEPLOYMENT_NOT_FOUND,
                format!(
                    "spec.deploymentId: Graph has no deployment {id} (remove spec.deploymentId to let the operator create one)"
                ),
            ),
            Blocker::AdoptedContentDiffers { id, deployed, wanted } => Outcome::stalled(
                Reason::CONTENT_DIFFERS,
                format!(
                    "spec.content resolves to {wanted} but adopted deployment {id} carries {deployed}; change spec.content to match, or remove spec.deploymentId to let the operator replace it"
                ),
            ),
            Blocker::NothingToObserve => Outcome::stalled(
                Reason::DEPLOYMENT_NOT_FOUND,
                "ObserveOnly: no deployment to observe (set spec.deploymentId)",
            ),
        }
    }

    /// When to look again: a waiting group soon, anything else at the resync.
    pub fn next(&self) -> Next {
        match self {
            Blocker::Waiting { .. } => Next::Soon,
            _ => Next::Resync,
        }
    }
}
