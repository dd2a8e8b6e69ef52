//! `wufb-operator check`'s tenant and write checks against the Graph emulator set up to differ: each
//! service behaviour the operator adapts to is reported as found, each permission and sign-in check can
//! fail with its hint, and the write check leaves the tenant as it found it whichever step fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wufb_graph_emulator::config::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, READONLY_CLIENT_ID, READONLY_CLIENT_SECRET,
};
use wufb_graph_emulator::{AppRegistration, Emulator, EmulatorConfig, FaultConfig};
use wufb_operator::cli::check::{Check, Status, tenant, write};
use wufb_operator::graph::{
    Credential, CredentialKind, Endpoints, GraphClient, GraphConfig, GraphMetrics, SecretString,
    TransportConfig,
};

async fn tenant_of(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0").await.unwrap()
}

fn signed_in(emu: &Emulator, client_id: &str, secret: &str) -> GraphClient {
    let transport = TransportConfig {
        base_backoff: Duration::from_millis(10),
        max_retries: 2,
        retry_budget: Duration::from_secs(5),
        ..Default::default()
    };
    GraphClient::new(
        GraphConfig {
            endpoints: Endpoints::custom(&emu.base_url(), &emu.graph_url()).unwrap(),
            credential: Some(Credential {
                tenant_id: DEFAULT_TENANT_ID.into(),
                client_id: client_id.into(),
                kind: CredentialKind::ClientSecret(SecretString::new(secret)),
            }),
            transport,
            batch_size: 100,
        },
        GraphMetrics::default(),
    )
    .unwrap()
}

async fn tenant_checks(emu: &Emulator, client_id: &str, secret: &str, entra: &[String]) -> Vec<Check> {
    let mut out = Vec::new();
    tenant::check(&signed_in(emu, client_id, secret), "tenant", entra, &mut out).await;
    out
}

fn line<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
}

/// One audience with a member, so the audience lists can be probed.
async fn with_an_audience(emu: &Emulator) {
    let g = signed_in(emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    let aid = g.create_audience().await.unwrap();
    let device = wufb_operator::graph::AssetRef::device("00000000-0000-4000-8000-000000000001");
    let diff = wufb_operator::reconcile::plan::AudienceDiff {
        add_members: [device].into(),
        ..Default::default()
    };
    for phase in diff.phases(100) {
        for update in phase {
            g.update_audience(wufb_operator::graph::AudienceOf::Id(&aid), &update)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn the_default_tenant_signs_in_with_every_permission_and_reports_what_it_found() {
    let emu = tenant_of(EmulatorConfig::default()).await;
    with_an_audience(&emu).await;
    let checks = tenant_checks(&emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[]).await;
    let sign_in = line(&checks, "sign-in");
    assert_eq!(sign_in.status, Status::Ok, "{sign_in:?}");
    assert!(
        sign_in.found.contains(DEFAULT_TENANT_ID) && sign_in.found.contains(DEFAULT_CLIENT_ID),
        "tenant and app named from the token: {sign_in:?}"
    );
    for name in [
        "service",
        "catalog",
        "permission-deployments",
        "permission-reads",
        "permission-entra-groups",
    ] {
        assert_eq!(
            line(&checks, name).status,
            Status::Ok,
            "{:?}",
            line(&checks, name)
        );
    }
    assert!(
        line(&checks, "catalog")
            .found
            .starts_with("newest expeditable quality update:")
    );
    // The strict default: audience lists page by $skiptoken only; the deployments filter is served.
    let paging = line(&checks, "audience-paging");
    assert!(paging.found.contains("refused (400)"), "{paging:?}");
    assert_eq!(line(&checks, "device-signals").status, Status::Ok);
    assert!(line(&checks, "deployment-filter").found.contains("is served"));
    assert_eq!(line(&checks, "entra-groups").status, Status::Skipped);
    // Never a secret or a token in what is reported.
    let text = format!("{checks:?}");
    assert!(
        !text.contains(DEFAULT_CLIENT_SECRET) && !text.contains("eyJ"),
        "{text}"
    );
}

#[tokio::test]
async fn each_service_behaviour_is_reported_as_found() {
    let emu = tenant_of(EmulatorConfig {
        audience_client_paging: true,
        refuse_deployment_filter: true,
        ..Default::default()
    })
    .await;
    with_an_audience(&emu).await;
    let checks = tenant_checks(&emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[]).await;
    let paging = line(&checks, "audience-paging");
    assert!(paging.found.contains("are served"), "{paging:?}");
    let filter = line(&checks, "deployment-filter");
    assert!(filter.found.contains("refused (400)"), "{filter:?}");
    let batch = line(&checks, "json-batch");
    assert!(batch.found.contains("takes JSON batches"), "{batch:?}");
    assert_eq!(
        filter.status,
        Status::Ok,
        "the operator adapts: found, not a fault"
    );

    // A service whose paths JSON batching does not reach.
    let refusing = tenant_of(EmulatorConfig {
        refuse_batch: true,
        ..Default::default()
    })
    .await;
    let checks = tenant_checks(&refusing, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[]).await;
    let batch = line(&checks, "json-batch");
    assert!(batch.found.contains("refused in a JSON batch"), "{batch:?}");

    // An audience that never had members: 404 in the strict default, an empty list in the older mode.
    for (empty_lists, expected) in [(false, "answers 404"), (true, "is listed empty")] {
        let emu = tenant_of(EmulatorConfig {
            audience_404_when_empty: !empty_lists,
            ..Default::default()
        })
        .await;
        signed_in(&emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            .create_audience()
            .await
            .unwrap();
        let checks = tenant_checks(&emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[]).await;
        let lists = line(&checks, "unused-audience");
        assert!(lists.found.contains(expected), "{empty_lists}: {lists:?}");
    }
}

#[tokio::test]
async fn a_read_only_app_fails_the_deployments_permission_naming_the_role_and_the_feature() {
    let emu = tenant_of(EmulatorConfig::default()).await;
    let checks = tenant_checks(&emu, READONLY_CLIENT_ID, READONLY_CLIENT_SECRET, &[]).await;
    let p = line(&checks, "permission-deployments");
    assert_eq!(p.status, Status::Failed, "{p:?}");
    assert!(
        p.found.contains("WindowsUpdates.ReadWrite.All") && p.found.contains("deployments"),
        "{p:?}"
    );
    assert_eq!(p.reason.as_deref(), Some("GraphPermissionMissing"));
    assert!(p.hint.as_deref().unwrap().contains("admin consent"), "{p:?}");
    assert!(
        p.docs
            .as_deref()
            .unwrap()
            .ends_with("reasons.html#graph-permission-missing")
    );
    assert_eq!(line(&checks, "permission-reads").status, Status::Ok);
    // The reference gives the catalog reads to ReadWrite.All only: the service check says so.
    let service = line(&checks, "service");
    assert_eq!(service.status, Status::Failed, "{service:?}");
}

#[tokio::test]
async fn a_wrong_secret_or_a_failing_token_endpoint_fails_sign_in_without_the_secret() {
    let emu = tenant_of(EmulatorConfig::default()).await;
    let wrong = "not-the-secret-at-all";
    let checks = tenant_checks(&emu, DEFAULT_CLIENT_ID, wrong, &[]).await;
    let s = line(&checks, "sign-in");
    assert_eq!(s.status, Status::Failed, "{s:?}");
    assert!(s.found.contains("AADSTS7000215"), "{s:?}");
    assert!(!format!("{checks:?}").contains(wrong));
    assert_eq!(s.reason.as_deref(), Some("SignInFailed"));
    assert_eq!(line(&checks, "service").status, Status::Skipped);

    emu.set_faults(FaultConfig {
        token_error_rate: 1.0,
        ..Default::default()
    });
    let checks = tenant_checks(&emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[]).await;
    assert_eq!(line(&checks, "sign-in").status, Status::Failed);
}

#[tokio::test]
async fn entra_groups_a_device_group_names_are_read_and_a_missing_one_fails() {
    let emu = tenant_of(EmulatorConfig::default()).await;
    let missing = "99999999-9999-4999-8999-999999999999".to_string();
    let checks = tenant_checks(
        &emu,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        std::slice::from_ref(&missing),
    )
    .await;
    let g = line(&checks, "entra-groups");
    assert_eq!(g.status, Status::Failed, "{g:?}");
    assert!(
        g.found.contains(&missing) && g.found.contains("does not exist"),
        "{g:?}"
    );
}

fn tenant_is_empty(emu: &Emulator) -> (usize, usize) {
    let store = wufb_graph_emulator::state::lock(&emu.shared.store);
    (store.deployments.len(), store.audiences.len())
}

fn state_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wufb-write-check-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn write_check(emu: &Emulator, budget: Duration, state: &std::path::Path) -> Vec<Check> {
    let mut out = Vec::new();
    write::run(
        &signed_in(emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        budget,
        Duration::from_secs(120),
        state,
        &mut out,
    )
    .await;
    out
}

/// The write check writes through the emulator and measures its read lag, and each of its steps, made
/// to fail in turn, leaves nothing behind (or the next run removes it).
#[tokio::test]
async fn the_write_check_measures_read_lag_and_leaves_the_tenant_as_it_found_it_whatever_fails() {
    let state = state_dir("steps");
    let emu = tenant_of(EmulatorConfig {
        read_lag_ms: 300,
        ..Default::default()
    })
    .await;
    let checks = write_check(&emu, Duration::from_secs(60), &state).await;
    let w = line(&checks, "write-check");
    assert_eq!(w.status, Status::Ok, "{checks:#?}");
    assert_eq!(line(&checks, "read-lag").status, Status::Ok);
    assert_eq!(tenant_is_empty(&emu), (0, 0), "nothing left behind");
    assert!(emu.count("deployments.create") == 1 && emu.count("deploymentAudiences.create") == 1);
    assert!(
        emu.count("deployments.delete") == 1 && emu.count("deploymentAudiences.delete") == 1,
        "each deleted once"
    );
    // A budget under the lag is a warning that recommends one.
    let checks = write_check(&emu, Duration::ZERO, &state).await;
    let lag = line(&checks, "read-lag");
    assert_eq!(lag.status, Status::Warning, "{lag:?}");
    assert!(lag.found.contains("set --read-lag-budget"), "{lag:?}");

    // Each step fails in turn (every attempt of its operation refused): nothing stays behind.
    for (operation, step) in [
        ("deploymentAudiences.create", "creating the deployment audience"),
        ("deployments.create", "creating the paused deployment"),
        ("deployments.update", "pausing the deployment"),
        ("deployments.get", "reading the deployment back"),
    ] {
        emu.set_faults(FaultConfig {
            error_rate: 1.0,
            operations: vec![operation.into()],
            ..Default::default()
        });
        let checks = write_check(&emu, Duration::from_secs(60), &state).await;
        emu.set_faults(FaultConfig::default());
        let w = line(&checks, "write-check");
        assert_eq!(w.status, Status::Failed, "{operation}: {checks:#?}");
        assert!(w.found.starts_with(step), "{operation}: {w:?}");
        assert_eq!(tenant_is_empty(&emu), (0, 0), "{operation}: nothing left behind");
    }

    // A lost create answer: the deployment is found by its audience and deleted.
    emu.set_faults(FaultConfig {
        lost_answer_rate: 1.0,
        operations: vec!["deployments.create".into()],
        ..Default::default()
    });
    let checks = write_check(&emu, Duration::from_secs(60), &state).await;
    emu.set_faults(FaultConfig::default());
    assert_eq!(line(&checks, "write-check").status, Status::Ok, "{checks:#?}");
    assert_eq!(
        tenant_is_empty(&emu),
        (0, 0),
        "the lost create was found and deleted"
    );

    // Deletes that fail: the run says so, and the next run removes what the first left.
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        operations: vec!["deployments.delete".into(), "deploymentAudiences.delete".into()],
        ..Default::default()
    });
    let checks = write_check(&emu, Duration::from_secs(60), &state).await;
    emu.set_faults(FaultConfig::default());
    assert_eq!(line(&checks, "clean-up").status, Status::Failed, "{checks:#?}");
    assert_ne!(tenant_is_empty(&emu), (0, 0));
    let checks = write_check(&emu, Duration::from_secs(60), &state).await;
    let earlier = line(&checks, "earlier-run");
    assert!(
        earlier
            .found
            .starts_with("removed what an interrupted earlier run left"),
        "{earlier:?}"
    );
    assert_eq!(tenant_is_empty(&emu), (0, 0));
}

#[tokio::test]
async fn an_empty_catalog_warns_and_an_app_without_update_permissions_reads_no_signals() {
    let emu = tenant_of(EmulatorConfig::default()).await;
    wufb_graph_emulator::state::lock(&emu.shared.catalog).clear();
    let checks = tenant_checks(&emu, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[]).await;
    let c = line(&checks, "catalog");
    assert_eq!(
        (c.status, c.reason.as_deref()),
        (Status::Warning, Some("NoExpeditableContent")),
        "{c:?}"
    );

    // An app granted directory reads only.
    let directory_only = "44444444-4444-4444-8444-444444444444";
    let emu = tenant_of(EmulatorConfig {
        apps: vec![AppRegistration {
            tenant_id: DEFAULT_TENANT_ID.into(),
            client_id: directory_only.into(),
            client_secret: Some("directory-only".into()),
            certificate_pem: None,
            federated: Vec::new(),
            roles: vec!["GroupMember.Read.All".into(), "Device.Read.All".into()],
        }],
        ..Default::default()
    })
    .await;
    let checks = tenant_checks(&emu, directory_only, "directory-only", &[]).await;
    assert_eq!(line(&checks, "sign-in").status, Status::Ok);
    assert_eq!(line(&checks, "service").status, Status::Failed);
    assert_eq!(line(&checks, "permission-reads").status, Status::Failed);
    assert_eq!(line(&checks, "permission-entra-groups").status, Status::Ok);
    let signals = line(&checks, "device-signals");
    assert_eq!(
        (signals.status, signals.reason.as_deref()),
        (Status::Warning, Some("DeviceSignalsUnreadable")),
        "{signals:?}"
    );
}
