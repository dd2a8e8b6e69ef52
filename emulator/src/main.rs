//! `wufb-graph-emulator`: serves the Graph WUfB deployment service API and token endpoint on loopback.
//! The first line on stdout is `listening on http://ADDR`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wufb_graph_emulator::config::{self, READ, READ_WRITE};
use wufb_graph_emulator::{AppRegistration, Emulator, EmulatorConfig, FaultConfig, RetryAfterForm};

fn probability(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a probability between 0 and 1"))
    }
}

fn device_error(s: &str) -> Result<(String, String), String> {
    let (id, reason) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not ID=REASON"))?;
    const REASONS: [&str; 4] = [
        "invalidGlobalDeviceId",
        "invalidAzureADDeviceId",
        "missingTrustType",
        "invalidAzureADJoin",
    ];
    if !REASONS.contains(&reason) {
        return Err(format!(
            "unknown registration error '{reason}' (use one of {})",
            REASONS.join(", ")
        ));
    }
    Ok((id.to_string(), reason.to_string()))
}

fn app(s: &str) -> Result<AppRegistration, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (tenant, client, secret, access) = match parts.as_slice() {
        [t, c, s] => (*t, *c, *s, "readwrite"),
        [t, c, s, a] => (*t, *c, *s, *a),
        _ => return Err(format!("'{s}' is not TENANT:CLIENT_ID:SECRET[:read|readwrite]")),
    };
    let role = match access {
        "read" => READ,
        "readwrite" => READ_WRITE,
        other => return Err(format!("unknown access '{other}' (use read or readwrite)")),
    };
    Ok(AppRegistration {
        tenant_id: tenant.into(),
        client_id: client.into(),
        client_secret: Some(secret.into()),
        certificate_pem: None,
        federated: Vec::new(),
        roles: vec![role.into()],
    })
}

/// Where the emulator answers as the current Graph reference describes, and which older behaviour stays.
const STRICTNESS: &str = "\
Strict by default (as the current Graph beta reference describes the service):
  - a path with no such segment answers 400 BadRequest (\"Resource not found for the segment\"), not 404
  - members or exclusions of an audience that never had any answer 404
    (--audience-404-when-empty, on; --audience-empty-lists to answer an empty list instead)
  - no per-request asset cap: the reference documents none (--max-assets-per-request N sets one,
    answered 413 above it)
  - reads can lag writes: --read-lag-ms N (0 by default) answers every GET from the tenant as it was
    N ms earlier
  - a deployment's catalogContent names its entry by reference ({\"@odata.id\": \"catalog/entries/ID\"});
    the create answer embeds audience { id } and a skeleton entry (isExpeditable false, displayName null)
  - a readiness test created without an audience gets its own, with an id ending in _Readiness
  - catalog entries (list, get) and getting an audience need WindowsUpdates.ReadWrite.All, as the
    reference lists; --read-all-catalog lets WindowsUpdates.Read.All read them too
  - audience member and exclusion lists page only by $skiptoken (@odata.nextLink): $count, $skip and
    $top answer 400 BadRequest, as the newest page says client-driven paging is not implemented
    there (--audience-client-paging serves them); group member lists keep $count/$skip/$top
  - a group an audience holds is deleted (and taken out of the audience); --refuse-group-delete-in-use
    answers 409 instead, as a service with such a rule would
  - $filter on the deployments list is served; --refuse-deployment-filter answers it 400, as a service
    without the (undocumented) createdDateTime filter would
Accepted although the current reference no longer documents it (the seed walkthrough's requests):
  - creating a deployment with expeditedQualityUpdateReference content (releaseDate)
  - $orderby=releaseDate on catalog entries";

/// Emulator of the Microsoft Graph Windows Update for Business deployment service.
#[derive(Parser, Debug)]
#[command(
    name = "wufb-graph-emulator",
    version,
    about,
    after_long_help = STRICTNESS
)]
struct Args {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8917")]
    addr: String,
    /// Do not check bearer tokens on Graph calls.
    #[arg(long)]
    no_auth: bool,
    /// Items per page before @odata.nextLink.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page_size: u32,
    /// Most assets one audience or group write may carry (413 above it). Unset: no cap, since the
    /// reference documents none.
    #[arg(long, alias = "asset-cap", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_assets_per_request: Option<u32>,
    /// Seed of the fault generator and of generated ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated fleet: simulated seconds per real second (3600 makes an hour pass every second).
    #[arg(long, default_value_t = 1.0)]
    fleet_time_scale: f64,
    /// Simulated fleet: mean simulated hours from being offered an update to installing it.
    #[arg(long, default_value_t = 4.0)]
    fleet_install_hours: f64,
    /// Simulated fleet: share of devices that install the hotpatch revision where the entry has one.
    #[arg(long, default_value_t = 0.3, value_parser = probability)]
    fleet_hotpatch_rate: f64,
    /// Simulated fleet: share of devices that fail (a registration error appears on the asset).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    fleet_failure_rate: f64,
    /// Simulated fleet: share of devices that never report to deviceProfiles.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    fleet_silent_rate: f64,
    /// Share of Graph requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    throttle_rate: f64,
    /// Retry-After delay in seconds on 429 (and injected 503).
    #[arg(long, default_value_t = 1.0)]
    retry_after_secs: f64,
    /// Retry-After form: seconds, fractional, http-date or none.
    #[arg(long, default_value = "seconds")]
    retry_after_form: RetryAfterForm,
    /// Share of Graph requests answered 500 or 503.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    error_rate: f64,
    /// Share of Graph requests whose connection is dropped unanswered.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    drop_rate: f64,
    /// Share of Graph requests carried out whose answer is then lost (connection dropped after the change).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    lost_answer_rate: f64,
    /// Latency added to every Graph request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of Graph requests that get --spike-ms more latency.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    spike_rate: f64,
    /// Extra latency of a spike, in milliseconds.
    #[arg(long, default_value_t = 200)]
    spike_ms: u64,
    /// Fault only writes (POST, PATCH, DELETE).
    #[arg(long)]
    writes_only: bool,
    /// Fault only this operation, as the request log names it (repeatable; e.g. deployments.create).
    #[arg(long = "fault-operation")]
    fault_operations: Vec<String>,
    /// Share of token requests that fail with 503.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    token_error_rate: f64,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    token_lifetime_secs: u64,
    /// Answer 404 when listing members or exclusions of an audience that never had any, as the real
    /// service has been seen to. On by default; the flag is kept for scripts that pass it.
    #[arg(long, conflicts_with = "audience_empty_lists")]
    audience_404_when_empty: bool,
    /// The older behaviour: list an audience that never had members or exclusions as empty (200).
    #[arg(long)]
    audience_empty_lists: bool,
    /// Answer every read (GET) from the tenant as it was this many milliseconds ago: a new object is
    /// not found and a change not visible until then.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    read_lag_ms: u64,
    /// Refuse $filter on the deployments list (400), as a service without the createdDateTime filter
    /// would: the reference documents none for deployments.
    #[arg(long)]
    refuse_deployment_filter: bool,
    /// Refuse (409) to delete a group an audience holds; the reference documents no such rule.
    #[arg(long)]
    refuse_group_delete_in_use: bool,
    /// Let WindowsUpdates.Read.All read the catalog and get an audience (the reference lists only
    /// ReadWrite.All for those reads).
    #[arg(long)]
    read_all_catalog: bool,
    /// Serve $count, $skip and $top on audience member and exclusion lists (older pages; the newest
    /// says only $skiptoken paging is supported there).
    #[arg(long)]
    audience_client_paging: bool,
    /// Answer requests for the deployment service inside a $batch with 400 (whether its paths accept
    /// JSON batching is not documented; by default they are served).
    #[arg(long)]
    refuse_batch: bool,
    /// A device id that registers with an error: ID=REASON (repeatable).
    #[arg(long = "device-error", value_parser = device_error)]
    device_errors: Vec<(String, String)>,
    /// An extra app registration: TENANT:CLIENT_ID:SECRET[:read|readwrite] (repeatable).
    #[arg(long = "app", value_parser = app)]
    apps: Vec<AppRegistration>,
    /// The catalog holds the 24 months of releases up to this date (default: today).
    #[arg(long)]
    catalog_until: Option<chrono::NaiveDate>,
    /// Persist tenant state to this JSON file (nothing is persisted without it).
    #[arg(long)]
    state_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let faults = FaultConfig {
        seed: args.seed,
        throttle_rate: args.throttle_rate,
        retry_after_secs: args.retry_after_secs,
        retry_after_form: args.retry_after_form,
        error_rate: args.error_rate,
        drop_rate: args.drop_rate,
        lost_answer_rate: args.lost_answer_rate,
        answer_delay_ms: 0,
        latency_ms: args.latency_ms,
        spike_rate: args.spike_rate,
        spike_ms: args.spike_ms,
        writes_only: args.writes_only,
        operations: args.fault_operations,
        outage: false,
        token_error_rate: args.token_error_rate,
    };
    if let Err(e) = faults.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut apps = AppRegistration::defaults();
    apps.extend(args.apps);
    let config = EmulatorConfig {
        page_size: args.page_size as usize,
        max_assets_per_request: args.max_assets_per_request.map(|c| c as usize),
        auth: !args.no_auth,
        apps,
        token_lifetime: Duration::from_secs(args.token_lifetime_secs),
        faults,
        catalog_until: args
            .catalog_until
            .unwrap_or_else(|| chrono::Utc::now().date_naive()),
        audience_404_when_empty: args.audience_404_when_empty || !args.audience_empty_lists,
        read_lag_ms: args.read_lag_ms,
        refuse_deployment_filter: args.refuse_deployment_filter,
        refuse_group_delete_in_use: args.refuse_group_delete_in_use,
        read_all_catalog: args.read_all_catalog,
        audience_client_paging: args.audience_client_paging,
        refuse_batch: args.refuse_batch,
        device_errors: args.device_errors.into_iter().collect::<BTreeMap<_, _>>(),
        fleet: wufb_graph_emulator::fleet::FleetConfig {
            time_scale: args.fleet_time_scale.max(0.0),
            install_hours: args.fleet_install_hours.max(0.0),
            hotpatch_rate: args.fleet_hotpatch_rate,
            failure_rate: args.fleet_failure_rate,
            silent_rate: args.fleet_silent_rate,
            seed: args.seed,
        },
        state_file: args.state_file,
        request_log_limit: 200_000,
    };
    let emulator = match Emulator::start(config, &args.addr).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot bind {}: {e}", args.addr);
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", emulator.base_url());
    let _ = writeln!(out, "graph base URL: {}", emulator.graph_url());
    let _ = writeln!(
        out,
        "tenant {} client {} (secret: see README)",
        config::DEFAULT_TENANT_ID,
        config::DEFAULT_CLIENT_ID
    );
    let _ = out.flush();
    drop(out);
    wait_for_signal().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
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
