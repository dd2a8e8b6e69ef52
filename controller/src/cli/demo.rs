//! `wufb-operator demo`: the whole loop on embedded defaults. It starts the Graph emulator and the test
//! Kubernetes API server in-process, installs the CRDs, applies the examples, runs the controller until
//! every object is Ready, and prints what happened. No cluster and no tenant are needed.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::Reporter;
use serde_json::Value;
use wufb_graph_emulator::{Emulator, EmulatorConfig};
use wufb_test_apiserver::{Options, TestApiServer};

use super::manifests::{self, Document};
use crate::crd::{DeviceGroup, ExpeditedDeployment};
use crate::graph::{
    Credential, CredentialKind, Endpoints, GraphClient, GraphConfig, GraphMetrics, SecretString,
    TransportConfig,
};
use crate::reconcile::{ReconcileMetrics, Settings};
use crate::runtime::{self as controller, Scope};

pub use super::demo_args::DemoArgs;

fn ready(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == crate::reconcile::reasons::READY)
}

struct Row {
    kind: &'static str,
    name: String,
    ready: bool,
    reason: String,
    message: String,
    detail: String,
}

async fn rows(eds: &Api<ExpeditedDeployment>, dgs: &Api<DeviceGroup>) -> anyhow::Result<Vec<Row>> {
    let mut out = Vec::new();
    for g in dgs.list(&Default::default()).await? {
        let s = g.status.clone().unwrap_or_default();
        let r = ready(&s.conditions);
        let current = s.observed_generation == g.metadata.generation;
        out.push(Row {
            kind: "DeviceGroup",
            name: g.name_any(),
            ready: current && r.is_some_and(|c| c.status == "True"),
            reason: r.map_or("Pending".into(), |c| c.reason.clone()),
            message: r.map(|c| c.message.clone()).unwrap_or_default(),
            detail: format!(
                "group {} with {} devices",
                s.group_id.unwrap_or_else(|| "-".into()),
                s.member_count.unwrap_or(0)
            ),
        });
    }
    for d in eds.list(&Default::default()).await? {
        let s = d.status.clone().unwrap_or_default();
        let r = ready(&s.conditions);
        let current = s.observed_generation == d.metadata.generation;
        let a = s.audience.clone().unwrap_or_default();
        out.push(Row {
            kind: "ExpeditedDeployment",
            name: d.name_any(),
            ready: current && r.is_some_and(|c| c.status == "True"),
            reason: r.map_or("Pending".into(), |c| c.reason.clone()),
            message: r.map(|c| c.message.clone()).unwrap_or_default(),
            detail: format!(
                "deployment {} {} ({}), {} members, {} exclusions, {} devices{}",
                s.deployment_id.unwrap_or_else(|| "-".into()),
                s.graph_state.unwrap_or_else(|| "-".into()),
                s.state_reasons.join(","),
                a.members,
                a.exclusions,
                a.devices,
                s.resolved_content
                    .map(|c| format!("; content {}", c.describe()))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(out)
}

async fn apply_documents(docs: &[Document], client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let params = PatchParams::apply("wufb-demo").force();
    // Namespaces first, as on a real cluster (kubectl reports a missing namespace, not a missing object).
    let mut namespaces: Vec<&str> = docs.iter().map(|d| d.namespace().unwrap_or(namespace)).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    for ns in namespaces {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .patch(ns, &params, &Patch::Apply(&object))
            .await?;
    }
    for doc in docs {
        let ns = doc.namespace().unwrap_or(namespace);
        let name = doc.name();
        match doc.kind() {
            "DeviceGroup" => {
                Api::<DeviceGroup>::namespaced(client.clone(), ns)
                    .patch(name, &params, &Patch::Apply(&doc.value))
                    .await?;
            }
            "ExpeditedDeployment" => {
                Api::<ExpeditedDeployment>::namespaced(client.clone(), ns)
                    .patch(name, &params, &Patch::Apply(&doc.value))
                    .await?;
            }
            other => {
                println!(
                    "  skipped {}: kind {other} is not a wufb.dev kind",
                    doc.location()
                );
                continue;
            }
        }
        println!("  applied {} {ns}/{name}", doc.kind());
    }
    Ok(())
}

/// Runs the demo; returns whether everything converged.
/// Follows the rollouts' progress on the simulated fleet (simulated hours pass in seconds): one line
/// per deployment whenever its figures change, until every reporting device of the offering ones is
/// done or `limit` passes.
async fn progress(eds: &Api<ExpeditedDeployment>, limit: Duration) -> anyhow::Result<()> {
    println!();
    println!("Rollout progress (devices up to date / targeted; the fleet's hours pass in seconds):");
    let until = Instant::now() + limit;
    let mut shown = std::collections::BTreeMap::new();
    loop {
        let mut settled = true;
        for ed in eds.list(&Default::default()).await?.items {
            let name = ed.metadata.name.clone().unwrap_or_default();
            let status = ed.status.clone().unwrap_or_default();
            let paused = status.graph_state.as_deref() == Some("paused");
            let Some(p) = status.progress else {
                settled = false;
                continue;
            };
            if !paused && p.pending > 0 {
                settled = false;
            }
            let line = format!(
                "  {name:<28} {:>9} installed, {} pending, {} failed, {} not reporting{}",
                p.installed.clone().unwrap_or_default(),
                p.pending,
                p.failed,
                p.not_reporting,
                if paused {
                    "  (paused; devices other rollouts reach may still update)"
                } else {
                    ""
                }
            );
            if shown.get(&name) != Some(&line) {
                println!("{line}");
                shown.insert(name, line);
            }
        }
        if settled || Instant::now() > until {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The canary example's pilot devices the demo fails, as a bad update would.
const CANARY_FAILED: [&str; 2] = [
    "9e8d7c6b-5a4f-4e3d-8c2b-000000000101",
    "9e8d7c6b-5a4f-4e3d-8c2b-000000000102",
];

/// One redrawn line per wave rollout: its wave, phase and figures, until the staged rollout is complete
/// and the canary halted, or `limit` passes. Returns whether both ended as they should.
async fn waves(eds: &Api<ExpeditedDeployment>, names: &[String], limit: Duration) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let until = Instant::now() + limit;
    let mut shown: Vec<String> = Vec::new();
    let started = Instant::now();
    loop {
        let mut lines = Vec::new();
        let mut done = 0;
        for name in names {
            let ed = eds.get(name).await?;
            let current = ed.status.as_ref().and_then(|s| s.observed_generation) == ed.metadata.generation;
            let status = ed.status.unwrap_or_default();
            let is_ready = current && ready(&status.conditions).is_some_and(|c| c.status == "True");
            let Some(r) = status.rollout.as_ref() else {
                lines.push(format!("  {name:<16} waiting for the operator"));
                continue;
            };
            let total = r.waves.len();
            let sent = r.waves.iter().filter(|w| w.promoted_time.is_some()).count();
            let p = status.progress.clone().unwrap_or_default();
            // The canary ends halted; the staged rollout complete and Ready (its last wave verified).
            if (name == "canary" && r.phase == crate::crd::RolloutPhase::Halted)
                || (r.phase == crate::crd::RolloutPhase::Complete && is_ready)
            {
                done += 1;
            }
            let mut message = match &r.halt {
                Some(h) => format!(
                    "halted: {} of {} devices failed, above the {}% limit; deployment paused",
                    h.failed, h.devices, h.limit_percent
                ),
                None => r.message.clone().unwrap_or_default(),
            };
            if let Some(cut) = message.char_indices().nth(64).map(|(i, _)| i) {
                // One line per rollout, short enough not to wrap (a wrapped line breaks the redraw).
                message.truncate(cut);
                message.push('…');
            }
            lines.push(format!(
                "  {name:<16} wave {sent}/{total} {:<8} {:<9} installed {:>5}  {} failed  {}",
                r.current_wave.clone().unwrap_or_default(),
                r.phase,
                p.installed.clone().unwrap_or_else(|| "-".into()),
                p.failed,
                message
            ));
        }
        let ended = done == names.len();
        if lines != shown {
            if tty && !shown.is_empty() {
                // Redraw in place: up over the previous lines, each cleared before it is written.
                print!("\x1b[{}A", shown.len());
                for l in &lines {
                    println!("\x1b[2K{l}");
                }
            } else {
                println!("  [{:>5.1}s]", started.elapsed().as_secs_f64());
                for l in &lines {
                    println!("{l}");
                }
            }
            let _ = std::io::stdout().flush();
            shown = lines;
        }
        if ended {
            return Ok(true);
        }
        if Instant::now() > until {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<bool> {
    crate::telemetry::init_logging_with(crate::telemetry::LogFormat::Text, "warn");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut out = std::io::stdout();
    println!(
        "wufb-operator demo: Graph emulator, test Kubernetes API server and the controller, all in this process"
    );
    let started = Instant::now();

    let emulator = Emulator::start(
        EmulatorConfig {
            faults: wufb_graph_emulator::FaultConfig {
                latency_ms: args.graph_latency_ms,
                ..Default::default()
            },
            // A fleet whose hours pass in seconds, so the rollout's progress shows within the demo.
            fleet: wufb_graph_emulator::fleet::FleetConfig {
                time_scale: 7200.0,
                install_hours: 3.0,
                hotpatch_rate: 0.3,
                failure_rate: 0.05,
                silent_rate: 0.05,
                seed: 1,
            },
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .context("failed to start the Graph emulator")?;
    let crds = crate::crd::all()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let apiserver = TestApiServer::start(Options {
        crds,
        ..Default::default()
    })
    .await
    .context("failed to start the test API server")?;
    let dir = std::env::temp_dir().join(format!("wufb-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, apiserver.kubeconfig(&args.namespace))?;
    println!(
        "Graph emulator:  {} (tenant {})",
        emulator.graph_url(),
        wufb_graph_emulator::config::DEFAULT_TENANT_ID
    );
    println!(
        "Kubernetes API:  {} (test API server, CRDs installed)",
        apiserver.url()
    );

    let mut config = kube::Config::new(apiserver.url().parse()?);
    config.default_namespace = args.namespace.clone();
    let client = kube::Client::try_from(config)?;
    let credential = demo_credential();
    let graph = Arc::new(GraphClient::new(
        GraphConfig {
            endpoints: Endpoints::custom(&emulator.base_url(), &emulator.graph_url())?,
            credential: Some(credential),
            transport: TransportConfig::default(),
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
        },
        GraphMetrics::default(),
    )?);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(
        client.clone(),
        graph,
        Settings {
            resync: Duration::from_secs(600),
            progress_interval: Duration::from_secs(1),
            ..Default::default()
        },
        ReconcileMetrics::default(),
        Reporter {
            controller: "wufb-operator".into(),
            instance: Some("demo".into()),
        },
        Scope::default(),
        async move {
            let _ = stopped.await;
        },
    ));

    let docs = match &args.examples {
        Some(path) => {
            let (docs, errors) = manifests::load(std::slice::from_ref(path));
            if let Some(e) = errors.first() {
                anyhow::bail!("cannot read the examples: {e}");
            }
            docs
        }
        None => manifests::embedded_examples(),
    };
    println!("Applying {} objects to namespace {}:", docs.len(), args.namespace);
    apply_documents(&docs, &client, &args.namespace).await?;

    let eds: Api<ExpeditedDeployment> = Api::namespaced(client.clone(), &args.namespace);
    let dgs: Api<DeviceGroup> = Api::namespaced(client.clone(), &args.namespace);
    println!("Waiting for the controller to converge:");
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut last = String::new();
    let converged = loop {
        let current = rows(&eds, &dgs).await?;
        let done = current.iter().filter(|r| r.ready).count();
        let line = format!(
            "  [{:>5.1}s] {done}/{} Ready  {}",
            started.elapsed().as_secs_f64(),
            current.len(),
            current
                .iter()
                .filter(|r| !r.ready)
                .map(|r| format!("{}={}", r.name, r.reason))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if line.split_once(']').map(|x| x.1) != last.split_once(']').map(|x| x.1) {
            println!("{line}");
            last = line;
        }
        if !current.is_empty() && done == current.len() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    if converged {
        progress(&eds, Duration::from_secs(args.timeout_secs.min(20))).await?;
    }
    // The field check, once the examples converged (before the wave rollouts, whose canary halts on
    // purpose and would show as Stalled).
    let checked = if converged {
        check(&emulator, &kubeconfig, &args.namespace).await?
    } else {
        true
    };
    // Health-gated waves, on the built-in examples only.
    let mut waves_ok = true;
    if converged && args.examples.is_none() {
        println!();
        println!(
            "Health-gated waves (examples/waves/): staged-rollout sends its pilot at once and its broad wave when the pilot is healthy; canary's pilot goes wrong (the demo marks {} of its 4 pilot devices failed through the emulator's admin API) and the rollout halts itself:",
            CANARY_FAILED.len()
        );
        for id in CANARY_FAILED {
            emulator.set_device(id, None, Some(Some("invalidAzureADJoin".into())));
        }
        let docs = manifests::embedded_wave_examples();
        apply_documents(&docs, &client, &args.namespace).await?;
        let names: Vec<String> = docs.iter().map(|d| d.name().to_string()).collect();
        waves_ok = waves(&eds, &names, Duration::from_secs(args.timeout_secs.min(40))).await?;
        if !waves_ok {
            println!("demo: the wave rollouts did not end as expected");
        }
    }

    println!();
    println!("Objects:");
    for r in rows(&eds, &dgs).await? {
        println!(
            "  {:<20} {:<20} {:<6} {:<14} {}",
            r.kind,
            r.name,
            if r.ready { "True" } else { "False" },
            r.reason,
            r.detail
        );
        if !r.ready && !r.message.is_empty() {
            println!("      {}", r.message);
        }
    }
    print_graph(&emulator);
    let _ = out.flush();

    if !converged {
        println!("\ndemo: not converged after {}s", args.timeout_secs);
    } else {
        println!("\ndemo: converged in {:.1}s", started.elapsed().as_secs_f64());
    }
    if args.keep_running {
        println!("kubeconfig: {}", kubeconfig.display());
        println!("graph: {}", emulator.graph_url());
        println!(
            "Try: kubectl --kubeconfig {} get expd,dg -n {}   (Ctrl-C to stop)",
            kubeconfig.display(),
            args.namespace
        );
        let _ = out.flush();
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), controller).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(converged && waves_ok && checked)
}

/// `wufb-operator check` against the demo's own cluster and tenant: every check ok, or skipped with
/// its reason (the controller runs in this process, without a Lease or service account).
async fn check(emulator: &Emulator, kubeconfig: &std::path::Path, namespace: &str) -> anyhow::Result<bool> {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Check {
        #[command(flatten)]
        args: crate::cli::check::CheckArgs,
    }
    let parsed = Check::try_parse_from([
        "check",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--namespace",
        namespace,
        "--graph-url",
        &emulator.graph_url(),
        "--authority-host",
        &emulator.base_url(),
    ])?;
    let graph = GraphClient::new(
        GraphConfig {
            endpoints: Endpoints::custom(&emulator.base_url(), &emulator.graph_url())?,
            credential: Some(demo_credential()),
            transport: TransportConfig::default(),
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
        },
        GraphMetrics::default(),
    )?;
    let report = crate::cli::check::report_with(
        &parsed.args,
        crate::cli::check::Context {
            graph: Ok(graph),
            in_process: true,
        },
    )
    .await;
    println!("\nwufb-operator check against the demo's cluster and tenant:");
    print!("{}", report.render(crate::cli::check::Format::Text));
    let ok = report.exit_code() == crate::cli::check::EXIT_OK;
    if !ok {
        println!("demo: check found something to fix");
    }
    Ok(ok)
}

fn demo_credential() -> Credential {
    Credential {
        tenant_id: wufb_graph_emulator::config::DEFAULT_TENANT_ID.into(),
        client_id: wufb_graph_emulator::config::DEFAULT_CLIENT_ID.into(),
        kind: CredentialKind::ClientSecret(SecretString::new(
            wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        )),
    }
}

fn print_graph(emulator: &Emulator) {
    let counts = wufb_graph_emulator::state::lock(&emulator.shared.log)
        .counts
        .clone();
    let mut reads = 0;
    let mut writes = 0;
    println!("\nGraph calls (operation: answers by status):");
    for (op, by_status) in &counts {
        let total: u64 = by_status.values().sum();
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{n}x{s}")).collect();
        println!("  {op:<34} {total:>4}  ({})", statuses.join(", "));
        if op == "token" {
            continue;
        }
        if op.ends_with(".list") || op.ends_with(".get") || op.ends_with(".count") {
            reads += total;
        } else {
            writes += total;
        }
    }
    println!(
        "  {:<34} {:>4}  ({writes} writes, {reads} reads)",
        "total Graph calls",
        writes + reads
    );
    let store = wufb_graph_emulator::state::lock(&emulator.shared.store);
    let now = chrono::Utc::now();
    println!("\nGraph state (deployments in the tenant):");
    for d in store.deployments.values() {
        let rendered = store.render_deployment(d, now);
        let audience = store.audiences.get(&d.audience_id);
        let content = match d.content.pointer("/catalogEntry/id").and_then(Value::as_str) {
            Some(id) => format!("catalog entry {}…", &id[..12.min(id.len())]),
            None => format!(
                "release {}",
                rendered
                    .pointer("/content/releaseDate")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
        };
        println!(
            "  {}  {:<9} {:<30} members {:>2}  exclusions {:>2}",
            d.id,
            rendered
                .pointer("/state/effectiveValue")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            content,
            audience.map_or(0, |a| a.members.len()),
            audience.map_or(0, |a| a.exclusions.len())
        );
    }
    let groups: BTreeMap<&String, usize> = store
        .assets
        .values()
        .filter(|a| a.kind == wufb_graph_emulator::store::AssetKind::Group)
        .map(|a| (&a.id, a.members.len()))
        .collect();
    for (id, n) in groups {
        println!("  group {id}  {n} devices");
    }
}
