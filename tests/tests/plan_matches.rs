//! `plan` and the controller run the same observe and plan: the Graph writes the controller makes are
//! exactly those `plan` printed, call for call, and the blast radius `plan` printed is what Graph then
//! offers. For every example, for an `assetGroupId` audience, and for a pull request that edits,
//! resumes and removes rollouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use wufb_e2e::{Env, root};

/// The emulator's name for each operation the Graph client sends.
fn emulator_operation(client: &str) -> &'static str {
    match client {
        "create deployment" => "deployments.create",
        "create deployment audience" => "deploymentAudiences.create",
        "delete deployment audience" => "deploymentAudiences.delete",
        "pause deployment" | "resume deployment" | "update deployment settings" => "deployments.update",
        "update deployment audience" => "audience.updateAudience",
        "delete deployment" => "deployments.delete",
        "create device group" => "updatableAssets.createGroup",
        "add device group members" => "group.addMembersById",
        "remove device group members" => "group.removeMembersById",
        "delete device group" => "updatableAssets.delete",
        other => panic!("an operation the test does not know: {other}"),
    }
}

async fn plan(env: &Env, repo: &str) -> Value {
    let out = env
        .operator_cli(&[
            "plan",
            "-f",
            repo,
            "--graph-url",
            &env.emulator.graph_url(),
            "-o",
            "json",
            "--prune",
            "-l",
            "app.kubernetes.io/part-of=windows-rollouts",
        ])
        .await;
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The writes a plan printed, counted by emulator operation.
fn planned(report: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in report["objects"].as_array().unwrap() {
        for w in o["writes"].as_array().unwrap() {
            *out.entry(emulator_operation(w.as_str().unwrap()).to_string())
                .or_default() += 1;
        }
    }
    out
}

/// The writes Graph answered since `since`, by operation.
fn made(env: &Env, since: u64) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in env.emulator.requests() {
        if r.seq >= since && r.method != "GET" && r.operation != "token" && (200..300).contains(&r.status) {
            *out.entry(r.operation).or_default() += 1;
        }
    }
    out
}

/// Waits until every object of both kinds is Ready for its current generation and Graph has seen no
/// write for a second (the verification passes are done).
async fn settled(env: &Env) {
    let mut quiet_since = (env.graph_seq(), std::time::Instant::now());
    env.eventually(
        "every object Ready and Graph quiet",
        Duration::from_secs(60),
        async || {
            let list: Value =
                serde_json::from_str(&env.kubectl_ok(&["get", "expd,dg", "-o", "json"]).await).ok()?;
            let current = list["items"].as_array()?.iter().all(|o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                ready && o["status"]["observedGeneration"] == o["metadata"]["generation"]
            });
            let seq = env.graph_seq();
            if seq != quiet_since.0 {
                quiet_since = (seq, std::time::Instant::now());
            }
            (current && quiet_since.1.elapsed() > Duration::from_secs(1)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_makes_exactly_the_writes_plan_printed() {
    let mut env = Env::start("plan-matches").await;
    let repo = env.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, repo.join(p.file_name().unwrap())).unwrap();
        }
    }
    // A ring managed outside the cluster, by its Graph group id, with an exclusion that overlaps it.
    let outside: Vec<String> = (1..=4)
        .map(|i| format!("4a4b4c4d-0000-4000-8000-{i:012}"))
        .collect();
    let group = env.graph_create_group(&outside);
    std::fs::write(
        repo.join("50-outside-ring.yaml"),
        format!(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: outside-ring\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n    - assetGroupId: {group}\n    - device: 4a4b4c4d-0000-4000-8000-000000000009\n    exclusions:\n    - device: {}\n",
            outside[0]
        ),
    )
    .unwrap();
    let repo_s = repo.to_str().unwrap().to_string();

    // Nothing applied yet: the plan, then the controller.
    let report = plan(&env, &repo_s).await;
    let since = env.graph_seq();
    env.spawn_controller("a");
    env.kubectl_ok(&["apply", "-f", &repo_s]).await;
    settled(&env).await;
    assert_eq!(
        made(&env, since),
        planned(&report),
        "the writes plan printed: {report:#}"
    );
    let offered = env.graph_offered_devices();
    assert_eq!(
        report["blast_radius"].as_u64().unwrap() as usize,
        offered.len(),
        "the blast radius is what Graph offers: {offered:?}"
    );
    assert!(
        offered.contains(&outside[1]) && !offered.contains(&outside[0]),
        "assetGroupId devices count, their exclusion does not"
    );

    // Converged: plan says nothing would change, and the controller writes nothing.
    let report = plan(&env, &repo_s).await;
    assert!(planned(&report).is_empty(), "{report:#}");

    // A pull request: a device swapped, a rollout resumed, one removed, a ring's devices changed.
    let pinned = repo.join("30-pinned-release.yaml");
    std::fs::write(
        &pinned,
        std::fs::read_to_string(&pinned).unwrap().replace(
            "7c3d2e1f-0a9b-4c8d-b7e6-f5a4b3c2d103",
            "7c3d2e1f-0a9b-4c8d-b7e6-f5a4b3c2d199",
        ),
    )
    .unwrap();
    let staged = repo.join("40-paused.yaml");
    std::fs::write(
        &staged,
        std::fs::read_to_string(&staged)
            .unwrap()
            .replace("paused: true", "paused: false"),
    )
    .unwrap();
    let ring = repo.join("10-pilot-ring.yaml");
    std::fs::write(
        &ring,
        std::fs::read_to_string(&ring).unwrap().replace(
            "6f1c2a10-7d4b-4c8e-9a1f-0b2c3d4e5f05",
            "6f1c2a10-7d4b-4c8e-9a1f-0b2c3d4e5f55",
        ),
    )
    .unwrap();
    std::fs::remove_file(repo.join("20-emergency-latest.yaml")).unwrap();
    let report = plan(&env, &repo_s).await;
    let since = env.graph_seq();
    env.kubectl_ok(&["apply", "-f", &repo_s]).await;
    env.kubectl_ok(&["delete", "expd", "emergency-latest", "--timeout=30s"])
        .await;
    settled(&env).await;
    assert_eq!(
        made(&env, since),
        planned(&report),
        "the pull request's writes: {report:#}"
    );
    assert_eq!(
        report["blast_radius"].as_u64().unwrap() as usize,
        env.graph_offered_devices().len(),
        "the blast radius after the pull request"
    );
}

/// `plan` with the planner flags the controller runs with.
async fn plan_flags(env: &Env, repo: &str, extra: &[&str]) -> Value {
    let url = env.emulator.graph_url();
    let mut args = vec!["plan", "-f", repo, "--graph-url", &url, "-o", "json"];
    args.extend_from_slice(extra);
    let out = env.operator_cli(&args).await;
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_confirms_a_missing_deployment_for_as_long_as_the_controller_given_the_same_absence_confirm() {
    let mut env = Env::start("plan-absence").await;
    let repo = env.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("rollout.yaml"),
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: rollout\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n    - device: 5a5b5c5d-0000-4000-8000-000000000001\n",
    )
    .unwrap();
    let repo_s = repo.to_str().unwrap().to_string();
    let slow = ["--absence-confirm", "1h"];
    let a = env.spawn_controller_as(
        "slow",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &slow,
    );
    env.kubectl_ok(&["apply", "-f", &repo_s]).await;
    env.wait_ready(&["expd/rollout"]).await;
    let first = env.status_of("rollout").await["deploymentId"]
        .as_str()
        .unwrap()
        .to_string();
    // Deleted outside the operator: the controller confirms the absence for an hour.
    wufb_graph_emulator::state::lock(&env.emulator.shared.store)
        .delete_deployment(&first)
        .unwrap();
    env.request_reconcile("expd/rollout", "1").await;
    env.eventually(
        "the controller confirming the absence",
        Duration::from_secs(30),
        async || {
            let status = env.status_of("rollout").await;
            let ready = wufb_e2e::condition(&status, "Ready");
            (ready["reason"] == "ConfirmingAbsence" && status["missingSince"].is_string()).then_some(())
        },
    )
    .await;

    // The same setting: plan writes nothing yet, as the controller does not.
    let held = plan_flags(&env, &repo_s, &slow).await;
    assert!(planned(&held).is_empty(), "{held:#}");
    // pace: lets the 1 s --absence-confirm pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A shorter setting: the absence is confirmed, and plan creates the deployment again, with the
    // exact writes a controller started with that setting then makes.
    let quick = ["--absence-confirm", "1s"];
    let report = plan_flags(&env, &repo_s, &quick).await;
    // The setting from the environment, as `run` reads it, is honoured too.
    let url = env.emulator.graph_url();
    let out = tokio::process::Command::new(wufb_e2e::operator_bin())
        .args(["plan", "-f", &repo_s, "--graph-url", &url, "-o", "json"])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AZURE_TENANT_ID", wufb_graph_emulator::config::DEFAULT_TENANT_ID)
        .env("AZURE_CLIENT_ID", wufb_graph_emulator::config::DEFAULT_CLIENT_ID)
        .env(
            "AZURE_CLIENT_SECRET",
            wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        )
        .env("WUFB_ABSENCE_CONFIRM", "1s")
        .output()
        .await
        .unwrap();
    let from_env: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(
        planned(&report).get("deployments.create"),
        Some(&1),
        "created again: {report:#}"
    );
    assert_eq!(
        planned(&from_env),
        planned(&report),
        "WUFB_ABSENCE_CONFIRM: {from_env:#}"
    );
    env.kill_controller(a).await;
    let since = env.graph_seq();
    env.spawn_controller_as(
        "quick",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &quick,
    );
    settled(&env).await;
    assert_eq!(
        made(&env, since),
        planned(&report),
        "the plan's writes: {report:#}"
    );
}
