//! The brake and the blockers: one row per reason a pass can stop, and the pause always first.

use super::*;

/// Every reason a pass can stop, with `paused: true` and a deployment offering the update: the pause
/// is written, and nothing else.
#[test]
fn pause_is_written_first_whatever_stops_the_pass() {
    struct Row {
        name: &'static str,
        obj: ExpeditedDeployment,
        obs: Observation,
        /// The operator-wide device limit the pass runs with (`--max-audience-devices`).
        operator_limit: Option<u64>,
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
            operator_limit: None,
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
            operator_limit: None,
            obj: object(spec(json!({"maxDevices": 1})), Some(status_with_deployment())),
            obs: observation(offering()),
            reason: Some(Reason::AUDIENCE_TOO_LARGE),
        },
        Row {
            name: "operator-wide guard",
            operator_limit: Some(1),
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: observation(offering()),
            reason: Some(Reason::AUDIENCE_TOO_LARGE),
        },
        Row {
            name: "member group not created yet",
            operator_limit: None,
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| {
                o.audience.as_mut().unwrap().members[1] =
                    ItemFact::Waiting("DeviceGroup ring does not exist".into())
            }),
            reason: Some(Reason::WAITING_FOR_DEVICE_GROUP),
        },
        Row {
            name: "exclusion group being deleted",
            operator_limit: None,
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| {
                o.audience.as_mut().unwrap().exclusions[0] =
                    ItemFact::Waiting("DeviceGroup dnd is not Ready yet".into())
            }),
            reason: Some(Reason::WAITING_FOR_DEVICE_GROUP),
        },
        Row {
            name: "content gone from the catalog",
            operator_limit: None,
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
            operator_limit: None,
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
            operator_limit: None,
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
            operator_limit: None,
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
            operator_limit: None,
            obj: object(spec(json!({})), Some(status_with_deployment())),
            obs: with(&|o| o.content = Some(expired())),
            reason: Some(Reason::CONTENT_EXPIRED),
        },
    ];
    for row in rows {
        let cfg = PlanConfig {
            operator_limit: row.operator_limit,
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
