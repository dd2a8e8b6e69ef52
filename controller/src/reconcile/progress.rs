//! Rollout progress: which of a deployment's targeted devices run the update, from the signals Graph
//! has. A device is up to date when `deviceProfiles` reports a build at or above one of the catalog
//! entry's revisions for its Windows build (a hotpatch revision counts: `graph::compliance`); failed when
//! its asset carries errors; pending when it reports an older build (or a Windows version the entry
//! lists no revision for, which this entry cannot bring up to date); and not reporting when
//! `deviceProfiles` does not list it at all, which is never counted as success. Pure: the driver reads
//! the signals (one tenant-wide `deviceProfiles` read per poll interval, shared by every object) and
//! writes the result into status, Events and metrics.

use std::collections::BTreeMap;

use super::reasons::Reason;
use crate::crd::{DeviceId, RolloutProgress};
use crate::graph::compliance::{Builds, Compliance, OsBuild, compliance};
use crate::graph::models::ProductRevision;

/// Where the figures come from, as status says.
pub const SOURCE: &str =
    "deviceProfiles (osBuild against the entry's productRevisions) and audience asset errors";

/// What one device is, for this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceState {
    UpToDate,
    Pending,
    Failed,
    NotReporting,
}

/// One targeted device that is not up to date, with its last known build and error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Straggler {
    pub device: String,
    pub state: DeviceState,
    pub build: Option<OsBuild>,
    pub error: Option<String>,
}

/// Classifies one device. An up-to-date build wins over an error (the device got the update anyway).
pub fn classify(
    build: Option<&OsBuild>,
    error: Option<&String>,
    revisions: &[ProductRevision],
) -> DeviceState {
    match (build.map(|b| compliance(b, revisions)), error) {
        (Some(Compliance::UpToDate), _) => DeviceState::UpToDate,
        (_, Some(_)) => DeviceState::Failed,
        (Some(_), None) => DeviceState::Pending,
        (None, None) => DeviceState::NotReporting,
    }
}

/// The funnel of `targeted` devices, and the devices not up to date (sorted by state, then id).
pub fn funnel(
    targeted: &[&DeviceId],
    builds: &Builds,
    errors: &BTreeMap<DeviceId, String>,
    revisions: &[ProductRevision],
    observed_time: &str,
) -> (RolloutProgress, Vec<Straggler>) {
    let mut stragglers = Vec::new();
    let p = walk(
        targeted,
        builds,
        errors,
        revisions,
        observed_time,
        |device, state, build, error| {
            stragglers.push(Straggler {
                device: device.to_string(),
                state,
                build: build.copied(),
                error: error.cloned(),
            })
        },
    );
    stragglers.sort_by(|a, b| (a.state, &a.device).cmp(&(b.state, &b.device)));
    (p, stragglers)
}

/// The funnel of `targeted` devices alone: what a pass reports, without a list of the devices not up
/// to date (at 100,000 devices that list would cost more than the figures are worth).
pub fn count(
    targeted: &[&DeviceId],
    builds: &Builds,
    errors: &BTreeMap<DeviceId, String>,
    revisions: &[ProductRevision],
    observed_time: &str,
) -> RolloutProgress {
    walk(
        targeted,
        builds,
        errors,
        revisions,
        observed_time,
        |_, _, _, _| {},
    )
}

/// Classifies every targeted device once, handing each one not up to date to `straggler`.
fn walk(
    targeted: &[&DeviceId],
    builds: &Builds,
    errors: &BTreeMap<DeviceId, String>,
    revisions: &[ProductRevision],
    observed_time: &str,
    mut straggler: impl FnMut(&DeviceId, DeviceState, Option<&OsBuild>, Option<&String>),
) -> RolloutProgress {
    let mut p = RolloutProgress {
        targeted: targeted.len() as u64,
        observed_time: Some(observed_time.to_string()),
        source: Some(SOURCE.to_string()),
        ..Default::default()
    };
    for device in targeted {
        let key = device.to_lowercase();
        let build = builds.get(&key);
        let error = errors.get(&key);
        let state = classify(build, error, revisions);
        match state {
            DeviceState::UpToDate => p.up_to_date += 1,
            DeviceState::Pending => p.pending += 1,
            DeviceState::Failed => p.failed += 1,
            DeviceState::NotReporting => p.not_reporting += 1,
        }
        if state != DeviceState::UpToDate {
            straggler(device, state, build, error);
        }
    }
    p.installed = Some(format!("{}/{}", p.up_to_date, p.targeted));
    p
}

/// A progress Event: its reason, whether it warns, and its note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    pub reason: Reason,
    pub warning: bool,
    pub note: String,
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

/// The milestones crossed between two polls: the first device up to date, half and nine tenths of the
/// targeted devices, every reporting device done (up to date or failed), and failures appearing.
pub fn milestones(old: Option<&RolloutProgress>, new: &RolloutProgress) -> Vec<Milestone> {
    let before = old.cloned().unwrap_or_default();
    let figures = format!(
        "{} of {} targeted devices up to date, {} pending, {} failed, {} not reporting",
        new.up_to_date, new.targeted, new.pending, new.failed, new.not_reporting
    );
    let mut out = Vec::new();
    let crossed = |at: f64| {
        share(before.up_to_date, before.targeted.max(new.targeted)) < at
            && share(new.up_to_date, new.targeted) >= at
    };
    if before.up_to_date == 0 && new.up_to_date > 0 {
        out.push(Milestone {
            reason: Reason::FIRST_DEVICE_UPDATED,
            warning: false,
            note: format!("The first device runs the update: {figures}"),
        });
    }
    for (at, reason, what) in [
        (0.5, Reason::HALF_UPDATED, "Half"),
        (0.9, Reason::MOST_UPDATED, "Nine tenths"),
    ] {
        if new.targeted > 0 && crossed(at) {
            out.push(Milestone {
                reason,
                warning: false,
                note: format!("{what} of the targeted devices run the update: {figures}"),
            });
        }
    }
    // The recorded figures come from status, which its writers may set to anything: checked sums.
    let done = |p: &RolloutProgress| {
        let settled = p.up_to_date.checked_add(p.failed);
        p.targeted > 0
            && p.pending == 0
            && settled.and_then(|s| s.checked_add(p.not_reporting)) == Some(p.targeted)
            && settled.is_some_and(|s| s > 0)
    };
    if done(new) && !done(&before) {
        out.push(Milestone {
            reason: Reason::REPORTING_DEVICES_DONE,
            warning: false,
            note: format!("Every reporting device is done: {figures}"),
        });
    }
    if new.failed > before.failed {
        out.push(Milestone {
            reason: Reason::DEVICES_FAILED,
            warning: true,
            note: format!(
                "{} more device(s) failed (their assets carry errors; see status.deviceErrors): {figures}",
                new.failed - before.failed
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(b: u32, ubr: u32) -> OsBuild {
        OsBuild {
            major_version: 10,
            minor_version: 0,
            build_number: b,
            update_build_revision: ubr,
        }
    }

    fn revisions() -> Vec<ProductRevision> {
        serde_json::from_value(json!([
            {"osBuild": {"majorVersion": 10, "minorVersion": 0, "buildNumber": 26100, "updateBuildRevision": 4349}, "isHotpatchUpdate": false},
            {"osBuild": {"majorVersion": 10, "minorVersion": 0, "buildNumber": 26100, "updateBuildRevision": 4309}, "isHotpatchUpdate": true},
            {"osBuild": {"majorVersion": 10, "minorVersion": 0, "buildNumber": 19045, "updateBuildRevision": 6093}, "isHotpatchUpdate": false}
        ]))
        .unwrap()
    }

    #[test]
    fn each_device_state() {
        let r = revisions();
        let e = "invalidAzureADJoin".to_string();
        let rows = [
            (
                "the standard revision",
                Some(build(26100, 4349)),
                None,
                DeviceState::UpToDate,
            ),
            (
                "the hotpatch revision, lower",
                Some(build(26100, 4309)),
                None,
                DeviceState::UpToDate,
            ),
            (
                "superseded by a newer revision",
                Some(build(26100, 4500)),
                None,
                DeviceState::UpToDate,
            ),
            ("behind", Some(build(26100, 4000)), None, DeviceState::Pending),
            (
                "a version the entry lists no revision for",
                Some(build(22000, 9999)),
                None,
                DeviceState::Pending,
            ),
            (
                "behind with an error",
                Some(build(26100, 4000)),
                Some(&e),
                DeviceState::Failed,
            ),
            (
                "up to date despite an error",
                Some(build(26100, 4349)),
                Some(&e),
                DeviceState::UpToDate,
            ),
            (
                "not reporting, with an error",
                None,
                Some(&e),
                DeviceState::Failed,
            ),
            ("not reporting", None, None, DeviceState::NotReporting),
        ];
        for (name, b, err, want) in rows {
            assert_eq!(classify(b.as_ref(), err, &r), want, "{name}");
        }
    }

    #[test]
    fn the_funnel_counts_every_targeted_device_once_and_never_silence_as_success() {
        let ids: Vec<DeviceId> = ["A", "b", "c", "d"].into_iter().map(DeviceId::new).collect();
        let mut targeted: Vec<&DeviceId> = ids.iter().collect();
        targeted.sort_unstable();
        let builds = Builds::from_iter([
            (DeviceId::new("a"), build(26100, 4309)),
            (DeviceId::new("b"), build(26100, 4000)),
            (DeviceId::new("x"), build(26100, 4349)),
        ]);
        let errors = BTreeMap::from([(DeviceId::new("c"), "missingTrustType".to_string())]);
        let (p, stragglers) = funnel(&targeted, &builds, &errors, &revisions(), "2026-12-01T00:00:00Z");
        assert_eq!(
            count(&targeted, &builds, &errors, &revisions(), "2026-12-01T00:00:00Z"),
            p,
            "the figures alone are the funnel's"
        );
        assert_eq!(
            (p.targeted, p.up_to_date, p.pending, p.failed, p.not_reporting),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(p.installed.as_deref(), Some("1/4"));
        let listed: Vec<(&str, DeviceState)> =
            stragglers.iter().map(|s| (s.device.as_str(), s.state)).collect();
        assert_eq!(
            listed,
            [
                ("b", DeviceState::Pending),
                ("c", DeviceState::Failed),
                ("d", DeviceState::NotReporting)
            ]
        );
    }

    #[test]
    fn milestones_fire_once_when_crossed() {
        let p = |up, pending, failed, silent| RolloutProgress {
            targeted: 10,
            up_to_date: up,
            pending,
            failed,
            not_reporting: silent,
            ..Default::default()
        };
        let reasons = |old: Option<&RolloutProgress>, new: &RolloutProgress| -> Vec<String> {
            milestones(old, new)
                .into_iter()
                .map(|m| m.reason.to_string())
                .collect()
        };
        assert!(reasons(None, &p(0, 10, 0, 0)).is_empty());
        assert_eq!(
            reasons(Some(&p(0, 10, 0, 0)), &p(1, 9, 0, 0)),
            ["FirstDeviceUpdated"]
        );
        assert_eq!(reasons(Some(&p(1, 9, 0, 0)), &p(5, 5, 0, 0)), ["HalfUpdated"]);
        assert!(reasons(Some(&p(5, 5, 0, 0)), &p(6, 4, 0, 0)).is_empty());
        assert_eq!(
            reasons(Some(&p(6, 4, 0, 0)), &p(8, 0, 1, 1)),
            ["ReportingDevicesDone", "DevicesFailed"]
        );
        assert_eq!(reasons(Some(&p(8, 0, 1, 1)), &p(9, 0, 1, 0)), ["MostUpdated"]);
        let all = milestones(Some(&p(6, 4, 0, 0)), &p(8, 0, 1, 1));
        assert!(
            all[1].warning && all[1].note.contains("1 more device(s) failed"),
            "{all:?}"
        );
    }
}
