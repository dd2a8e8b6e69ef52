//! Health-gated waves (`spec.rollout`), pure. The first wave is sent at once; each later wave joins the
//! same Graph deployment's audience when its gate holds: a least wait since the previous wave, a least
//! share of the earlier waves' devices up to date, a most share failed, or a person's `promote`. When
//! more devices have failed than a limit allows, the rollout halts: the deployment is paused and stays
//! paused until `retry` (which resumes the gates) or `abort` (which stops promotion until the spec
//! changes). `spec.paused` stays the brake above all of it: nothing is promoted while it is set.
//!
//! The figures are the per-wave progress the last poll recorded in status (see `progress`); a gate
//! only trusts figures read after the wave before it was sent, and a halt only figures read after the
//! last retry.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::outcome::Notice;
use super::reasons::Reason;
use crate::crd::{
    RolloutAbort, RolloutHalt, RolloutPhase, RolloutProgress, RolloutRequest, RolloutSpec, RolloutStatus,
    WaveStatus,
};

/// The Event action of each wave's promotion: Events with the same reason and action are one series,
/// so each wave gets its own (at most 10 waves).
const WAVE_ACTIONS: [&str; 10] = [
    "PromoteWave1",
    "PromoteWave2",
    "PromoteWave3",
    "PromoteWave4",
    "PromoteWave5",
    "PromoteWave6",
    "PromoteWave7",
    "PromoteWave8",
    "PromoteWave9",
    "PromoteWave10",
];

/// What the observation knows of one wave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WaveFact {
    /// Distinct devices the wave adds (a device in several waves counts in the first), less exclusions.
    pub devices: u64,
    /// Why one of its members cannot be used yet.
    pub waiting: Option<String>,
}

/// What the rollout needs besides its spec.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub spec: &'a RolloutSpec,
    /// `spec.paused`.
    pub paused: bool,
    pub generation: i64,
    /// The `wufb.dev/promote`, `wufb.dev/abort` and `wufb.dev/retry` annotations.
    pub promote: Option<&'a str>,
    pub abort: Option<&'a str>,
    pub retry: Option<&'a str>,
    pub recorded: Option<&'a RolloutStatus>,
    /// Per wave, in spec order; `None` when the audience was not read.
    pub waves: Option<&'a [WaveFact]>,
    /// The catalog entry this pass deploys, when it resolved one. When it differs from the one the
    /// rollout recorded, the content changed (the deployment is replaced): the waves sent go to the
    /// new deployment at once (they were approved already), and no gate or halt trusts figures read
    /// before now, which measured the old content.
    pub content: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Why the deployment must be held paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    Halted(String),
    Aborted(String),
}

impl Hold {
    pub fn reason(&self) -> Reason {
        match self {
            Hold::Halted(_) => Reason::ROLLOUT_HALTED,
            Hold::Aborted(_) => Reason::ROLLOUT_ABORTED,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Hold::Halted(m) | Hold::Aborted(m) => m,
        }
    }
}

/// What the rollout decides for one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Per wave: its members belong in Graph's audience after this pass.
    pub promoted: Vec<bool>,
    /// The deployment must be paused, and why.
    pub hold: Option<Hold>,
    /// What a later wave waits for, and when to look again (`None`: when the figures or a person move).
    pub waiting: Option<(String, Option<Duration>)>,
    pub status: RolloutStatus,
    pub notices: Vec<Notice>,
}

/// Whether this decision sends a wave, or lifts or sets a hold, that `recorded` did not.
pub fn moved_from(d: &Decision, recorded: Option<&RolloutStatus>) -> bool {
    let sent = |s: Option<&RolloutStatus>, name: &str| {
        s.is_some_and(|s| {
            s.waves
                .iter()
                .any(|w| w.name == name && w.promoted_time.is_some())
        })
    };
    d.status
        .waves
        .iter()
        .any(|w| w.promoted_time.is_some() && !sent(recorded, &w.name))
        || d.hold.is_some() != recorded_hold(recorded)
}

/// A halt or abort recorded in status, which holds the deployment paused even when the spec can no
/// longer be read (the brake's input for an invalid spec).
pub fn recorded_hold(status: Option<&RolloutStatus>) -> bool {
    status.is_some_and(|s| s.halt.is_some() || s.aborted.is_some())
}

/// A `wufb.dev/abort` value not acted on yet.
pub fn abort_requested(value: Option<&str>, status: Option<&RolloutStatus>) -> bool {
    value.is_some_and(|v| {
        !v.is_empty()
            && status
                .and_then(|s| s.last_abort.as_ref())
                .is_none_or(|r| r.value != v)
    })
}

/// An Event the rollout's decision sends.
fn notice(warning: bool, reason: Reason, action: &'static str, message: String) -> Notice {
    Notice {
        warning,
        reason,
        action,
        message,
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse(t: Option<&str>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Whether `part` of `whole` is more than `limit` percent (in integers wide enough for any input).
fn share_above(part: u64, whole: u64, limit: u32) -> bool {
    u128::from(part) * 100 > u128::from(limit) * u128::from(whole)
}

/// Whether `part` of `whole` is at least `min` percent.
fn share_at_least(part: u64, whole: u64, min: u32) -> bool {
    u128::from(part) * 100 >= u128::from(min) * u128::from(whole)
}

/// Sums the figures of the promoted waves read at or after `since`: (devices, up to date, failed), or
/// `None` when no promoted wave has figures that fresh.
fn figures(waves: &[WaveStatus], promoted: &[bool], since: Option<DateTime<Utc>>) -> Option<(u64, u64, u64)> {
    let mut sum: Option<(u64, u64, u64)> = None;
    for (w, _) in waves.iter().zip(promoted).filter(|(_, p)| **p) {
        let Some(p) = w.progress.as_ref() else { continue };
        let read = parse(p.observed_time.as_deref());
        if since.is_some_and(|s| read.is_none_or(|r| r < s)) {
            continue;
        }
        // Status is writable by whoever may write the status subresource: sums saturate.
        let s = sum.get_or_insert((0, 0, 0));
        s.0 = s.0.saturating_add(p.targeted);
        s.1 = s.1.saturating_add(p.up_to_date);
        s.2 = s.2.saturating_add(p.failed);
    }
    sum
}

/// Decides the rollout's pass.
pub fn decide(i: Inputs<'_>) -> Decision {
    let spec = i.spec;
    let old = i.recorded.cloned().unwrap_or_default();
    let changed = content_changed(i.recorded, i.content);
    let mut notices = Vec::new();
    // The waves in spec order, with what status recorded for the same name.
    let waves: Vec<WaveStatus> = spec
        .waves
        .iter()
        .enumerate()
        .map(|(n, w)| {
            // A renamed wave keeps the state recorded under its previous name.
            let was = old.waves.iter().find(|o| o.name == w.name).or_else(|| {
                w.renamed_from
                    .as_ref()
                    .and_then(|from| old.waves.iter().find(|o| &o.name == from))
            });
            WaveStatus {
                name: w.name.clone(),
                devices: i
                    .waves
                    .and_then(|f| f.get(n))
                    .map(|f| f.devices)
                    .or(was.map(|o| o.devices))
                    .unwrap_or_default(),
                promoted_time: was.and_then(|o| o.promoted_time.clone()),
                progress: was.and_then(|o| o.progress.clone()).filter(|_| !changed),
            }
        })
        .collect();
    let promoted: Vec<bool> = waves.iter().map(|w| w.promoted_time.is_some()).collect();
    // Sent waves no longer in the spec (nor renamed): kept offered until withdrawnWaves names them.
    let listed = |n: &str| {
        spec.waves
            .iter()
            .any(|w| w.name == n || w.renamed_from.as_deref() == Some(n))
    };
    let mut retained_waves: Vec<String> = old
        .retained_waves
        .iter()
        .cloned()
        .chain(
            old.waves
                .iter()
                .filter(|w| w.promoted_time.is_some())
                .map(|w| w.name.clone()),
        )
        .filter(|n| !listed(n) && !spec.withdrawn_waves.contains(n))
        .collect();
    retained_waves.sort();
    retained_waves.dedup();
    let mut st = RolloutStatus {
        retained_waves,
        last_retry: old.last_retry.clone(),
        last_promote: old.last_promote.clone(),
        last_abort: old.last_abort.clone(),
        halt: old.halt.clone(),
        aborted: old.aborted.clone(),
        content_time: if changed {
            Some(time(i.now))
        } else {
            old.content_time.clone()
        },
        catalog_entry_id: i.content.map(str::to_string).or(old.catalog_entry_id.clone()),
        ..Default::default()
    };

    let approved_through = requests::apply(&i, &old, &mut st, &mut notices);

    let mut pass = Pass {
        st,
        waves,
        promoted,
        notices,
    };
    if let Some(a) = pass.st.aborted.clone() {
        return pass.hold(Hold::Aborted(format!(
            "rollout aborted at {} (wufb.dev/abort): the Graph deployment stays paused and no wave is promoted until the spec changes",
            a.time
        )));
    }
    if let Some(h) = pass.st.halt.clone() {
        return pass.hold(Hold::Halted(halt_message(&h)));
    }

    // The first wave goes at once (also to a paused deployment: a pause comes before any audience).
    if pass.waves.first().is_some_and(|w| w.promoted_time.is_none()) {
        if let Some(why) = i.waves.and_then(|f| f.first()).and_then(|f| f.waiting.clone()) {
            let m = format!("wave {} waits for its members: {why}", pass.waves[0].name);
            return pass.wait(m, None);
        }
        pass.promote(0, i.now, "the first wave");
    }

    // The halt: failures among the devices offered so far, against the tightest limit in force.
    let next = pass.promoted.iter().position(|p| !p);
    let limits = [
        spec.max_failed_percent
            .map(|l| (l, "spec.rollout.maxFailedPercent".to_string())),
        next.and_then(|k| {
            spec.waves[k]
                .gate
                .as_ref()
                .and_then(|g| g.max_failed_percent)
                .map(|l| (l, format!("spec.rollout.waves[{k}].gate.maxFailedPercent")))
        }),
    ];
    let first_sent = parse(pass.waves.first().and_then(|w| w.promoted_time.as_deref()));
    let retried = retried(&pass.st);
    if let Some((limit, field)) = limits.into_iter().flatten().min_by_key(|(l, _)| *l)
        && let Some((devices, _, failed)) = figures(
            &pass.waves,
            &pass.promoted,
            first_sent.max(retried).max(content_since(&pass.st)),
        )
        && devices > 0
        && share_above(failed, devices, limit)
    {
        let h = RolloutHalt {
            wave: pass.current().unwrap_or_default(),
            time: time(i.now),
            failed,
            devices,
            limit_percent: limit,
            limit_field: field,
        };
        let m = halt_message(&h);
        pass.notices
            .push(notice(true, Reason::ROLLOUT_HALTED, "Halt", m.clone()));
        pass.st.halt = Some(h);
        return pass.hold(Hold::Halted(m));
    }

    let Some(mut k) = next else {
        return pass.end(RolloutPhase::Complete, None);
    };
    if i.paused {
        let m = format!(
            "spec.paused holds the rollout at wave {}",
            pass.current().unwrap_or_default()
        );
        return pass.end(RolloutPhase::Paused, Some(m));
    }
    // The waves a person approved past their gates (this pass's promote): up to and including the one
    // named.
    let approved = |k: usize| approved_through.is_some_and(|a| a >= k);
    loop {
        let name = pass.waves[k].name.clone();
        let why = if let Some(w) = i.waves.and_then(|f| f.get(k)).and_then(|f| f.waiting.clone()) {
            if approved(k) {
                pass.refuse_promote(format!("wave {name} waits for its members ({w})"));
            }
            Some((format!("wave {name} waits for its members: {w}"), None))
        } else if approved(k) {
            None
        } else {
            gate_wait(&i, k, &pass.waves, &pass.promoted, trusted_since(&pass.st))
        };
        if let Some((m, after)) = why {
            return pass.wait(m, after.map(|a| (a, i.now)));
        }
        let by = if approved(k) {
            "promoted by wufb.dev/promote"
        } else {
            "its gate holds"
        };
        pass.promote(k, i.now, by);
        // A gate measures the waves before it from figures read after the last of them was sent, so
        // only waves a person approved follow in the same pass.
        match pass.promoted.iter().position(|p| !p) {
            Some(n) if approved(n) => k = n,
            Some(_) => {
                return pass.end(
                    RolloutPhase::Progressing,
                    Some(format!("wave {name} sent to Graph")),
                );
            }
            None => return pass.end(RolloutPhase::Complete, None),
        }
    }
}

/// A decision being made: the status so far, the waves and which are sent, and the Events.
struct Pass {
    st: RolloutStatus,
    waves: Vec<WaveStatus>,
    promoted: Vec<bool>,
    notices: Vec<Notice>,
}

impl Pass {
    /// The last wave sent, in spec order.
    fn current(&self) -> Option<String> {
        self.waves
            .iter()
            .zip(&self.promoted)
            .filter(|(_, p)| **p)
            .map(|(w, _)| w.name.clone())
            .next_back()
    }

    /// Records this pass's promote as not acted on, with a Warning: it never fires later.
    fn refuse_promote(&mut self, why: String) {
        if let Some(r) = self.st.last_promote.as_mut() {
            r.ignored = Some(why.clone());
        }
        self.notices.push(notice(
            true,
            Reason::REQUEST_IGNORED,
            "Promote",
            format!("wufb.dev/promote ignored: {why}; promote again when it can be acted on"),
        ));
    }

    /// Sends wave `k` now, with its Event.
    fn promote(&mut self, k: usize, now: DateTime<Utc>, by: &str) {
        let w = &mut self.waves[k];
        w.promoted_time = Some(time(now));
        self.promoted[k] = true;
        self.notices.push(Notice {
            warning: false,
            reason: Reason::WAVE_PROMOTED,
            action: WAVE_ACTIONS[k.min(WAVE_ACTIONS.len() - 1)],
            message: format!("wave {} ({} devices) sent to Graph: {by}", w.name, w.devices),
        });
    }

    fn hold(self, h: Hold) -> Decision {
        let phase = match h {
            Hold::Halted(_) => RolloutPhase::Halted,
            Hold::Aborted(_) => RolloutPhase::Aborted,
        };
        let m = h.message().to_string();
        let mut d = self.end(phase, Some(m));
        d.hold = Some(h);
        d
    }

    /// Waits with `message`; `after`, with the time it was measured from, says when to look again.
    fn wait(mut self, message: String, after: Option<(Duration, DateTime<Utc>)>) -> Decision {
        self.st.next_promotion_time =
            after.and_then(|(d, now)| chrono::Duration::from_std(d).ok().map(|d| time(now + d)));
        let mut d = self.end(RolloutPhase::Waiting, Some(message.clone()));
        d.waiting = Some((message, after.map(|(d, _)| d)));
        d
    }

    fn end(mut self, phase: RolloutPhase, message: Option<String>) -> Decision {
        self.st.phase = phase;
        self.st.current_wave = self.current();
        self.st.message = message;
        self.st.waves = self.waves;
        Decision {
            promoted: self.promoted,
            hold: None,
            waiting: None,
            status: self.st,
            notices: self.notices,
        }
    }
}

fn halt_message(h: &RolloutHalt) -> String {
    format!(
        "rollout halted at wave {}: {} of {} devices offered so far failed ({}), above the {}% of {}; the operator paused the Graph deployment. Fix or exclude the failed devices (`wufb-operator status <object> --devices` lists them), then run `wufb-operator retry <object>`, or `wufb-operator abort <object>` to stop for good",
        h.wave,
        h.failed,
        h.devices,
        percent(h.failed, h.devices),
        h.limit_percent,
        h.limit_field
    )
}

/// The per-wave progress figures of a poll, merged into the rollout status (by wave name).
pub fn record_figures(status: &mut RolloutStatus, figures: &[(String, RolloutProgress)]) {
    for (name, p) in figures {
        if let Some(w) = status.waves.iter_mut().find(|w| &w.name == name) {
            let mut p = p.clone();
            // The source is the object's; the wave keeps its figures only.
            p.source = None;
            w.progress = Some(p);
        }
    }
}

mod gate;
mod requests;

use gate::{content_changed, content_since, gate_wait, retried, trusted_since};

#[cfg(test)]
mod tests;
