//! `bench`: Graph calls against their lower bound, time to Ready against the ideal, apply-to-first-write
//! latency, and the controller's memory and CPU, for a scenario run through the real operator binary, the
//! Graph emulator (with latency) and the test API server. Prints a table and writes
//! `target/bench/<scenario>.json`.
//!
//! `cargo run --release -p wufb-e2e --bin bench -- --scenario fanout [--deployments D] [--devices M] [--latency-ms L]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use wufb_graph_emulator::{Emulator, EmulatorConfig, FaultConfig};
use wufb_operator::crd::{DeviceGroup, DeviceGroupStatus, ExpeditedDeployment, ExpeditedDeploymentStatus};
use wufb_operator::reconcile::status::Written;
use wufb_test_apiserver::{Options, TestApiServer};

#[derive(Parser, Debug, Clone)]
#[command(about = "wufb-operator benchmark: Graph calls, convergence time, latency and memory")]
struct Args {
    /// fanout, big-audience, rings, steady, churn, tenants or sdk-compare (the fanout job through the
    /// operator and through Microsoft's Graph beta SDK for Python, devices per second side by side).
    #[arg(long)]
    scenario: String,
    /// ExpeditedDeployments (fanout, steady, churn).
    #[arg(long, default_value_t = 1000)]
    deployments: usize,
    /// Devices per deployment (fanout, steady, churn), or in all (big-audience: 100,000; rings: 20,000).
    #[arg(long)]
    devices: Option<usize>,
    /// Latency the emulator adds to every Graph call.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Graph page size.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// The operator's --progress-interval, in seconds; with it, big-audience also measures the Graph
    /// reads of one progress poll after convergence (default: the operator's 5 minutes, no measure).
    #[arg(long)]
    progress_interval_secs: Option<u64>,
    /// Assets per audience or group write (the emulator's cap is the same).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Graph requests in flight (the operator's --graph-concurrency).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The operator's --graph-batch: `off` (one HTTP request per Graph request) or `auto` (JSON batches
    /// of up to 20 when requests queue).
    #[arg(long, default_value = "off")]
    graph_batch: String,
    /// Reconciles working at once per kind (the operator's --reconcile-concurrency).
    #[arg(long, default_value_t = 32)]
    reconcile_concurrency: usize,
    /// Resync interval of the steady scenario, in seconds.
    #[arg(long, default_value_t = 10)]
    resync_secs: u64,
    /// Churn rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Let the emulator serve $count/$skip/$top on audience lists (the older pages); by default they are
    /// refused as the newest page says, and the operator follows nextLink.
    #[arg(long)]
    audience_client_paging: bool,
    /// The emulator's read lag (replication lag), in milliseconds.
    #[arg(long, default_value_t = 0)]
    read_lag_ms: u64,
    /// Run an operator built with its `dhat-heap` feature (built into target/dhat first) and print where
    /// the bytes live at the heap's peak and at the end, by part of the controller; the profile and its
    /// breakdown go to target/bench/<scenario>/{dhat-heap.json,heap.json}. Allocation tracking slows the
    /// operator, so time and CPU figures of such a run are not comparable.
    #[arg(long)]
    heap_profile: bool,
    /// Tenants of the tenants scenario (each its own emulator and GraphConnection; the first throttles
    /// every create for a minute).
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// After convergence, how long to wait before reading RSS again ("RSS after settling").
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
}

fn device(a: usize, b: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", a, b)
}

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The operator's RSS at idle: started, its watches open, no objects yet. Read once RSS has held within
/// 64 KiB for a second, from 3 s after start (at most 15 s): earlier, the code of the Kubernetes
/// client and the watches is still being paged in, which is not memory the objects cost.
async fn idle_rss(pid: u32) -> u64 {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut last = proc_status(pid, "VmRSS:");
    let mut steady_since = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = proc_status(pid, "VmRSS:");
        if now.abs_diff(last) > 64 * 1024 {
            last = now;
            steady_since = Instant::now();
        } else if steady_since.elapsed() >= Duration::from_secs(1) {
            return now;
        }
    }
    last
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The emulator every run of the bench uses: the scenario's latency, page size, batch limit, paging and
/// read lag (the SDK comparison's own emulator is the same).
fn emulator_config(args: &Args) -> EmulatorConfig {
    EmulatorConfig {
        page_size: args.page_size,
        max_assets_per_request: Some(args.batch_size),
        faults: FaultConfig {
            latency_ms: args.latency_ms,
            ..Default::default()
        },
        request_log_limit: 5_000_000,
        audience_client_paging: args.audience_client_paging,
        read_lag_ms: args.read_lag_ms,
        ..Default::default()
    }
}

struct World {
    /// When the world was started, and the bench process's CPU seconds then: the harness's CPU share is
    /// measured from here.
    started: Instant,
    harness_cpu_at_start: f64,
    /// The API server's resourceVersion (one count for every write it stores) when the world started,
    /// and the writes the bench made since: the operator's Kubernetes writes are the rest.
    rv_at_start: u64,
    bench_writes: u64,
    dhat_file: Option<std::path::PathBuf>,
    emulator: Emulator,
    _server: TestApiServer,
    client: kube::Client,
    child: tokio::process::Child,
    pid: u32,
    idle_rss: u64,
    ns: String,
    applied: BTreeMap<String, u64>,
    object_json: usize,
    /// The JSON of the device ids of the Entra groups the objects take devices from.
    entra_json: usize,
    eds: reflector::Store<Written<ExpeditedDeploymentStatus>>,
    dgs: reflector::Store<Written<DeviceGroupStatus>>,
    /// The request logs of the tenants scenario's own emulators (one per tenant), kept when they stop:
    /// its calls, round trips and devices written are theirs.
    tenant_logs: Vec<wufb_graph_emulator::state::LogEntry>,
}

impl World {
    /// Every Graph request the run's emulators logged.
    fn log(&self) -> Vec<wufb_graph_emulator::state::LogEntry> {
        let mut log = self.emulator.requests();
        log.extend(self.tenant_logs.iter().cloned());
        log
    }

    /// An Entra ID group of these devices in the emulator's tenant. The controller holds its ids, so
    /// they count, as the JSON of a list of strings, towards what the memory target is measured by.
    fn entra_group(&mut self, id: &str, devices: Vec<String>) {
        self.entra_json += devices.iter().map(|d| d.len() + 3).sum::<usize>();
        wufb_graph_emulator::state::lock(&self.emulator.shared.store)
            .entra_groups
            .insert(
                id.to_string(),
                wufb_graph_emulator::store::EntraGroup {
                    devices,
                    groups: Vec::new(),
                },
            );
    }

    async fn start(args: &Args, resync: Duration) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emulator = Emulator::start(emulator_config(args), "127.0.0.1:0")
            .await
            .unwrap();
        let crds = wufb_operator::crd::all()
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        let server = TestApiServer::start(Options {
            crds,
            history: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
        let dir = wufb_e2e::root().join("target/bench").join(&args.scenario);
        std::fs::create_dir_all(&dir).unwrap();
        let ns = "bench".to_string();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, server.kubeconfig(&ns)).unwrap();
        let log = std::fs::File::create(dir.join("controller.log")).unwrap();
        let (bin, dhat_file) = if args.heap_profile {
            let bin = wufb_e2e::heap::build_profiling_operator().unwrap();
            let file = dir.join("dhat-heap.json");
            let _ = std::fs::remove_file(&file);
            (bin, Some(file))
        } else {
            (wufb_e2e::operator_bin(), None)
        };
        let child = tokio::process::Command::new(bin)
            .args([
                "run",
                "--graph-url",
                &emulator.graph_url(),
                "--authority-host",
                &emulator.base_url(),
                "--namespace",
                &ns,
            ])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--identity",
                "bench",
                "--leader-election",
                "false",
                "--log-format",
                "json",
            ])
            .args([
                "--graph-rate-limit",
                "0",
                "--graph-concurrency",
                &args.concurrency.to_string(),
                "--graph-batch",
                &args.graph_batch,
                "--batch-size",
                &args.batch_size.to_string(),
                "--reconcile-concurrency",
                &args.reconcile_concurrency.to_string(),
            ])
            .args(["--resync-interval", &format!("{}s", resync.as_secs())])
            .args(
                args.progress_interval_secs
                    .map(|s| format!("--progress-interval={s}s")),
            )
            .envs(dhat_file.iter().map(|f| ("WUFB_DHAT_FILE", f)))
            .env("KUBECONFIG", &kubeconfig)
            .env("AZURE_TENANT_ID", wufb_graph_emulator::config::DEFAULT_TENANT_ID)
            .env("AZURE_CLIENT_ID", wufb_graph_emulator::config::DEFAULT_CLIENT_ID)
            .env(
                "AZURE_CLIENT_SECRET",
                wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
            )
            .env(
                "RUST_LOG",
                std::env::var("WUFB_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut config = kube::Config::new(server.url().parse().unwrap());
        config.default_namespace = ns.clone();
        let client = kube::Client::try_from(config).unwrap();
        let eds = mirror::<ExpeditedDeployment, ExpeditedDeploymentStatus>(&client, &ns);
        let dgs = mirror::<DeviceGroup, DeviceGroupStatus>(&client, &ns);
        let idle_rss = idle_rss(pid).await;
        World {
            started: Instant::now(),
            harness_cpu_at_start: cpu_seconds(std::process::id()),
            rv_at_start: resource_version(&client, &ns).await,
            bench_writes: 0,
            dhat_file,
            emulator,
            _server: server,
            client,
            child,
            pid,
            idle_rss,
            ns,
            applied: BTreeMap::new(),
            object_json: 0,
            entra_json: 0,
            eds,
            dgs,
            tenant_logs: Vec::new(),
        }
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    async fn create_all(&mut self, objects: Vec<Value>) {
        let client = self.client.clone();
        let ns = self.ns.clone();
        self.bench_writes += objects.len() as u64;
        // Each object is serialized once, as `kubectl create` sends it: its size is the bytes sent, and
        // the answer is not decoded (the watches see the objects).
        let bodies: Vec<(String, String, Vec<u8>)> = objects
            .iter()
            .map(|o| {
                let kind = o["kind"].as_str().unwrap().to_string();
                let name = o["metadata"]["name"].as_str().unwrap().to_string();
                (kind, name, serde_json::to_vec(o).unwrap())
            })
            .collect();
        drop(objects);
        self.object_json += bodies.iter().map(|(_, _, b)| b.len()).sum::<usize>();
        let stamped = futures::stream::iter(bodies)
            .map(|(kind, name, body)| {
                let (client, ns) = (client.clone(), ns.clone());
                async move {
                    let at = Self::now_ms();
                    let path = match kind.as_str() {
                        "DeviceGroup" => DeviceGroup::url_path(&(), Some(&ns)),
                        _ => ExpeditedDeployment::url_path(&(), Some(&ns)),
                    };
                    let request = kube::core::Request::new(path)
                        .create(&PostParams::default(), body)
                        .unwrap();
                    if let Err(e) = client.request_text(request).await {
                        panic!("creating {kind}/{name}: {e}");
                    }
                    (format!("{kind}/{name}"), at)
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        self.applied.extend(stamped);
    }

    /// Waits until every object is Ready for its current generation; returns the seconds it took.
    async fn wait_ready(&self, expected: usize, started: Instant) -> f64 {
        let mut last = 0;
        loop {
            let ready = |c: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
                         g: Option<i64>,
                         og: Option<i64>| {
                g == og && c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            };
            let eds = self.eds.state();
            let dgs = self.dgs.state();
            let n = eds
                .iter()
                .filter(|d| {
                    d.status
                        .as_ref()
                        .is_some_and(|s| ready(&s.conditions, d.metadata.generation, s.observed_generation))
                })
                .count()
                + dgs
                    .iter()
                    .filter(|d| {
                        d.status.as_ref().is_some_and(|s| {
                            ready(&s.conditions, d.metadata.generation, s.observed_generation)
                        })
                    })
                    .count();
            if n >= expected && eds.len() + dgs.len() >= expected {
                return started.elapsed().as_secs_f64();
            }
            if started.elapsed().as_secs() > last + 10 {
                last = started.elapsed().as_secs();
                eprintln!("  {n}/{expected} Ready after {last}s");
            }
            assert!(
                started.elapsed() < Duration::from_secs(3600),
                "not converged within an hour"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Apply-to-first-write latencies (ms): from an object's creation to the Graph create it caused.
    fn first_write_latencies(&self) -> Vec<f64> {
        let created: BTreeMap<String, u64> = self
            .emulator
            .requests()
            .into_iter()
            .filter_map(|r| r.created_id.map(|id| (id, r.at_ms)))
            .collect();
        let mut out = Vec::new();
        for d in self.eds.state() {
            let id = d.status.as_ref().and_then(|s| s.deployment_id.clone());
            if let (Some(at), Some(t)) = (
                self.applied.get(&format!("ExpeditedDeployment/{}", d.name_any())),
                id.and_then(|i| created.get(&i).copied()),
            ) {
                out.push(t.saturating_sub(*at) as f64);
            }
        }
        for g in self.dgs.state() {
            let id = g.status.as_ref().and_then(|s| s.group_id.clone());
            if let (Some(at), Some(t)) = (
                self.applied.get(&format!("DeviceGroup/{}", g.name_any())),
                id.and_then(|i| created.get(&i).copied()),
            ) {
                out.push(t.saturating_sub(*at) as f64);
            }
        }
        out
    }

    fn calls(&self, since: u64) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in self
            .log()
            .into_iter()
            .filter(|r| r.seq >= since && r.operation != "token" && r.operation != "$batch")
        {
            *m.entry(r.operation).or_insert(0) += 1;
        }
        m
    }

    /// HTTP round trips to Graph (a JSON batch counts once, the requests it carried not again) and the
    /// JSON batches among them.
    fn round_trips(&self) -> (u64, u64) {
        let log = self.log();
        let trips = log
            .iter()
            .filter(|r| r.operation != "token" && !r.in_batch)
            .count();
        let batches = log.iter().filter(|r| r.operation == "$batch").count();
        (trips as u64, batches as u64)
    }
}

/// A store kept in step with the objects of `api` by a background watch.
/// Mirrors the metadata and status of a kind; the spec in each event is skipped, not parsed, so that
/// the benchmark's own watch costs little next to the controller it measures.
fn mirror<K, S>(client: &kube::Client, ns: &str) -> reflector::Store<Written<S>>
where
    K: kube::Resource<DynamicType = ()>,
    S: Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let ar = kube::api::ApiResource::erase::<K>(&());
    let api = Api::<Written<S>>::namespaced_with(client.clone(), ns, &ar);
    let writer = reflector::store::Writer::new(ar);
    let store = writer.as_reader();
    tokio::spawn(
        watcher(api, Default::default())
            .reflect(writer)
            .for_each(|_| async {}),
    );
    store
}

/// The API server's current resourceVersion: each write it stores (a create, an update, a patch, a
/// delete, of any kind) counts one.
async fn resource_version(client: &kube::Client, ns: &str) -> u64 {
    let list = Api::<ExpeditedDeployment>::namespaced(client.clone(), ns)
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .unwrap();
    list.metadata
        .resource_version
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn is_read(op: &str) -> bool {
    op.ends_with(".list") || op.ends_with(".get") || op.ends_with(".count")
}

/// The tenant-wide reads of a rollout progress poll (once per progress interval for all objects),
/// counted apart from the reconcile reads the lower bounds describe.
fn is_progress(op: &str) -> bool {
    matches!(op, "deviceProfiles.list" | "updatableAssets.list")
}

fn ed(name: &str, members: Vec<Value>, exclusions: Vec<Value>) -> Value {
    json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "metadata": {"name": name},
           "spec": {"content": {"latest": true}, "userExperience": {"daysUntilForcedReboot": 2}, "audience": {"members": members, "exclusions": exclusions}}})
}

fn dg(name: &str, devices: Vec<String>) -> Value {
    json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup", "metadata": {"name": name}, "spec": {"devices": devices}})
}

const ENTRA_BIG: &str = "0e0e0e0e-0000-4000-8000-0000000b1600";

fn entra_dg(name: &str, entra: &str) -> Value {
    json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup", "metadata": {"name": name}, "spec": {"entraGroupId": entra}})
}

fn devices_json(ids: impl Iterator<Item = String>) -> Vec<Value> {
    ids.map(|d| json!({"device": d})).collect()
}

struct Figures {
    scenario: String,
    calls: BTreeMap<String, u64>,
    write_lower_bound: u64,
    read_lower_bound: u64,
    seconds_to_ready: f64,
    latencies: Vec<f64>,
    extra: Value,
}

/// The harness (the emulators, the test API server and the benchmark's own client and watches) runs on
/// one thread, as `harness runtime` says in every report: the controller has the machine's other
/// core, and the harness pays no cross-thread wake-ups or work stealing (on two threads it cost about
/// an eighth more CPU for the same requests, in fanout 200 x 1,000 and 1,000 x 1,000). It checks what
/// it checks on any runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let b = args.batch_size;
    let p = args.page_size;
    let ceil = |n: usize, d: usize| n.div_ceil(d) as u64;
    let resync = if args.scenario == "steady" {
        Duration::from_secs(args.resync_secs)
    } else {
        Duration::from_secs(3600)
    };
    let mut w = World::start(&args, resync).await;
    let started = Instant::now();
    let figures = match args.scenario.as_str() {
        "fanout" | "steady" | "churn" | "sdk-compare" => {
            let (d, m) = (args.deployments, args.devices.unwrap_or(1000));
            let objects: Vec<Value> = (0..d)
                .map(|i| {
                    ed(
                        &format!("rollout-{i}"),
                        devices_json((0..m).map(|j| device(i, j))),
                        vec![],
                    )
                })
                .collect();
            w.create_all(objects).await;
            let secs = w.wait_ready(d, started).await;
            // Per deployment: the audience create, the deployment create and ceil(M/B) audience writes;
            // reads: the verifying GET, member pages and the exclusions page, plus one catalog query.
            let write_lb = d as u64 * (2 + ceil(m, b));
            let read_lb = 1 + d as u64 * (2 + ceil(m.max(1), p));
            let mut f = Figures {
                scenario: args.scenario.clone(),
                calls: w.calls(0),
                write_lower_bound: write_lb,
                read_lower_bound: read_lb,
                seconds_to_ready: secs,
                latencies: w.first_write_latencies(),
                extra: json!({}),
            };
            if args.scenario == "steady" {
                let since = w.emulator.requests().last().map_or(0, |r| r.seq + 1);
                let window = resync.mul_f64(3.2);
                eprintln!(
                    "  converged; observing {:.0}s of steady state",
                    window.as_secs_f64()
                );
                tokio::time::sleep(window).await;
                f.calls = w.calls(since);
                f.write_lower_bound = 0;
                // At most one GET, the member pages and the exclusions page per object per resync.
                f.read_lower_bound = 3 * d as u64 * (2 + ceil(m.max(1), p));
                f.seconds_to_ready = window.as_secs_f64();
                f.extra = json!({"resync_seconds": resync.as_secs(), "periods": 3});
            }
            if args.scenario == "churn" {
                let since = w.emulator.requests().last().map_or(0, |r| r.seq + 1);
                let moved = (m / 10).max(1);
                let api: Api<ExpeditedDeployment> = Api::namespaced(w.client.clone(), &w.ns);
                let mut members: Vec<Vec<String>> =
                    (0..d).map(|i| (0..m).map(|j| device(i, j)).collect()).collect();
                let churn_started = Instant::now();
                for round in 0..args.rounds {
                    // 10% of each deployment's devices move to the next deployment.
                    let moving: Vec<Vec<String>> = members
                        .iter_mut()
                        .map(|list| list.drain(..moved).collect())
                        .collect();
                    for (i, batch) in moving.into_iter().enumerate() {
                        members[(i + 1) % d].extend(batch);
                    }
                    futures::stream::iter(0..d)
                        .map(|i| {
                            let api = api.clone();
                            let patch = json!({"spec": {"audience": {"members": devices_json(members[i].iter().cloned())}}});
                            async move {
                                api.patch(&format!("rollout-{i}"), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
                            }
                        })
                        .buffer_unordered(32)
                        .collect::<Vec<_>>()
                        .await;
                    w.bench_writes += d as u64;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    w.wait_ready(d, Instant::now()).await;
                    eprintln!("  round {} converged", round + 1);
                }
                f.calls = w.calls(since);
                // Per round and deployment: one audience write carrying the moves (2 x 10% of M <= B); reads:
                // the audience before the change (to diff) and after it (to verify), each a GET, the
                // member pages and the exclusions page.
                f.write_lower_bound = (args.rounds * d) as u64 * ceil(2 * moved, b);
                f.read_lower_bound = (args.rounds * d) as u64 * 2 * (2 + ceil(m, p));
                f.seconds_to_ready = churn_started.elapsed().as_secs_f64();
                f.extra = json!({"rounds": args.rounds, "moved_per_round": moved});
            }
            f
        }
        "big-audience" => {
            // A ring this large lives in Entra ID (a DeviceGroup lists at most 15,000 devices itself):
            // one Entra group, one DeviceGroup taking its devices from it, one deployment.
            let n = args.devices.unwrap_or(100_000);
            w.entra_group(ENTRA_BIG, (0..n).map(|j| device(0, j)).collect());
            let objects = vec![
                entra_dg("big", ENTRA_BIG),
                ed("big", vec![json!({"deviceGroup": "big"})], vec![]),
            ];
            w.create_all(objects).await;
            let secs = w.wait_ready(2, started).await;
            // One progress poll after convergence, when asked: its reads, counted on their own.
            let poll_reads = match args.progress_interval_secs {
                Some(interval) => {
                    let since = w.emulator.requests().last().map_or(0, |r| r.seq + 1);
                    tokio::time::sleep(Duration::from_secs(interval) + Duration::from_secs(interval) / 2)
                        .await;
                    let c = w.calls(since);
                    json!({
                        "deviceProfiles.list": c.get("deviceProfiles.list").copied().unwrap_or(0),
                        "updatableAssets.list": c.get("updatableAssets.list").copied().unwrap_or(0),
                    })
                }
                None => Value::Null,
            };
            // The group: 1 create + ceil(devices/B) adds; the deployment: its audience, itself and 1
            // audience write.
            let write_lb = 1 + ceil(n, b) + 3;
            // The Entra group read by the first pass and the verifying pass (999 a page), the Graph group's
            // pages once (verifying), the catalog, and the deployment's GET and two audience lists.
            let read_lb = 1 + 2 * ceil(n, 999) + ceil(n, p) + 3;
            Figures {
                scenario: args.scenario.clone(),
                calls: w.calls(0),
                write_lower_bound: write_lb,
                read_lower_bound: read_lb,
                seconds_to_ready: secs,
                latencies: w.first_write_latencies(),
                extra: json!({"devices": n, "groups": 1, "source": "entraGroupId", "reads_of_one_progress_poll": poll_reads}),
            }
        }
        "rings" => {
            let n = args.devices.unwrap_or(20_000);
            let sizes = [n / 100, n * 9 / 100, n - n / 100 - n * 9 / 100];
            let mut objects = Vec::new();
            let mut start = 0;
            let mut entra_reads = 0;
            for (r, size) in sizes.iter().enumerate() {
                let ids: Vec<String> = (start..start + size).map(|j| device(0, j)).collect();
                if *size > wufb_operator::crd::device_group::MAX_DEVICES {
                    // Above what a DeviceGroup lists itself: the ring comes from an Entra group.
                    let entra = format!("0e0e0e0e-0000-4000-8000-{r:012}");
                    w.entra_group(&entra, ids);
                    objects.push(entra_dg(&format!("ring-{r}"), &entra));
                    entra_reads += 2 * ceil(*size, 999);
                } else {
                    objects.push(dg(&format!("ring-{r}"), ids));
                }
                start += size;
            }
            for i in 0..12 {
                objects.push(ed(
                    &format!("rollout-{i}"),
                    vec![json!({"deviceGroup": format!("ring-{}", i % 3)})],
                    vec![],
                ));
            }
            w.create_all(objects).await;
            let secs = w.wait_ready(15, started).await;
            // A group's devices are sent once; then per deployment its audience, itself and one audience
            // write.
            let write_lb = sizes.iter().map(|s| 1 + ceil(*s, b)).sum::<u64>() + 12 * 3;
            let read_lb = 1 + sizes.iter().map(|s| ceil(*s, p)).sum::<u64>() + 12 * 3 + entra_reads;
            Figures {
                scenario: args.scenario.clone(),
                calls: w.calls(0),
                write_lower_bound: write_lb,
                read_lower_bound: read_lb,
                seconds_to_ready: secs,
                latencies: w.first_write_latencies(),
                extra: json!({"devices": n, "ring_sizes": sizes}),
            }
        }
        "tenants" => tenants(&mut w, &args, started).await,
        other => panic!(
            "unknown scenario {other} (fanout, big-audience, rings, steady, churn, tenants, sdk-compare)"
        ),
    };

    let operator_seconds = figures.seconds_to_ready;
    report(&mut w, &args, figures).await;
    let _ = w.child.start_kill();
    if args.scenario == "sdk-compare" {
        // After the operator's report, so that its CPU and harness figures are the operator run's.
        let devices = (args.deployments * args.devices.unwrap_or(1000)) as f64;
        let compared = sdk_compare(&args, devices / operator_seconds.max(1e-9)).await;
        let path = wufb_e2e::root().join("target/bench/sdk-compare.json");
        let mut written: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        written["sdk_compare"] = compared;
        std::fs::write(&path, serde_json::to_string_pretty(&written).unwrap()).unwrap();
    }
}

/// The SDK the comparison installs into `.tools/sdk-venv` (from PyPI) on first use.
const SDK_VERSION: &str = "1.66.0";

/// The fanout job as an admin scripts it with Microsoft's Graph beta SDK for Python
/// (`tests/bench/sdk_fanout.py`: asyncio, 16 deployments at once, each created and its devices added
/// with updateAudience in batches of 1,000, no verification reads), on a fresh emulator of the same
/// build, latency, page size and batch limit. Prints both devices per second and their ratio.
async fn sdk_compare(args: &Args, operator_devices_per_second: f64) -> Value {
    let venv = wufb_e2e::root().join(".tools/sdk-venv");
    let python = venv.join("bin/python");
    let ready = std::process::Command::new(&python)
        .args(["-c", "import msgraph_beta"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        eprintln!(
            "  installing msgraph-beta-sdk {SDK_VERSION} into {}",
            venv.display()
        );
        assert!(
            std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            std::process::Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("msgraph-beta-sdk=={SDK_VERSION}"))
                .status()
                .unwrap()
                .success(),
            "pip could not install msgraph-beta-sdk {SDK_VERSION}"
        );
    }
    let emulator = Emulator::start(emulator_config(args), "127.0.0.1:0")
        .await
        .unwrap();
    let entry = wufb_e2e::expeditable_entry(&emulator);
    use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
    let out = tokio::process::Command::new(&python)
        .arg(wufb_e2e::root().join("tests/bench/sdk_fanout.py"))
        .arg(emulator.graph_url())
        .arg(format!(
            "{}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token",
            emulator.base_url()
        ))
        .args([
            DEFAULT_TENANT_ID,
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            entry.as_str(),
        ])
        .arg(args.deployments.to_string())
        .arg(args.devices.unwrap_or(1000).to_string())
        .arg(args.concurrency.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: Value = serde_json::from_slice(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .as_bytes(),
    )
    .unwrap();
    let sdk_rate = sdk["devices_per_second"].as_f64().unwrap_or_default();
    let ratio = operator_devices_per_second / sdk_rate.max(1e-9);
    println!(
        "  sdk-compare: the same job through msgraph-beta-sdk {SDK_VERSION} (asyncio, {} at once, batches of 1,000, no verification reads)",
        args.concurrency
    );
    println!(
        "    {:<36} {:>10.0} (its verification reads and Kubernetes writes included)",
        "operator devices per second", operator_devices_per_second
    );
    println!(
        "    {:<36} {:>10.0} ({} calls in {:.2} s)",
        "SDK script devices per second",
        sdk_rate,
        sdk["calls"],
        sdk["seconds"].as_f64().unwrap_or_default()
    );
    println!("    {:<36} {:>10.2}", "operator / SDK", ratio);
    json!({
        "sdk_version": SDK_VERSION,
        "sdk": sdk,
        "operator_devices_per_second": operator_devices_per_second,
        "operator_over_sdk": ratio,
    })
}

/// T tenants x D deployments through GraphConnections, each tenant its own emulator (same latency);
/// tenant 0 answers every create 429 with a minute's Retry-After. Prints each tenant's time to Ready
/// and Graph calls: the healthy ones must not wait on the throttled one.
async fn tenants(w: &mut World, args: &Args, started: Instant) -> Figures {
    use k8s_openapi::api::core::v1::Secret;
    use wufb_operator::crd::GraphConnection;
    let (t, d) = (args.tenants.max(2), args.deployments);
    let mut emulators = Vec::new();
    for k in 0..t {
        let tenant = format!("7e7e7e7e-0000-4000-8000-{k:012}");
        let throttled = k == 0;
        let emulator = Emulator::start(
            EmulatorConfig {
                page_size: args.page_size,
                max_assets_per_request: Some(args.batch_size),
                apps: vec![wufb_graph_emulator::AppRegistration {
                    tenant_id: tenant.clone(),
                    client_id: wufb_graph_emulator::config::DEFAULT_CLIENT_ID.into(),
                    client_secret: Some(format!("secret-{k}")),
                    certificate_pem: None,
                    federated: Vec::new(),
                    roles: vec![wufb_graph_emulator::config::READ_WRITE.into()],
                }],
                faults: FaultConfig {
                    latency_ms: args.latency_ms,
                    throttle_rate: if throttled { 1.0 } else { 0.0 },
                    retry_after_secs: 60.0,
                    operations: vec!["deployments.create".into(), "deploymentAudiences.create".into()],
                    ..Default::default()
                },
                request_log_limit: 5_000_000,
                ..Default::default()
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("tenant-{k}")},
            "stringData": {"clientSecret": format!("secret-{k}")},
        }))
        .unwrap();
        Api::<Secret>::namespaced(w.client.clone(), &w.ns)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let connection: GraphConnection = serde_json::from_value(json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "GraphConnection", "metadata": {"name": format!("tenant-{k}")},
            "spec": {"tenantId": tenant, "clientId": wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
                     "credential": {"secretRef": {"name": format!("tenant-{k}")}},
                     "endpoints": {"graphUrl": emulator.graph_url(), "authorityHost": emulator.base_url()}},
        }))
        .unwrap();
        Api::<GraphConnection>::namespaced(w.client.clone(), &w.ns)
            .create(&PostParams::default(), &connection)
            .await
            .unwrap();
        w.bench_writes += 2;
        emulators.push(emulator);
    }
    let objects: Vec<Value> = (0..d)
        .flat_map(|i| (0..t).map(move |k| (i, k)))
        .map(|(i, k)| {
            let mut o = ed(
                &format!("t{k}-{i}"),
                vec![json!({"device": device(k, i)})],
                vec![],
            );
            o["spec"]["connectionRef"] = json!({"name": format!("tenant-{k}")});
            o
        })
        .collect();
    w.create_all(objects).await;
    // Each healthy tenant's time until all its objects are Ready.
    let mut ready_at: Vec<Option<f64>> = vec![None; t];
    let deadline = Duration::from_secs(600);
    while ready_at[1..].iter().any(Option::is_none) && started.elapsed() < deadline {
        let eds = w.eds.state();
        for (k, at) in ready_at.iter_mut().enumerate().skip(1) {
            let prefix = format!("t{k}-");
            let n = eds
                .iter()
                .filter(|e| e.metadata.name.as_deref().is_some_and(|n| n.starts_with(&prefix)))
                .filter(|e| {
                    e.status.as_ref().is_some_and(|s| {
                        s.observed_generation == e.metadata.generation
                            && s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            if n == d && at.is_none() {
                *at = Some(started.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut per_tenant = Vec::new();
    for (k, e) in emulators.iter().enumerate() {
        let calls = e
            .requests()
            .into_iter()
            .filter(|r| r.operation != "token")
            .count();
        let writes = e
            .requests()
            .into_iter()
            .filter(|r| r.operation != "token" && r.method != "GET")
            .count();
        let made = wufb_graph_emulator::state::lock(&e.shared.store)
            .list_deployments(chrono::Utc::now())
            .len();
        println!(
            "  tenant {k}{:<12} deployments {made:>5}/{d}  Ready after {:>8}  Graph calls {calls:>6} (writes {writes})",
            if k == 0 { " (throttled)" } else { "" },
            ready_at[k].map_or("-".into(), |s| format!("{s:.2} s")),
        );
        per_tenant.push(json!({"tenant": k, "throttled": k == 0, "deployments": made, "seconds_to_ready": ready_at[k], "graph_calls": calls, "writes": writes}));
        w.tenant_logs.extend(e.requests());
    }
    let healthy = ready_at[1..].iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
    Figures {
        scenario: args.scenario.clone(),
        // Every tenant's calls (the world's own emulator sees none). The bounds are the healthy tenants'
        // (as fanout's, one device each, a catalog query per tenant): the throttled tenant's attempts come
        // on top.
        calls: w.calls(0),
        write_lower_bound: ((t - 1) * d * 3) as u64,
        read_lower_bound: ((t - 1) * (1 + d * 3)) as u64,
        seconds_to_ready: healthy,
        latencies: Vec::new(),
        extra: json!({"tenants": t, "deployments_per_tenant": d, "per_tenant": per_tenant}),
    }
}

/// Stops the operator with SIGTERM (a clean shutdown, so a profiling build writes its profile) and
/// waits for it to exit.
async fn terminate(w: &mut World) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &w.pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(120), w.child.wait()).await;
}

/// Figures the harness cannot fool: the controller's CPU per unit of work, and whether the harness (the
/// emulator, the test API server and the bench's watches, all in this process) was busy enough to bound
/// the times.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cost {
    controller_cpu_per_1000_calls: f64,
    controller_cpu_per_1000_devices_written: f64,
    /// The harness's CPU seconds per second of the run (1.0: a whole core).
    harness_cores: f64,
    /// The harness used more than half a core on average: it, not the operator, may bound the times.
    harness_bound: bool,
}

/// The harness may bound the times when it used more than this share of a core on average.
const HARNESS_BOUND_CORES: f64 = 0.5;

fn cost(controller_cpu: f64, calls: u64, devices_written: u64, harness_cpu: f64, elapsed: f64) -> Cost {
    let per_1000 = |n: u64| {
        if n == 0 {
            0.0
        } else {
            controller_cpu * 1000.0 / n as f64
        }
    };
    let harness_cores = if elapsed > 0.0 { harness_cpu / elapsed } else { 0.0 };
    Cost {
        controller_cpu_per_1000_calls: per_1000(calls),
        controller_cpu_per_1000_devices_written: per_1000(devices_written),
        harness_cores,
        harness_bound: harness_cores > HARNESS_BOUND_CORES,
    }
}

async fn report(w: &mut World, args: &Args, f: Figures) {
    let peak = proc_status(w.pid, "VmHWM:");
    let now_rss = proc_status(w.pid, "VmRSS:");
    let cpu = cpu_seconds(w.pid);
    // The emulator, the test API server and the benchmark's own watch share this process and the
    // machine's cores with the controller: their CPU is taken over the same stretch as the
    // controller's, before the settling time below (in which the emulator's fleet still ticks).
    let elapsed = w.started.elapsed().as_secs_f64();
    let harness_cpu = cpu_seconds(std::process::id()) - w.harness_cpu_at_start;
    // Memory should return toward idle once the work is done, not stay at the peak.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let settled_rss = proc_status(w.pid, "VmRSS:");
    // Device ids (and group ids) carried by the writes the emulator answered.
    let devices_written: u64 = w
        .log()
        .iter()
        .filter(|r| r.method != "GET" && (200..300).contains(&r.status))
        .map(|r| r.assets as u64)
        .sum();
    let all_calls: u64 = f.calls.values().sum();
    // Kubernetes writes by the operator (status, finalizers, Events), per object applied.
    let k8s_writes = (resource_version(&w.client, &w.ns).await)
        .saturating_sub(w.rv_at_start)
        .saturating_sub(w.bench_writes);
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(w.client.clone(), &w.ns)
        .list_metadata(&Default::default())
        .await
        .map_or(0, |l| l.items.len());
    let objects = w.applied.len().max(1);
    let (round_trips, batches) = w.round_trips();
    // With JSON batching, the bound is the round trips, not the requests.
    let ideal_from_trips = round_trips as f64 * args.latency_ms as f64 / 1000.0 / args.concurrency as f64;
    let cost = cost(cpu, all_calls, devices_written, harness_cpu, elapsed);
    let writes: u64 = f
        .calls
        .iter()
        .filter(|(op, _)| !is_read(op))
        .map(|(_, n)| n)
        .sum();
    let reads: u64 = f
        .calls
        .iter()
        .filter(|(op, _)| is_read(op) && !is_progress(op))
        .map(|(_, n)| n)
        .sum();
    let progress_reads: BTreeMap<&String, &u64> = f.calls.iter().filter(|(op, _)| is_progress(op)).collect();
    let ideal = (writes + reads) as f64 * args.latency_ms as f64 / 1000.0 / args.concurrency as f64;
    let mut lat = f.latencies.clone();
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    let held_json = w.object_json + w.entra_json;
    let rss_ratio = peak.saturating_sub(w.idle_rss) as f64 / held_json.max(1) as f64;
    let pass = |b: bool| if b { "PASS" } else { "FAIL" };
    let mut targets = BTreeMap::new();
    if f.scenario == "steady" {
        targets.insert("steady_zero_writes", pass(writes == 0));
        targets.insert("steady_reads_within_bound", pass(reads <= f.read_lower_bound));
    } else if f.scenario != "tenants" {
        targets.insert("writes_at_lower_bound", pass(writes == f.write_lower_bound));
        targets.insert("apply_to_first_call_p99_under_1s", pass(p99 < 1000.0));
    }
    if matches!(f.scenario.as_str(), "fanout" | "big-audience") {
        targets.insert(
            "time_to_ready_within_1_5x_ideal",
            pass(f.seconds_to_ready <= 1.5 * ideal),
        );
    }
    targets.insert("rss_over_idle_within_3x_object_json", pass(rss_ratio <= 3.0));
    let out = json!({
        "scenario": f.scenario,
        "parameters": {"deployments": args.deployments, "devices": args.devices, "latency_ms": args.latency_ms, "page_size": args.page_size, "batch_size": args.batch_size, "concurrency": args.concurrency, "reconcile_concurrency": args.reconcile_concurrency, "graph_batch": args.graph_batch},
        "graph_calls": f.calls,
        "write_calls": writes,
        "write_lower_bound": f.write_lower_bound,
        "read_calls": reads,
        "read_lower_bound": f.read_lower_bound,
        "progress_poll_reads": progress_reads,
        "seconds_to_ready": f.seconds_to_ready,
        "ideal_seconds": ideal,
        "apply_to_first_call_p50_ms": p50,
        "apply_to_first_call_p99_ms": p99,
        "peak_rss_bytes": peak,
        "idle_rss_bytes": w.idle_rss,
        "rss_at_end_bytes": now_rss,
        "rss_after_settling_bytes": settled_rss,
        "settle_seconds": args.settle_secs,
        "object_json_bytes": w.object_json,
        "entra_device_json_bytes": w.entra_json,
        "rss_over_object_json": rss_ratio,
        "cpu_seconds": cpu,
        "harness_cpu_seconds": harness_cpu,
        "harness_runtime": "current_thread",
        "elapsed_seconds": elapsed,
        "devices_written": devices_written,
        "round_trips": round_trips,
        "json_batches": batches,
        "ideal_seconds_from_round_trips": ideal_from_trips,
        "kubernetes_writes": k8s_writes,
        "kubernetes_writes_per_object": k8s_writes as f64 / objects as f64,
        "events": events,
        "controller_cpu_per_1000_calls": cost.controller_cpu_per_1000_calls,
        "controller_cpu_per_1000_devices_written": cost.controller_cpu_per_1000_devices_written,
        "harness_cores": cost.harness_cores,
        "harness_bound": cost.harness_bound,
        "extra": f.extra,
        "targets": targets,
    });
    println!("scenario {}", f.scenario);
    println!("  {:<38} {:>10}", "Graph calls by operation", "");
    for (op, n) in &f.calls {
        println!("    {op:<36} {n:>10}");
    }
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            if a == 0 { 1.0 } else { f64::INFINITY }
        } else {
            a as f64 / b as f64
        }
    };
    println!(
        "  {:<38} {:>10} (lower bound {}, ratio {:.2})",
        "writes",
        writes,
        f.write_lower_bound,
        ratio(writes, f.write_lower_bound)
    );
    println!(
        "  {:<38} {:>10} (lower bound {}, ratio {:.2})",
        "reads",
        reads,
        f.read_lower_bound,
        ratio(reads, f.read_lower_bound)
    );
    println!(
        "  {:<38} {:>10} (deviceProfiles and device asset pages, once per progress interval for all objects)",
        "progress poll reads",
        progress_reads.values().copied().sum::<u64>()
    );
    println!(
        "  {:<38} {:>10.2} (ideal {:.2}, ratio {:.2}{})",
        "seconds to Ready",
        f.seconds_to_ready,
        ideal,
        f.seconds_to_ready / ideal.max(1e-9),
        if cost.harness_bound { ", harness-bound" } else { "" }
    );
    println!(
        "  {:<38} {:>10.0} / {:.0}",
        "apply to first write p50/p99 (ms)", p50, p99
    );
    println!(
        "  {:<38} {:>10} ({batches} JSON batches; --graph-batch {}; to Ready {:.2}x the {:.2} s they need)",
        "Graph round trips",
        round_trips,
        args.graph_batch,
        f.seconds_to_ready / ideal_from_trips.max(1e-9),
        ideal_from_trips
    );
    println!(
        "  {:<38} {:>10} ({:.1} per object applied; {events} Events)",
        "Kubernetes writes by the operator",
        k8s_writes,
        k8s_writes as f64 / objects as f64
    );
    println!(
        "  {:<38} {:>10} (idle {}, objects {} B JSON + Entra device ids {} B, ratio {:.2})",
        "controller peak RSS (bytes)", peak, w.idle_rss, w.object_json, w.entra_json, rss_ratio
    );
    println!("  {:<38} {:>10}", "controller RSS at the end (bytes)", now_rss);
    println!(
        "  {:<38} {:>10} ({} s after Ready)",
        "controller RSS after settling (bytes)", settled_rss, args.settle_secs
    );
    println!("  {:<38} {:>10.2}", "controller CPU seconds", cpu);
    println!(
        "  {:<38} {:>10.3} ({} calls)",
        "controller CPU s per 1,000 Graph calls", cost.controller_cpu_per_1000_calls, all_calls
    );
    println!(
        "  {:<38} {:>10.3} ({} device ids written)",
        "controller CPU s per 1,000 devices written",
        cost.controller_cpu_per_1000_devices_written,
        devices_written
    );
    println!(
        "  {:<38} {:>10.2}",
        "harness CPU seconds (emulator, API server)", harness_cpu
    );
    println!(
        "  {:<38} {:>10}",
        "harness runtime", "one thread (emulator, API server, bench client)"
    );
    println!(
        "  {:<38} {:>10.2} of a core over {elapsed:.1} s{}",
        "harness CPU share",
        cost.harness_cores,
        if cost.harness_bound {
            " (harness-bound: above half a core, the times measure the harness)"
        } else {
            ""
        }
    );
    for (t, r) in &targets {
        println!("  target {t:<31} {r:>10}");
    }
    // The request log, for a look at throughput over time: start (ms), operation, status.
    let log: String = w
        .log()
        .into_iter()
        .map(|r| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                r.at_ms,
                r.operation,
                r.status,
                r.path,
                r.created_id.unwrap_or_default()
            )
        })
        .collect();
    let dir = wufb_e2e::root().join("target/bench").join(&f.scenario);
    std::fs::write(dir.join("requests.tsv"), log).unwrap();
    let applied: String = w.applied.iter().map(|(k, at)| format!("{at}\t{k}\n")).collect();
    std::fs::write(dir.join("applied.tsv"), applied).unwrap();
    let path = wufb_e2e::root()
        .join("target/bench")
        .join(format!("{}.json", f.scenario));
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("  written {}", path.display());
    if let Some(file) = w.dhat_file.clone() {
        terminate(w).await;
        match wufb_e2e::heap::report(&file) {
            Ok(_) => {}
            Err(e) => eprintln!("  no heap profile read from {}: {e:#}", file.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_is_per_unit_of_work_and_a_busy_harness_is_marked() {
        let c = cost(2.0, 4000, 500_000, 3.0, 10.0);
        assert_eq!(c.controller_cpu_per_1000_calls, 0.5);
        assert_eq!(c.controller_cpu_per_1000_devices_written, 0.004);
        assert_eq!(c.harness_cores, 0.3);
        assert!(!c.harness_bound);
        assert!(cost(2.0, 4000, 0, 6.0, 10.0).harness_bound, "0.6 of a core");
        assert!(
            !cost(2.0, 4000, 0, 5.0, 10.0).harness_bound,
            "half a core exactly"
        );
        assert_eq!(cost(1.0, 0, 0, 0.0, 0.0).controller_cpu_per_1000_calls, 0.0);
    }
}
