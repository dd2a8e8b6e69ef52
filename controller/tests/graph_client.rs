//! The real Graph client against the real emulator over loopback HTTP: every operation, paging, batch
//! splitting, throttling, faults, token refresh, auth failures and secret redaction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use wufb_graph_emulator::config::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, READONLY_CLIENT_ID, READONLY_CLIENT_SECRET,
};
use wufb_graph_emulator::{AppRegistration, Emulator, EmulatorConfig, FaultConfig, RetryAfterForm};
use wufb_operator::crd::DeviceId;
use wufb_operator::graph::models::SettingsPatch;
use wufb_operator::graph::{
    AssetRef, AudienceOf, ContentRequest, Credential, CredentialKind, Endpoints, GraphClient, GraphConfig,
    GraphError, GraphMetrics, SecretString, SettingsRequest, TransportConfig,
};
use wufb_operator::reconcile::act;
use wufb_operator::reconcile::plan::{self, AudienceDiff};

/// The operator's audience write path: the planner's waves, sent as `act` sends them.
async fn apply_audience_diff(g: &GraphClient, id: &str, diff: &AudienceDiff) -> Result<usize, GraphError> {
    match act::send_audience(
        g,
        AudienceOf::Deployment(id),
        &diff.phases(g.batch_size()),
        act::VISIBLE_WITHIN,
    )
    .await
    {
        Ok(calls) => Ok(calls),
        Err(wufb_operator::reconcile::error::Error::Graph(e)) => Err(e),
        Err(e) => panic!("not a Graph error: {e}"),
    }
}

/// The operator's group write path: the planner's batches, sent as `act` sends them.
async fn apply_group_diff(
    g: &GraphClient,
    id: &str,
    add: &[String],
    remove: &[String],
) -> Result<usize, GraphError> {
    let ids = |l: &[String]| l.iter().map(|d| DeviceId::new(d)).collect::<Vec<_>>();
    let (add, remove) = (ids(add), ids(remove));
    act::send_group_batches(g, id, &plan::group_batches(&add, &remove, g.batch_size())).await
}

fn device(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn secret_credential(secret: &str) -> Credential {
    Credential {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        kind: CredentialKind::ClientSecret(SecretString::new(secret)),
    }
}

fn fast_transport() -> TransportConfig {
    TransportConfig {
        base_backoff: Duration::from_millis(20),
        max_retries: 30,
        retry_budget: Duration::from_secs(30),
        ..Default::default()
    }
}

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0").await.unwrap()
}

fn client(
    emu: &Emulator,
    credential: Option<Credential>,
    transport: TransportConfig,
    batch: usize,
) -> GraphClient {
    let endpoints = Endpoints::custom(&emu.base_url(), &emu.graph_url()).unwrap();
    GraphClient::new(
        GraphConfig {
            endpoints,
            credential,
            transport,
            batch_size: batch,
        },
        GraphMetrics::default(),
    )
    .unwrap()
}

fn default_client(emu: &Emulator) -> GraphClient {
    client(
        emu,
        Some(secret_credential(DEFAULT_CLIENT_SECRET)),
        fast_transport(),
        1000,
    )
}

fn settings() -> SettingsRequest {
    SettingsRequest {
        days_until_forced_reboot: Some(2),
        offer_as_optional: None,
        readiness_test: false,
    }
}

#[tokio::test]
async fn every_operation_against_the_emulator() {
    let emu = emulator(EmulatorConfig::default()).await;
    let g = default_client(&emu);
    // Catalog: latest, by date, by id.
    let latest = g.expeditable_updates(3).await.unwrap();
    assert_eq!(latest.len(), 3);
    assert!(latest.iter().all(|e| e.can_expedite()));
    assert!(latest[0].release_date() >= latest[1].release_date());
    let b = latest
        .iter()
        .find(|e| e.short_name.as_deref().is_some_and(|s| s.ends_with(" B")))
        .unwrap();
    let by_date = g.security_releases_on(b.release_date().unwrap()).await.unwrap();
    assert!(by_date.iter().any(|e| e.id == b.id), "{by_date:?}");
    assert!(g.security_releases_on("2001-01-01").await.unwrap().is_empty());
    assert_eq!(g.catalog_entry(&b.id).await.unwrap().unwrap().id, b.id);
    assert!(g.catalog_entry("missing").await.unwrap().is_none());
    // A second identical catalog query is served from the cache.
    g.expeditable_updates(3).await.unwrap();
    assert_eq!(
        emu.count("catalog.entries.list"),
        3,
        "latest, and two dates; the repeated query came from the cache"
    );

    // Deployments in both content forms.
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let d = g
        .create_deployment(&ContentRequest::CatalogEntry(b.id.clone()), &settings(), None)
        .await
        .unwrap();
    assert_eq!(
        d.settings
            .as_ref()
            .unwrap()
            .user_experience
            .as_ref()
            .unwrap()
            .days_until_forced_reboot,
        Some(2)
    );
    let legacy = g
        .create_deployment(
            &ContentRequest::ReleaseDate {
                date: b.release_date().unwrap().into(),
                equivalent_content: "latestSecurity".into(),
            },
            &settings(),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        legacy.content,
        Some(wufb_operator::graph::models::Content::ExpeditedReleaseDate { .. })
    ));
    let got = g.get_deployment(&d.id).await.unwrap().unwrap();
    assert_eq!(got.state.effective().unwrap().as_str(), "offering");
    let paused = g.set_paused(&d.id, true).await.unwrap();
    assert_eq!(paused.state.effective().unwrap().as_str(), "paused");
    assert_eq!(paused.state.reason_values(), vec!["pausedByRequest".to_string()]);
    assert_eq!(
        g.set_paused(&d.id, false)
            .await
            .unwrap()
            .state
            .effective()
            .unwrap()
            .as_str(),
        "offering"
    );
    let updated = g
        .update_settings(
            &legacy.id,
            &SettingsPatch {
                user_experience: serde_json::json!({"daysUntilForcedReboot": 7, "offerAsOptional": true})
                    .as_object()
                    .cloned(),
                expedite: None,
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        updated
            .settings
            .unwrap()
            .user_experience
            .unwrap()
            .days_until_forced_reboot,
        Some(7)
    );
    let since = g.deployments_created_since(before).await.unwrap();
    assert_eq!(
        since.iter().map(|d| d.id.as_str()).collect::<BTreeSet<_>>(),
        [d.id.as_str(), legacy.id.as_str()].into()
    );

    // Audience: add members, groups and exclusions, then remove.
    let group = g.create_group().await.unwrap();
    assert_eq!(
        apply_group_diff(&g, &group, &[device(1), device(2)], &[])
            .await
            .unwrap(),
        1
    );
    let members = g.group_devices(&group).await.unwrap().unwrap();
    assert_eq!(
        members.devices,
        [DeviceId::new(&device(1)), DeviceId::new(&device(2))]
    );
    assert_eq!(apply_group_diff(&g, &group, &[], &[device(2)]).await.unwrap(), 1);
    assert_eq!(g.group_devices(&group).await.unwrap().unwrap().devices.len(), 1);
    let diff = AudienceDiff {
        add_members: vec![
            AssetRef::group(&group),
            AssetRef::device(device(3)),
            AssetRef::device("bogus-id"),
        ],
        add_exclusions: vec![AssetRef::device(device(4))],
        ..Default::default()
    };
    assert_eq!(apply_audience_diff(&g, &d.id, &diff).await.unwrap(), 1);
    let a = g.audience(AudienceOf::Deployment(&d.id)).await.unwrap();
    assert_eq!(
        a.members,
        [
            AssetRef::group(&group),
            AssetRef::device(device(3)),
            AssetRef::device("bogus-id")
        ]
        .into()
    );
    assert_eq!(a.exclusions, [AssetRef::device(device(4))].into());
    assert_eq!(
        a.device_errors.get("bogus-id"),
        Some(&vec!["invalidAzureADDeviceId".to_string()])
    );
    let diff = AudienceDiff {
        remove_members: vec![AssetRef::device("bogus-id")],
        remove_exclusions: vec![AssetRef::device(device(4))],
        ..Default::default()
    };
    apply_audience_diff(&g, &d.id, &diff).await.unwrap();
    let a = g.audience(AudienceOf::Deployment(&d.id)).await.unwrap();
    assert_eq!(a.members.len(), 2);
    assert!(a.exclusions.is_empty());

    // Deletes are idempotent.
    assert!(g.delete_deployment(&d.id).await.unwrap());
    assert!(!g.delete_deployment(&d.id).await.unwrap());
    assert!(g.get_deployment(&d.id).await.unwrap().is_none());
    assert!(g.delete_group(&group).await.unwrap());
    assert!(!g.delete_group(&group).await.unwrap());
    assert!(g.group_devices(&group).await.unwrap().is_none());
    assert_eq!(g.token_acquisitions(), 1, "one token served every call");
}

#[tokio::test]
async fn never_used_audience_404_reads_as_empty() {
    let emu = emulator(EmulatorConfig {
        audience_404_when_empty: true,
        ..Default::default()
    })
    .await;
    let g = default_client(&emu);
    let entry = g.expeditable_updates(1).await.unwrap().remove(0);
    let d = g
        .create_deployment(&ContentRequest::CatalogEntry(entry.id), &settings(), None)
        .await
        .unwrap();
    let a = g.audience(AudienceOf::Deployment(&d.id)).await.unwrap();
    assert!(a.never_listed);
    assert!(a.members.is_empty() && a.exclusions.is_empty());
}

#[tokio::test]
async fn paging_across_page_sizes() {
    for page_size in [1, 2, 7, 100] {
        let emu = emulator(EmulatorConfig {
            auth: false,
            page_size,
            ..Default::default()
        })
        .await;
        let g = client(&emu, None, fast_transport(), 1000);
        let entry = g.expeditable_updates(1).await.unwrap().remove(0);
        let d = g
            .create_deployment(&ContentRequest::CatalogEntry(entry.id), &settings(), None)
            .await
            .unwrap();
        let add: Vec<AssetRef> = (0..23).map(|i| AssetRef::device(device(i))).collect();
        apply_audience_diff(
            &g,
            &d.id,
            &AudienceDiff {
                add_members: add.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let a = g.audience(AudienceOf::Deployment(&d.id)).await.unwrap();
        assert_eq!(a.members, add.into_iter().collect(), "page size {page_size}");
        // The first asks for a count, which the audience list refuses; then its next links.
        assert_eq!(
            emu.count("audience.members.list") as usize,
            1 + 23usize.div_ceil(page_size),
            "page size {page_size}"
        );
    }
}

#[tokio::test]
async fn batches_split_at_the_configured_size_and_again_when_too_large() {
    // Client batches of 10 against a service cap of 4 (413 above it): each refused batch is halved
    // until it fits.
    let emu = emulator(EmulatorConfig {
        auth: false,
        max_assets_per_request: Some(4),
        ..Default::default()
    })
    .await;
    let g = client(&emu, None, fast_transport(), 10);
    let entry = g.expeditable_updates(1).await.unwrap().remove(0);
    let d = g
        .create_deployment(&ContentRequest::CatalogEntry(entry.id), &settings(), None)
        .await
        .unwrap();
    let add: Vec<AssetRef> = (0..25).map(|i| AssetRef::device(device(i))).collect();
    let calls = apply_audience_diff(
        &g,
        &d.id,
        &AudienceDiff {
            add_members: add.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = g.audience(AudienceOf::Deployment(&d.id)).await.unwrap();
    assert_eq!(a.members, add.into_iter().collect());
    let accepted = emu
        .requests()
        .iter()
        .filter(|r| r.operation == "audience.updateAudience" && r.status == 202)
        .count();
    let refused = emu
        .requests()
        .iter()
        .filter(|r| r.operation == "audience.updateAudience" && r.status == 413)
        .count();
    assert_eq!(calls, accepted + refused);
    assert!(
        emu.requests()
            .iter()
            .filter(|r| r.status == 202)
            .all(|r| r.assets <= 4)
    );
    // 10 -> 5+5 -> 2+3 each; 5 -> 2+3: three batches (10, 10, 5) of which two are refused twice.
    assert_eq!(
        refused,
        2 * 3 + 1,
        "10-batches refused with their 5-halves, and the final 5"
    );
    assert_eq!(accepted, 10);

    // With the batch size at the cap, the lower bound: ceil(25/4) calls, no refusals.
    let g4 = client(&emu, None, fast_transport(), 4);
    let more: Vec<AssetRef> = (100..125).map(|i| AssetRef::device(device(i))).collect();
    let calls = apply_audience_diff(
        &g4,
        &d.id,
        &AudienceDiff {
            add_members: more,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(calls, 7);
    // A single refused asset is named in the error.
    let err = apply_audience_diff(
        &g4,
        &d.id,
        &AudienceDiff {
            add_members: vec![AssetRef::group("no-such-group")],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no-such-group"), "{err}");
    assert_eq!(err.category(), "GraphRejected");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn throttling_honours_each_retry_after_form() {
    for (form, secs) in [
        (RetryAfterForm::Seconds, 0.3),
        (RetryAfterForm::Fractional, 0.25),
        (RetryAfterForm::HttpDate, 0.5),
    ] {
        let emu = emulator(EmulatorConfig {
            auth: false,
            ..Default::default()
        })
        .await;
        emu.set_faults(FaultConfig {
            throttle_rate: 0.5,
            retry_after_secs: secs,
            retry_after_form: form,
            seed: 12,
            ..Default::default()
        });
        let g = client(&emu, None, fast_transport(), 1000);
        for _ in 0..5 {
            g.deployments_created_since(chrono::Utc::now()).await.unwrap();
        }
        let log = emu.requests();
        let throttled: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
        assert!(!throttled.is_empty(), "{form:?}: the seed throttles some calls");
        for t in throttled {
            let next = log.iter().find(|r| r.seq > t.seq).expect("a retry follows");
            assert!(
                next.at_ms >= t.retry_not_before_ms.unwrap(),
                "{form:?}: retry at {} before {}",
                next.at_ms,
                t.retry_not_before_ms.unwrap()
            );
        }
    }
    // Without Retry-After the client backs off on its own and still gets through.
    let emu = emulator(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    emu.set_faults(FaultConfig {
        throttle_rate: 0.5,
        retry_after_form: RetryAfterForm::None,
        seed: 5,
        ..Default::default()
    });
    let g = client(&emu, None, fast_transport(), 1000);
    g.deployments_created_since(chrono::Utc::now()).await.unwrap();
}

#[tokio::test]
async fn long_retry_after_is_handed_back_instead_of_slept() {
    let emu = emulator(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    emu.set_faults(FaultConfig {
        throttle_rate: 1.0,
        retry_after_secs: 120.0,
        ..Default::default()
    });
    let g = client(
        &emu,
        None,
        TransportConfig {
            retry_budget: Duration::from_secs(5),
            ..fast_transport()
        },
        1000,
    );
    let started = std::time::Instant::now();
    let err = g.deployments_created_since(chrono::Utc::now()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.category(), "GraphThrottled");
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_request_graph_asked_to_wait_is_not_sent_again_before_its_time_by_any_caller() {
    let emu = emulator(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    // A long Retry-After is handed back; the same request from another caller (a later pass) is not
    // sent before it either, while a different request goes through.
    emu.set_faults(FaultConfig {
        throttle_rate: 1.0,
        retry_after_secs: 120.0,
        ..Default::default()
    });
    let g = client(
        &emu,
        None,
        TransportConfig {
            retry_budget: Duration::from_secs(5),
            ..fast_transport()
        },
        1000,
    );
    let since = chrono::Utc::now();
    assert_eq!(
        g.deployments_created_since(since).await.unwrap_err().category(),
        "GraphThrottled"
    );
    emu.set_faults(FaultConfig::default());
    let sent = emu.requests().len();
    let err = g.deployments_created_since(since).await.unwrap_err();
    assert_eq!(emu.requests().len(), sent, "the held request was not sent again");
    assert_eq!(err.category(), "GraphThrottled");
    assert!(err.retry_after().is_some_and(|r| r > Duration::from_secs(100)));
    g.get_deployment("other").await.unwrap();
    assert_eq!(emu.requests().len(), sent + 1, "another request is not held");

    // A caller dropped while it waited (a pass cancelled mid-retry): the next caller of the same
    // request waits out the rest.
    let emu = emulator(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    emu.set_faults(FaultConfig {
        throttle_rate: 1.0,
        retry_after_secs: 0.6,
        retry_after_form: RetryAfterForm::Fractional,
        ..Default::default()
    });
    let g = client(&emu, None, fast_transport(), 1000);
    let since = chrono::Utc::now();
    let dropped = tokio::time::timeout(Duration::from_millis(150), g.deployments_created_since(since)).await;
    assert!(dropped.is_err(), "the first caller was dropped while waiting");
    emu.set_faults(FaultConfig::default());
    g.deployments_created_since(since).await.unwrap();
    let log = emu.requests();
    let throttled = log
        .iter()
        .find(|r| r.status == 429)
        .expect("the first try was throttled");
    let next = log
        .iter()
        .find(|r| r.seq > throttled.seq)
        .expect("the second caller sent it");
    assert!(
        next.at_ms >= throttled.retry_not_before_ms.unwrap(),
        "sent at {} before {}",
        next.at_ms,
        throttled.retry_not_before_ms.unwrap()
    );
}

#[tokio::test]
async fn faults_at_thirty_percent_converge_without_duplicate_deployments() {
    let emu = emulator(EmulatorConfig {
        auth: false,
        page_size: 7,
        max_assets_per_request: Some(10),
        ..Default::default()
    })
    .await;
    let g = client(&emu, None, fast_transport(), 10);
    let entry = g.expeditable_updates(1).await.unwrap().remove(0);
    emu.set_faults(FaultConfig {
        error_rate: 0.3,
        drop_rate: 0.3,
        seed: 2024,
        ..Default::default()
    });
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    // Create exactly once: on an ambiguous outcome, adopt what was created instead of creating again.
    let mut deployment_id = None;
    for _ in 0..50 {
        match g
            .create_deployment(&ContentRequest::CatalogEntry(entry.id.clone()), &settings(), None)
            .await
        {
            Ok(d) => {
                deployment_id = Some(d.id);
                break;
            }
            Err(GraphError::AmbiguousCreate { .. }) => {
                let found = loop {
                    if let Ok(found) = g.deployments_created_since(started).await {
                        break found;
                    }
                };
                if let Some(d) = found.into_iter().next() {
                    deployment_id = Some(d.id);
                    break;
                }
            }
            Err(e) => assert!(e.is_transient(), "{e}"),
        }
    }
    let id = deployment_id.expect("created or adopted");
    let want: BTreeSet<AssetRef> = (0..60).map(|i| AssetRef::device(device(i))).collect();
    let excl: BTreeSet<AssetRef> = (60..70).map(|i| AssetRef::device(device(i))).collect();
    // Reconcile-style loop: observe, diff, apply, until Graph matches.
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 100, "did not converge");
        let Ok(a) = g.audience(AudienceOf::Deployment(&id)).await else {
            continue;
        };
        let diff = AudienceDiff {
            add_members: want.difference(&a.members).cloned().collect(),
            remove_members: a.members.difference(&want).cloned().collect(),
            add_exclusions: excl.difference(&a.exclusions).cloned().collect(),
            remove_exclusions: a.exclusions.difference(&excl).cloned().collect(),
        };
        if diff.is_empty() {
            break;
        }
        let _ = apply_audience_diff(&g, &id, &diff).await;
    }
    emu.set_faults(FaultConfig::default());
    let all = g.deployments_created_since(started).await.unwrap();
    assert_eq!(all.len(), 1, "exactly one deployment");
    let a = g.audience(AudienceOf::Deployment(&id)).await.unwrap();
    assert_eq!((a.members, a.exclusions), (want, excl));
    let faults = emu.requests().iter().filter(|r| r.fault.is_some()).count();
    assert!(faults > 10, "faults were injected: {faults}");
}

#[tokio::test]
async fn create_is_never_retried_blindly() {
    let emu = emulator(EmulatorConfig {
        auth: false,
        ..Default::default()
    })
    .await;
    let g = client(&emu, None, fast_transport(), 1000);
    let entry = g.expeditable_updates(1).await.unwrap().remove(0);
    for faults in [
        FaultConfig {
            drop_rate: 1.0,
            ..Default::default()
        },
        FaultConfig {
            error_rate: 1.0,
            ..Default::default()
        },
    ] {
        emu.set_faults(faults);
        let before = emu.count("deployments.create");
        let err = g
            .create_deployment(&ContentRequest::CatalogEntry(entry.id.clone()), &settings(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, GraphError::AmbiguousCreate { .. }), "{err}");
        assert_eq!(emu.count("deployments.create"), before + 1, "sent once");
    }
    // A 429 proves nothing was created: that one is retried.
    emu.set_faults(FaultConfig {
        throttle_rate: 0.5,
        retry_after_secs: 0.05,
        retry_after_form: RetryAfterForm::Fractional,
        seed: 3,
        ..Default::default()
    });
    for _ in 0..4 {
        g.create_deployment(&ContentRequest::CatalogEntry(entry.id.clone()), &settings(), None)
            .await
            .unwrap();
    }
    let created = emu
        .requests()
        .iter()
        .filter(|r| r.operation == "deployments.create" && r.status == 201)
        .count();
    assert_eq!(created, 4);
}

#[tokio::test]
async fn tokens_refresh_before_expiry_and_concurrent_callers_share_one() {
    let emu = emulator(EmulatorConfig {
        token_lifetime: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let g = default_client(&emu);
    let calls = (0..20).map(|_| g.deployments_created_since(chrono::Utc::now()));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(
        g.token_acquisitions(),
        1,
        "20 concurrent callers, one token request"
    );
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        g.deployments_created_since(chrono::Utc::now()).await.unwrap();
    }
    assert!(g.token_acquisitions() >= 2, "refreshed");
    assert!(
        emu.requests().iter().all(|r| r.status != 401),
        "refreshed before expiry, never rejected"
    );
    // A token revoked server-side is replaced once on 401.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .post(format!("{}/_emulator/tokens/revoke", emu.base_url()))
        .send()
        .await
        .unwrap();
    g.deployments_created_since(chrono::Utc::now()).await.unwrap();
    assert_eq!(emu.requests().iter().filter(|r| r.status == 401).count(), 1);
}

#[tokio::test]
async fn wrong_secret_is_a_clear_permanent_error_without_the_secret() {
    let emu = emulator(EmulatorConfig::default()).await;
    let secret = "definitely-wrong-secret-value";
    let g = client(&emu, Some(secret_credential(secret)), fast_transport(), 1000);
    let err = g.expeditable_updates(1).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("invalid_client") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert!(!text.contains(secret) && !format!("{err:?}").contains(secret));
    assert!(!format!("{g:?}").contains(secret));
    assert_eq!(err.category(), "GraphAuthentication");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn missing_permission_is_a_clear_403() {
    let emu = emulator(EmulatorConfig::default()).await;
    let cred = Credential {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: READONLY_CLIENT_ID.into(),
        kind: CredentialKind::ClientSecret(SecretString::new(READONLY_CLIENT_SECRET)),
    };
    let g = client(&emu, Some(cred), fast_transport(), 1000);
    // The catalog is refused to the read-only app, as the reference lists ReadWrite.All for it.
    let err = g.expeditable_updates(1).await.unwrap_err();
    assert_eq!(err.category(), "GraphForbidden");
    assert!(err.to_string().contains("list catalog entries"), "{err}");
    let err = g
        .create_deployment(&ContentRequest::CatalogEntry("any".into()), &settings(), None)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "GraphForbidden");
    assert!(err.to_string().contains("WindowsUpdates.ReadWrite.All"), "{err}");
    assert!(!err.is_transient());
    // The failed call's ids, which Microsoft support asks for: the service's request-id and the
    // client-request-id the operator sent, as the service echoed it.
    let GraphError::Status { detail, .. } = &err else {
        panic!("not a status error: {err:?}")
    };
    let ids = detail.ids.as_deref().expect("the request ids");
    let (rid, cid) = (
        ids.request_id.clone().expect("request-id"),
        ids.client_request_id.clone().expect("client-request-id"),
    );
    assert_ne!(rid, cid);
    assert!(uuid_shaped(&cid), "{cid}");
    assert!(
        err.to_string()
            .ends_with(&format!("[request-id: {rid}, client-request-id: {cid}]")),
        "{err}"
    );
}

fn uuid_shaped(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn certificate_and_workload_identity_credentials() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/credentials");
    let public = std::fs::read_to_string(format!("{dir}/client-pub.pem")).unwrap();
    let app = "66666666-6666-4666-8666-666666666666";
    let mut config = EmulatorConfig::default();
    config.apps.push(AppRegistration {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: app.into(),
        client_secret: None,
        certificate_pem: Some(public),
        federated: vec![wufb_graph_emulator::config::FederatedCredential {
            issuer: "https://issuer.test".into(),
            subject: "system:serviceaccount:wufb-system:wufb-operator".into(),
        }],
        roles: vec!["WindowsUpdates.ReadWrite.All".into()],
    });
    let emu = emulator(config).await;
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(format!("{dir}/client-cert.pem")).unwrap(),
        std::fs::read_to_string(format!("{dir}/client-key.pem")).unwrap()
    );
    let cert = Credential::certificate(DEFAULT_TENANT_ID, app, &pem).unwrap();
    let g = client(&emu, Some(cert), fast_transport(), 1000);
    assert_eq!(g.expeditable_updates(1).await.unwrap().len(), 1);

    // Workload identity: the token file is re-read on every acquisition (the kubelet rotates it).
    let token_file = std::env::temp_dir().join(format!("wufb-fed-{}", std::process::id()));
    let sign = |sub: &str| {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"iss": "https://issuer.test", "sub": sub, "aud": "api://AzureADTokenExchange", "nbf": now, "exp": now + 600});
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(format!("{dir}/other-key.pem")).unwrap())
                .unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .unwrap()
    };
    std::fs::write(
        &token_file,
        sign("system:serviceaccount:wufb-system:wufb-operator"),
    )
    .unwrap();
    let fed = Credential {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: app.into(),
        kind: CredentialKind::WorkloadIdentity {
            token_file: token_file.clone(),
        },
    };
    let g = client(&emu, Some(fed.clone()), fast_transport(), 1000);
    assert_eq!(g.expeditable_updates(1).await.unwrap().len(), 1);
    std::fs::write(&token_file, sign("system:serviceaccount:other:sa")).unwrap();
    let g2 = client(&emu, Some(fed), fast_transport(), 1000);
    let err = g2.expeditable_updates(1).await.unwrap_err();
    assert!(
        err.to_string().contains("AADSTS700213"),
        "the rotated (wrong) token was read: {err}"
    );
    std::fs::remove_file(token_file).ok();
}

#[tokio::test]
async fn metrics_count_requests_and_never_carry_secrets() {
    let emu = emulator(EmulatorConfig::default()).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = GraphMetrics::register(&mut registry);
    let endpoints = Endpoints::custom(&emu.base_url(), &emu.graph_url()).unwrap();
    let g = GraphClient::new(
        GraphConfig {
            endpoints,
            credential: Some(secret_credential(DEFAULT_CLIENT_SECRET)),
            transport: fast_transport(),
            batch_size: 1000,
        },
        metrics,
    )
    .unwrap();
    emu.set_faults(FaultConfig {
        throttle_rate: 0.5,
        retry_after_secs: 0.01,
        retry_after_form: RetryAfterForm::Fractional,
        seed: 8,
        ..Default::default()
    });
    for _ in 0..5 {
        g.deployments_created_since(chrono::Utc::now()).await.unwrap();
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            r#"wufb_graph_requests_total{connection="default",operation="list deployments",code="200"} 5"#
        ),
        "{text}"
    );
    assert!(text.contains("wufb_graph_throttled_total"));
    assert!(text.contains("wufb_graph_retries_total"));
    assert!(!text.contains(DEFAULT_CLIENT_SECRET));
}

#[tokio::test]
async fn the_recovery_list_works_when_the_service_refuses_its_filter() {
    let emu = emulator(EmulatorConfig {
        auth: false,
        refuse_deployment_filter: true,
        ..Default::default()
    })
    .await;
    let g = client(&emu, None, fast_transport(), 10);
    let entry = g.expeditable_updates(1).await.unwrap().remove(0);
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let d = g
        .create_deployment(&ContentRequest::CatalogEntry(entry.id), &settings(), None)
        .await
        .unwrap();
    let found = g.deployments_created_since(before).await.unwrap();
    assert_eq!(
        found.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![d.id.as_str()]
    );
    // Filtered here as the service would have: nothing created after the create.
    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    assert!(g.deployments_created_since(later).await.unwrap().is_empty());
    let lists: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.operation == "deployments.list")
        .map(|r| (r.status, r.query.is_some()))
        .collect();
    assert_eq!(
        lists,
        vec![(400, true), (200, false), (400, true), (200, false)],
        "the filtered list is refused, then the whole list is read"
    );
}

#[tokio::test]
async fn audience_lists_page_by_next_link_where_client_paging_is_refused_and_remember_it() {
    for client_paging in [false, true] {
        let emu = emulator(EmulatorConfig {
            auth: false,
            audience_client_paging: client_paging,
            ..Default::default()
        })
        .await;
        let g = client(&emu, None, fast_transport(), 1000);
        let entry = g.expeditable_updates(1).await.unwrap().remove(0);
        let aid = g.create_audience().await.unwrap();
        g.create_deployment(&ContentRequest::CatalogEntry(entry.id), &settings(), Some(&aid))
            .await
            .unwrap();
        let add: Vec<AssetRef> = (0..250).map(|i| AssetRef::device(device(i))).collect();
        let of = AudienceOf::Id(&aid);
        act::send_audience(
            &g,
            of,
            &AudienceDiff {
                add_members: add.clone(),
                ..Default::default()
            }
            .phases(1000),
            act::VISIBLE_WITHIN,
        )
        .await
        .unwrap();
        let reads = |since: u64| -> Vec<(u16, String)> {
            emu.requests()
                .iter()
                .filter(|r| r.seq >= since && r.operation == "audience.members.list")
                .map(|r| (r.status, r.query.clone().unwrap_or_default()))
                .collect()
        };
        for pass in 0..2 {
            let since = emu.requests().last().map_or(0, |r| r.seq + 1);
            let a = g.audience(of).await.unwrap();
            assert_eq!(a.members, add.iter().cloned().collect(), "every member, once");
            let log = reads(since);
            let refused = log.iter().filter(|(s, _)| *s == 400).count();
            let client_paged = log.iter().filter(|(_, q)| q.contains("$skip=")).count();
            match (client_paging, pass) {
                // The first read is refused once, then follows nextLink: 3 pages of 100.
                (false, 0) => assert_eq!((refused, client_paged, log.len()), (1, 0, 4), "{log:?}"),
                // Remembered: no refusal asked for again.
                (false, _) => assert_eq!((refused, client_paged, log.len()), (0, 0, 3), "{log:?}"),
                // Served: the count, then the other pages at once.
                (true, _) => assert_eq!((refused, client_paged), (0, 2), "{log:?}"),
            }
        }
    }
}

#[tokio::test]
async fn device_signals_read_every_page_of_a_tenant_larger_than_any_page_request() {
    // More devices than a `$top` the client might ask (which caps the whole result), in pages of 50.
    let emu = emulator(EmulatorConfig {
        page_size: 50,
        ..Default::default()
    })
    .await;
    for i in 0..1_234 {
        emu.set_device(
            &device(i),
            Some(wufb_graph_emulator::fleet::Build {
                major_version: 10,
                minor_version: 0,
                build_number: 26100,
                update_build_revision: 1000 + i as u32,
            }),
            (i % 100 == 0).then_some(None),
        );
    }
    let g = default_client(&emu);
    let signals = g.device_signals_within(Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        signals.builds.len(),
        1_234,
        "every reporting device, across every page"
    );
    assert_eq!(
        signals
            .builds
            .get(&DeviceId::new(&device(1_233)))
            .unwrap()
            .update_build_revision,
        1000 + 1_233
    );
    assert_eq!(emu.count("deviceProfiles.list"), 1_234_u64.div_ceil(50));
    // Within the interval, a second caller shares the read.
    g.device_signals_within(Duration::from_secs(60)).await.unwrap();
    assert_eq!(emu.count("deviceProfiles.list"), 1_234_u64.div_ceil(50));
    assert_eq!(emu.count("updatableAssets.list"), 1);
}

/// With `--graph-batch auto`, requests that queue for a slot share round trips as JSON batches, and
/// each caller gets what it would have got alone: its deployment, its audience (every page), a 404 as
/// `None`; under throttling inside the batches every read still succeeds (each request retried on its
/// own), and a tenant that refuses batches gets single requests after one probe.
#[tokio::test]
async fn queued_requests_share_round_trips_as_json_batches() {
    async fn read_all(g: &GraphClient, ids: &[String]) -> Vec<(Option<String>, usize)> {
        let reads = ids.iter().map(|id| async move {
            let d = g.get_deployment(id).await.unwrap().map(|d| d.id);
            let members = match d {
                Some(_) => g
                    .audience(AudienceOf::Deployment(id))
                    .await
                    .unwrap()
                    .members
                    .len(),
                None => 0,
            };
            (d, members)
        });
        futures::future::join_all(reads).await
    }
    let batched = TransportConfig {
        concurrency: 2,
        batch: wufb_operator::graph::transport::BatchMode::Auto,
        ..fast_transport()
    };
    let emu = emulator(EmulatorConfig {
        auth: false,
        page_size: 10,
        faults: FaultConfig {
            latency_ms: 20,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let single = client(&emu, None, fast_transport(), 1000);
    let entry = single.expeditable_updates(1).await.unwrap().remove(0);
    let mut ids = Vec::new();
    for i in 0..12 {
        let d = single
            .create_deployment(&ContentRequest::CatalogEntry(entry.id.clone()), &settings(), None)
            .await
            .unwrap();
        let members: Vec<AssetRef> = (0..(i * 5))
            .map(|j| AssetRef::device(device(i * 100 + j)))
            .collect();
        let diff = AudienceDiff {
            add_members: members,
            ..Default::default()
        };
        apply_audience_diff(&single, &d.id, &diff).await.unwrap();
        ids.push(d.id);
    }
    ids.push("00000000-0000-4000-8000-00000000dead".into());
    let want = read_all(&single, &ids).await;
    assert_eq!(
        want.last(),
        Some(&(None, 0)),
        "the missing deployment reads as none"
    );
    assert_eq!(want[11].1, 55, "an audience of several pages");

    let before = emu.requests().len();
    let g = client(&emu, None, batched.clone(), 1000);
    assert_eq!(read_all(&g, &ids).await, want);
    let log = emu.requests();
    let log = &log[before..];
    let carried = log.iter().filter(|r| r.in_batch).count();
    let trips = log.iter().filter(|r| !r.in_batch).count();
    let batches = log.iter().filter(|r| r.operation == "$batch").count();
    assert!(batches >= 2, "queued requests went as batches: {batches}");
    assert!(
        carried > trips,
        "most requests rode in batches: {carried} carried, {trips} round trips"
    );

    // Throttling inside the batches: each request is retried on its own.
    emu.set_faults(FaultConfig {
        latency_ms: 20,
        throttle_rate: 0.3,
        retry_after_form: RetryAfterForm::Seconds,
        retry_after_secs: 0.05,
        operations: vec!["deployments.get".into(), "audience.members.list".into()],
        seed: 7,
        ..Default::default()
    });
    let before = emu.requests().len();
    let g = client(&emu, None, batched.clone(), 1000);
    assert_eq!(read_all(&g, &ids).await, want);
    let log = emu.requests();
    let throttled_in_batches = log[before..]
        .iter()
        .filter(|r| r.in_batch && r.status == 429)
        .count();
    assert!(throttled_in_batches > 0, "some batched requests were throttled");

    // A tenant that refuses batches: one probe, then single requests.
    let refusing = emulator(EmulatorConfig {
        auth: false,
        page_size: 10,
        refuse_batch: true,
        faults: FaultConfig {
            latency_ms: 20,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let g = client(&refusing, None, batched, 1000);
    let d = g
        .create_deployment(&ContentRequest::CatalogEntry(entry.id.clone()), &settings(), None)
        .await
        .unwrap();
    let reads = (0..10).map(|_| g.get_deployment(&d.id));
    let got = futures::future::join_all(reads).await;
    assert!(
        got.iter()
            .all(|r| r.as_ref().unwrap().as_ref().unwrap().id == d.id)
    );
    let log = refusing.requests();
    assert_eq!(
        log.iter().filter(|r| r.operation == "$batch").count(),
        1,
        "one probe"
    );
    assert_eq!(
        log.iter().filter(|r| r.operation == "deployments.get").count(),
        10
    );
}
