//! Graph's reads lag its writes: an operator that takes one 404 as proof makes a second deployment.

use std::time::Duration;

use wufb_e2e::Env;
use wufb_e2e::fixtures::dev;
use wufb_graph_emulator::EmulatorConfig;
use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_read_never_makes_a_second_deployment() {
    let mut env = Env::start_with(
        "lag",
        EmulatorConfig {
            read_lag_ms: 1500,
            ..Default::default()
        },
    )
    .await;
    env.spawn_controller_as(
        "a",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &["--absence-confirm", "20s", "--read-lag-budget", "10s"],
    );
    env.apply_yaml(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: lagged\nspec:\n  paused: false\n  content:\n    latest: true\n  audience:\n    members:\n    - device: {}\n    - device: {}\n",
        dev(1),
        dev(2)
    ))
    .await;
    // The verification after the create reads 404 (the deployment is not readable yet): the operator
    // says so and waits, instead of creating it again.
    env.eventually(
        "the absence being confirmed",
        Duration::from_secs(30),
        async || {
            let s = env.status_of("lagged").await;
            s["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["reason"] == "ConfirmingAbsence")
                .then_some(())
        },
    )
    .await;
    env.wait_ready(&["expd/lagged"]).await;
    let deployments = env.graph_deployments();
    assert_eq!(deployments.len(), 1, "exactly one deployment: {deployments:?}");
    let id = deployments[0]["id"].as_str().unwrap().to_string();
    assert_eq!(env.status_of("lagged").await["deploymentId"], id.as_str());
    assert!(env.status_of("lagged").await.get("missingSince").is_none());
    assert_eq!(env.graph_audience(&id).0, vec![dev(1), dev(2)]);
    let creates = env
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation == "deployments.create")
        .count();
    assert_eq!(creates, 1);
    let audience_writes = env
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation == "audience.updateAudience")
        .count();
    assert_eq!(audience_writes, 1, "sent once, not again while the read lags");
}

/// Under lag, the order that keeps devices safe is proven by reads: the first audience write waits
/// until Graph shows the pause, and members wait until the exclusions sent before them show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_read_holds_each_audience_write_until_what_it_depends_on_shows() {
    let lag = 1200;
    let mut env = Env::start_with(
        "lagorder",
        EmulatorConfig {
            read_lag_ms: lag,
            ..Default::default()
        },
    )
    .await;
    // Batches of two: the exclusions and the members go in separate requests.
    env.spawn_controller_as(
        "a",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &[
            "--absence-confirm",
            "20s",
            "--batch-size",
            "2",
            "--read-lag-budget",
            "10s",
        ],
    );
    env.apply_yaml(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: ordered\nspec:\n  paused: true\n  content:\n    latest: true\n  audience:\n    members:\n    - device: {}\n    - device: {}\n    - device: {}\n    exclusions:\n    - device: {}\n    - device: {}\n",
        dev(1),
        dev(2),
        dev(3),
        dev(8),
        dev(9)
    ))
    .await;
    env.wait_ready(&["expd/ordered"]).await;
    let log = env.emulator.requests();
    let at = |pred: &dyn Fn(&wufb_graph_emulator::state::LogEntry) -> bool| -> Vec<u64> {
        log.iter()
            .filter(|r| (200..300).contains(&r.status) && pred(r))
            .map(|r| r.at_ms)
            .collect()
    };
    let paused = at(&|r| r.method == "PATCH");
    let audience = at(&|r| r.operation == "audience.updateAudience");
    assert!(!paused.is_empty() && audience.len() >= 2, "{log:?}");
    assert!(
        audience[0] >= paused[0] + lag,
        "the first audience write ({}) waits for the pause ({}) to show ({lag} ms lag)",
        audience[0],
        paused[0]
    );
    // The request that adds the exclusions comes first; the members follow once they show.
    assert!(
        audience[audience.len() - 1] >= audience[0] + lag,
        "members sent {} ms after the exclusions",
        audience[audience.len() - 1] - audience[0]
    );
    let deployments = env.graph_deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let id = deployments[0]["id"].as_str().unwrap().to_string();
    let (members, exclusions) = env.graph_audience(&id);
    assert_eq!(members, vec![dev(1), dev(2), dev(3)]);
    assert_eq!(exclusions, vec![dev(8), dev(9)]);
    assert_eq!(deployments[0]["state"]["requestedValue"], "paused");
    // Writes at the lower bound: the verification waits for the lag instead of sending again.
    let count = |op: &str| {
        log.iter()
            .filter(|r| r.operation == op && (200..300).contains(&r.status))
            .count()
    };
    assert_eq!(count("deploymentAudiences.create"), 1);
    assert_eq!(count("deployments.create"), 1);
    assert_eq!(count("deployments.update"), 1, "one pause");
    assert_eq!(
        count("audience.updateAudience"),
        3,
        "5 assets in batches of 2, each once"
    );
}
