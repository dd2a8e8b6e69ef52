//! The end-to-end harness: per test, a Graph emulator, a Kubernetes API (the in-repo test API server, or
//! the cluster named by `WUFB_E2E_KUBECONFIG`), a namespace of its own, the real `wufb-operator run`
//! binary as child processes, and the real `kubectl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod heap;

pub mod fixtures;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use wufb_graph_emulator::{Emulator, EmulatorConfig};

use wufb_test_apiserver::{Options, TestApiServer};

/// An expeditable security update in `emulator`'s catalog.
pub fn expeditable_entry(emulator: &Emulator) -> String {
    let catalog = emulator.catalog();
    let e = catalog
        .iter()
        .find(|e| e["isExpeditable"] == true && e["qualityUpdateClassification"] == "security");
    e.and_then(|e| e["id"].as_str())
        .expect("an expeditable entry")
        .to_string()
}

/// The Argo CD health (status, message) of each object, by the health script in `examples/gitops/argocd`
/// run in a Lua 5.1 interpreter.
pub fn argocd_health(objects: &[Value]) -> Vec<(String, String)> {
    let mut child = std::process::Command::new(python())
        .arg(root().join("tests/gitops/health.py"))
        .arg(root().join("examples/gitops/argocd/health.lua"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python with lupa could not run ({e}); make test installs it into .tools/venv")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(objects.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|h| {
            (
                h["status"].as_str().unwrap().to_string(),
                h["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The Flux health (`Current`, `InProgress` or `Failed`) of each object, by the rollouts
/// Kustomization's `healthCheckExprs` in `examples/gitops/flux/kustomizations.yaml`, evaluated with
/// kube-cel as Flux evaluates them (RFC-0009): an object whose `status.observedGeneration` differs
/// from its generation is InProgress; otherwise `inProgress`, `failed` and `current` in that order,
/// the first that is true decides, none (or an expression that cannot be evaluated, such as one
/// reading a field the object lacks) reads InProgress. The expressions see the object's top-level
/// fields as variables.
pub fn flux_health(objects: &[Value]) -> Vec<String> {
    use kube_cel::cel;
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/flux/kustomizations.yaml")).unwrap(),
    )
    .map(|d| serde::Deserialize::deserialize(d).unwrap())
    .collect();
    let rollouts = docs
        .iter()
        .find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == "windows-rollouts")
        .expect("the rollouts Kustomization");
    let exprs = rollouts["spec"]["healthCheckExprs"].as_array().unwrap();
    objects
        .iter()
        .map(|o| {
            let check = exprs
                .iter()
                .find(|e| e["apiVersion"] == o["apiVersion"] && e["kind"] == o["kind"])
                .unwrap_or_else(|| panic!("no healthCheckExprs for {}", o["kind"]));
            let observed = &o["status"]["observedGeneration"];
            if !observed.is_null() && *observed != o["metadata"]["generation"] {
                return "InProgress".to_string();
            }
            let mut ctx = cel::Context::default();
            for (k, v) in o.as_object().unwrap() {
                ctx.add_variable_from_value(k.as_str(), cel::to_value(v).unwrap());
            }
            for (field, status) in [
                ("inProgress", "InProgress"),
                ("failed", "Failed"),
                ("current", "Current"),
            ] {
                let Some(expr) = check[field].as_str() else {
                    continue;
                };
                let program = cel::Program::compile(expr)
                    .unwrap_or_else(|e| panic!("{} {field} does not compile: {e}", o["kind"]));
                if matches!(program.execute(&ctx), Ok(cel::Value::Bool(true))) {
                    return status.to_string();
                }
            }
            "InProgress".to_string()
        })
        .collect()
}

/// Runs the Argo CD resource action script (`examples/gitops/argocd/rollout-actions.lua`) on each
/// (action, object) in a Lua 5.1 interpreter, with `os.date` answering `now`; what each returned:
/// `{"annotations": ...}`, `{"error": ...}` or, for `discover`, `{"actions": ...}`.
pub fn argocd_actions(cases: &[(&str, Value)], now: &str) -> Vec<Value> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(python())
        .arg(root().join("tests/gitops/action.py"))
        .arg(root().join("examples/gitops/argocd/rollout-actions.lua"))
        .arg(now)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python with lupa runs (make test installs it into .tools/venv)");
    let input: Vec<Value> = cases
        .iter()
        .map(|(action, obj)| serde_json::json!({"action": action, "obj": obj}))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(input).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The condition of `type_` in a status (`Null` when it has none).
pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A test's working directory under `target/e2e/`, removed when the test that made it passes and kept
/// when it fails (for its logs). A run of the suite leaves nothing behind but its failures' directories.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// `target/e2e/<name>`, created empty.
    pub fn new(name: &str) -> Scratch {
        let dir = root().join("target/e2e").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The `wufb-operator` binary built next to the running executable (or `WUFB_OPERATOR_BIN`). The bench
/// and soak binaries build it when it is missing.
pub fn operator_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WUFB_OPERATOR_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("executable path");
    let mut dir = exe.parent().expect("executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("wufb-operator");
    if !bin.exists()
        && let Ok(cargo) = std::env::var("CARGO")
    {
        let profile = if dir.ends_with("release") {
            "--release"
        } else {
            "--profile=dev"
        };
        let ok = std::process::Command::new(cargo)
            .args(["build", profile, "-p", "wufb-operator"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cargo build -p wufb-operator failed");
    }
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p wufb-operator` (make test does)",
        bin.display()
    );
    bin
}

/// A tool from an environment variable (a relative path is relative to the repository root, since cargo
/// runs tests in the package directory), else `.tools/venv/bin/NAME` (installed by `make test`), else
/// the PATH.
fn tool(var: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        let p = PathBuf::from(p);
        return if p.is_relative() && p.components().count() > 1 {
            root().join(p)
        } else {
            p
        };
    }
    let local = root().join(".tools/venv/bin").join(name);
    if local.exists() { local } else { name.into() }
}

/// `kubectl` (`KUBECTL`).
pub fn kubectl_bin() -> PathBuf {
    tool("KUBECTL", "kubectl")
}

/// Python with helm-python-sdk and lupa (`WUFB_PYTHON`).
pub fn python() -> PathBuf {
    tool("WUFB_PYTHON", "python")
}

/// How late the test API server delivers watch events after the write that caused them: 100 ms
/// unless `WUFB_E2E_WATCH_DELAY_MS` says otherwise. Every e2e test runs with its watches lagging, as
/// they do on a real server under load, so no test can pass by reading its own writes from a cache.
pub fn watch_delay() -> Duration {
    Duration::from_millis(
        std::env::var("WUFB_E2E_WATCH_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
    )
}

/// Output of a kubectl run.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A controller child process.
pub struct Controller {
    pub identity: String,
    pub child: tokio::process::Child,
    pub log: PathBuf,
}

/// One test's world.
pub struct Env {
    pub emulator: Emulator,
    pub apiserver: Option<TestApiServer>,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    pub namespace: String,
    pub client: kube::Client,
    pub controllers: Vec<Controller>,
    /// `dir`, removed after a passing test (after the controllers are stopped: fields drop after `drop`).
    _scratch: Scratch,
}

impl Env {
    pub async fn start(name: &str) -> Env {
        Self::start_with(name, EmulatorConfig::default()).await
    }

    pub async fn start_with(name: &str, emulator: EmulatorConfig) -> Env {
        Self::start_delayed(name, emulator, watch_delay()).await
    }

    /// [`Env::start_with`] with the test API server's watch events delivered `delay` after their write.
    pub async fn start_delayed(name: &str, emulator: EmulatorConfig, delay: Duration) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let namespace = format!("e2e-{name}-{suffix}").replace('_', "-");
        let scratch = Scratch::new(&namespace);
        let dir = scratch.path().to_path_buf();
        let emulator = Emulator::start(emulator, "127.0.0.1:0").await.unwrap();
        let (apiserver, kubeconfig) = match std::env::var("WUFB_E2E_KUBECONFIG") {
            Ok(path) => (None, PathBuf::from(path)),
            Err(_) => {
                let crds = wufb_operator::crd::all()
                    .iter()
                    .map(|c| serde_json::to_value(c).unwrap())
                    .collect();
                let server = TestApiServer::start(Options {
                    crds,
                    watch_delay: delay,
                    bookmark_interval: Duration::from_secs(5),
                    ..Default::default()
                })
                .await
                .unwrap();
                let path = dir.join("kubeconfig");
                std::fs::write(&path, server.kubeconfig(&namespace)).unwrap();
                (Some(server), path)
            }
        };
        let kconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kconfig, &Default::default())
            .await
            .unwrap();
        config.default_namespace = namespace.clone();
        let client = kube::Client::try_from(config).unwrap();
        let env = Env {
            emulator,
            apiserver,
            kubeconfig,
            dir,
            namespace,
            client,
            controllers: Vec::new(),
            _scratch: scratch,
        };
        if env.apiserver.is_none() {
            env.kubectl_ok(&[
                "apply",
                "--server-side",
                "-f",
                root().join("crds").to_str().unwrap(),
            ])
            .await;
            // A real server serves a new CRD only once it is Established.
            env.kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/expediteddeployments.wufb.dev",
                "crd/devicegroups.wufb.dev",
                "crd/graphconnections.wufb.dev",
                "crd/clustergraphconnections.wufb.dev",
            ])
            .await;
        }
        // kubectl would send a built-in Namespace as protobuf, which the test API server does not read.
        let ns = k8s_openapi::api::core::v1::Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(env.namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone())
            .create(&Default::default(), &ns)
            .await
            .unwrap();
        env
    }

    /// Whether this world runs on a real cluster (`WUFB_E2E_KUBECONFIG`) rather than the test API server.
    pub fn real_cluster(&self) -> bool {
        self.apiserver.is_none()
    }

    /// For a test that needs what only the test API server allows (an object the CRD's schema refuses,
    /// a restart of the server): `true`, after saying why, when it must skip itself on a real cluster.
    pub fn skip_on_real_cluster(&self, why: &str) -> bool {
        if self.real_cluster() {
            println!("skipped on a real cluster: {why}");
        }
        self.real_cluster()
    }

    /// Turns the test API server's schema checks off (objects stored as sent, as under an older, looser
    /// CRD) or on again. Panics on a real cluster (callers skip there first).
    pub fn set_schema_checks(&self, on: bool) {
        self.apiserver
            .as_ref()
            .expect("objects the schema refuses can only be stored on the test API server")
            .set_schema_checks(on);
    }

    /// Applies objects the CRD's schema refuses, as a cluster holds them when they were written under an
    /// older, looser CRD: the test API server's schema checks are off for these writes only. Panics on a
    /// real cluster (callers skip there first).
    pub async fn apply_yaml_unchecked(&self, yaml: &str) -> String {
        let server = self
            .apiserver
            .as_ref()
            .expect("objects the schema refuses can only be stored on the test API server");
        server.set_schema_checks(false);
        let out = self.apply_yaml(yaml).await;
        server.set_schema_checks(true);
        out
    }

    /// Starts a controller process with the built-in emulator app.
    pub fn spawn_controller(&mut self, identity: &str) -> usize {
        self.spawn_controller_as(identity, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, &[])
    }

    /// Starts a controller process authenticating as `client_id`, with extra `run` flags.
    pub fn spawn_controller_as(
        &mut self,
        identity: &str,
        client_id: &str,
        secret: &str,
        extra: &[&str],
    ) -> usize {
        let (graph, authority) = (self.emulator.graph_url(), self.emulator.base_url());
        self.spawn_controller_at(identity, (client_id, secret), (&graph, &authority), extra, &[])
    }

    /// Starts a controller process signing in as `app` (client id, secret) to Graph at `endpoints`
    /// (Graph URL, authority host), with extra `run` flags and environment variables.
    pub fn spawn_controller_at(
        &mut self,
        identity: &str,
        app: (&str, &str),
        endpoints: (&str, &str),
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> usize {
        let (client_id, secret) = app;
        let log = self
            .dir
            .join(format!("controller-{identity}-{}.log", self.controllers.len()));
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(operator_bin())
            .args([
                "run",
                "--graph-url",
                endpoints.0,
                "--authority-host",
                endpoints.1,
                "--namespace",
                &self.namespace,
                "--watch-namespaces",
                &self.namespace,
                "--metrics-addr",
                "127.0.0.1:0",
                "--identity",
                identity,
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AZURE_TENANT_ID", DEFAULT_TENANT_ID)
            .env("AZURE_CLIENT_ID", client_id)
            .env("AZURE_CLIENT_SECRET", secret)
            .env(
                "RUST_LOG",
                std::env::var("WUFB_E2E_RUST_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .envs(vars.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("the operator binary starts");
        self.controllers.push(Controller {
            identity: identity.into(),
            child,
            log,
        });
        self.controllers.len() - 1
    }

    /// Runs the operator binary once (`validate`, `plan`, ...) as a CI job would: this world's kubeconfig
    /// and an app registration with `WindowsUpdates.ReadWrite.All`, which the reference lists for the
    /// catalog reads `plan` makes (that `plan` still writes nothing is checked against the request log).
    pub async fn operator_cli(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(operator_bin())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AZURE_TENANT_ID", DEFAULT_TENANT_ID)
            .env("AZURE_CLIENT_ID", wufb_graph_emulator::config::DEFAULT_CLIENT_ID)
            .env(
                "AZURE_CLIENT_SECRET",
                wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
            )
            .output()
            .await
            .expect("the operator binary runs")
    }

    /// Kills a controller process with SIGKILL and waits for it to exit.
    pub async fn kill_controller(&mut self, index: usize) {
        let c = &mut self.controllers[index];
        let _ = c.child.start_kill();
        let _ = c.child.wait().await;
    }

    /// Sends SIGTERM to a controller process and waits (at most `timeout`) for it to exit; returns its
    /// exit status and how long it took, or `None` if it was still running at the timeout.
    pub async fn terminate_controller(
        &mut self,
        index: usize,
        timeout: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let c = &mut self.controllers[index];
        let pid = c.child.id().expect("the controller is running");
        let started = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        let status = tokio::time::timeout(timeout, c.child.wait()).await.ok()?.ok()?;
        Some((status, started.elapsed()))
    }

    /// The base URL of a controller's metrics server (`http://ADDR`), from its log.
    pub async fn metrics_url(&self, index: usize) -> String {
        let log = &self.controllers[index].log;
        self.eventually(
            "the metrics address in the log",
            Duration::from_secs(20),
            async || {
                let text = std::fs::read_to_string(log).ok()?;
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| l["message"] == "serving /metrics, /healthz and /readyz")
                    .and_then(|l| l["addr"].as_str().map(|a| format!("http://{a}")))
            },
        )
        .await
    }

    /// The value of an unlabelled gauge or counter on a controller's `/metrics`.
    pub async fn metric(&self, index: usize, name: &str) -> Option<f64> {
        let url = format!("{}/metrics", self.metrics_url(index).await);
        let body = reqwest::get(url).await.ok()?.text().await.ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    }

    /// All controller output so far.
    pub fn controller_logs(&self) -> String {
        self.controllers
            .iter()
            .map(|c| std::fs::read_to_string(&c.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn kubectl(&self, args: &[&str]) -> Run {
        let cache = self.dir.join("kubectl-cache");
        let out = tokio::process::Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!("kubectl could not run ({e}); make test installs it into .tools/venv")
            });
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Runs kubectl and fails the test with its output when it fails.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let run = self.kubectl(args).await;
        assert!(
            run.ok,
            "kubectl {} failed:\n{}\n{}\ncontroller log:\n{}",
            args.join(" "),
            run.stdout,
            run.stderr,
            self.tail_logs()
        );
        run.stdout
    }

    /// Applies a manifest given as YAML text.
    pub async fn apply_yaml(&self, yaml: &str) -> String {
        let file = self
            .dir
            .join(format!("manifest-{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, yaml).unwrap();
        self.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]).await
    }

    /// `kubectl wait --for=condition=Ready` on `what` (e.g. `expd/name` or `expd --all`).
    pub async fn wait_ready(&self, what: &[&str]) {
        self.wait_ready_within(what, 60).await;
    }

    /// Waits for Ready up to `secs`: for tests whose faults push the per-object backoff (1 s doubling)
    /// past a minute when one object is unlucky several passes in a row.
    pub async fn wait_ready_within(&self, what: &[&str], secs: u64) {
        let timeout = format!("--timeout={secs}s");
        let mut args = vec!["wait", "--for=condition=Ready", timeout.as_str()];
        args.extend_from_slice(what);
        self.kubectl_ok(&args).await;
    }

    /// The end of the controller logs and of the Graph request log, for a failure message.
    pub fn tail_logs(&self) -> String {
        let logs = self.controller_logs();
        let lines: Vec<&str> = logs.lines().collect();
        let requests = self.emulator.requests();
        let graph: Vec<String> = requests[requests.len().saturating_sub(20)..]
            .iter()
            .map(|r| {
                format!(
                    "  {} {} {} {} {}",
                    r.at_ms, r.method, r.path, r.operation, r.status
                )
            })
            .collect();
        format!(
            "{}\nlast Graph requests:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n"),
            graph.join("\n")
        )
    }

    /// The object as JSON.
    pub async fn get(&self, what: &str) -> Value {
        serde_json::from_str(&self.kubectl_ok(&["get", what, "-o", "json"]).await).unwrap()
    }

    /// Deployments in the emulator, rendered as Graph would.
    pub fn graph_deployments(&self) -> Vec<Value> {
        let store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        store.list_deployments(chrono::Utc::now())
    }

    /// An expeditable security update in the emulator's catalog.
    pub fn expeditable_entry(&self) -> String {
        expeditable_entry(&self.emulator)
    }

    /// Creates a deployment of `entry` straight in the tenant, as someone outside the operator would.
    pub fn graph_create_deployment(&self, entry: &str) -> String {
        let body = serde_json::json!({
            "content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent", "catalogEntry": {"id": entry}},
            "settings": {"expedite": {"isExpedited": true}},
        });
        let mut store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        match store.create_deployment(&body, &self.emulator.catalog(), chrono::Utc::now()) {
            Ok(wufb_graph_emulator::store::Reply::Json(_, d)) => d["id"].as_str().expect("an id").to_string(),
            other => panic!("the emulator refused the deployment: {other:?}"),
        }
    }

    /// Creates an updatableAssetGroup with these devices straight in the tenant (one managed outside the
    /// cluster) and returns its id.
    pub fn graph_create_group(&self, devices: &[String]) -> String {
        use wufb_graph_emulator::store::{AssetKind, AssetRef, Reply};
        let mut store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        let Reply::Json(_, g) = store.create_group() else {
            panic!("the emulator made no group")
        };
        let id = g["id"].as_str().expect("a group id").to_string();
        let refs: Vec<AssetRef> = devices
            .iter()
            .map(|d| AssetRef {
                id: d.clone(),
                kind: AssetKind::Device,
            })
            .collect();
        store
            .change_group_members(&id, &refs, true, &Default::default())
            .expect("devices added");
        id
    }

    /// Creates or replaces an Entra ID group in the tenant: devices (Entra device ids) and nested groups.
    pub fn entra_group(&self, id: &str, devices: &[String], groups: &[&str]) {
        let mut store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        store.entra_groups.insert(
            id.to_string(),
            wufb_graph_emulator::store::EntraGroup {
                devices: devices.to_vec(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
        );
    }

    /// The devices of an updatableAssetGroup in the emulator.
    pub fn graph_group_devices(&self, id: &str) -> Vec<String> {
        let store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        store
            .group_members(id)
            .map(|members| members.map(|(d, _)| d.to_string()).collect())
            .unwrap_or_default()
    }

    /// Distinct devices that Graph offers an expedite to: the members (devices, and the devices of
    /// member groups) less the exclusions, of every deployment that is not paused.
    pub fn graph_offered_devices(&self) -> std::collections::BTreeSet<String> {
        let store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        let mut offered = std::collections::BTreeSet::new();
        for d in store.deployments.values() {
            let rendered = store.render_deployment(d, chrono::Utc::now());
            if rendered["state"]["requestedValue"] == "paused" {
                continue;
            }
            offered.extend(store.offered_devices(&d.audience_id));
        }
        offered
    }

    /// Member and exclusion ids of a deployment's audience in the emulator.
    pub fn graph_audience(&self, deployment_id: &str) -> (Vec<String>, Vec<String>) {
        let store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        let Some(d) = store.deployments.get(deployment_id) else {
            return (Vec::new(), Vec::new());
        };
        let a = store.audiences.get(&d.audience_id).cloned().unwrap_or_default();
        (
            a.members.keys().cloned().collect(),
            a.exclusions.keys().cloned().collect(),
        )
    }

    /// Whether the emulator holds a deploymentAudience with this id.
    pub fn graph_audience_exists(&self, id: &str) -> bool {
        let store = wufb_graph_emulator::state::lock(&self.emulator.shared.store);
        store.audiences.contains_key(id)
    }

    /// Requests the emulator logged for an operation with a 2xx answer since `since` (a log sequence).
    pub fn graph_writes(&self, operation: &str, since: u64) -> Vec<wufb_graph_emulator::LogEntry> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| r.seq >= since && r.operation == operation && (200..300).contains(&r.status))
            .collect()
    }

    /// The effective state of Graph deployment `id` (empty when there is none).
    pub fn graph_state(&self, id: &str) -> String {
        self.graph_deployments()
            .into_iter()
            .find(|d| d["id"] == id)
            .map(|d| d["state"]["effectiveValue"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// The next request-log sequence number.
    pub fn graph_seq(&self) -> u64 {
        wufb_graph_emulator::state::lock(&self.emulator.shared.log).next_seq
    }

    /// Asks for a pass over `what` (`kind/name`) now, as `kubectl annotate` of
    /// `wufb.dev/reconcile-requested-at` does; `token` makes the value new.
    pub async fn request_reconcile(&self, what: &str, token: &str) {
        self.kubectl_ok(&[
            "annotate",
            what,
            "--overwrite",
            &format!("wufb.dev/reconcile-requested-at={token}"),
        ])
        .await;
    }

    /// Waits for a sign that the controller processed `what` (`kind/name`) after the emulator's log
    /// sequence `since` (see [`Env::graph_seq`]): the object's status at its current generation, and a
    /// Graph request after `since` from a pass over it (a read of the deployment or group its status
    /// records; for an object that records neither, any Graph request). A test asserts that something
    /// did not happen only after this: a controller that never ran, crashed or fell behind fails here
    /// instead of passing.
    pub async fn settled(&self, what: &str, since: u64) {
        self.settled_in(&self.emulator, what, since).await;
    }

    /// [`Env::settled`] for an object whose tenant is `emulator` (`since` is its log sequence).
    pub async fn settled_in(&self, emulator: &Emulator, what: &str, since: u64) {
        if let Err(e) = self
            .try_settled_in(emulator, what, since, Duration::from_secs(30))
            .await
        {
            panic!("{e}\ncontroller log:\n{}", self.tail_logs());
        }
    }

    /// [`Env::settled`], with an error instead of a panic when `timeout` passes without the sign.
    pub async fn try_settled(&self, what: &str, since: u64, timeout: Duration) -> Result<(), String> {
        self.try_settled_in(&self.emulator, what, since, timeout).await
    }

    /// [`Env::try_settled`] for an object whose tenant is `emulator`.
    pub async fn try_settled_in(
        &self,
        emulator: &Emulator,
        what: &str,
        since: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let out = self.kubectl(&["get", what, "-o", "json"]).await;
            if out.ok
                && let Ok(obj) = serde_json::from_str::<Value>(&out.stdout)
            {
                let status = &obj["status"];
                let current = !status["observedGeneration"].is_null()
                    && status["observedGeneration"] == obj["metadata"]["generation"];
                let id = status["deploymentId"].as_str().or(status["groupId"].as_str());
                let seen = emulator
                    .requests()
                    .iter()
                    .any(|r| r.seq >= since && id.is_none_or(|id| r.path.contains(id)));
                if current && seen {
                    return Ok(());
                }
                last = format!(
                    "status at its generation: {current}; looked for a request naming {id:?}; requests since: {:?}",
                    emulator
                        .requests()
                        .iter()
                        .filter(|r| r.seq >= since)
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect::<Vec<_>>()
                );
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no sign within {timeout:?} that the controller processed {what} after Graph request {since} ({last})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
    pub async fn eventually<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\ncontroller log:\n{}",
                self.tail_logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The namespace's Events as JSON (`kubectl get events`), once every reason in `reasons` is among
    /// them: the operator sends Events in the background, so one may land just after the status next
    /// to it.
    pub async fn events_with(&self, reasons: &[&str]) -> String {
        self.eventually(
            &format!("Events with reasons {reasons:?}"),
            Duration::from_secs(20),
            async || {
                let events = self.kubectl_ok(&["get", "events", "-o", "json"]).await;
                reasons
                    .iter()
                    .all(|r| events.contains(&format!("\"reason\": \"{r}\"")))
                    .then_some(events)
            },
        )
        .await
    }

    /// Status field of an ExpeditedDeployment.
    pub async fn status_of(&self, name: &str) -> Value {
        self.get(&format!("expd/{name}")).await["status"].clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &mut self.controllers {
            let _ = c.child.start_kill();
        }
    }
}
