//! Graph's reads lag its writes: an operator that takes one 404 as proof makes a second deployment.

use std::time::Duration;

use wufb_e2e::Env;
use wufb_graph_emulator::EmulatorConfig;
use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn dev(i: u32) -> String {
    format!("{i:08x}-1111-4111-8111-111111111111")
}

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
        &["--absence-confirm", "20s"],
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
}
