//! `wufb-operator check` (also `kubectl wufb check`): the field check a team runs before its first
//! rollout, against its own cluster and tenant. Read-only unless `--write-check` is given.
//!
//! Checks come in groups ([`cluster`], [`tenant`] once per set of credentials, [`write`]); each prints
//! one line with a mark, and every warning or failure a hint from the reasons registry with a link
//! into the documentation ([`crate::reconcile::reasons::Reason::docs_url`]).

mod access;
pub mod cluster;
mod objects;
mod render;
pub mod tenant;
pub mod write;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::GraphArgs;
use super::flags::{PlannerArgs, bounded};
use crate::connections::ConnKey;
use crate::reconcile::reasons::Reason;

/// What the cluster's checks found that later groups use.
#[derive(Default)]
pub struct Found {
    pub client: Option<kube::Client>,
    pub operator_version: Option<String>,
    /// The Entra ID group ids DeviceGroups name (`spec.entraGroupId`).
    pub entra_groups: Vec<String>,
    /// The connections the caller may read.
    pub connections: Vec<ConnKey>,
}

/// Exit codes (also in `--help`).
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_WARNINGS: u8 = 3;

/// The report's output forms.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(clap::Args, Debug, Clone)]
#[command(after_long_help = "\
Examples:
  wufb-operator check --pre
  wufb-operator check -n wufb-system -o markdown
  wufb-operator check --write-check

Exit codes: 0 every check ok (or skipped), 1 any check failed (or the command could not run), 3 warnings
only.

Output (-o json): {\"cliVersion\", \"operatorVersion\", \"checks\": [{\"group\", \"name\", \"status\" (ok,
warning, failed, skipped), \"found\", \"reason\", \"hint\", \"docs\"}], \"summary\": {\"ok\", \"warnings\",
\"failed\", \"skipped\"}}. Field names are stable; \"reason\", \"hint\" and \"docs\" appear on warnings
and failures. The report never holds a secret, a token or a certificate.")]
pub struct CheckArgs {
    /// Path of the kubeconfig (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster account).
    #[arg(long, env = "WUFB_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Skip the cluster checks (only the tenant is checked).
    #[arg(long)]
    pub no_cluster: bool,
    /// Skip the tenant checks (only the cluster is checked).
    #[arg(long)]
    pub no_tenant: bool,
    #[command(flatten)]
    pub graph: GraphArgs,
    /// The operator's namespace: its leader Lease, service account and ClusterGraphConnection Secrets.
    #[arg(long, short = 'n', default_value = "wufb-system")]
    pub namespace: String,
    /// The operator's leader Lease (`run --lease-name`; a sharded operator's are NAME-shard-N).
    #[arg(long, default_value = "wufb-operator")]
    pub lease_name: String,
    /// The operator's service account, whose permissions are checked (default: the Lease holder's
    /// pod's account when it can be read, else this name).
    #[arg(long, default_value = "wufb-operator")]
    pub service_account: String,
    /// The namespaces the operator watches (`run --watch-namespaces`); empty: all.
    #[arg(long, value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// How long to watch the Lease for a renewal (the operator renews every 2 s).
    #[arg(long, default_value = "5s", value_parser = bounded::up_to_an_hour)]
    pub lease_wait: Duration,
    /// Before installing: the cluster's version, your permission to install the chart, and the
    /// tenant; the operator need not run.
    #[arg(long)]
    pub pre: bool,
    /// Also write: create one deployment audience and one paused deployment with no devices (nothing is
    /// offered), measure how long reads take to show them, and delete both. Says what it will create
    /// first.
    #[arg(long)]
    pub write_check: bool,
    /// The operator's settings (the same flags and variables as `run`), which the write check's measured
    /// read lag is compared with.
    #[command(flatten)]
    pub planner: PlannerArgs,
    /// Output: text, json or markdown (for an issue or a pull request).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
}

/// How a check came out.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Warning,
    Failed,
}

/// One check's line.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `cluster`, `tenant`, `tenant GraphConnection/ns/name`, `write`.
    pub group: String,
    /// Kebab case, stable (`kubernetes-version`, `crd-expediteddeployments`, ...).
    pub name: String,
    pub status: Status,
    /// What was found (or why the check was skipped).
    pub found: String,
    /// The registry's reason, on warnings and failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where the documentation explains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
}

impl Check {
    fn new(
        group: &str,
        name: &str,
        status: Status,
        found: impl Into<String>,
        reason: Option<Reason>,
    ) -> Check {
        Check {
            group: group.into(),
            name: name.into(),
            status,
            found: found.into(),
            reason: reason.map(|r| r.as_str().to_string()),
            hint: reason.and_then(|r| r.entry()).map(|e| e.fix.to_string()),
            docs: reason.map(Reason::docs_url),
        }
    }

    pub fn ok(group: &str, name: &str, found: impl Into<String>) -> Check {
        Check::new(group, name, Status::Ok, found, None)
    }

    pub fn skipped(group: &str, name: &str, why: impl Into<String>) -> Check {
        Check::new(group, name, Status::Skipped, why, None)
    }

    pub fn warning(group: &str, name: &str, found: impl Into<String>, reason: Reason) -> Check {
        Check::new(group, name, Status::Warning, found, Some(reason))
    }

    pub fn failed(group: &str, name: &str, found: impl Into<String>, reason: Reason) -> Check {
        Check::new(group, name, Status::Failed, found, Some(reason))
    }
}

/// Counts by status.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub ok: usize,
    pub warnings: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The whole report.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cli_version: String,
    /// The running operator's version, as its Lease records it.
    pub operator_version: Option<String>,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

impl Report {
    pub fn new(checks: Vec<Check>, operator_version: Option<String>) -> Report {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Ok => summary.ok += 1,
                Status::Warning => summary.warnings += 1,
                Status::Failed => summary.failed += 1,
                Status::Skipped => summary.skipped += 1,
            }
        }
        Report {
            cli_version: crate::leader::VERSION.to_string(),
            operator_version,
            checks,
            summary,
        }
    }

    /// 0 all ok, 1 any failure, 3 warnings only.
    pub fn exit_code(&self) -> u8 {
        if self.summary.failed > 0 {
            EXIT_FAILED
        } else if self.summary.warnings > 0 {
            EXIT_WARNINGS
        } else {
            EXIT_OK
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => render::text(self),
            Format::Markdown => render::markdown(self),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        }
    }
}

/// Runs every check the flags ask for and prints the report; returns the exit code.
pub async fn run(args: &CheckArgs) -> u8 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let report = report(args).await;
    print!("{}", report.render(args.output));
    report.exit_code()
}

/// What the checks run against besides the flags.
pub struct Context {
    /// The client of the operator-wide credentials (or why there is none).
    pub graph: anyhow::Result<crate::graph::GraphClient>,
    /// The operator runs inside this process (the demo): it has no Lease and no service account, so
    /// their checks are skipped with that reason.
    pub in_process: bool,
}

/// Runs the checks the flags ask for, with the operator-wide credentials of the environment.
pub async fn report(args: &CheckArgs) -> Report {
    report_with(
        args,
        Context {
            graph: args.graph.client(),
            in_process: false,
        },
    )
    .await
}

/// Runs the checks: the cluster's, then the tenant's (once for the operator-wide credentials and once
/// per connection), then the write check.
pub async fn report_with(args: &CheckArgs, ctx: Context) -> Report {
    let mut checks = Vec::new();
    let mut found = Found::default();
    if args.no_cluster {
        checks.push(Check::skipped("cluster", "cluster", "--no-cluster"));
    } else {
        found = cluster::check(args, ctx.in_process, &mut checks).await;
    }
    if args.no_tenant {
        checks.push(Check::skipped("tenant", "tenant", "--no-tenant"));
    } else {
        tenant::check_all(args, ctx.graph.as_ref(), &found, &mut checks).await;
    }
    if args.write_check {
        write::check(args, ctx.graph.as_ref(), &mut checks).await;
    }
    Report::new(checks, found.operator_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_worst_status_and_skips_count_as_ok() {
        let ok = Check::ok("cluster", "a", "fine");
        let skip = Check::skipped("cluster", "b", "why");
        let warn = Check::warning("cluster", "c", "odd", Reason::VERSION_SKEW);
        let fail = Check::failed("cluster", "d", "bad", Reason::CRD_MISSING);
        assert_eq!(Report::new(vec![ok.clone(), skip.clone()], None).exit_code(), 0);
        assert_eq!(Report::new(vec![ok.clone(), warn.clone()], None).exit_code(), 3);
        assert_eq!(Report::new(vec![warn, fail, ok, skip], None).exit_code(), 1);
    }

    #[test]
    fn a_finding_carries_its_reason_hint_and_docs_and_json_names_are_stable() {
        let c = Check::failed("cluster", "crd-devicegroups", "missing", Reason::CRD_MISSING);
        let v = serde_json::to_value(Report::new(vec![c], Some("0.1.0".into()))).unwrap();
        let check = &v["checks"][0];
        assert_eq!(check["status"], "failed");
        assert_eq!(check["reason"], "CrdMissing");
        assert!(check["hint"].as_str().unwrap().contains("crds/"), "{check}");
        assert!(
            check["docs"]
                .as_str()
                .unwrap()
                .ends_with("reasons.html#crd-missing"),
            "{check}"
        );
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["checks", "cliVersion", "operatorVersion", "summary"]);
        let keys: Vec<&str> = check.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["docs", "found", "group", "hint", "name", "reason", "status"]
        );
        assert_eq!(
            v["summary"],
            serde_json::json!({"ok": 0, "warnings": 0, "failed": 1, "skipped": 0})
        );
        let ok = serde_json::to_value(Check::ok("tenant", "sign-in", "x")).unwrap();
        assert!(ok.get("hint").is_none() && ok.get("reason").is_none());
    }
}
