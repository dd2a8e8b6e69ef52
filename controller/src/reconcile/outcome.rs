//! What a pass ends in, as the planner decides it: the outcome and its conditions, the Events it sends
//! before it acts, and when it looks again. Pure: no I/O.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reasons::{READY, RECONCILING, Reason, STALLED};

/// Where a reconcile ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Graph matches the spec.
    Converged { message: String },
    /// Writes were made or are waiting on something that will resolve by itself.
    Progressing { reason: Reason, message: String },
    /// Nothing more happens until the spec (or the tenant) changes.
    Stalled { reason: Reason, message: String },
}

impl Outcome {
    pub fn converged(message: impl Into<String>) -> Self {
        Outcome::Converged {
            message: message.into(),
        }
    }

    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Outcome::Progressing {
            reason,
            message: message.into(),
        }
    }

    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Outcome::Stalled {
            reason,
            message: message.into(),
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Outcome::Converged { .. } => Reason::CONVERGED,
            Outcome::Progressing { reason, .. } | Outcome::Stalled { reason, .. } => *reason,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Outcome::Converged { message }
            | Outcome::Progressing { message, .. }
            | Outcome::Stalled { message, .. } => message,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Outcome::Converged { .. })
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self, Outcome::Stalled { .. })
    }
}

/// The longest condition message written: a real API server refuses one past 32,768 bytes, and a
/// message quoting a user's value must never make every status write fail.
pub const MAX_CONDITION_MESSAGE: usize = 4096;

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    old: &[Condition],
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let same = old.iter().find(|c| c.type_ == type_ && c.status == status);
    let last_transition_time = same.map_or_else(now, |c| c.last_transition_time.clone());
    let mut message = super::events::bounded(message.into(), MAX_CONDITION_MESSAGE);
    // A failure that differs only in which Graph call failed keeps the ids written first: the
    // condition is not rewritten at every retry, and the ids still name a failed call.
    if let Some(c) = same.filter(|c| c.reason == reason && same_but_request_ids(&c.message, &message)) {
        message.clone_from(&c.message);
    }
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Ready, Reconciling and Stalled for an outcome, keeping transition times of unchanged conditions.
pub fn conditions(outcome: &Outcome, generation: Option<i64>, old: &[Condition]) -> Vec<Condition> {
    let c = |type_: &str, status: bool, reason: Reason, message: &str| {
        condition(type_, status, reason.as_str(), message, generation, old)
    };
    match outcome {
        Outcome::Converged { message } => vec![
            c(READY, true, Reason::CONVERGED, message),
            c(RECONCILING, false, Reason::CONVERGED, ""),
            c(STALLED, false, Reason::CONVERGED, ""),
        ],
        Outcome::Progressing { reason, message } => vec![
            c(READY, false, *reason, message),
            c(RECONCILING, true, *reason, message),
            c(STALLED, false, *reason, ""),
        ],
        Outcome::Stalled { reason, message } => vec![
            c(READY, false, *reason, message),
            c(RECONCILING, false, *reason, ""),
            c(STALLED, true, *reason, message),
        ],
    }
}

/// Whether `conditions` already say the object is stalled for `reason` with `message` (an Event about
/// it was sent then).
pub fn already_stalled(conditions: &[Condition], reason: Reason, message: &str) -> bool {
    let written = super::events::bounded(message.to_string(), MAX_CONDITION_MESSAGE);
    conditions.iter().any(|c| {
        c.type_ == STALLED
            && c.status == "True"
            && reason == c.reason.as_str()
            && same_but_request_ids(&c.message, &written)
    })
}

/// Whether two messages say the same but for the Graph request ids in them.
fn same_but_request_ids(a: &str, b: &str) -> bool {
    use crate::graph::error::without_request_ids;
    a == b || without_request_ids(a) == without_request_ids(b)
}

/// When a pass looks again, as the planner decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Writes were sent: read them back soon.
    Verify,
    /// Waiting for something that resolves by itself (a DeviceGroup filling): look again soon.
    Soon,
    /// Nothing to do until the resync (or a change).
    Resync,
    /// Only a change to the object helps (cleanup finished).
    Change,
    /// Look again after this long (a wait whose end the planner knows).
    After(Duration),
}

/// An Event the pass sends before it acts (what it noticed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: Reason,
    pub action: &'static str,
    pub message: String,
}

/// How a pass ends once its steps are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Report this outcome and look again then.
    Report { outcome: Outcome, next: Next },
    /// A read failed: report its error (after the steps, which are at most the brake).
    ObserveFailed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstatus_shapes() {
        let c = conditions(&Outcome::converged("ok"), Some(3), &[]);
        let s: Vec<(&str, &str)> = c.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(
            s,
            [("Ready", "True"), ("Reconciling", "False"), ("Stalled", "False")]
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
        let c = conditions(&Outcome::stalled(Reason::INVALID_SPEC, "bad"), Some(4), &c);
        let s: Vec<(&str, &str, &str)> = c
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            s,
            [
                ("Ready", "False", "InvalidSpec"),
                ("Reconciling", "False", "InvalidSpec"),
                ("Stalled", "True", "InvalidSpec")
            ]
        );
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let first = conditions(&Outcome::progressing(Reason::VERIFYING, "a"), Some(1), &[]);
        let mut old = first.clone();
        old[0].last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let again = conditions(
            &Outcome::progressing(Reason::WAITING_FOR_DEVICE_GROUP, "b"),
            Some(1),
            &old,
        );
        assert_eq!(
            again[0].last_transition_time, old[0].last_transition_time,
            "Ready stayed False"
        );
        let flipped = conditions(&Outcome::converged(""), Some(1), &old);
        assert_ne!(flipped[0].last_transition_time, old[0].last_transition_time);
    }

    #[test]
    fn a_failure_differing_only_in_its_request_ids_keeps_the_condition_and_is_already_stalled() {
        let failed = |rid: &str| {
            Outcome::stalled(
                Reason::GRAPH_FORBIDDEN,
                format!(
                    "failed to create a deployment: Graph answered 403 Forbidden: no [request-id: {rid}, client-request-id: c-{rid}]; grant it"
                ),
            )
        };
        let first = conditions(&failed("r1"), Some(1), &[]);
        let again = conditions(&failed("r2"), Some(1), &first);
        assert_eq!(again, first, "the ids of the first failed call stay");
        assert!(already_stalled(
            &first,
            Reason::GRAPH_FORBIDDEN,
            failed("r2").message()
        ));
        // Another failure is another message.
        let other = Outcome::stalled(
            Reason::GRAPH_FORBIDDEN,
            "failed to create a deployment: Graph answered 403 Forbidden: other [request-id: r3, client-request-id: c]; grant it",
        );
        assert!(!already_stalled(&first, Reason::GRAPH_FORBIDDEN, other.message()));
        assert_ne!(conditions(&other, Some(1), &first)[0].message, first[0].message);
    }
}
