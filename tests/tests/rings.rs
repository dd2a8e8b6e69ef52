//! Rings that fit in a cluster: how many devices a DeviceGroup can list (the arithmetic, and the API
//! server refusing what does not fit), and rings of any size taken from an Entra ID group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use wufb_e2e::Env;
use wufb_e2e::fixtures::{dev, device_group};
use wufb_graph_emulator::EmulatorConfig;
use wufb_operator::crd::device_group::MAX_DEVICES;
use wufb_test_apiserver::store::{MAX_ANNOTATION_BYTES, MAX_OBJECT_BYTES};

/// A DeviceGroup of the first `n` devices.
fn group_yaml(name: &str, n: usize) -> String {
    device_group(name, &(0..n).map(dev).collect::<Vec<_>>())
}

/// The bytes one device costs in a stored DeviceGroup: its id in the list, and its entry in the
/// managedFields of one manager (`"v:\"<id>\"":{}`), as a server records a set list.
fn per_device(owners: usize) -> usize {
    let id = 36 + 2 + 1; // "<guid>",
    let field = 1 + 2 + 2 + 36 + 2 + 1 + 3 + 1; // "v:\"<guid>\"":{},
    id + owners * field
}

#[test]
fn the_schema_maximum_fits_a_cluster_object_when_applied_server_side() {
    // Server-side apply: one manager (kubectl) owns the list. Headroom of 200 KiB stays for metadata,
    // the status (up to 50 device errors) and the operator's managedFields.
    let ssa = MAX_DEVICES * per_device(1);
    println!(
        "figures: per_device_bytes_ssa={} max_devices={MAX_DEVICES} object_bytes_at_max={ssa} limit={MAX_OBJECT_BYTES} ssa_ceiling={} client_side_apply_ceiling={}",
        per_device(1),
        (MAX_OBJECT_BYTES - 200 * 1024) / per_device(1),
        MAX_ANNOTATION_BYTES / (36 + 3)
    );
    assert!(ssa + 200 * 1024 <= MAX_OBJECT_BYTES, "{ssa}");
    // Client-side apply keeps a copy in the last-applied annotation: about 6,700 devices at most.
    const { assert!(MAX_ANNOTATION_BYTES / (36 + 3) < MAX_DEVICES) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_at_the_schema_maximum_applies_server_side_and_converges_and_larger_is_refused() {
    let mut env = Env::start("rings").await;
    env.spawn_controller("a");
    let big = env.dir.join("big.yaml");
    std::fs::write(&big, group_yaml("big", MAX_DEVICES)).unwrap();
    env.kubectl_ok(&["apply", "--server-side", "-f", big.to_str().unwrap()])
        .await;
    env.wait_ready(&["dg/big"]).await;
    let id = env.get("dg/big").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.graph_group_devices(&id).len(), MAX_DEVICES);
    // Client-side apply of a ring above its ceiling: the last-applied annotation does not fit.
    let csa = env.dir.join("csa.yaml");
    std::fs::write(&csa, group_yaml("csa", 7_000)).unwrap();
    let run = env.kubectl(&["apply", "-f", csa.to_str().unwrap()]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("metadata.annotations: Too long"),
        "{}",
        run.stderr
    );
    // Far above the maximum: the schema's maxItems refuses it (the request itself is under 3 MiB).
    let huge = env.dir.join("huge.yaml");
    std::fs::write(&huge, group_yaml("huge", 40_000)).unwrap();
    let run = env
        .kubectl(&["apply", "--server-side", "-f", huge.to_str().unwrap()])
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("spec.devices: Too many: 40000: must have at most 15000 items"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_from_an_entra_group_follows_the_group_and_feeds_its_deployments() {
    let mut env = Env::start("entra-ring").await;
    env.spawn_controller_as(
        "a",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &["--resync-interval=2s"],
    );
    let ring: Vec<String> = (0..30).map(dev).collect();
    const PILOT: &str = "0e0e0e0e-0000-4000-8000-00000000a001";
    const NESTED: &str = "0e0e0e0e-0000-4000-8000-00000000a002";
    env.entra_group(NESTED, &ring[20..], &[]);
    env.entra_group(PILOT, &ring[..20], &[NESTED]);
    env.apply_yaml(&format!("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: pilot\nspec:\n  entraGroupId: {PILOT}\n"))
        .await;
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: rollout\nspec:\n  content:\n    latest: true\n  maxDevices: 100\n  audience:\n    members:\n    - deviceGroup: pilot\n")
        .await;
    env.wait_ready(&["dg/pilot", "expd/rollout"]).await;
    let dg = env.get("dg/pilot").await;
    let id = dg["status"]["groupId"].as_str().unwrap().to_string();
    assert_eq!(dg["status"]["memberCount"], 30, "nested groups included");
    let mut devices = env.graph_group_devices(&id);
    devices.sort();
    assert_eq!(devices, ring);
    let status = env.status_of("rollout").await;
    assert_eq!(
        status["audience"]["devices"], 30,
        "the deployment counts the ring's devices: {status}"
    );
    // The Entra group changes: at its resync the Graph group follows.
    env.entra_group(NESTED, &ring[20..25], &[]);
    env.eventually(
        "the group follows Entra ID",
        Duration::from_secs(30),
        async || (env.graph_group_devices(&id).len() == 25).then_some(()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_ring_says_which_permission_is_missing_and_which_group_is() {
    let mut config = EmulatorConfig::default();
    config.apps[0].roles = vec!["WindowsUpdates.ReadWrite.All".into()];
    let mut env = Env::start_with("entra-denied", config).await;
    env.spawn_controller("a");
    env.entra_group("11111111-2222-4333-8444-555555555555", &[dev(1)], &[]);
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: pilot\nspec:\n  entraGroupId: 11111111-2222-4333-8444-555555555555\n")
        .await;
    let message = env
        .eventually("the permission named", Duration::from_secs(30), async || {
            let dg: Value = env.get("dg/pilot").await;
            let m = dg["status"]["conditions"][0]["message"].as_str()?.to_string();
            m.contains("GroupMember.Read.All").then_some(m)
        })
        .await;
    assert!(
        message.contains("Device.Read.All") && message.contains("403"),
        "{message}"
    );
    assert!(
        env.graph_group_devices(
            env.get("dg/pilot").await["status"]["groupId"]
                .as_str()
                .unwrap_or_default()
        )
        .is_empty(),
        "no device was added"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_ring_naming_a_group_that_does_not_exist_stalls() {
    let mut env = Env::start("entra-missing").await;
    env.spawn_controller("a");
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: pilot\nspec:\n  entraGroupId: 11111111-2222-4333-8444-555555555555\n")
        .await;
    let c = env
        .eventually("stalled", Duration::from_secs(30), async || {
            let dg: Value = env.get("dg/pilot").await;
            let c = dg["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Stalled" && c["status"] == "True")?
                .clone();
            Some(c)
        })
        .await;
    assert_eq!(c["reason"], "EntraGroupNotFound");
    assert!(
        c["message"].as_str().unwrap().contains("spec.entraGroupId"),
        "{c}"
    );
}
