//! What a real API server does that a naive stand-in does not: watch events after the write's answer,
//! server-side apply that removes what its manager stops applying, list types, Event limits. Each test
//! here is a controller behaviour that depends on one of them (the harness runs every test with its
//! watches delayed; these use a longer delay where the race is the point).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use wufb_e2e::fixtures::dev;
use wufb_e2e::fixtures::rollout;
use wufb_e2e::{Env, condition};
use wufb_graph_emulator::EmulatorConfig;

async fn with_delay(name: &str, delay_ms: u64, emulator: EmulatorConfig) -> Env {
    Env::start_delayed(name, emulator, Duration::from_millis(delay_ms)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_device_group_gets_exactly_one_graph_group_under_a_slow_watch() {
    let mut env = with_delay("one-group", 400, EmulatorConfig::default()).await;
    env.spawn_controller("a");
    env.apply_yaml(
        "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: empty\nspec:\n  devices: []\n",
    )
    .await;
    env.wait_ready(&["dg/empty"]).await;
    // A pass after Ready (through the slow watch), before counting the groups.
    let since = env.graph_seq();
    env.request_reconcile("dg/empty", "after-ready").await;
    env.settled("dg/empty", since).await;
    let groups = env
        .emulator
        .requests()
        .iter()
        .filter(|r| r.operation == "updatableAssets.createGroup" && r.status == 201)
        .count();
    assert_eq!(groups, 1, "one Graph group, however late the watch");
    let id = env.get("dg/empty").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    env.kubectl_ok(&[
        "patch",
        "dg",
        "empty",
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"spec":{{"devices":["{}"]}}}}"#, dev(1)),
    ])
    .await;
    env.eventually("the device in the group", Duration::from_secs(30), async || {
        let store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        (store.group_members(&id).map(|m| m.count()).unwrap_or(0) == 1).then_some(())
    })
    .await;
    let logs = env.controller_logs();
    assert!(
        !logs.contains("KubernetesConflict") && !logs.contains("changed since it was read"),
        "no pass acted on a stale copy:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_deployment_under_a_slow_watch_has_no_conflict_or_adoption_events() {
    let mut env = with_delay("no-conflicts", 400, EmulatorConfig::default()).await;
    env.spawn_controller("a");
    for i in 0..3 {
        env.apply_yaml(&rollout(&format!("r{i}"), &[dev(i)], "")).await;
    }
    env.wait_ready(&["expd", "--all"]).await;
    let events = env.events_with(&["Created"]).await;
    assert!(!events.contains("KubernetesConflict"), "{events}");
    assert!(!events.contains("\"Adopted\""), "{events}");
    assert_eq!(env.graph_deployments().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_operator_stops_reporting_are_removed_from_status() {
    let bad = dev(66);
    let mut config = EmulatorConfig::default();
    config
        .device_errors
        .insert(bad.clone(), "missingTrustType".into());
    let mut env = with_delay("removed-fields", 100, config).await;
    env.spawn_controller("a");
    env.apply_yaml(&rollout("r", &[dev(1), bad.clone()], "")).await;
    env.wait_ready(&["expd/r"]).await;
    let status = env
        .eventually(
            "the registration error in status",
            Duration::from_secs(30),
            async || {
                let s = env.status_of("r").await;
                s["deviceErrors"].is_array().then_some(s)
            },
        )
        .await;
    assert_eq!(status["deviceErrors"][0]["deviceId"], bad.as_str());
    // The device leaves the audience: its error leaves the status.
    env.apply_yaml(&rollout("r", &[dev(1)], "")).await;
    env.eventually("no device errors", Duration::from_secs(30), async || {
        let s = env.status_of("r").await;
        (s["deviceErrors"].is_null()
            && s["observedGeneration"] == 2
            && condition(&s, "Ready")["status"] == "True")
            .then_some(())
    })
    .await;
    // A pause reports pausedByRequest; after the resume the reason is gone.
    env.apply_yaml(&rollout("r", &[dev(1)], "  paused: true\n")).await;
    env.eventually("pausedByRequest", Duration::from_secs(30), async || {
        let s = env.status_of("r").await;
        s["stateReasons"]
            .to_string()
            .contains("pausedByRequest")
            .then_some(())
    })
    .await;
    env.apply_yaml(&rollout("r", &[dev(1)], "")).await;
    env.eventually("the pause reason gone", Duration::from_secs(30), async || {
        let s = env.status_of("r").await;
        (s["graphState"] == "offering" && !s["stateReasons"].to_string().contains("pausedByRequest"))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writers_condition_survives_the_operators_status_writes() {
    let mut env = with_delay("conditions-map", 100, EmulatorConfig::default()).await;
    env.spawn_controller("a");
    env.apply_yaml(&rollout("r", &[dev(1)], "")).await;
    env.wait_ready(&["expd/r"]).await;
    env.kubectl_ok(&[
        "patch",
        "expd",
        "r",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Converged","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"},{"type":"ChangeApproved","status":"True","reason":"CAB","message":"approved by the change board","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    ])
    .await;
    // A change the operator acts on and reports.
    env.apply_yaml(&rollout("r", &[dev(1), dev(2)], "")).await;
    env.eventually(
        "the new generation reported",
        Duration::from_secs(30),
        async || {
            let s = env.status_of("r").await;
            (s["observedGeneration"] == 2 && condition(&s, "Ready")["status"] == "True").then_some(())
        },
    )
    .await;
    let s = env.status_of("r").await;
    assert_eq!(
        condition(&s, "ChangeApproved")["message"],
        "approved by the change board",
        "conditions are a map list: the other writer's entry keeps its owner: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_with_many_problems_still_gets_its_event() {
    let mut env = with_delay("long-event", 100, EmulatorConfig::default()).await;
    if env.skip_on_real_cluster("a real API server refuses invalid device ids at apply") {
        return;
    }
    env.spawn_controller("a");
    let bad: Vec<String> = (0..60).map(|i| format!("laptop-{i:03}")).collect();
    env.apply_yaml_unchecked(&rollout("many", &bad, "")).await;
    let events = env.events_with(&["InvalidSpec"]).await;
    let events: Value = serde_json::from_str(&events).unwrap();
    let note = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "InvalidSpec")
        .and_then(|e| e["note"].as_str().or(e["message"].as_str()))
        .unwrap()
        .to_string();
    assert!(
        note.len() <= 1024,
        "within the API server's limit: {}",
        note.len()
    );
    assert!(note.contains("spec.audience.members[0].device"), "{note}");
}
