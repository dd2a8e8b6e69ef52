//! The GitOps review loop: `validate` and `plan` run as a CI job would, against the live cluster and
//! the tenant (here the test API server and the emulator).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use serde_json::Value;
use wufb_e2e::{Env, operator_bin, root};

async fn operator(env: &Env, args: &[&str]) -> Output {
    tokio::process::Command::new(operator_bin())
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AZURE_TENANT_ID", wufb_graph_emulator::config::DEFAULT_TENANT_ID)
        .env("AZURE_CLIENT_ID", wufb_graph_emulator::config::READONLY_CLIENT_ID)
        .env(
            "AZURE_CLIENT_SECRET",
            wufb_graph_emulator::config::READONLY_CLIENT_SECRET,
        )
        .output()
        .await
        .unwrap()
}

fn copy_examples(env: &Env) -> std::path::PathBuf {
    let dir = env.dir.join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_what_a_pull_request_would_do_and_writes_nothing() {
    let mut env = Env::start("plan").await;
    env.spawn_controller("a");
    let repo = copy_examples(&env);
    let repo_s = repo.to_str().unwrap().to_string();
    let graph = env.emulator.graph_url();
    let plan_args = [
        "plan",
        "-f",
        &repo_s,
        "-n",
        &env.namespace,
        "--graph-url",
        &graph,
        "-o",
        "json",
    ];

    // Before anything is applied: everything would be created.
    let out = operator(&env, &plan_args).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "create"),
        "{report:#}"
    );
    assert_eq!(report["blast_radius"], 8);

    env.kubectl_ok(&["apply", "--validate=false", "-f", &repo_s])
        .await;
    env.wait_ready(&["dg", "--all"]).await;
    env.wait_ready(&["expd", "--all"]).await;

    // Applied and converged: nothing to do, exit 0.
    let before = env.graph_seq();
    let out = operator(&env, &plan_args).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "unchanged")
    );

    // A pull request: one device swapped, one rollout resumed, one removed.
    let pinned = repo.join("30-pinned-release.yaml");
    let text = std::fs::read_to_string(&pinned).unwrap().replace(
        "7c3d2e1f-0a9b-4c8d-b7e6-f5a4b3c2d103",
        "7c3d2e1f-0a9b-4c8d-b7e6-f5a4b3c2d199",
    );
    std::fs::write(&pinned, text).unwrap();
    let staged = repo.join("40-paused.yaml");
    std::fs::write(
        &staged,
        std::fs::read_to_string(&staged)
            .unwrap()
            .replace("paused: true", "paused: false"),
    )
    .unwrap();
    std::fs::remove_file(repo.join("20-emergency-latest.yaml")).unwrap();
    let out = operator(&env, &plan_args).await;
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("november-baseline")["result"], "change");
    assert_eq!(
        find("november-baseline")["changes"][0],
        "update audience: +1 members, -1 members, +0 exclusions, -0 exclusions"
    );
    assert_eq!(find("staged-broad-ring")["changes"][0], "resume deployment");
    assert_eq!(find("emergency-latest")["result"], "delete");

    // Markdown for the pull-request comment.
    let md = operator(
        &env,
        &[
            "plan",
            "-f",
            &repo_s,
            "-n",
            &env.namespace,
            "--graph-url",
            &graph,
            "-o",
            "markdown",
        ],
    )
    .await;
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("| ExpeditedDeployment `") && md.contains("**Blast radius:**"),
        "{md}"
    );

    // Read-only: planning made no Graph write.
    let writes: Vec<_> = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.seq >= before && r.method != "GET" && r.operation != "token")
        .collect();
    assert!(writes.is_empty(), "plan wrote to Graph: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_file_document_and_field() {
    let env = Env::start("validate").await;
    let ok = operator(
        &env,
        &["validate", "-f", root().join("examples").to_str().unwrap()],
    )
    .await;
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = env.dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: x\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n    - device: laptop-42\n").unwrap();
    let out = operator(&env, &["validate", "-f", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("{}:1: spec.audience.members[0].device: ", bad.display())),
        "{text}"
    );
    assert!(
        text.contains('(') && text.trim_end().ends_with(')'),
        "the fix in parentheses: {text}"
    );
}
