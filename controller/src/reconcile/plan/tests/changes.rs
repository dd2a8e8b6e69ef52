//! The writes once nothing blocks: what `changes` plans, in which order, at the lower bound of calls.

use super::*;

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
