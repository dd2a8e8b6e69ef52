//! Properties: the changes converge in one pass and never widen exposure, and arbitrary input never panics the planner.

use super::*;

/// Applies steps to an observed state the way Graph would.
pub(super) fn apply(steps: &[Step], o: Option<&ObservedDeployment>) -> Option<ObservedDeployment> {
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
