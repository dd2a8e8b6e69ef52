//! Annotations whose values are refused: the pass goes on with the defaults, its Ready condition keeps
//! its status and names each refused value (`; ignored wufb.dev/X='…': expected …`), and each value
//! gets one Warning Event, the first time a pass reports it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

use super::{End, Notice};
use crate::crd::annotations::{self, Ignored};
use crate::reconcile::reasons::{READY, Reason};
use crate::reconcile::status::Outcome;

/// Adds the object's refused annotations to the outcome a pass reports and, for each one the Ready
/// condition does not already name, a Warning notice.
pub(super) fn note(meta: &ObjectMeta, old: Option<&[Condition]>, end: &mut End, notices: &mut Vec<Notice>) {
    let ignored = annotations::ignored(meta.annotations.as_ref());
    if ignored.is_empty() {
        return;
    }
    let said = old
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == READY)
        .map_or("", |c| c.message.as_str());
    for i in &ignored {
        let text = i.to_string();
        if !said.contains(&text) {
            notices.push(Notice {
                warning: true,
                reason: Reason::ANNOTATION_IGNORED,
                action: "Validate",
                message: format!("{text}; the default applies until it is fixed or removed"),
            });
        }
    }
    if let End::Report { outcome, .. } = end {
        *outcome = with_ignored(outcome, &ignored);
    }
}

/// The outcome with the refused annotations after its message.
fn with_ignored(outcome: &Outcome, ignored: &[Ignored]) -> Outcome {
    let mut message = outcome.message().to_string();
    for i in ignored {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&i.to_string());
    }
    match outcome {
        Outcome::Converged { .. } => Outcome::converged(message),
        Outcome::Progressing { reason, .. } => Outcome::progressing(*reason, message),
        Outcome::Stalled { reason, .. } => Outcome::stalled(*reason, message),
    }
}
