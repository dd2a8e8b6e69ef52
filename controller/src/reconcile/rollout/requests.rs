//! The requests a person makes of a rollout by annotation (`wufb.dev/abort`, `wufb.dev/retry`,
//! `wufb.dev/promote`), each decided once: acted on, or refused with a Warning when the rollout's state
//! does not allow it. Either way the value is recorded in status, so a stale annotation never fires
//! later.

use super::{Inputs, RolloutAbort, RolloutRequest, RolloutStatus, abort_requested, notice, time};
use crate::reconcile::outcome::Notice;
use crate::reconcile::reasons::Reason;

/// Applies this pass's requests to `st` (begun from `old`, the recorded status), with their Events;
/// returns the last wave a promote made this pass approves past its gate.
pub(super) fn apply(
    i: &Inputs<'_>,
    old: &RolloutStatus,
    st: &mut RolloutStatus,
    notices: &mut Vec<Notice>,
) -> Option<usize> {
    if let Some(v) = i.abort.filter(|_| abort_requested(i.abort, Some(old))) {
        st.last_abort = Some(RolloutRequest {
            value: v.to_string(),
            time: time(i.now),
            generation: Some(i.generation),
            ignored: None,
        });
        st.aborted = Some(RolloutAbort {
            time: time(i.now),
            generation: i.generation,
        });
        notices.push(notice(
            true,
            Reason::ROLLOUT_ABORTED,
            "Abort",
            "rollout aborted (wufb.dev/abort): the Graph deployment is paused and no further wave is promoted until the spec changes".into(),
        ));
    }
    if st.aborted.as_ref().is_some_and(|a| a.generation != i.generation) {
        // A spec change lifts an abort.
        st.aborted = None;
    }
    if let Some(v) = i.retry.filter(|v| !v.is_empty())
        && st.last_retry.as_ref().is_none_or(|r| r.value != v)
    {
        if st.halt.is_none() {
            // Nothing to lift: the request is refused and kept as seen (it never fires later), and
            // the window the gates measure from does not move.
            st.last_retry = Some(RolloutRequest {
                value: v.to_string(),
                time: old
                    .last_retry
                    .as_ref()
                    .map(|r| r.time.clone())
                    .unwrap_or_default(),
                generation: Some(i.generation),
                ignored: Some("the rollout was not halted".into()),
            });
            notices.push(notice(
                true,
                Reason::REQUEST_IGNORED,
                "Retry",
                "wufb.dev/retry ignored: the rollout is not halted (a retry lifts a halt)".into(),
            ));
        } else {
            st.last_retry = Some(RolloutRequest {
                value: v.to_string(),
                time: time(i.now),
                generation: Some(i.generation),
                ignored: None,
            });
        }
        if let Some(h) = st.halt.take() {
            notices.push(notice(
                false,
                Reason::ROLLOUT_RETRIED,
                "Retry",
                format!(
                    "halt at wave {} lifted (wufb.dev/retry): the deployment resumes and the gates are measured again from figures read from now on",
                    h.wave
                ),
            ));
        }
    }

    // A promote is one request, decided by the first pass that sees it: acted on, or refused with a
    // Warning when the rollout is paused, aborted or halted or the wave is not there. Either way it is
    // recorded, so a stale annotation never fires later (after an abort is lifted, say).
    if let Some(v) = i
        .promote
        .filter(|v| !v.trim().is_empty())
        .filter(|v| old.last_promote.as_ref().is_none_or(|r| r.value != *v))
    {
        let wave = crate::crd::annotations::promote_wave(v);
        let position = i.spec.waves.iter().position(|w| w.name == wave);
        let refusal = if i.paused {
            Some("spec.paused holds the rollout".to_string())
        } else if st.aborted.is_some() {
            Some("the rollout is aborted".to_string())
        } else if st.halt.is_some() {
            Some("the rollout is halted (retry lifts a halt)".to_string())
        } else if position.is_none() {
            Some(format!("'{wave}' names no wave of spec.rollout.waves"))
        } else {
            None
        };
        st.last_promote = Some(RolloutRequest {
            value: v.to_string(),
            time: time(i.now),
            generation: Some(i.generation),
            ignored: refusal.clone(),
        });
        match refusal {
            Some(why) => notices.push(notice(
                true,
                Reason::REQUEST_IGNORED,
                "Promote",
                format!("wufb.dev/promote ignored: {why}; promote again when it can be acted on"),
            )),
            None => return position,
        }
    }

    None
}
