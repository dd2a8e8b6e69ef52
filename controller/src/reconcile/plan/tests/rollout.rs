//! Waves: holds, promotion in turn, and waves removed after they were sent.

use super::*;

/// Each way a rollout asks for a pause (a halt recorded, a halt from new figures, an abort request),
/// against every reason a pass can stop: the pause is written first, and nothing else.
#[test]
fn a_halt_or_abort_pauses_first_whatever_stops_the_pass() {
    let now = chrono::Utc::now();
    let earlier = |mins: i64| (now - chrono::Duration::minutes(mins)).to_rfc3339();
    let sent = json!([{"name": "pilot", "devices": 3, "promotedTime": earlier(60)}]);
    // (what holds, the rollout status, an abort request, decided this pass from figures, told before)
    let holds: Vec<(&str, serde_json::Value, Option<&str>, bool, bool)> = vec![
        (
            "halt recorded",
            json!({"phase": "Halted", "waves": sent, "halt": {"wave": "pilot", "time": earlier(5), "failed": 2, "devices": 3, "limitPercent": 10, "limitField": "x"}}),
            None,
            false,
            true,
        ),
        (
            "failures in fresh figures",
            json!({"phase": "Waiting", "waves": [{"name": "pilot", "devices": 3, "promotedTime": earlier(60),
                "progress": {"targeted": 3, "upToDate": 0, "pending": 1, "failed": 2, "notReporting": 0, "observedTime": earlier(1)}}]}),
            None,
            true,
            false,
        ),
        (
            "abort requested",
            json!({"phase": "Waiting", "waves": sent}),
            Some("now"),
            false,
            false,
        ),
    ];
    let with = |f: &dyn Fn(&mut Observation)| {
        let mut o = observation(offering());
        o.audience = Some(wave_audience());
        f(&mut o);
        o
    };
    // (what else stops the pass, the spec, the observation, the spec is decided, something blocks)
    let blocked: Vec<(&str, serde_json::Value, Observation, bool, bool)> = vec![
        ("nothing else", wave_spec(json!({})), with(&|_| {}), true, false),
        (
            "invalid spec",
            wave_spec(json!({"audience": {"members": [{"device": "not-a-guid"}]}})),
            with(&|o| {
                o.audience = None;
                o.content = None;
            }),
            false,
            true,
        ),
        (
            "blast-radius guard",
            wave_spec(json!({"maxDevices": 1})),
            with(&|_| {}),
            true,
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
            true,
        ),
        (
            "content no longer deployable",
            wave_spec(json!({})),
            with(&|o| o.content = Some(expired())),
            true,
            true,
        ),
    ];
    for (hold, rollout, abort, from_figures, told_before) in &holds {
        for (name, spec, obs, decided, blocks) in &blocked {
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
            if !decided && *from_figures {
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
            if !blocks {
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
                    !told_before,
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
