//! The planner's specification: table tests of every decision, and properties of the changes.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use chrono::Utc;

use super::*;
use crate::crd::{DeviceGroup, DeviceId, ResolvedContent};
use crate::graph::models::{CatalogEntry, Expedite, SettingsPatch};
use crate::graph::{AssetRef, AudienceUpdate, ContentRequest, SettingsRequest};
use crate::reconcile::adopt;
use crate::reconcile::observe::{
    AudienceFacts, CatalogFact, DeployedContent, DeploymentFacts, GroupObservation, ItemFact,
    ObservedDeployment,
};
use crate::reconcile::outcome::Next;
use crate::reconcile::reasons::Reason;

fn dev(i: u32) -> AssetRef {
    AssetRef::device(format!("00000000-0000-4000-8000-{i:012}"))
}

fn desired() -> Desired {
    Desired {
        release_date: None,
        content: ContentRequest::CatalogEntry("e1".into()),
        settings: SettingsRequest {
            days_until_forced_reboot: Some(2),
            offer_as_optional: None,
            readiness_test: false,
        },
        paused: false,
        members: [dev(1), dev(2), AssetRef::group("g1")].into(),
        exclusions: [dev(3)].into(),
        devices: 2,
        rollout_devices: 2,
        device_limit: None,
        adopted: false,
    }
}

fn observed_of(d: &Desired) -> ObservedDeployment {
    ObservedDeployment {
        id: "d1".into(),
        content: match &d.content {
            ContentRequest::CatalogEntry(id) => DeployedContent::CatalogEntry(id.clone()),
            ContentRequest::ReleaseDate { date, .. } => DeployedContent::ReleaseDate(date.clone()),
        },
        settings: d.settings.clone(),
        ux_unowned: Default::default(),
        legacy: false,
        paused_requested: d.paused,
        members: d.members.clone(),
        exclusions: d.exclusions.clone(),
    }
}

// ----- changes: the writes once nothing blocks -------------------------------------------------------

#[test]
fn create_when_nothing_exists_then_pause_before_audience() {
    let mut d = desired();
    d.paused = true;
    let steps = changes(&d, None, 1000);
    assert_eq!(steps.len(), 4);
    assert!(matches!(steps[0], Step::Create { .. }));
    assert_eq!(
        steps[1],
        Step::SetPaused {
            target: Target::New,
            paused: true
        }
    );
    assert_eq!(steps[2], Step::AwaitPaused { target: Target::New });
    let Step::UpdateAudience {
        target: Target::New,
        diff,
        ..
    } = &steps[3]
    else {
        panic!("{:?}", steps[3])
    };
    assert_eq!(diff.add_members.len(), 3);
    assert_eq!(diff.add_exclusions, vec![dev(3)]);
}

#[test]
fn converged_plans_nothing() {
    let d = desired();
    assert!(changes(&d, Some(&observed_of(&d)), 1000).is_empty());
}

#[test]
fn unknown_content_is_not_replaced() {
    let d = desired();
    let mut o = observed_of(&d);
    o.content = DeployedContent::Unknown;
    assert!(changes(&d, Some(&o), 1000).is_empty());
}

#[test]
fn audience_edits_are_set_differences() {
    let d = desired();
    let mut o = observed_of(&d);
    o.members.remove(&dev(2));
    o.members.insert(dev(9));
    o.exclusions.clear();
    let steps = changes(&d, Some(&o), 1000);
    let diff = AudienceDiff {
        add_members: vec![dev(2)],
        remove_members: vec![dev(9)],
        add_exclusions: vec![dev(3)],
        remove_exclusions: vec![],
    };
    assert_eq!(
        steps,
        vec![Step::UpdateAudience {
            target: Target::Existing("d1".into()),
            diff,
            batch: 1000,
        }]
    );
}

#[test]
fn pause_goes_first_and_resume_goes_last() {
    let mut d = desired();
    d.paused = true;
    let mut o = observed_of(&desired());
    o.members.clear();
    let steps = changes(&d, Some(&o), 1000);
    assert_eq!(
        steps[0],
        Step::SetPaused {
            target: Target::Existing("d1".into()),
            paused: true
        }
    );
    assert_eq!(
        steps[1],
        Step::AwaitPaused {
            target: Target::Existing("d1".into())
        },
        "the audience waits until Graph shows the pause"
    );
    assert!(matches!(steps[2], Step::UpdateAudience { .. }));
    d.paused = false;
    o.paused_requested = true;
    let steps = changes(&d, Some(&o), 1000);
    assert!(matches!(steps[0], Step::UpdateAudience { .. }));
    assert_eq!(
        steps[1],
        Step::SetPaused {
            target: Target::Existing("d1".into()),
            paused: false
        }
    );
}

#[test]
fn settings_change_is_a_patch() {
    let mut d = desired();
    let mut o = observed_of(&d);
    // Set outside the operator: kept as it is.
    o.ux_unowned.insert("isHotpatchEnabled".into(), json!(true));
    d.settings.days_until_forced_reboot = Some(5);
    let ux = json!({"daysUntilForcedReboot": 5, "isHotpatchEnabled": true});
    assert_eq!(
        changes(&d, Some(&o), 1000),
        vec![Step::UpdateSettings {
            id: "d1".into(),
            settings: d.settings.clone(),
            patch: SettingsPatch {
                user_experience: ux.as_object().cloned(),
                expedite: None,
            },
            legacy: false
        }]
    );
    // Only the part that differs is sent.
    let mut r = desired();
    r.settings.readiness_test = true;
    let [Step::UpdateSettings { patch, .. }] = &changes(&r, Some(&observed_of(&desired())), 1000)[..] else {
        panic!("one settings step")
    };
    assert_eq!(patch.user_experience, None);
    assert_eq!(
        patch.expedite,
        Some(Expedite {
            is_expedited: true,
            is_readiness_test: true
        })
    );
    // An unset field is not managed.
    d.settings.days_until_forced_reboot = None;
    assert!(changes(&d, Some(&o), 1000).is_empty());
}

#[test]
fn content_change_replaces_with_the_same_audience() {
    let d = desired();
    let mut o = observed_of(&d);
    o.content = DeployedContent::CatalogEntry("old".into());
    let steps = changes(&d, Some(&o), 1000);
    assert!(matches!(&steps[0], Step::Create { content: ContentRequest::CatalogEntry(e), .. } if e == "e1"));
    let Step::UpdateAudience {
        target: Target::New,
        diff,
        ..
    } = &steps[1]
    else {
        panic!()
    };
    assert_eq!(
        diff.add_members.iter().cloned().collect::<BTreeSet<_>>(),
        d.members
    );
    assert_eq!(steps.last(), Some(&Step::DeleteReplaced { id: "d1".into() }));
}

#[test]
fn audience_waves_add_exclusions_first_remove_them_last_at_the_lower_bound() {
    let diff = AudienceDiff {
        add_members: (10..13).map(dev).collect(),
        remove_members: vec![dev(20)],
        add_exclusions: (30..33).map(dev).collect(),
        remove_exclusions: (40..42).map(dev).collect(),
    };
    let waves = diff.phases(2);
    let calls: usize = waves.iter().map(Vec::len).sum();
    assert_eq!(calls, 9_usize.div_ceil(2), "the lower bound of calls");
    assert!(
        waves[0].iter().all(|u| !u.add_exclusions.is_empty()),
        "exclusions first: {waves:?}"
    );
    assert!(
        waves
            .last()
            .unwrap()
            .iter()
            .all(|u| !u.remove_exclusions.is_empty()),
        "their removal last: {waves:?}"
    );
    let removed_early: usize = waves[..waves.len() - 1]
        .iter()
        .flatten()
        .map(|u| u.remove_exclusions.len())
        .sum();
    assert_eq!(
        removed_early, 0,
        "no exclusion is removed before every member change"
    );
    assert!(diff.phases(1000).len() == 1, "one request when all fits");
}

#[test]
fn an_asset_excluded_and_added_at_once_goes_in_one_request_with_both() {
    // Five devices join as members while three of them are also excluded; batches of two.
    let diff = AudienceDiff {
        add_members: (1..=5).map(dev).collect(),
        add_exclusions: [dev(2), dev(4), dev(5)].into(),
        ..Default::default()
    };
    for batch in [1, 2, 3, 1000] {
        let waves = diff.phases(batch);
        let requests: Vec<&AudienceUpdate> = waves.iter().flatten().collect();
        for d in [dev(2), dev(4), dev(5)] {
            let holding: Vec<&&AudienceUpdate> = requests
                .iter()
                .filter(|u| u.add_members.contains(&&d) || u.add_exclusions.contains(&&d))
                .collect();
            assert_eq!(holding.len(), 1, "batch {batch}: {d:?} in one request: {waves:?}");
            assert!(holding[0].add_members.contains(&&d) && holding[0].add_exclusions.contains(&&d));
        }
        // Still at most one request above the lower bound, and within the batch but for a pair.
        assert!(
            requests.len() <= 8_usize.div_ceil(batch) + 1,
            "batch {batch}: {waves:?}"
        );
        assert!(requests.iter().all(|u| u.len() <= batch.max(2)));
    }
}

// ----- the brake and the blockers: one row per reason a pass can stop ----------------------------------

const ENTRY: &str = "e1";

fn object(spec: serde_json::Value, status: Option<serde_json::Value>) -> ExpeditedDeployment {
    let mut o = json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
        "metadata": {"name": "r", "namespace": "n", "uid": "u", "generation": 2},
        "spec": spec,
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    serde_json::from_value(o).unwrap()
}

fn spec(extra: serde_json::Value) -> serde_json::Value {
    let mut s = json!({
        "content": {"latest": true},
        "paused": true,
        "audience": {"members": [{"device": dev(1).id}, {"deviceGroup": "ring"}], "exclusions": [{"device": dev(3).id}]},
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

fn status_with_deployment() -> serde_json::Value {
    json!({"deploymentId": "d1", "observedGeneration": 1, "audience": {"members": 2, "exclusions": 1, "devices": 2},
           "resolvedContent": {"source": "latest", "catalogEntryId": ENTRY}})
}

/// A deployment offering the update (not paused).
fn offering() -> Known<DeploymentFacts> {
    let mut o = observed_of(&desired());
    o.members = [dev(1), AssetRef::group("g1")].into();
    Known::Found(DeploymentFacts {
        observed: o,
        graph_state: Some("offering".into()),
        state_reasons: vec![],
        device_errors: vec![],
        audience_never_listed: false,
        audience_id: None,
    })
}

fn catalog() -> CatalogFact {
    CatalogFact::Recorded(ResolvedContent {
        source: "latest".into(),
        catalog_entry_id: ENTRY.into(),
        display_name: None,
        release_date: None,
        deployable_until: None,
        ..Default::default()
    })
}

fn ready_audience() -> AudienceFacts {
    AudienceFacts {
        members: vec![
            ItemFact::Device(dev(1).id.into()),
            ItemFact::Group {
                id: "g1".into(),
                devices: std::sync::Arc::new([dev(5).id.into(), dev(6).id.into()].into()),
            },
        ],
        exclusions: vec![ItemFact::Device(dev(3).id.into())],
        waves: Vec::new(),
    }
}

fn observation(deployment: Known<DeploymentFacts>) -> Observation {
    Observation {
        at: chrono::Utc::now(),
        adoption: None,
        deployment,
        audience: Some(ready_audience()),
        content: Some(catalog()),
        failed: None,
    }
}

fn pause() -> Step {
    Step::SetPaused {
        target: Target::Existing("d1".into()),
        paused: true,
    }
}

/// Every reason a pass can stop, with `paused: true` and a deployment offering the update: the pause
/// is written, and nothing else.
#[test]
fn pause_is_written_first_whatever_stops_the_pass() {
    struct Row {
        name: &'static str,
        obj: ExpeditedDeployment,
        obs: Observation,
        /// The reason status reports (`None`: the read's error is reported).
        reason: Option<Reason>,
    }
    let with = |f: &dyn Fn(&mut Observation)| {
        let mut o = observation(offering());
        f(&mut o);
        o
    };
    let rows = vec![
        Row {
            name: "invalid spec",
            obj: object(
                spec(json!({"audience": {"members": [{"device": "not-a-guid"}]}})),
                Some(status_with_deployment()),
            ),
            obs: with(&|o| {
                o.audience = None;
                o.content = None;
            }),
            reason: Some(Reason::INVALID_SPEC),
        },
        Row {
            name: "blast-radius guard",
            obj: object(spec(json!({"maxDevices": 1})), Some(status_with_deployment())),
            obs: observation(offering()),
            reason: Some(Reason::AUDIENCE_TOO_LARGE),
        },
        Row {
            name: "operator-wide guard",
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: observation(offering()),
            reason: None,
        },
        Row {
            name: "member group not created yet",
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| {
                o.audience.as_mut().unwrap().members[1] =
                    ItemFact::Waiting("DeviceGroup ring does not exist".into())
            }),
            reason: Some(Reason::WAITING_FOR_DEVICE_GROUP),
        },
        Row {
            name: "exclusion group being deleted",
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| {
                o.audience.as_mut().unwrap().exclusions[0] =
                    ItemFact::Waiting("DeviceGroup dnd is not Ready yet".into())
            }),
            reason: Some(Reason::WAITING_FOR_DEVICE_GROUP),
        },
        Row {
            name: "content gone from the catalog",
            obj: object(
                spec(json!({"content": {"catalogEntryId": "gone"}})),
                Some(status_with_deployment()),
            ),
            obs: with(&|o| {
                o.content = Some(CatalogFact::Entry {
                    id: "gone".into(),
                    entry: None,
                })
            }),
            reason: Some(Reason::CONTENT_NOT_FOUND),
        },
        Row {
            name: "a read after the deployment failed",
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| {
                o.audience = None;
                o.content = None;
                o.failed = Some(crate::reconcile::error::Error::Waiting {
                    reason: Reason::GRAPH_UNAVAILABLE,
                    message: "503".into(),
                    retry: std::time::Duration::from_secs(1),
                });
            }),
            reason: None,
        },
        Row {
            name: "audience not manageable (Intune)",
            obj: object(
                spec(json!({"deploymentId": "d1"})),
                Some(status_with_deployment()),
            ),
            obs: {
                let mut o = observation(offering());
                if let Known::Found(d) = &mut o.deployment {
                    d.audience_never_listed = true;
                }
                o
            },
            reason: Some(Reason::AUDIENCE_NOT_MANAGEABLE),
        },
        Row {
            name: "adopted deployment carries other content",
            obj: object(
                spec(json!({"deploymentId": "d1"})),
                Some(status_with_deployment()),
            ),
            obs: {
                let mut o = observation(offering());
                if let Known::Found(d) = &mut o.deployment {
                    d.observed.content = DeployedContent::CatalogEntry("other".into());
                }
                o
            },
            reason: Some(Reason::CONTENT_DIFFERS),
        },
        Row {
            name: "content no longer deployable",
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| o.content = Some(expired())),
            reason: Some(Reason::CONTENT_EXPIRED),
        },
    ];
    for row in rows {
        let limit = if row.name == "operator-wide guard" {
            Some(1)
        } else {
            None
        };
        let cfg = PlanConfig {
            operator_limit: limit,
            batch_size: 1000,
            ..Default::default()
        };
        let p = plan(&row.obj, &row.obs, &cfg);
        assert_eq!(p.steps, vec![pause()], "{}: the pause and nothing else", row.name);
        match (row.reason, &p.end) {
            (Some(reason), End::Report { outcome, .. }) => {
                assert_eq!(outcome.reason(), reason, "{}", row.name);
                assert!(!outcome.is_ready(), "{}", row.name);
            }
            (None, End::Report { outcome, .. }) if row.name == "operator-wide guard" => {
                assert_eq!(outcome.reason(), Reason::AUDIENCE_TOO_LARGE);
            }
            (None, End::ObserveFailed) => {}
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", row.name),
        }
    }
}

#[test]
fn an_unreadable_deployment_is_paused_anyway_and_an_absent_one_is_not() {
    let obj = object(spec(json!({})), Some(status_with_deployment()));
    let mut obs = observation(Known::Unread("d1".into()));
    obs.failed = Some(crate::reconcile::error::Error::Waiting {
        reason: Reason::GRAPH_UNREACHABLE,
        message: "x".into(),
        retry: std::time::Duration::from_secs(1),
    });
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert_eq!(p.steps, vec![pause()]);
    assert_eq!(p.end, End::ObserveFailed);
    let p = plan(
        &object(spec(json!({"maxDevices": 1})), Some(status_with_deployment())),
        &observation(Known::Missing("d1".into())),
        &PlanConfig::default(),
    );
    assert!(
        p.steps.is_empty(),
        "nothing to pause, and a blocked spec creates nothing"
    );
}

#[test]
fn a_resume_waits_for_a_spec_that_passes_every_check() {
    let mut paused = offering();
    if let Known::Found(d) = &mut paused {
        d.observed.paused_requested = true;
    }
    let obj = object(
        spec(json!({"paused": false, "maxDevices": 1})),
        Some(status_with_deployment()),
    );
    let p = plan(&obj, &observation(paused), &PlanConfig::default());
    assert!(
        p.steps.is_empty(),
        "no resume while the guard blocks: {:?}",
        p.steps
    );
    assert_eq!(
        p.blocker.map(|b| b.outcome().reason()),
        Some(Reason::AUDIENCE_TOO_LARGE)
    );
}

#[test]
fn observe_only_never_writes_not_even_a_pause() {
    let obj = object(
        spec(json!({"managementPolicy": "ObserveOnly", "deploymentId": "d1", "maxDevices": 1})),
        Some(status_with_deployment()),
    );
    let p = plan(&obj, &observation(offering()), &PlanConfig::default());
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let obj = object(spec(json!({"managementPolicy": "ObserveOnly"})), None);
    let p = plan(&obj, &observation(Known::None), &PlanConfig::default());
    assert!(p.steps.is_empty());
    assert_eq!(p.blocker, Some(Blocker::NothingToObserve));
}

#[test]
fn an_ambiguous_adoption_stalls_listing_the_candidates_and_pauses_nothing() {
    let obj = object(
        spec(json!({})),
        Some(json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY}})),
    );
    let mut obs = observation(Known::None);
    obs.adoption = Some(adopt::Decision::Ambiguous(vec!["a".into(), "b".into()]));
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert!(p.steps.is_empty(), "none is known to be ours: nothing is paused");
    let End::Report { outcome, .. } = &p.end else {
        panic!()
    };
    assert_eq!(outcome.reason(), Reason::AMBIGUOUS_ADOPTION);
    assert!(outcome.message().contains("a, b"), "{}", outcome.message());
}

#[test]
fn an_adopted_deployment_is_recorded_then_paused() {
    let obj = object(
        spec(json!({})),
        Some(json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY}})),
    );
    let mut obs = observation(offering());
    obs.adoption = Some(adopt::Decision::Adopt("d1".into()));
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert_eq!(p.steps[0], Step::Adopt { id: "d1".into() });
    assert_eq!(p.steps[1], pause());
}

#[test]
fn one_404_never_creates_a_second_deployment() {
    let cfg = PlanConfig::default();
    let missing = observation(Known::Missing("d1".into()));
    // The first 404: nothing is written, the time is recorded, and the pass looks again soon.
    let obj = object(spec(json!({"paused": false})), Some(status_with_deployment()));
    let p = plan(&obj, &missing, &cfg);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert!(p.notices.is_empty());
    let since = p.facts.missing_since.clone().expect("first 404 recorded");
    let End::Report { outcome, next } = &p.end else {
        panic!("{:?}", p.end)
    };
    assert_eq!(outcome.reason(), Reason::CONFIRMING_ABSENCE);
    assert!(outcome.message().contains("d1"), "{}", outcome.message());
    assert!(matches!(next, Next::After(d) if *d <= std::time::Duration::from_secs(5)));
    // Still missing, but not for long enough: the first time is kept, and still nothing is written.
    let mut status = status_with_deployment();
    status["missingSince"] = json!(since);
    let p = plan(
        &object(spec(json!({"paused": false})), Some(status.clone())),
        &missing,
        &cfg,
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.facts.missing_since.as_deref(), Some(since.as_str()));
    // Found again (the 404 was lag): the wait is over and forgotten.
    let p = plan(
        &object(spec(json!({"paused": false})), Some(status.clone())),
        &observation(offering()),
        &cfg,
    );
    assert!(p.is_converged(), "{:?}", p.steps);
    assert_eq!(p.facts.missing_since, None);
    // A time in the future (a clock step) restarts the wait rather than ending it.
    status["missingSince"] = json!("2999-01-01T00:00:00Z");
    let p = plan(
        &object(spec(json!({"paused": false})), Some(status)),
        &missing,
        &cfg,
    );
    assert!(p.steps.is_empty());
}

#[test]
fn a_deployment_deleted_outside_is_created_again_with_a_warning() {
    // Missing at the start of the wait and still missing after it.
    let mut status = status_with_deployment();
    status["missingSince"] = json!("2020-01-01T00:00:00Z");
    let obj = object(spec(json!({"paused": false})), Some(status.clone()));
    let p = plan(
        &obj,
        &observation(Known::Missing("d1".into())),
        &PlanConfig::default(),
    );
    assert!(matches!(p.steps[0], Step::Create { .. }));
    assert_eq!(p.notices.len(), 1);
    assert_eq!(p.notices[0].reason, Reason::DEPLOYMENT_MISSING);
    let adopted = object(spec(json!({"paused": false, "deploymentId": "d1"})), Some(status));
    let p = plan(
        &adopted,
        &observation(Known::Missing("d1".into())),
        &PlanConfig::default(),
    );
    assert!(p.steps.is_empty(), "an adopted deployment is never recreated");
    assert_eq!(
        p.blocker,
        Some(Blocker::AdoptedDeploymentMissing { id: "d1".into() })
    );
}

#[test]
fn content_resolution_rules() {
    let entry = |id: &str, expeditable: bool| -> CatalogEntry {
        serde_json::from_value(
            json!({"@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry",
            "id": id, "isExpeditable": expeditable, "releaseDateTime": "2026-11-10T00:00:00Z",
            "qualityUpdateClassification": "security"}),
        )
        .unwrap()
    };
    // releaseDate: the one expeditable security update of that day.
    let on = |date: &str, entries: Vec<CatalogEntry>, nearby: &[&str]| {
        resolve_content(
            format!("releaseDate:{date}"),
            &CatalogFact::ReleaseDate {
                date: date.into(),
                entries,
                nearby: nearby.iter().map(|d| d.to_string()).collect(),
            },
            Utc::now(),
        )
    };
    let reason_and_message = |r: Result<ResolvedContent, Blocker>| match r {
        Err(Blocker::Content { reason, message }) => (reason, message),
        other => panic!("{other:?}"),
    };
    let picked = on(
        "2026-11-10",
        vec![entry("not-expeditable", false), entry("expeditable", true)],
        &[],
    )
    .unwrap();
    assert_eq!(picked.catalog_entry_id, "expeditable");
    assert_eq!(picked.release_date.as_deref(), Some("2026-11-10"));
    // Only entries that cannot be expedited: refused, naming them, never deployed as an expedite.
    let (reason, message) = reason_and_message(on("2026-11-10", vec![entry("slow", false)], &[]));
    assert_eq!(reason, Reason::CONTENT_NOT_EXPEDITABLE);
    assert!(message.contains("slow"), "{message}");
    // Several expeditable: never a guess.
    let (reason, message) =
        reason_and_message(on("2026-11-10", vec![entry("a", true), entry("b", true)], &[]));
    assert_eq!(reason, Reason::CONTENT_AMBIGUOUS);
    assert!(
        message.contains("a (") && message.contains("b (") && message.contains("catalogEntryId"),
        "{message}"
    );
    // None that day: the nearest dates are named.
    let (reason, message) = reason_and_message(on(
        "2026-11-11",
        vec![],
        &["2026-12-08", "2026-11-10", "2026-10-14", "2026-09-09"],
    ));
    assert_eq!(reason, Reason::CONTENT_NOT_FOUND);
    assert!(
        message.contains("2026-11-10, 2026-12-08, 2026-10-14") && !message.contains("2026-09-09"),
        "{message}"
    );
    let slow = resolve_content(
        "catalogEntryId:x".into(),
        &CatalogFact::Entry {
            id: "x".into(),
            entry: Some(entry("x", false)),
        },
        Utc::now(),
    );
    assert!(
        matches!(slow, Err(Blocker::Content { reason, .. }) if reason == Reason::CONTENT_NOT_EXPEDITABLE)
    );
}

/// One catalog entry for the intent table: short name, date, classification, cadence, severity, CVEs.
fn intent_entry(
    short: &str,
    date: &str,
    class: &str,
    cadence: &str,
    severity: &str,
    cves: &[&str],
) -> CatalogEntry {
    serde_json::from_value(json!({
        "@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry",
        "id": format!("id-{short}"), "shortName": short, "isExpeditable": true,
        "releaseDateTime": format!("{date}T00:00:00Z"), "qualityUpdateClassification": class,
        "qualityUpdateCadence": cadence,
        "cveSeverityInformation": {"maxSeverity": severity, "maxBaseScore": 8.1,
            "exploitedCves": cves.iter().map(|c| json!({"number": c, "url": format!("https://msrc.microsoft.com/{c}")})).collect::<Vec<_>>()},
    }))
    .unwrap()
}

#[test]
fn each_newest_filter_resolves_the_right_entry_and_none_stalls_naming_the_filter() {
    use crate::crd::{Cadence, Classification, NewestSpec, Severity};
    // Newest first, as the catalog lists them.
    let catalog = vec![
        intent_entry("2026.11 D", "2026-11-24", "nonSecurity", "monthly", "low", &[]),
        intent_entry("2026.11 B", "2026-11-10", "security", "monthly", "important", &[]),
        intent_entry(
            "2026.10 OOB",
            "2026-10-21",
            "security",
            "outOfBand",
            "critical",
            &["CVE-2026-21013"],
        ),
        intent_entry("2026.10 B", "2026-10-14", "security", "monthly", "critical", &[]),
        intent_entry(
            "2026.09 B",
            "2026-09-09",
            "security",
            "monthly",
            "moderate",
            &["CVE-2026-20001"],
        ),
    ];
    let f = NewestSpec::default;
    let rows: Vec<(&str, NewestSpec, Option<&str>)> = vec![
        ("default: newest security", f(), Some("2026.11 B")),
        (
            "all classifications",
            NewestSpec {
                classification: Some(Classification::All),
                ..f()
            },
            Some("2026.11 D"),
        ),
        (
            "non-security",
            NewestSpec {
                classification: Some(Classification::NonSecurity),
                ..f()
            },
            Some("2026.11 D"),
        ),
        (
            "out-of-band",
            NewestSpec {
                cadence: Some(Cadence::OutOfBand),
                ..f()
            },
            Some("2026.10 OOB"),
        ),
        (
            "monthly",
            NewestSpec {
                cadence: Some(Cadence::Monthly),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "critical at least",
            NewestSpec {
                min_severity: Some(Severity::Critical),
                ..f()
            },
            Some("2026.10 OOB"),
        ),
        (
            "critical and monthly",
            NewestSpec {
                min_severity: Some(Severity::Critical),
                cadence: Some(Cadence::Monthly),
                ..f()
            },
            Some("2026.10 B"),
        ),
        (
            "important at least",
            NewestSpec {
                min_severity: Some(Severity::Important),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "exploited only",
            NewestSpec {
                exploited_only: Some(true),
                ..f()
            },
            Some("2026.10 OOB"),
        ),
        // Cumulative: every entry from the first one listing the CVE fixes it, the newest wins.
        (
            "a CVE fixed in September",
            NewestSpec {
                cve: Some("CVE-2026-20001".into()),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "a CVE and monthly",
            NewestSpec {
                cve: Some("CVE-2026-21013".into()),
                cadence: Some(Cadence::Monthly),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "a CVE no entry lists",
            NewestSpec {
                cve: Some("CVE-2026-99999".into()),
                ..f()
            },
            None,
        ),
        (
            "out-of-band and exploited non-security",
            NewestSpec {
                classification: Some(Classification::NonSecurity),
                exploited_only: Some(true),
                ..f()
            },
            None,
        ),
    ];
    for (row, filter, want) in rows {
        let got = resolve_content(
            "newest:x".into(),
            &CatalogFact::Newest {
                filter: filter.clone(),
                entries: catalog.clone(),
            },
            Utc::now(),
        );
        match (want, got) {
            (Some(short), Ok(r)) => {
                assert_eq!(r.short_name.as_deref(), Some(short), "{row}");
                assert_eq!(r.catalog_entry_id, format!("id-{short}"), "{row}");
                assert!(r.resolved_time.is_some(), "{row}");
            }
            (None, Err(Blocker::Content { reason, message })) => {
                assert_eq!(reason, Reason::CONTENT_NOT_FOUND, "{row}");
                assert!(
                    message.starts_with("spec.content.newest: ") && message.contains("classification="),
                    "{row}: {message}"
                );
                assert!(
                    message.contains("2026.11 D"),
                    "{row}: names the newest expeditable entry: {message}"
                );
                if filter.cve.is_some() {
                    assert!(message.contains("CVE-2026-99999"), "{row}: {message}");
                }
            }
            (want, got) => panic!("{row}: wanted {want:?}, got {got:?}"),
        }
    }
    // Status carries what the entry fixes.
    let r = resolve_content(
        "latest".into(),
        &CatalogFact::Newest {
            filter: NewestSpec {
                exploited_only: Some(true),
                ..f()
            },
            entries: catalog.clone(),
        },
        Utc::now(),
    )
    .unwrap();
    assert_eq!(r.cves, vec!["CVE-2026-21013".to_string()]);
    assert_eq!(r.max_severity.as_deref(), Some("critical"));
    assert!(r.describe().contains("2026.10 OOB") && r.describe().contains("CVE-2026-21013"));
    // `latest` with an empty catalog names its own field.
    let none = resolve_content(
        "latest".into(),
        &CatalogFact::Newest {
            filter: f(),
            entries: vec![],
        },
        Utc::now(),
    );
    assert!(
        matches!(none, Err(Blocker::Content { message, .. }) if message.starts_with("spec.content.latest: "))
    );
}

#[test]
fn the_blast_radius_counts_group_devices_less_exclusions() {
    let facts = AudienceFacts {
        members: vec![
            ItemFact::Device("a".into()),
            ItemFact::Group {
                id: "g".into(),
                devices: std::sync::Arc::new(["a".into(), "b".into(), "c".into()].into()),
            },
        ],
        exclusions: vec![ItemFact::Group {
            id: "x".into(),
            devices: std::sync::Arc::new(["c".into()].into()),
        }],
        waves: Vec::new(),
    };
    assert_eq!(
        offered_devices(&facts)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn each_wave_counts_its_own_devices_once_less_exclusions_and_only_sent_waves_are_offered() {
    let group = |id: &str, ids: &[&str]| ItemFact::Group {
        id: id.into(),
        devices: std::sync::Arc::new(ids.iter().map(|d| (*d).into()).collect()),
    };
    let facts = AudienceFacts {
        members: Vec::new(),
        exclusions: vec![ItemFact::Device("x".into())],
        waves: vec![
            vec![group("w1", &["b", "a", "x"]), ItemFact::Device("a".into())],
            vec![group("w2", &["a", "c", "d"]), ItemFact::Waiting("later".into())],
            vec![ItemFact::Device("d".into()), ItemFact::Device("e".into())],
        ],
    };
    let names = |ids: Vec<&DeviceId>| ids.into_iter().map(String::from).collect::<Vec<_>>();
    let per_wave: Vec<Vec<String>> = wave_devices(&facts).into_iter().map(names).collect();
    assert_eq!(per_wave, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    assert_eq!(names(offered_devices(&facts)), ["a", "b", "c", "d", "e"]);
    assert_eq!(
        names(offered_devices_of(&facts, Some(&[true, false, true]))),
        ["a", "b", "d", "e"]
    );
    assert_eq!(names(offered_devices_of(&facts, Some(&[]))), Vec::<String>::new());
}

#[test]
fn cleanup_honours_the_deletion_policy() {
    let obj = object(
        json!({"content": {"latest": true}, "deletionPolicy": "Orphan"}),
        Some(status_with_deployment()),
    );
    assert_eq!(
        plan_cleanup(&obj, None),
        Cleanup::Orphan {
            id: Some("d1".into())
        }
    );
    let obj = object(
        json!({"content": {"latest": true}}),
        Some(status_with_deployment()),
    );
    assert_eq!(
        plan_cleanup(&obj, None),
        Cleanup::Delete {
            ids: vec!["d1".into()],
            audiences: vec![],
        }
    );
    let pending = object(
        json!({"content": {"latest": true}}),
        Some(
            json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY, "audienceId": "aud"}}),
        ),
    );
    assert_eq!(
        plan_cleanup(&pending, Some(&adopt::Decision::Adopt("lost".into()))),
        Cleanup::Delete {
            ids: vec!["lost".into()],
            audiences: vec!["aud".into()],
        },
        "what a lost create made is deleted too, its audience after it"
    );
    // An adopted deployment's audience is not the operator's to delete.
    let mut status = status_with_deployment();
    status["audienceId"] = json!("theirs");
    let adopted = object(
        json!({"content": {"latest": true}, "deploymentId": "d1"}),
        Some(status.clone()),
    );
    assert_eq!(
        plan_cleanup(&adopted, None),
        Cleanup::Delete {
            ids: vec!["d1".into()],
            audiences: vec![],
        }
    );
    let own = object(json!({"content": {"latest": true}}), Some(status));
    assert_eq!(
        plan_cleanup(&own, None),
        Cleanup::Delete {
            ids: vec!["d1".into()],
            audiences: vec!["theirs".into()],
        }
    ); // A pending create whose adoption was not decided (the quarantine cannot match it): held.
    let undecided = object(
        json!({"content": {"latest": true}}),
        Some(
            json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY, "audienceId": "aud"}}),
        ),
    );
    let held = plan_cleanup(&undecided, None);
    assert_eq!(
        held,
        Cleanup::Unresolved {
            started_at: "2026-11-28T10:00:00Z".into()
        }
    );
    assert_eq!(held.result(), "waiting");
    assert!(held.graph_writes().is_empty());
    assert_eq!(
        plan_cleanup(&undecided, Some(&adopt::Decision::None)).graph_writes(),
        ["delete deployment audience"],
        "nothing was created but the audience"
    );
}

fn batch(batch_size: usize) -> PlanConfig {
    PlanConfig {
        batch_size,
        ..Default::default()
    }
}

#[test]
fn device_groups_create_fill_and_wait_while_in_use() {
    let group: DeviceGroup = serde_json::from_value(json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
        "metadata": {"name": "ring", "namespace": "n"},
        "spec": {"devices": [dev(1).id, dev(2).id, dev(3).id]},
    }))
    .unwrap();
    let p = plan_group(
        &group,
        &GroupObservation {
            at: chrono::Utc::now(),
            entra: None,
            group: Known::None,
            failed: None,
        },
        &batch(2),
    );
    assert_eq!(p.steps[0], GroupStep::Create);
    assert_eq!(
        p.graph_writes(),
        [
            "create device group",
            "add device group members",
            "add device group members"
        ]
    );
    let mut known = group.clone();
    known.status = Some(crate::crd::DeviceGroupStatus {
        group_id: Some("g".into()),
        ..Default::default()
    });
    let p = plan_group(
        &known,
        &GroupObservation {
            at: chrono::Utc::now(),
            entra: None,
            group: Known::Found(crate::graph::GroupDevices {
                devices: vec![DeviceId::new(&dev(1).id), DeviceId::new(&dev(9).id)],
                errors: Default::default(),
            }),
            failed: None,
        },
        &batch(1000),
    );
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].describe(), "update group devices: +2 -1");
    // One 404 for the group (and its members) is not proof: nothing is created until it has stayed
    // missing for the confirmation time.
    let now = chrono::Utc::now();
    let gone = GroupObservation {
        at: now,
        entra: None,
        group: Known::Missing("g".into()),
        failed: None,
    };
    let first = plan_group(&known, &gone, &batch(1000));
    assert!(
        first.steps.is_empty() && first.notices.is_empty(),
        "{:?}",
        first.steps
    );
    let since = first.missing_since.clone().expect("the first 404 is recorded");
    let End::Report { outcome, .. } = &first.end else {
        panic!("{:?}", first.end)
    };
    assert_eq!(outcome.reason(), Reason::CONFIRMING_ABSENCE);
    let mut still = known.clone();
    still.status.as_mut().unwrap().missing_since = Some(since);
    let confirmed = GroupObservation {
        at: now + chrono::Duration::seconds(121),
        ..gone
    };
    let missing = plan_group(&still, &confirmed, &batch(1000));
    assert_eq!(missing.notices[0].reason, Reason::GROUP_MISSING);
    assert_eq!(missing.steps[0], GroupStep::Create);
    assert!(matches!(
        plan_group_cleanup(&known, vec!["rollout".into()]),
        GroupCleanup::Wait { .. }
    ));
    assert_eq!(
        plan_group_cleanup(&known, vec![]),
        GroupCleanup::Delete { id: Some("g".into()) }
    );
}

// ----- properties of the changes ---------------------------------------------------------------------

/// Applies steps to an observed state the way Graph would.
fn apply(steps: &[Step], o: Option<&ObservedDeployment>) -> Option<ObservedDeployment> {
    let mut cur = o.cloned();
    let mut new: Option<ObservedDeployment> = None;
    for s in steps {
        match s {
            Step::Adopt { .. } => {}
            Step::Create {
                content, settings, ..
            } => {
                new = Some(ObservedDeployment {
                    ux_unowned: Default::default(),
                    id: "new".into(),
                    content: match content {
                        ContentRequest::CatalogEntry(id) => DeployedContent::CatalogEntry(id.clone()),
                        ContentRequest::ReleaseDate { date, .. } => {
                            DeployedContent::ReleaseDate(date.clone())
                        }
                    },
                    settings: settings.clone(),
                    legacy: false,
                    paused_requested: false,
                    members: BTreeSet::new(),
                    exclusions: BTreeSet::new(),
                })
            }
            Step::SetPaused { target, paused } => {
                let d = if *target == Target::New {
                    new.as_mut()
                } else {
                    cur.as_mut()
                };
                d.expect("target exists").paused_requested = *paused;
            }
            Step::UpdateSettings { settings, .. } => {
                cur.as_mut().expect("exists").settings = settings.clone()
            }
            Step::AwaitPaused { target } => {
                let d = if *target == Target::New { &new } else { &cur };
                assert!(
                    d.as_ref().expect("target exists").paused_requested,
                    "awaits a pause it sent"
                );
            }
            Step::UpdateAudience { target, diff, batch } => {
                let d = if *target == Target::New {
                    new.as_mut()
                } else {
                    cur.as_mut()
                };
                let d = d.expect("target exists");
                for u in diff.phases(*batch).iter().flatten() {
                    for m in &u.add_members {
                        d.members.insert((*m).clone());
                    }
                    for m in &u.remove_members {
                        d.members.remove(*m);
                    }
                    for m in &u.add_exclusions {
                        d.exclusions.insert((*m).clone());
                    }
                    for m in &u.remove_exclusions {
                        d.exclusions.remove(*m);
                    }
                }
            }
            Step::DeleteReplaced { .. } => cur = None,
        }
    }
    new.or(cur)
}

fn assets() -> impl Strategy<Value = BTreeSet<AssetRef>> {
    proptest::collection::btree_set(
        prop_oneof![
            (0u32..30).prop_map(dev),
            (0u32..4).prop_map(|i| AssetRef::group(format!("g{i}")))
        ],
        0..20,
    )
}

fn desired_strategy() -> impl Strategy<Value = Desired> {
    (
        assets(),
        assets(),
        any::<bool>(),
        prop_oneof![Just("e1"), Just("e2")],
        proptest::option::of(0i32..5),
    )
        .prop_map(|(members, exclusions, paused, entry, days)| Desired {
            release_date: None,
            content: ContentRequest::CatalogEntry(entry.into()),
            settings: SettingsRequest {
                days_until_forced_reboot: days,
                offer_as_optional: None,
                readiness_test: false,
            },
            paused,
            devices: members.len() as u64,
            rollout_devices: members.len() as u64,
            members,
            exclusions,
            device_limit: None,
            adopted: false,
        })
}

fn observed_strategy() -> impl Strategy<Value = Option<ObservedDeployment>> {
    proptest::option::of(
        (
            assets(),
            assets(),
            any::<bool>(),
            prop_oneof![Just("e1"), Just("e2")],
            proptest::option::of(0i32..5),
        )
            .prop_map(|(members, exclusions, paused, entry, days)| ObservedDeployment {
                ux_unowned: Default::default(),
                id: "d1".into(),
                content: DeployedContent::CatalogEntry(entry.into()),
                settings: SettingsRequest {
                    days_until_forced_reboot: days,
                    offer_as_optional: None,
                    readiness_test: false,
                },
                legacy: false,
                paused_requested: paused,
                members,
                exclusions,
            }),
    )
}

proptest! {
    #[test]
    fn applying_the_changes_yields_the_desired_state(d in desired_strategy(), o in observed_strategy(), batch in 1usize..8) {
        let steps = changes(&d, o.as_ref(), batch);
        let after = apply(&steps, o.as_ref()).expect("a deployment exists after the plan");
        prop_assert_eq!(&after.members, &d.members);
        prop_assert_eq!(&after.exclusions, &d.exclusions);
        prop_assert_eq!(after.paused_requested, d.paused);
        prop_assert!(content_matches(&d, &after.content));
        // A second plan against the result is empty.
        prop_assert!(changes(&d, Some(&after), batch).is_empty());
    }

    #[test]
    fn no_step_removes_a_member_the_spec_keeps(d in desired_strategy(), o in observed_strategy()) {
        for s in changes(&d, o.as_ref(), 3) {
            if let Step::UpdateAudience { diff, batch, .. } = s {
                for u in diff.phases(batch).iter().flatten() {
                    prop_assert!(u.remove_members.iter().all(|m| !d.members.contains(*m)));
                    prop_assert!(u.remove_exclusions.iter().all(|m| !d.exclusions.contains(*m)));
                }
            }
        }
    }

    #[test]
    fn a_pause_is_seen_in_graph_before_any_audience_write_after_it(d in desired_strategy(), o in observed_strategy()) {
        let mut d = d;
        d.paused = true;
        let steps = changes(&d, o.as_ref(), 3);
        let mut paused_unseen = std::collections::BTreeSet::new();
        for s in &steps {
            match s {
                Step::SetPaused { target, paused: true } => { paused_unseen.insert(format!("{target:?}")); }
                Step::AwaitPaused { target } => { paused_unseen.remove(&format!("{target:?}")); }
                Step::UpdateAudience { target, .. } => {
                    prop_assert!(!paused_unseen.contains(&format!("{target:?}")), "audience written before the pause shows: {steps:?}");
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_paused_spec_is_never_resumed(d in desired_strategy(), o in observed_strategy()) {
        let mut d = d;
        d.paused = true;
        for s in changes(&d, o.as_ref(), 3) {
            let resumes = matches!(s, Step::SetPaused { paused: false, .. });
            prop_assert!(!resumes, "a paused spec resumed");
        }
    }
}

#[test]
fn an_adopted_deployment_whose_content_graph_does_not_name_is_managed_with_a_warning() {
    let obj = object(
        spec(json!({"deploymentId": "d1", "paused": false})),
        Some(status_with_deployment()),
    );
    let mut obs = observation(offering());
    if let Known::Found(d) = &mut obs.deployment {
        d.observed.content = DeployedContent::Unknown;
    }
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert!(p.blocker.is_none(), "{:?}", p.blocker);
    let notice = p
        .notices
        .iter()
        .find(|n| n.reason == Reason::CONTENT_UNVERIFIED)
        .expect("the admin is told the content was not checked");
    assert!(notice.warning);
    assert!(
        notice.message.contains("d1") && notice.message.contains(ENTRY),
        "{}",
        notice.message
    );
    // Content Graph does name is checked: the same object with other content stalls.
    if let Known::Found(d) = &mut obs.deployment {
        d.observed.content = DeployedContent::CatalogEntry("other".into());
    }
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert!(matches!(p.blocker, Some(Blocker::AdoptedContentDiffers { .. })));
}

fn expired() -> CatalogFact {
    let CatalogFact::Recorded(mut r) = catalog() else {
        unreachable!()
    };
    r.deployable_until = Some("2026-01-01T00:00:00Z".into());
    CatalogFact::Recorded(r)
}

#[test]
fn content_past_its_deployable_until_time_stalls_and_creates_nothing() {
    let entry: CatalogEntry = serde_json::from_value(json!({
        "@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry",
        "id": "old", "displayName": "2025.01 B", "isExpeditable": true,
        "releaseDateTime": "2025-01-14T00:00:00Z", "qualityUpdateClassification": "security",
        "deployableUntilDateTime": "2026-01-14T00:00:00Z",
    }))
    .unwrap();
    let mut obs = observation(Known::None);
    obs.content = Some(CatalogFact::Entry {
        id: "old".into(),
        entry: Some(entry.clone()),
    });
    let obj = object(
        spec(json!({"paused": false, "content": {"catalogEntryId": "old"}})),
        None,
    );
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let End::Report { outcome, .. } = &p.end else {
        panic!("{:?}", p.end)
    };
    assert_eq!(outcome.reason(), Reason::CONTENT_EXPIRED);
    assert!(outcome.is_stalled(), "{outcome:?}");
    for part in [
        "spec.content",
        "old",
        "2025.01 B",
        "2026-01-14T00:00:00Z",
        "content.latest",
    ] {
        assert!(outcome.message().contains(part), "{part}: {}", outcome.message());
    }
    // The same entry before that time is deployed.
    obs.at = chrono::DateTime::parse_from_rfc3339("2026-01-13T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert!(
        matches!(p.steps.first(), Some(Step::Create { .. })),
        "{:?}",
        p.steps
    );
}

#[test]
fn the_brakes_pause_shows_in_graph_before_the_audience_changes() {
    // An offering deployment, a spec that pauses it and adds a member in the same edit.
    let obj = object(spec(json!({})), Some(status_with_deployment()));
    let mut obs = observation(offering());
    if let Known::Found(d) = &mut obs.deployment {
        d.observed.members.remove(&dev(1));
    }
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert_eq!(p.steps.len(), 3, "{:?}", p.steps);
    assert_eq!(p.steps[0], pause());
    assert_eq!(
        p.steps[1],
        Step::AwaitPaused {
            target: Target::Existing("d1".into())
        }
    );
    assert!(matches!(p.steps[2], Step::UpdateAudience { .. }));
    assert_eq!(
        p.graph_writes(),
        vec!["pause deployment", "update deployment audience"]
    );
}

#[test]
fn an_interrupted_create_uses_its_audience_again_and_one_without_says_one_may_be_left() {
    let cfg = PlanConfig::default();
    let mut obs = observation(Known::None);
    obs.adoption = Some(adopt::Decision::None);
    let with = object(
        spec(json!({})),
        Some(
            json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY, "audienceId": "aud-1"}}),
        ),
    );
    let p = plan(&with, &obs, &cfg);
    assert!(
        matches!(&p.steps[0], Step::Create { audience: Some(a), .. } if a == "aud-1"),
        "{:?}",
        p.steps
    );
    assert_eq!(
        p.steps[0].graph_writes(),
        vec!["create deployment"],
        "no second audience"
    );
    assert!(p.notices.is_empty(), "{:?}", p.notices);
    let without = object(
        spec(json!({})),
        Some(json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY}})),
    );
    let p = plan(&without, &obs, &cfg);
    assert!(matches!(&p.steps[0], Step::Create { audience: None, .. }));
    assert_eq!(
        p.steps[0].graph_writes(),
        vec!["create deployment audience", "create deployment"]
    );
    assert!(
        p.notices
            .iter()
            .any(|n| n.reason == Reason::CREATE_INTERRUPTED && n.message.contains("deploymentAudience")),
        "{:?}",
        p.notices
    );
    // A first create: an audience, then the deployment with it, and nothing to warn about.
    let p = plan(&object(spec(json!({})), None), &observation(Known::None), &cfg);
    assert!(matches!(&p.steps[0], Step::Create { audience: None, .. }));
    assert!(p.notices.is_empty());
}

#[test]
fn a_deployment_an_earlier_version_made_in_the_legacy_form_is_kept_not_replaced() {
    let mut d = desired();
    d.release_date = Some("2026-11-10".into());
    let mut o = observed_of(&d);
    o.content = DeployedContent::ReleaseDate("2026-11-10".into());
    o.legacy = true;
    assert!(
        changes(&d, Some(&o), 1000).is_empty(),
        "same release date: the same content"
    );
    // Another date is other content: replaced, and the new one is catalogContent.
    o.content = DeployedContent::ReleaseDate("2026-10-14".into());
    let steps = changes(&d, Some(&o), 1000);
    assert!(
        matches!(&steps[0], Step::Create { content: ContentRequest::CatalogEntry(id), .. } if id == "e1")
    );
    assert!(matches!(steps.last(), Some(Step::DeleteReplaced { .. })));
    // A spec of another form does not match a legacy deployment either.
    d.release_date = None;
    o.content = DeployedContent::ReleaseDate("2026-11-10".into());
    assert!(matches!(
        changes(&d, Some(&o), 1000).last(),
        Some(Step::DeleteReplaced { .. })
    ));
}

#[test]
fn a_recent_write_graph_does_not_show_yet_is_waited_for_within_the_budget_not_sent_twice() {
    let cfg = PlanConfig {
        read_lag_budget: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let at = |secs_ago: i64| (now - chrono::Duration::seconds(secs_ago)).to_rfc3339();
    // The last pass wrote 10 s ago for this very spec; Graph still shows the audience without dev(1).
    let mut status = status_with_deployment();
    status["lastWriteTime"] = json!(at(10));
    status["observedGeneration"] = json!(3);
    let mut obj = object(spec(json!({"paused": false})), Some(status.clone()));
    obj.metadata.generation = Some(3);
    let mut obs = observation(offering());
    obs.at = now;
    if let Known::Found(d) = &mut obs.deployment {
        d.observed.members.remove(&dev(1));
        d.observed.paused_requested = false;
    }
    let p = plan(&obj, &obs, &cfg);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let End::Report { outcome, next } = &p.end else {
        panic!("{:?}", p.end)
    };
    assert_eq!(outcome.reason(), Reason::VERIFYING);
    assert!(
        outcome.message().contains("--read-lag-budget"),
        "{}",
        outcome.message()
    );
    assert!(matches!(next, Next::After(d) if *d <= std::time::Duration::from_secs(5)));
    // Past the budget: only what is still missing is sent.
    let mut late = status.clone();
    late["lastWriteTime"] = json!(at(61));
    let mut obj_late = object(spec(json!({"paused": false})), Some(late));
    obj_late.metadata.generation = Some(3);
    let p = plan(&obj_late, &obs, &cfg);
    let [Step::UpdateAudience { diff, .. }] = &p.steps[..] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(diff.add_members, vec![dev(1)]);
    assert_eq!(diff.size(), 1);
    // A spec changed since the write is acted on at once.
    obj.metadata.generation = Some(4);
    assert!(!plan(&obj, &obs, &cfg).steps.is_empty());
    // And the brake never waits.
    let mut paused = object(spec(json!({"paused": true})), Some(status));
    paused.metadata.generation = Some(3);
    assert_eq!(plan(&paused, &obs, &cfg).steps, vec![pause()]);
}

/// `spec()` with its members moved into two waves (the second gated), for rollout tests.
fn wave_spec(extra: serde_json::Value) -> serde_json::Value {
    let mut s = spec(json!({"paused": false}));
    let members = s["audience"]["members"].take();
    s["audience"] = json!({"exclusions": s["audience"]["exclusions"].clone()});
    s["rollout"] = json!({"waves": [
        {"name": "pilot", "members": members},
        {"name": "broad", "members": [{"device": dev(7).id}], "gate": {"wait": "1h", "maxFailedPercent": 10}},
    ]});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// `ready_audience()` in waves: the pilot holds its members, broad one more device.
fn wave_audience() -> AudienceFacts {
    let mut a = ready_audience();
    a.waves = vec![
        std::mem::take(&mut a.members),
        vec![ItemFact::Device(dev(7).id.into())],
    ];
    a
}

/// Each way a rollout asks for a pause (a halt recorded, a halt from new figures, an abort request),
/// against every reason a pass can stop: the pause is written first, and nothing else.
#[test]
fn a_halt_or_abort_pauses_first_whatever_stops_the_pass() {
    let now = chrono::Utc::now();
    let earlier = |mins: i64| (now - chrono::Duration::minutes(mins)).to_rfc3339();
    let sent = json!([{"name": "pilot", "devices": 3, "promotedTime": earlier(60)}]);
    let holds: Vec<(&str, serde_json::Value, Option<&str>)> = vec![
        (
            "halt recorded",
            json!({"phase": "Halted", "waves": sent, "halt": {"wave": "pilot", "time": earlier(5), "failed": 2, "devices": 3, "limitPercent": 10, "limitField": "x"}}),
            None,
        ),
        (
            "failures in fresh figures",
            json!({"phase": "Waiting", "waves": [{"name": "pilot", "devices": 3, "promotedTime": earlier(60),
                "progress": {"targeted": 3, "upToDate": 0, "pending": 1, "failed": 2, "notReporting": 0, "observedTime": earlier(1)}}]}),
            None,
        ),
        (
            "abort requested",
            json!({"phase": "Waiting", "waves": sent}),
            Some("now"),
        ),
    ];
    let with = |f: &dyn Fn(&mut Observation)| {
        let mut o = observation(offering());
        o.audience = Some(wave_audience());
        f(&mut o);
        o
    };
    let blocked: Vec<(&str, serde_json::Value, Observation, bool)> = vec![
        ("nothing else", wave_spec(json!({})), with(&|_| {}), true),
        (
            "invalid spec",
            wave_spec(json!({"audience": {"members": [{"device": "not-a-guid"}]}})),
            with(&|o| {
                o.audience = None;
                o.content = None;
            }),
            false,
        ),
        (
            "blast-radius guard",
            wave_spec(json!({"maxDevices": 1})),
            with(&|_| {}),
            true,
        ),
        (
            "member group of a sent wave gone",
            wave_spec(json!({})),
            with(&|o| {
                o.audience.as_mut().unwrap().waves[0][1] =
                    ItemFact::Waiting("DeviceGroup ring does not exist".into())
            }),
            true,
        ),
        (
            "exclusion group being deleted",
            wave_spec(json!({})),
            with(&|o| {
                o.audience.as_mut().unwrap().exclusions[0] =
                    ItemFact::Waiting("DeviceGroup dnd is not Ready yet".into())
            }),
            true,
        ),
        (
            "content gone from the catalog",
            wave_spec(json!({"content": {"catalogEntryId": "gone"}})),
            with(&|o| {
                o.content = Some(CatalogFact::Entry {
                    id: "gone".into(),
                    entry: None,
                })
            }),
            true,
        ),
        (
            "a read after the deployment failed",
            wave_spec(json!({})),
            with(&|o| {
                o.audience = None;
                o.content = None;
                o.failed = Some(crate::reconcile::error::Error::Waiting {
                    reason: Reason::GRAPH_UNAVAILABLE,
                    message: "503".into(),
                    retry: std::time::Duration::from_secs(1),
                });
            }),
            true,
        ),
        (
            "content no longer deployable",
            wave_spec(json!({})),
            with(&|o| o.content = Some(expired())),
            true,
        ),
    ];
    for (hold, rollout, abort) in &holds {
        for (name, spec, obs, decided) in &blocked {
            // An invalid spec is not decided: only what status holds, or an abort request, brakes it.
            let mut status = status_with_deployment();
            status["rollout"] = rollout.clone();
            let mut obj = object(spec.clone(), Some(status));
            if let Some(v) = abort {
                obj.metadata.annotations =
                    Some([(crate::crd::ABORT_ANNOTATION.to_string(), v.to_string())].into());
            }
            let p = plan(
                &obj,
                obs,
                &PlanConfig {
                    batch_size: 1000,
                    ..Default::default()
                },
            );
            if !decided && *hold == "failures in fresh figures" {
                assert_eq!(
                    p.steps,
                    vec![],
                    "{hold} / {name}: an unreadable spec decides no new halt"
                );
                continue;
            }
            assert_eq!(
                p.steps,
                vec![pause()],
                "{hold} / {name}: the pause and nothing else"
            );
            if *name == "nothing else" {
                let End::Report { outcome, .. } = &p.end else {
                    panic!("{hold}: {:?}", p.end)
                };
                assert!(
                    [Reason::ROLLOUT_HALTED, Reason::ROLLOUT_ABORTED].contains(&outcome.reason()),
                    "{hold}: {outcome:?}"
                );
                assert!(!outcome.is_ready());
                // A halt or abort decided now sends its own Warning: the stall gets no second one.
                assert_eq!(
                    p.stall_told(outcome),
                    *hold != "halt recorded",
                    "{hold}: one Warning per halt or abort"
                );
                let r = p.facts.rollout.as_ref().expect("the rollout is recorded");
                assert!(r.halt.is_some() || r.aborted.is_some(), "{hold}: {r:?}");
                let d = p.desired.as_ref().unwrap();
                assert!(d.paused);
                assert!(!d.members.contains(&dev(7)), "the gated wave is not sent");
            }
        }
    }
}

#[test]
fn waves_send_their_members_in_turn_and_the_guard_bounds_the_whole_rollout() {
    // The first pass: only the pilot's members are desired; status records the pilot as sent.
    let obj = object(wave_spec(json!({})), Some(status_with_deployment()));
    let mut obs = observation(offering());
    obs.audience = Some(wave_audience());
    let p = plan(
        &obj,
        &obs,
        &PlanConfig {
            batch_size: 1000,
            ..Default::default()
        },
    );
    let d = p.desired.as_ref().unwrap();
    assert_eq!(d.members, [dev(1), AssetRef::group("g1")].into());
    assert_eq!(d.devices, 3);
    assert_eq!(d.rollout_devices, 4);
    let r = p.facts.rollout.as_ref().unwrap();
    assert_eq!(r.current_wave.as_deref(), Some("pilot"));
    assert_eq!(r.phase, crate::crd::RolloutPhase::Waiting);
    let End::Report { outcome, next } = &p.end else {
        panic!()
    };
    assert_eq!(outcome.reason(), Reason::WAITING_FOR_GATE);
    assert!(matches!(next, Next::After(d) if d.as_secs() > 3500), "{next:?}");
    assert!(p.notices.iter().any(|n| n.reason == Reason::WAVE_PROMOTED));
    // An hour later with healthy figures: broad is sent to the same deployment.
    let mut status = status_with_deployment();
    let earlier = (chrono::Utc::now() - chrono::Duration::minutes(61)).to_rfc3339();
    let read = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    status["rollout"] = json!({"phase": "Waiting", "waves": [{"name": "pilot", "devices": 3, "promotedTime": earlier,
        "progress": {"targeted": 3, "upToDate": 3, "pending": 0, "failed": 0, "notReporting": 0, "observedTime": read}}]});
    let obj = object(wave_spec(json!({})), Some(status));
    let p = plan(
        &obj,
        &obs,
        &PlanConfig {
            batch_size: 1000,
            ..Default::default()
        },
    );
    let [Step::UpdateAudience { target, diff, .. }] = &p.steps[..] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(target, &Target::Existing("d1".into()));
    assert_eq!(diff.add_members, vec![dev(7)]);
    assert!(diff.remove_members.is_empty());
    assert_eq!(
        p.facts.rollout.as_ref().unwrap().phase,
        crate::crd::RolloutPhase::Complete
    );
    // maxDevices counts every wave, sent or not: 4 devices over a limit of 3 stalls before the pilot.
    let obj = object(wave_spec(json!({"maxDevices": 3})), None);
    let mut obs = observation(Known::None);
    obs.audience = Some(wave_audience());
    let p2 = plan(&obj, &obs, &PlanConfig::default());
    assert!(p2.steps.is_empty(), "{:?}", p2.steps);
    assert_eq!(
        p2.blocker.as_ref().map(|b| b.outcome().reason()),
        Some(Reason::AUDIENCE_TOO_LARGE)
    );
}

proptest! {
    /// A group's read members (a sorted list) against the desired set: the walk in order gives exactly
    /// the set differences.
    #[test]
    fn the_group_diff_walk_gives_the_set_differences(
        desired in proptest::collection::btree_set(0u8..40, 0..30),
        current in proptest::collection::btree_set(0u8..40, 0..30),
    ) {
        let id = |n: &u8| DeviceId::new(&format!("00000000-0000-4000-8000-{n:012}"));
        let desired: BTreeSet<DeviceId> = desired.iter().map(id).collect();
        let current: Vec<DeviceId> = current.iter().map(id).collect::<BTreeSet<_>>().into_iter().collect();
        let held: BTreeSet<DeviceId> = current.iter().cloned().collect();
        let (add, remove) = sorted_diff(&desired, &current);
        prop_assert_eq!(add, desired.difference(&held).cloned().collect::<Vec<_>>());
        prop_assert_eq!(remove, held.difference(&desired).cloned().collect::<Vec<_>>());
    }
}

// ----- arbitrary input: the planner never panics, and a pause always goes first ------------------------

/// Text a hostile user writes: valid-looking values, empty ones, huge numbers, control and
/// right-to-left characters, long strings.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551615".to_string()),
        Just("99999999999d".to_string()),
        Just("90d".to_string()),
        Just("1.5h".to_string()),
        Just("NaN".to_string()),
        Just("pilot".to_string()),
        Just("\u{202e}5m".to_string()),
        Just("5m\u{7}\n".to_string()),
        Just("x".repeat(70_000)),
        "[a-z0-9]{1,8}[smhd]?",
        "\\PC{0,40}",
    ]
}

fn hostile_item() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        (0u32..6).prop_map(|i| json!({"device": dev(i).id})),
        hostile_text().prop_map(|s| json!({"device": s})),
        prop::sample::select(vec!["ring", "Ring", "", "a.b"]).prop_map(|g| json!({"deviceGroup": g})),
        hostile_text().prop_map(|s| json!({"assetGroupId": s})),
        Just(json!({})),
        Just(json!({"device": dev(1).id, "deviceGroup": "ring"})),
    ]
}

fn hostile_wave() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(vec!["pilot", "broad", "pilot", "", "Wave 1"]),
        prop::collection::vec(hostile_item(), 0..3),
        prop::option::of((
            prop::option::of(hostile_text()),
            prop::option::of(0u32..250),
            prop::option::of(0u32..250),
            prop::option::of(any::<bool>()),
        )),
    )
        .prop_map(|(name, members, gate)| {
            let mut w = json!({"name": name, "members": members});
            if let Some((wait, up, failed, manual)) = gate {
                let mut g = json!({});
                if let Some(v) = wait {
                    g["wait"] = json!(v);
                }
                if let Some(v) = up {
                    g["minUpToDatePercent"] = json!(v);
                }
                if let Some(v) = failed {
                    g["maxFailedPercent"] = json!(v);
                }
                if let Some(v) = manual {
                    g["manual"] = json!(v);
                }
                w["gate"] = g;
            }
            w
        })
}

fn hostile_spec() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![
            Just(json!({"latest": true})),
            Just(json!({"catalogEntryId": ENTRY})),
            hostile_text().prop_map(|s| json!({"catalogEntryId": s})),
            hostile_text().prop_map(|s| json!({"releaseDate": s})),
            Just(json!({})),
            Just(json!({"latest": true, "catalogEntryId": ENTRY})),
        ],
        any::<bool>(),
        prop::collection::vec(hostile_item(), 0..4),
        prop::collection::vec(hostile_item(), 0..3),
        prop::option::of(prop::collection::vec(hostile_wave(), 0..4)),
        prop::option::of(0u64..4),
        any::<bool>(),
    )
        .prop_map(
            |(content, paused, members, exclusions, waves, max, observe_only)| {
                let mut s = json!({
                    "content": content,
                    "paused": paused,
                    "audience": {"members": members, "exclusions": exclusions},
                });
                if let Some(w) = waves {
                    s["rollout"] = json!({"waves": w, "maxFailedPercent": 50});
                }
                if let Some(m) = max {
                    s["maxDevices"] = json!(m);
                }
                if observe_only {
                    s["managementPolicy"] = json!("ObserveOnly");
                }
                s
            },
        )
}

fn hostile_annotations() -> impl Strategy<Value = serde_json::Value> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            crate::crd::RESYNC_ANNOTATION,
            crate::crd::PROGRESS_ANNOTATION,
            crate::crd::CATALOG_POLL_ANNOTATION,
            crate::crd::PROMOTE_ANNOTATION,
            crate::crd::ABORT_ANNOTATION,
            crate::crd::RETRY_ANNOTATION,
            crate::crd::RECONCILE_REQUESTED_ANNOTATION,
        ]),
        hostile_text(),
        0..4,
    )
    .prop_map(|m| json!(m))
}

fn hostile_observation() -> impl Strategy<Value = Observation> {
    (0u8..5, any::<bool>(), 0usize..5, any::<bool>()).prop_map(|(which, audience, waves, content)| {
        let deployment = match which {
            0 => offering(),
            1 => {
                let mut k = offering();
                if let Known::Found(d) = &mut k {
                    d.observed.paused_requested = true;
                }
                k
            }
            2 => Known::Unread("d1".to_string()),
            3 => Known::Missing("d1".to_string()),
            _ => Known::None,
        };
        let mut o = observation(deployment);
        if audience {
            // As many waves as observe read, which may not match the spec's.
            if let Some(a) = o.audience.as_mut() {
                a.waves = vec![vec![ItemFact::Device(dev(4).id.into())]; waves];
            }
        } else {
            o.audience = None;
        }
        if !content {
            o.content = None;
        }
        o
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the spec, its annotations and what Graph holds, the planner decides without panicking;
    /// a managed spec asking for a pause of a known deployment Graph does not hold paused pauses it
    /// before any other write; and every refused annotation is named in the outcome.
    #[test]
    fn the_planner_decides_any_input_and_a_pause_goes_first(
        spec in hostile_spec(),
        annotations in hostile_annotations(),
        with_status in any::<bool>(),
        obs in hostile_observation(),
    ) {
        let mut obj = object(spec, with_status.then(status_with_deployment));
        obj.metadata.annotations = serde_json::from_value(annotations).unwrap();
        let p = plan(&obj, &obs, &PlanConfig { operator_limit: Some(3), batch_size: 2, ..Default::default() });
        let unpaused = match &obs.deployment {
            Known::Found(d) => !d.observed.paused_requested,
            Known::Unread(_) => true,
            _ => false,
        };
        let managed = obj.spec.management_policy != ManagementPolicy::ObserveOnly;
        if obj.spec.paused && managed && unpaused {
            let first_write = p.steps.iter().find(|s| !matches!(s, Step::Adopt { .. }));
            prop_assert_eq!(first_write, Some(&pause()), "{:?}", p.steps);
        }
        if !managed {
            prop_assert!(p.steps.iter().all(|s| s.graph_writes().is_empty()), "ObserveOnly writes nothing: {:?}", p.steps);
        }
        if let End::Report { outcome, .. } = &p.end {
            for i in crate::crd::annotations::ignored(obj.metadata.annotations.as_ref()) {
                prop_assert!(outcome.message().contains(&i.to_string()), "{}", outcome.message());
            }
            for c in crate::reconcile::status::conditions(outcome, Some(2), &[]) {
                prop_assert!(c.message.len() <= crate::reconcile::status::MAX_CONDITION_MESSAGE, "a bounded condition message");
            }
        }
    }
}

#[test]
fn a_rollout_whose_first_wave_waits_for_its_group_makes_no_deployment() {
    let obj = object(
        json!({
            "content": {"latest": true},
            "rollout": {"waves": [{"name": "pilot", "members": [{"deviceGroup": "ring-p"}]}]},
        }),
        None,
    );
    let mut obs = observation(Known::None);
    obs.audience = Some(AudienceFacts {
        members: Vec::new(),
        exclusions: Vec::new(),
        waves: vec![vec![ItemFact::Waiting(
            "DeviceGroup ring-p does not exist".into(),
        )]],
    });
    let p = plan(&obj, &obs, &PlanConfig::default());
    assert!(p.steps.is_empty(), "no empty deployment: {:?}", p.steps);
    assert_eq!(
        p.blocker,
        Some(Blocker::Waiting {
            field: "spec.rollout.waves[0].members[0].deviceGroup".into(),
            why: "DeviceGroup ring-p does not exist".into(),
        })
    );
}

#[test]
fn a_sent_wave_removed_from_the_spec_stays_offered_until_it_is_withdrawn_by_name() {
    let now = chrono::Utc::now();
    let earlier = |mins: i64| (now - chrono::Duration::minutes(mins)).to_rfc3339();
    let mut status = status_with_deployment();
    status["rollout"] = json!({"phase": "Complete", "currentWave": "broad", "waves": [
        {"name": "pilot", "devices": 3, "promotedTime": earlier(120)},
        {"name": "broad", "devices": 1, "promotedTime": earlier(60)}]});
    // Graph offers both waves' devices.
    let deployment = || {
        let mut k = offering();
        if let Known::Found(d) = &mut k {
            d.observed.members.insert(dev(7));
            d.observed.paused_requested = false;
        }
        k
    };
    let pilot_only = |extra: serde_json::Value| {
        let mut s = wave_spec(json!({}));
        s["rollout"]["waves"] = json!([s["rollout"]["waves"][0].clone()]);
        for (k, v) in extra.as_object().unwrap() {
            s["rollout"][k] = v.clone();
        }
        s
    };
    let obs = |waves: Vec<Vec<ItemFact>>| {
        let mut o = observation(deployment());
        let mut a = wave_audience();
        a.waves = waves;
        o.audience = Some(a);
        o
    };
    let pilot_facts = wave_audience().waves[0].clone();
    let cfg = PlanConfig {
        batch_size: 1000,
        ..Default::default()
    };

    // Removed: nothing is taken out of Graph's audience, and Ready says why.
    let obj = object(pilot_only(json!({})), Some(status.clone()));
    let p = plan(&obj, &obs(vec![pilot_facts.clone()]), &cfg);
    assert!(
        p.steps.is_empty(),
        "no withdrawal without confirmation: {:?}",
        p.steps
    );
    let End::Report { outcome, .. } = &p.end else {
        panic!("{:?}", p.end)
    };
    assert_eq!(outcome.reason(), Reason::WITHDRAWAL_NOT_CONFIRMED, "{outcome:?}");
    assert!(!outcome.is_ready() && !outcome.is_stalled());
    let r = p.facts.rollout.as_ref().unwrap();
    assert_eq!(r.retained_waves, ["broad"]);
    assert_eq!(r.retained_devices, Some(1));

    // Named in withdrawnWaves: withdrawn, with a Warning, and plan calls it destructive.
    let obj = object(
        pilot_only(json!({"withdrawnWaves": ["broad"]})),
        Some(status.clone()),
    );
    let p = plan(&obj, &obs(vec![pilot_facts.clone()]), &cfg);
    let Some(Step::UpdateAudience { diff, .. }) = p.steps.first() else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(diff.remove_members, vec![dev(7)]);
    assert!(
        p.steps[0].describe().ends_with("; withdraw 1 (destructive)"),
        "{}",
        p.steps[0].describe()
    );
    assert!(
        p.notices.iter().any(|n| n.warning
            && n.reason == Reason::MEMBERS_WITHDRAWN
            && n.message.contains("withdrawing 1")),
        "{:?}",
        p.notices
    );
    assert!(p.facts.rollout.as_ref().unwrap().retained_waves.is_empty());

    // Renamed with renamedFrom: the wave keeps its state and its devices; nothing moves.
    let mut renamed = wave_spec(json!({}));
    renamed["rollout"]["waves"][1]["name"] = json!("final");
    renamed["rollout"]["waves"][1]["renamedFrom"] = json!("broad");
    let obj = object(renamed, Some(status));
    let p = plan(&obj, &obs(wave_audience().waves), &cfg);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let r = p.facts.rollout.as_ref().unwrap();
    assert!(r.retained_waves.is_empty());
    assert!(
        r.waves[1].name == "final" && r.waves[1].promoted_time.is_some(),
        "{r:?}"
    );
}
