//! The GitOps review loop: `validate` and `plan` run as a CI job would, against the live cluster and
//! the tenant (here the test API server and the emulator).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use serde_json::Value;
use wufb_e2e::{Env, operator_bin, root};

async fn operator(env: &Env, args: &[&str]) -> Output {
    env.operator_cli(args).await
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
    // The live objects these files manage carry the examples' label: deletions are planned among them.
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
        "--prune",
        "-l",
        "app.kubernetes.io/part-of=windows-rollouts",
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
    // Every device the examples offer the update to, once (the pilot ring also through exploited-critical,
    // which does not exclude do-not-disturb).
    assert_eq!(report["blast_radius"], 9);

    env.kubectl_ok(&["apply", "-f", &repo_s]).await;
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
        "update audience: +1 members, -1 members, +0 exclusions, -0 exclusions; withdraw 1 (destructive)"
    );
    assert_eq!(find("staged-broad-ring")["changes"][0], "resume deployment");
    assert_eq!(find("emergency-latest")["result"], "delete");
    // What needs a second review, for the workflow to label: the resume and the delete, not the swap.
    assert_eq!(find("staged-broad-ring")["flags"], serde_json::json!(["resume"]));
    assert_eq!(find("emergency-latest")["flags"], serde_json::json!(["delete"]));
    assert_eq!(find("november-baseline")["flags"], serde_json::json!([]));
    assert_eq!(report["flags"], serde_json::json!(["delete", "resume"]));
    assert_eq!(report["review_label"], "wufb/needs-review");
    assert_eq!(report["not_planned"], serde_json::json!([]));

    // Without --prune nothing is planned for deletion, and the plan names what it left out.
    let unpruned = operator(&env, &plan_args[..plan_args.len() - 3]).await;
    let unpruned: Value = serde_json::from_slice(&unpruned.stdout).unwrap();
    assert!(
        unpruned["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["name"] != "emergency-latest"),
        "{unpruned:#}"
    );
    assert_eq!(
        unpruned["not_planned"],
        serde_json::json!([format!("ExpeditedDeployment {}/emergency-latest", env.namespace)])
    );
    // A selector that selects nothing of these objects plans no deletion either.
    let mut other = plan_args.to_vec();
    *other.last_mut().unwrap() = "app.kubernetes.io/part-of=someone-else";
    let other: Value = serde_json::from_slice(&operator(&env, &other).await.stdout).unwrap();
    assert_eq!(other["not_planned"], unpruned["not_planned"], "{other:#}");

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
    // A DeviceGroup that is only in the cluster is a warning; --strict makes it an error.
    let elsewhere = env.dir.join("elsewhere.yaml");
    std::fs::write(&elsewhere, "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: x\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n    - deviceGroup: ring-in-the-cluster\n").unwrap();
    let out = operator(&env, &["validate", "-f", elsewhere.to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "{}:1: warning: spec.audience.members[0].deviceGroup: ",
            elsewhere.display()
        )),
        "{text}"
    );
    let strict = operator(&env, &["validate", "--strict", "-f", elsewhere.to_str().unwrap()]).await;
    assert_eq!(strict.status.code(), Some(1));
    let text = String::from_utf8_lossy(&strict.stdout);
    assert!(
        text.starts_with(&format!(
            "{}:1: error: spec.audience.members[0].deviceGroup: ",
            elsewhere.display()
        )),
        "{text}"
    );

    // Catalog intent filters are checked offline, each naming its field.
    for (content, field) in [
        (
            "{newest: {minSeverity: severe}}",
            "spec.content.newest.minSeverity",
        ),
        ("{newest: {cadence: weekly}}", "spec.content.newest.cadence"),
        ("{newest: {cve: CVE-26-1}}", "spec.content.newest.cve"),
        ("{catalogEntryId: x, refresh: OnNewRelease}", "spec.content"),
        ("{latest: true, newest: {}}", "spec.content"),
    ] {
        let file = env.dir.join("intent.yaml");
        std::fs::write(&file, format!("apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: x\nspec:\n  content: {content}\n")).unwrap();
        let out = operator(&env, &["validate", "-f", file.to_str().unwrap()]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{content}: {text}");
        assert!(text.contains(field), "{content}: {text}");
    }
}

/// Runs `plan` with an environment of its own (no inherited KUBECONFIG) plus `env`.
async fn plan_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(operator_bin());
    cmd.arg("plan")
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("WUFB_KUBECONFIG")
        .env("AZURE_TENANT_ID", wufb_graph_emulator::config::DEFAULT_TENANT_ID)
        .env("AZURE_CLIENT_ID", wufb_graph_emulator::config::READONLY_CLIENT_ID)
        .env(
            "AZURE_CLIENT_SECRET",
            wufb_graph_emulator::config::READONLY_CLIENT_SECRET,
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn kubeconfig(server: &str, token: Option<&str>, namespace: &str) -> String {
    let user = token.map_or("{}".to_string(), |t| format!("\n    token: {t}"));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n- name: nowhere\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: {namespace}\n- name: nowhere\n  context:\n    cluster: nowhere\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {user}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_never_guesses_when_the_cluster_cannot_be_read() {
    use wufb_test_apiserver::{Access, Options, TestApiServer};
    // A tenant that lets the read-only app read the catalog (pages differ on it; see the next test).
    let env = Env::start_with(
        "plan-cluster",
        wufb_graph_emulator::EmulatorConfig {
            read_all_catalog: true,
            ..Default::default()
        },
    )
    .await;
    let repo = copy_examples(&env);
    let repo_s = repo.to_str().unwrap().to_string();
    let graph = env.emulator.graph_url();
    let crds = vec![
        serde_json::to_value(<wufb_operator::crd::ExpeditedDeployment as kube::CustomResourceExt>::crd())
            .unwrap(),
        serde_json::to_value(<wufb_operator::crd::DeviceGroup as kube::CustomResourceExt>::crd()).unwrap(),
    ];
    let guarded = TestApiServer::start(Options {
        crds,
        tokens: vec![
            ("good".into(), Access::Full),
            ("discovery-only".into(), Access::Discovery),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let write = |name: &str, text: String| {
        let p = env.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let unauthenticated = write("kc-401", kubeconfig(&guarded.url(), Some("wrong"), "team"));
    let forbidden = write(
        "kc-403",
        kubeconfig(&guarded.url(), Some("discovery-only"), "team"),
    );
    let good = write("kc-ok", kubeconfig(&guarded.url(), Some("good"), "team"));
    let unreachable = write("kc-down", kubeconfig("http://127.0.0.1:1", None, "team"));
    let base = ["-f", repo_s.as_str(), "--graph-url", graph.as_str()];

    for (name, kc, says) in [
        ("unreachable", &unreachable, "cannot reach the cluster"),
        ("unauthenticated", &unauthenticated, "401 Unauthorized"),
        ("forbidden", &forbidden, "403 Forbidden"),
    ] {
        let mut args = base.to_vec();
        args.extend(["--kubeconfig", kc.as_str()]);
        let out = plan_with(&args, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: an error, not a plan: {stderr}"
        );
        assert!(stderr.contains(says), "{name}: says what failed: {stderr}");
        assert!(
            stderr.contains("--offline"),
            "{name}: says how to plan offline: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{name}: prints no plan");
    }
    // The same through $KUBECONFIG, and through a context that points nowhere.
    let out = plan_with(&base, &[("KUBECONFIG", &unreachable)]).await;
    assert_eq!(out.status.code(), Some(1));
    let mut args = base.to_vec();
    args.extend(["--kubeconfig", good.as_str(), "--context", "nowhere"]);
    assert_eq!(plan_with(&args, &[]).await.status.code(), Some(1));

    // A readable cluster: the context's namespace is used when -n is not given.
    let mut args = base.to_vec();
    args.extend(["--kubeconfig", good.as_str(), "-o", "json"]);
    let out = plan_with(&args, &[]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cluster"], true);
    assert!(report.get("offline").is_none(), "{report}");
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["namespace"] == "team"),
        "{report:#}"
    );

    // Offline only when asked, or when no kubeconfig exists at all; the first line says so.
    let home = env.dir.join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.to_str().unwrap();
    for (extra, why) in [
        (
            vec!["--offline", "--kubeconfig", unreachable.as_str()],
            "--offline",
        ),
        (vec![], "no kubeconfig exists"),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let out = plan_with(&args, &[("HOME", home)]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("Offline plan") && first.contains(why),
            "the first line says the plan is offline, and why: {first}"
        );
    }
    // A usage error is exit 1, never the 2 of a plan with changes.
    let mut args = base.to_vec();
    args.extend(["-o", "text", "-o", "json"]);
    assert_eq!(plan_with(&args, &[]).await.status.code(), Some(1));
    // The old spelling still works.
    let mut args = base.to_vec();
    args.push("--no-cluster");
    let out = plan_with(&args, &[("HOME", home)]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// On a tenant that enforces the catalog's permission as the reference lists it (ReadWrite.All), a
/// read-only `plan` fails naming the read and the permission, and prints no plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_plan_refused_the_catalog_fails_naming_the_permission() {
    let env = Env::start("plan-readonly").await;
    let repo = copy_examples(&env);
    let graph = env.emulator.graph_url();
    let args = ["-f", repo.to_str().unwrap(), "--offline", "--graph-url", &graph];
    let out = plan_with(&args, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("catalog")
            && stderr.contains("WindowsUpdates.ReadWrite.All")
            && stderr.contains("403"),
        "{stderr}"
    );
    assert!(!stdout.contains("create deployment"), "no guessed plan: {stdout}");
    // The refusal is the emulator's, by the permission, and nothing was written.
    let log = env.emulator.requests();
    assert!(
        log.iter()
            .any(|r| r.operation.starts_with("catalog.") && r.status == 403)
    );
    assert!(log.iter().all(|r| r.method == "GET" || r.operation == "token"));
}
