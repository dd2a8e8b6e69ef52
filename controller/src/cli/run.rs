//! `wufb-operator run`: the controller process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;

use crate::graph::{Credential, DEFAULT_BATCH_SIZE, GraphClient, GraphConfig, GraphMetrics, TransportConfig};
use crate::leader::{Elector, LeaseConfig};
use crate::reconcile::settings::ConnectionDefaults;
use crate::reconcile::{ReconcileMetrics, Settings};
use crate::runtime::{self as controller, Scope};
use crate::server::{self, Probes};
use crate::telemetry::{self, LogFormat};

use super::flags::{PlannerArgs, bounded};

/// Flags of `run`; each can also come from the environment.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub graph: super::GraphArgs,
    /// Extra CA certificates (PEM) to trust for Graph and sign-in.
    #[arg(long, env = "WUFB_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Read Graph credentials from this Secret in the operator's namespace (keys tenantId, clientId and one
    /// of clientSecret, clientCertificate, federatedTokenFile). Without it, AZURE_* environment variables.
    #[arg(long, env = "WUFB_CREDENTIALS_SECRET")]
    pub credentials_secret: Option<String>,
    /// The operator's namespace (for the credentials Secret and the leader Lease).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch only these namespaces (comma-separated); all namespaces when unset.
    #[arg(long, env = "WUFB_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// The settings the planner decides by, shared with `plan`.
    #[command(flatten)]
    pub planner: PlannerArgs,
    /// Resync interval of converged objects (jittered by up to 10%).
    #[arg(long, env = "WUFB_RESYNC_INTERVAL", default_value = "10m", value_parser = bounded::resync)]
    pub resync_interval: Duration,
    /// How often each deployment's rollout progress (devices up to date, pending, failed, not
    /// reporting) is read from Graph's device signals; the tenant-wide reads are shared by all objects
    /// within it. Per object: the wufb.dev/progress-interval annotation.
    #[arg(long, env = "WUFB_PROGRESS_INTERVAL", default_value = "5m", value_parser = bounded::progress)]
    pub progress_interval: Duration,
    /// How often a deployment with `refresh: OnNewRelease` reads the catalog for a newer matching
    /// release. Per object: the wufb.dev/catalog-poll-interval annotation.
    #[arg(long, env = "WUFB_CATALOG_POLL_INTERVAL", default_value = "15m", value_parser = bounded::catalog_poll)]
    pub catalog_poll_interval: Duration,
    /// Sustained Graph requests per second for the tenant: 0 (unlimited), or 0.01 to 10,000.
    #[arg(long, env = "WUFB_GRAPH_RATE_LIMIT", default_value_t = 50.0, value_parser = bounded::rate)]
    pub graph_rate_limit: f64,
    /// Graph requests allowed at once after an idle period (1 to 10,000).
    #[arg(long, env = "WUFB_GRAPH_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub graph_burst: u32,
    /// Graph requests in flight at once (1 to 1,024).
    #[arg(long, env = "WUFB_GRAPH_CONCURRENCY", default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub graph_concurrency: usize,
    /// JSON batching: `auto` carries up to 20 reads and audience writes in one round trip when more
    /// requests want to go than --graph-concurrency allows, once a probe shows the tenant takes
    /// `$batch` for the deployment service (not documented either way); `off` sends one HTTP request
    /// per Graph request. Creates are never batched.
    #[arg(long, env = "WUFB_GRAPH_BATCH", value_enum, default_value_t = crate::graph::transport::BatchMode::Off)]
    pub graph_batch: crate::graph::transport::BatchMode,
    /// Reconciles working at once per kind (bounds memory; above the Graph concurrency they only wait).
    /// Passes acting on a new or changed spec are admitted before verification and resync passes.
    #[arg(long, env = "WUFB_RECONCILE_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub reconcile_concurrency: u16,
    /// Assets per audience or group write (1 to 10,000).
    #[arg(long, env = "WUFB_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub batch_size: usize,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "WUFB_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Elect a leader through a Lease; standby replicas never write.
    #[arg(long, env = "WUFB_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "WUFB_LEASE_NAME", default_value = "wufb-operator")]
    pub lease_name: String,
    /// How long a Lease not renewed stays the holder's (client-go: 15 s).
    #[arg(long, env = "WUFB_LEASE_DURATION", default_value = "15s", value_parser = bounded::up_to_an_hour)]
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops writing (client-go: 10 s); less than
    /// --lease-duration.
    #[arg(long, env = "WUFB_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = bounded::up_to_an_hour)]
    pub lease_renew_deadline: Duration,
    /// How often the leader renews and a standby retries (client-go: 2 s); less than
    /// --lease-renew-deadline.
    #[arg(long, env = "WUFB_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = bounded::up_to_an_hour)]
    pub lease_retry_period: Duration,
    /// This replica's identity in the Lease (default: the pod name, else host and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// On SIGTERM or SIGINT: how long passes already working may take to finish before they are
    /// cancelled. The Lease is then released and the process exits 0. Keep it well below the pod's
    /// terminationGracePeriodSeconds (the chart sets 30 s).
    #[arg(long, env = "WUFB_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = bounded::up_to_an_hour)]
    pub shutdown_timeout: Duration,
    /// Log format.
    #[arg(long, env = "WUFB_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Serve GraphConnection and ClusterGraphConnection objects, so that objects reach other tenants
    /// through spec.connectionRef. Off: such objects stall, and the operator reads no Secrets but its
    /// own credentials.
    #[arg(long, env = "WUFB_CONNECTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub connections: bool,
    /// Let namespaced GraphConnections sign in with the operator's service-account token (workload
    /// identity). Off by default: anyone who can create a GraphConnection could then act as any app
    /// that trusts the operator; ClusterGraphConnections, which only cluster admins create, may always.
    #[arg(long, env = "WUFB_NAMESPACED_WORKLOAD_IDENTITY")]
    pub namespaced_workload_identity: bool,
    /// The operator's service-account token file that workload identity connections sign in with
    /// (default: AZURE_FEDERATED_TOKEN_FILE, as the Azure workload identity webhook sets it).
    #[arg(long, env = "WUFB_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// Split the tenants between this many operator instances (each with --shard, and a Lease of its
    /// own): a connection belongs to one shard, objects without a connection to shard 0, and only the
    /// shard's leader writes them.
    #[arg(long, env = "WUFB_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// This instance's shard, from 0 to --shards minus 1.
    #[arg(long, env = "WUFB_SHARD", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..1024))]
    pub shard: u32,
    /// How often each connection is looked at again: its Secret read (a rotated credential is used
    /// from then on) and, every 10 minutes, a sign-in and a Graph read.
    #[arg(long, env = "WUFB_CONNECTION_CHECK_INTERVAL", default_value = "60s", value_parser = bounded::up_to_a_day)]
    pub connection_check_interval: Duration,
    /// Parse and check the configuration (flags, environment, credential settings, addresses), print it
    /// with the files it would read, and exit 0 without connecting to Kubernetes or Graph.
    #[arg(long)]
    pub check_config: bool,
}

/// What `run --check-config` found: the settings the process would start with and the files it reads.
/// Holds no secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedConfig {
    pub lines: Vec<String>,
    /// Files the process reads at start or later (CA bundle, certificate, federated token).
    pub files: Vec<PathBuf>,
}

/// Checks the configuration the way `run` uses it, without connecting: the endpoints, the credential
/// source (environment credentials complete; a certificate file readable), the metrics address and the
/// limits. `env` stands for the process environment.
pub fn check_config(args: &RunArgs, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<CheckedConfig> {
    let endpoints = args.graph.endpoints()?;
    let mut files = Vec::new();
    let mut lines = vec![
        format!("graph: {}", endpoints.graph_base),
        format!("authority: {}", endpoints.authority_host),
    ];
    if let Some(ca) = &args.ca_file {
        files.push(ca.clone());
        lines.push(format!("extra CA certificates: {}", ca.display()));
    }
    let namespace = args
        .namespace
        .as_deref()
        .unwrap_or("(the kubeconfig context's namespace)");
    let credentials = if args.graph.graph_no_auth {
        "none (--graph-no-auth: only for an emulator started with --no-auth)".to_string()
    } else if let Some(name) = &args.credentials_secret {
        anyhow::ensure!(
            !name.trim().is_empty(),
            "--credentials-secret is empty; name the Secret or leave the flag out to use AZURE_* variables"
        );
        format!("Secret {namespace}/{name} (read at start)")
    } else {
        let credential = Credential::from_env(&env).context("credentials from the environment")?;
        match &credential.kind {
            crate::graph::CredentialKind::ClientSecret(_) => {
                format!(
                    "client secret for app {} in tenant {}",
                    credential.client_id, credential.tenant_id
                )
            }
            crate::graph::CredentialKind::Certificate { thumbprint_s256, .. } => {
                if let Some(path) = env("AZURE_CLIENT_CERTIFICATE_PATH") {
                    files.push(path.into());
                }
                format!(
                    "certificate (SHA-256 thumbprint {thumbprint_s256}) for app {} in tenant {}",
                    credential.client_id, credential.tenant_id
                )
            }
            crate::graph::CredentialKind::WorkloadIdentity { token_file } => {
                files.push(token_file.clone());
                format!(
                    "workload identity federation for app {} in tenant {} (token file {}, read for every token request)",
                    credential.client_id,
                    credential.tenant_id,
                    token_file.display()
                )
            }
        }
    };
    lines.push(format!("credentials: {credentials}"));
    let metrics: std::net::SocketAddr = args.metrics_addr.parse().with_context(|| {
        format!(
            "--metrics-addr '{}' is not an address such as 0.0.0.0:8080",
            args.metrics_addr
        )
    })?;
    lines.push(format!("metrics, health and readiness: {metrics}"));
    lines.push(if args.watch_namespaces.is_empty() {
        "watching: all namespaces".to_string()
    } else {
        anyhow::ensure!(
            args.watch_namespaces.iter().all(|n| !n.trim().is_empty()),
            "--watch-namespaces has an empty name; list namespaces separated by commas"
        );
        format!("watching: namespaces {}", args.watch_namespaces.join(","))
    });
    lines.push(if args.connections {
        format!(
            "connections: on (GraphConnection, ClusterGraphConnection; workload identity for namespaced ones {})",
            if args.namespaced_workload_identity { "allowed" } else { "refused" }
        )
    } else {
        "connections: off (objects that name one stall)".to_string()
    });
    anyhow::ensure!(
        args.shard < args.shards,
        "--shard {} is not below --shards {}; shards are numbered from 0",
        args.shard,
        args.shards
    );
    if args.shards > 1 {
        lines.push(format!(
            "shard {} of {} (connections split by hash; objects without one on shard 0)",
            args.shard, args.shards
        ));
    }
    lines.push(if args.leader_election {
        format!("leader election: Lease {namespace}/{}", lease_name(args))
    } else {
        "leader election: off (this replica writes; run one replica only)".to_string()
    });
    anyhow::ensure!(
        args.graph_rate_limit.is_finite() && args.graph_rate_limit >= 0.0,
        "--graph-rate-limit must be 0 (unlimited) or a positive number of requests per second"
    );
    anyhow::ensure!(
        args.graph_concurrency > 0,
        "--graph-concurrency must be at least 1"
    );
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    lease_timings(args)?;
    lines.push(format!(
        "graph budget: {} requests/s, burst {}, {} at once, {} assets per write",
        args.graph_rate_limit, args.graph_burst, args.graph_concurrency, args.batch_size
    ));
    lines.push(format!(
        "resync {}s, progress every {}s, shutdown timeout {}s, reconciles at once {}",
        args.resync_interval.as_secs(),
        args.progress_interval.as_secs(),
        args.shutdown_timeout.as_secs(),
        args.reconcile_concurrency
    ));
    lines.push(format!(
        "leader election {}: lease {}s, renew deadline {}s, retry every {}s",
        if args.leader_election { "on" } else { "off" },
        args.lease_duration.as_secs(),
        args.lease_renew_deadline.as_secs(),
        args.lease_retry_period.as_secs()
    ));
    for f in &files {
        lines.push(format!("reads file: {}", f.display()));
    }
    Ok(CheckedConfig { lines, files })
}

async fn credential(
    args: &RunArgs,
    client: &kube::Client,
    namespace: &str,
) -> anyhow::Result<Option<Credential>> {
    if args.graph.graph_no_auth {
        return Ok(None);
    }
    if let Some(name) = &args.credentials_secret {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get(name)
            .await
            .with_context(|| format!("failed to read the credentials Secret {namespace}/{name}"))?;
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        return Ok(Some(Credential::from_secret_data(&data)?));
    }
    Ok(Some(Credential::from_env(|k| std::env::var(k).ok())?))
}

/// The Lease this instance leads through: one per shard when the tenants are split.
/// The leader-election timings, checked: retry period < renew deadline < lease duration (as client-go
/// requires), so the leader stops before anyone may take over.
fn lease_timings(args: &RunArgs) -> anyhow::Result<(Duration, Duration, Duration)> {
    let (d, r, p) = (
        args.lease_duration,
        args.lease_renew_deadline,
        args.lease_retry_period,
    );
    anyhow::ensure!(
        r < d,
        "--lease-renew-deadline ({}s) must be less than --lease-duration ({}s): the leader must stop before another replica may take the Lease",
        r.as_secs(),
        d.as_secs()
    );
    anyhow::ensure!(
        p < r,
        "--lease-retry-period ({}s) must be less than --lease-renew-deadline ({}s): the leader must get to renew before its deadline",
        p.as_secs(),
        r.as_secs()
    );
    Ok((d, r, p))
}

fn lease_name(args: &RunArgs) -> String {
    if args.shards > 1 {
        format!("{}-shard-{}", args.lease_name, args.shard)
    } else {
        args.lease_name.clone()
    }
}

async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the controller until SIGTERM (exit 0) or a lost lease (an error, so the pod restarts as standby).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.check_config {
        let checked = check_config(&args, |k| std::env::var(k).ok())?;
        for line in &checked.lines {
            println!("{line}");
        }
        println!("configuration ok");
        return Ok(());
    }
    anyhow::ensure!(
        args.shard < args.shards,
        "--shard {} is not below --shards {}; shards are numbered from 0",
        args.shard,
        args.shards
    );
    telemetry::init_logging(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("failed to build a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "wufb-operator".into()),
            std::process::id()
        )
    });

    let mut registry = Registry::default();
    let graph_metrics = GraphMetrics::register(&mut registry);
    let reconcile_metrics = ReconcileMetrics::register(&mut registry);
    let probes = Probes::new(registry);

    let credential = credential(&args, &client, &namespace).await?;
    reconcile_metrics
        .state
        .set_default_certificate_expiry(credential.as_ref().and_then(Credential::certificate_expiry));
    let transport = TransportConfig {
        concurrency: args.graph_concurrency.max(1),
        rate_per_sec: args.graph_rate_limit.max(0.0),
        burst: args.graph_burst,
        ca_file: args.ca_file.clone(),
        batch: args.graph_batch,
        ..Default::default()
    };
    let connections = ConnectionDefaults {
        enabled: args.connections,
        namespaced_workload_identity: args.namespaced_workload_identity,
        federated_token_file: args
            .federated_token_file
            .clone()
            .or_else(|| std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from)),
        check_interval: args.connection_check_interval,
        operator_namespace: namespace.clone(),
        transport: transport.clone(),
        batch_size: args.batch_size.max(1),
        metrics: graph_metrics.clone(),
    };
    let graph = Arc::new(GraphClient::new(
        GraphConfig {
            endpoints: args.graph.endpoints()?,
            credential,
            transport,
            batch_size: args.batch_size.max(1),
        },
        graph_metrics,
    )?);
    // What the service does where the reference is silent, for the operator-wide credentials: logged a
    // line each and exported as wufb_graph_service_behaviour, as `check` reports it (connections report
    // theirs at each check, in their status too).
    tokio::spawn({
        let graph = graph.clone();
        async move {
            let found = graph.service_behaviours().await;
            crate::reconcile::connection::log_behaviours(
                crate::graph::metrics::DEFAULT_CONNECTION,
                &[],
                &found,
            );
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    tokio::spawn(async move {
        terminate().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .with_context(|| format!("failed to bind the metrics address {}", args.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    tokio::spawn(server::serve(listener, probes.clone(), stopped(stop_rx.clone())));
    probes.ready.store(true, Ordering::Relaxed);

    let settings = Settings {
        reconcile_concurrency: args.reconcile_concurrency.max(1),
        resync: args.resync_interval,
        progress_interval: args.progress_interval,
        catalog_poll: args.catalog_poll_interval,
        connections,
        shard: crate::connections::Shard {
            count: args.shards,
            index: args.shard,
        },
        ..args.planner.settings()
    };
    let reporter = Reporter {
        controller: "wufb-operator".into(),
        instance: Some(identity.clone()),
    };
    let scope = Scope {
        namespaces: args.watch_namespaces.clone(),
    };
    let term = Term {
        client: &client,
        graph: &graph,
        settings: &settings,
        metrics: &reconcile_metrics,
        reporter: &reporter,
        scope: &scope,
        shutdown_timeout: args.shutdown_timeout,
    };

    if !args.leader_election {
        probes.leader.store(true, Ordering::Relaxed);
        let ended = term.lead(stopped(stop_rx.clone()), std::future::pending()).await;
        probes.leader.store(false, Ordering::Relaxed);
        tracing::info!(?ended, "stopped");
        return Ok(());
    }

    let (duration, renew_deadline, retry_period) = lease_timings(&args)?;
    let lease = LeaseConfig {
        duration,
        renew_deadline,
        retry_period,
        ..LeaseConfig::new(&namespace, &lease_name(&args), &identity)
    };
    let mut elector = Elector::new(&client, &lease);
    loop {
        // Standby: ready, not leading, waiting for the lease (or for the stop).
        probes.ready.store(true, Ordering::Relaxed);
        tokio::select! {
            _ = elector.acquire() => {}
            _ = stopped(stop_rx.clone()) => {
                tracing::info!("stopped while standing by");
                return Ok(());
            }
        }
        probes.leader.store(true, Ordering::Relaxed);
        tracing::info!(identity = %identity, graph = %graph.endpoints().graph_base, "starting controllers");
        // `hold` renews the lease and returns only when it is lost.
        let ended = term.lead(stopped(stop_rx.clone()), elector.hold()).await;
        probes.leader.store(false, Ordering::Relaxed);
        match ended {
            Ended::Stopped { drained } => {
                probes.ready.store(false, Ordering::Relaxed);
                let released = elector.release().await;
                tracing::info!(drained, released, "stopped");
                return Ok(());
            }
            Ended::LeaseLost => {
                // Every write stopped with the controllers; stand by again (no restart needed).
                probes.ready.store(false, Ordering::Relaxed);
                tracing::warn!("leadership lost: every write stopped; standing by");
            }
        }
    }
}

/// How a leadership term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Told to stop; `drained` when every admitted pass finished within the shutdown timeout.
    Stopped { drained: bool },
    /// The lease was lost: the controllers were dropped at once, mid-pass if need be.
    LeaseLost,
}

/// What one leadership term needs.
struct Term<'a> {
    client: &'a kube::Client,
    graph: &'a Arc<GraphClient>,
    settings: &'a Settings,
    metrics: &'a ReconcileMetrics,
    reporter: &'a Reporter,
    scope: &'a Scope,
    shutdown_timeout: Duration,
}

impl Term<'_> {
    /// Runs the controllers until `stop` (then lets admitted passes finish, for at most the shutdown
    /// timeout) or `lost` (then drops them at once: a replica that lost the lease must not write).
    async fn lead(&self, stop: impl Future<Output = ()>, lost: impl Future<Output = ()>) -> Ended {
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let controllers = controller::run(
            self.client.clone(),
            self.graph.clone(),
            self.settings.clone(),
            self.metrics.clone(),
            self.reporter.clone(),
            self.scope.clone(),
            async move {
                let _ = drain_rx.await;
            },
        );
        tokio::pin!(controllers, lost);
        tokio::select! {
            () = &mut controllers => return Ended::Stopped { drained: true },
            () = &mut lost => return Ended::LeaseLost,
            () = stop => {}
        }
        let _ = drain_tx.send(());
        tokio::select! {
            () = &mut controllers => Ended::Stopped { drained: true },
            () = &mut lost => Ended::LeaseLost,
            () = tokio::time::sleep(self.shutdown_timeout) => {
                tracing::warn!(timeout_secs = self.shutdown_timeout.as_secs_f64(), "passes still running at the shutdown timeout were cancelled");
                Ended::Stopped { drained: false }
            }
        }
    }
}
