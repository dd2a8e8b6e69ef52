//! `wufb-operator plan -f PATH...`: what the controller would do to the tenant if these manifests were
//! applied, for review before a merge. Reads the manifests, the live objects' status from the cluster
//! when a kubeconfig is available, and Graph; never writes anything. Exit 0 when nothing would change,
//! 2 when something would, 1 on error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube::api::Api;
use serde::Serialize;

use super::cluster::Cluster;
use super::manifests::{self, Document};
use super::validate::{self, is_ours};
use crate::crd::{
    DeletionPolicy, DeviceGroup, DeviceGroupSpec, ExpeditedDeployment, ExpeditedDeploymentSpec,
    ManagementPolicy,
};
use crate::graph::{AssetKind, Credential, GraphClient, GraphConfig, GraphMetrics, TransportConfig};
use crate::reconcile::desired::{GroupSource, Resolution, resolve};
use crate::reconcile::expedited::observed_from;
use crate::reconcile::plan::{Action, Blocked, plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Markdown,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// Files or directories of manifests (`-` reads stdin). Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
    /// Namespace of manifests that name none (default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub graph: super::GraphArgs,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
    /// The operator's --max-audience-devices, to show which rollouts it would block.
    #[arg(long)]
    pub max_audience_devices: Option<u64>,
}

/// The plan for one object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectPlan {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `create`, `change`, `replace`, `delete`, `orphan`, `unchanged`, `blocked` or `waiting`.
    pub result: String,
    pub changes: Vec<String>,
    /// Distinct devices the object reaches.
    pub devices: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub objects: Vec<ObjectPlan>,
    /// Distinct devices that would be offered an expedite (not paused).
    pub blast_radius: u64,
    pub changed: bool,
    pub cluster: bool,
    /// Why no cluster was read, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
}

/// DeviceGroups as the plan sees them: the manifests' devices, with the group id from the cluster when
/// the group exists already.
struct PlannedGroups {
    groups: BTreeMap<(String, String), (Option<String>, BTreeSet<String>)>,
}

impl GroupSource for PlannedGroups {
    fn group(&self, ns: &str, name: &str, _exclusion: bool) -> Result<(String, BTreeSet<String>), String> {
        match self.groups.get(&(ns.to_string(), name.to_string())) {
            Some((id, devices)) => Ok((
                id.clone().unwrap_or_else(|| format!("(new group {name})")),
                devices.clone(),
            )),
            None => Err(format!(
                "DeviceGroup {name} is neither in the manifests nor in namespace {ns}"
            )),
        }
    }
}

fn graph(args: &PlanArgs) -> anyhow::Result<GraphClient> {
    let endpoints = args.graph.endpoints()?;
    let credential = if args.graph.graph_no_auth {
        None
    } else {
        Some(Credential::from_env(|k| std::env::var(k).ok())?)
    };
    Ok(GraphClient::new(
        GraphConfig {
            endpoints,
            credential,
            transport: TransportConfig::default(),
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
        },
        GraphMetrics::default(),
    )?)
}

fn describe(action: &Action, new_groups: &BTreeMap<String, String>) -> String {
    let mut text = action.describe();
    for (placeholder, name) in new_groups {
        text = text.replace(placeholder, name);
    }
    text
}

/// Builds the plan. Reads Graph and (when given) the cluster; writes nothing.
pub async fn build(
    docs: &[Document],
    args: &PlanArgs,
    graph: &GraphClient,
    cluster: &Cluster,
) -> anyhow::Result<Report> {
    let (cluster, default_ns, offline) = match cluster {
        Cluster::Live {
            client, namespace, ..
        } => (Some(client), namespace.as_str(), None),
        Cluster::Offline { why, namespace } => (None, namespace.as_str(), Some(why.clone())),
    };
    let ns_of = |d: &Document| d.namespace().unwrap_or(default_ns).to_string();
    let mut objects = Vec::new();
    let mut reached: BTreeSet<String> = BTreeSet::new();

    // DeviceGroups first: deployments reference them.
    let mut groups = PlannedGroups {
        groups: BTreeMap::new(),
    };
    for doc in docs.iter().filter(|d| is_ours(d) && d.kind() == "DeviceGroup") {
        let (ns, name) = (ns_of(doc), doc.name().to_string());
        let spec: DeviceGroupSpec = serde_json::from_value(doc.value["spec"].clone())?;
        let want: BTreeSet<String> = spec.devices.iter().map(|d| d.to_lowercase()).collect();
        let live_id = match cluster {
            Some(c) => Api::<DeviceGroup>::namespaced(c.clone(), &ns)
                .get_opt(&name)
                .await?
                .and_then(|g| g.status.and_then(|s| s.group_id)),
            None => None,
        };
        let members = match &live_id {
            Some(id) => graph.group_members(id).await?,
            None => None,
        };
        let (result, changes) = match (&live_id, members) {
            (Some(_), Some(m)) => {
                let have: BTreeSet<String> = m
                    .iter()
                    .filter(|a| a.kind() == AssetKind::Device)
                    .map(|a| a.id.to_lowercase())
                    .collect();
                let (add, remove) = (want.difference(&have).count(), have.difference(&want).count());
                if add + remove == 0 {
                    ("unchanged", vec![])
                } else {
                    ("change", vec![format!("update group devices: +{add} -{remove}")])
                }
            }
            (Some(id), None) => (
                "create",
                vec![format!(
                    "create group again (group {id} is missing in Graph) with {} devices",
                    want.len()
                )],
            ),
            (None, _) => (
                "create",
                vec![format!("create group with {} devices", want.len())],
            ),
        };
        objects.push(ObjectPlan {
            kind: "DeviceGroup".into(),
            namespace: ns.clone(),
            name: name.clone(),
            result: result.into(),
            changes,
            devices: want.len() as u64,
            deployment_id: live_id.clone(),
        });
        groups.groups.insert((ns, name), (live_id, want));
    }
    let new_groups: BTreeMap<String, String> = groups
        .groups
        .iter()
        .filter(|(_, (id, _))| id.is_none())
        .map(|((_, n), _)| (format!("(new group {n})"), format!("new group {n}")))
        .collect();

    for doc in docs
        .iter()
        .filter(|d| is_ours(d) && d.kind() == "ExpeditedDeployment")
    {
        let (ns, name) = (ns_of(doc), doc.name().to_string());
        let spec: ExpeditedDeploymentSpec = serde_json::from_value(doc.value["spec"].clone())?;
        let live = match cluster {
            Some(c) => {
                Api::<ExpeditedDeployment>::namespaced(c.clone(), &ns)
                    .get_opt(&name)
                    .await?
            }
            None => None,
        };
        let mut obj = ExpeditedDeployment::new(&name, spec.clone());
        obj.metadata.namespace = Some(ns.clone());
        obj.status = live.as_ref().and_then(|l| l.status.clone());
        let mut plan_of = ObjectPlan {
            kind: "ExpeditedDeployment".into(),
            namespace: ns.clone(),
            name: name.clone(),
            result: "unchanged".into(),
            changes: vec![],
            devices: 0,
            deployment_id: None,
        };
        let (desired, content) = match resolve(&obj, graph, &groups, args.max_audience_devices).await? {
            Resolution::Ready { desired, content, .. } => (desired, content),
            Resolution::Waiting { message, .. } | Resolution::Invalid { message, .. } => {
                plan_of.result = "blocked".into();
                plan_of.changes.push(message);
                objects.push(plan_of);
                continue;
            }
        };
        plan_of.devices = desired.devices;
        let deployment_id = spec
            .deployment_id
            .clone()
            .or(obj.status.as_ref().and_then(|s| s.deployment_id.clone()));
        let observed = match &deployment_id {
            Some(id) => match graph.get_deployment(id).await? {
                Some(d) => {
                    let audience = graph.audience(&d.id).await?;
                    Some(observed_from(
                        &d,
                        &audience,
                        obj.status.as_ref().and_then(|s| s.resolved_content.as_ref()),
                    ))
                }
                None => None,
            },
            None => None,
        };
        plan_of.deployment_id = observed.as_ref().map(|o| o.id.clone());
        let planned = plan(&desired, observed.as_ref());
        if let Some(b) = planned.blocked {
            plan_of.result = "blocked".into();
            plan_of.changes.push(match b {
                Blocked::AudienceTooLarge {
                    devices,
                    limit,
                    source,
                } => format!("blocked: the audience reaches {devices} devices, more than {limit} ({source})"),
                Blocked::AdoptedDeploymentMissing => {
                    "blocked: spec.deploymentId names no Graph deployment".into()
                }
                Blocked::AdoptedContentDiffers { deployed } => {
                    format!("blocked: the adopted deployment carries {deployed}")
                }
            });
        } else if !planned.actions.is_empty() {
            plan_of.result = if planned
                .actions
                .iter()
                .any(|a| matches!(a, Action::DeleteReplaced { .. }))
            {
                "replace"
            } else if planned.actions.iter().any(|a| matches!(a, Action::Create { .. })) {
                "create"
            } else {
                "change"
            }
            .into();
            plan_of.changes = planned.actions.iter().map(|a| describe(a, &new_groups)).collect();
            if let Some(Action::Create { .. }) = planned.actions.first() {
                plan_of.changes[0] = format!(
                    "{} ({})",
                    plan_of.changes[0],
                    content.display_name.clone().unwrap_or_default()
                );
            }
        }
        if !desired.paused && plan_of.result != "blocked" && !desired.observe_only {
            // Every device the rollout reaches, from the manifests' view of its audience.
            let mut devices: BTreeSet<String> = BTreeSet::new();
            let mut excluded: BTreeSet<String> = BTreeSet::new();
            let audience = spec.audience.clone().unwrap_or_default();
            for (items, set) in [
                (&audience.members, &mut devices),
                (&audience.exclusions, &mut excluded),
            ] {
                for item in items {
                    if let Some(d) = &item.device {
                        set.insert(d.to_lowercase());
                    }
                    if let Some(g) = &item.device_group
                        && let Ok((_, ds)) = groups.group(&ns, g, false)
                    {
                        set.extend(ds);
                    }
                }
            }
            reached.extend(devices.difference(&excluded).cloned());
        }
        objects.push(plan_of);
    }

    // Live objects the manifests no longer hold would be deleted (as a GitOps prune does).
    if let Some(c) = cluster {
        let namespaces: BTreeSet<String> = docs.iter().filter(|d| is_ours(d)).map(ns_of).collect();
        for ns in namespaces {
            for live in Api::<ExpeditedDeployment>::namespaced(c.clone(), &ns)
                .list(&Default::default())
                .await?
            {
                let name = live.metadata.name.clone().unwrap_or_default();
                if objects
                    .iter()
                    .any(|o| o.kind == "ExpeditedDeployment" && o.namespace == ns && o.name == name)
                {
                    continue;
                }
                let id = live.status.as_ref().and_then(|s| s.deployment_id.clone());
                let keep = live.spec.deletion_policy == DeletionPolicy::Orphan
                    || live.spec.management_policy == ManagementPolicy::ObserveOnly;
                objects.push(ObjectPlan {
                    kind: "ExpeditedDeployment".into(),
                    namespace: ns.clone(),
                    name,
                    result: if keep { "orphan" } else { "delete" }.into(),
                    changes: vec![match (&id, keep) {
                        (Some(id), false) => format!("delete deployment {id}"),
                        (Some(id), true) => format!("leave deployment {id} in Graph"),
                        (None, _) => "remove the object (no Graph deployment)".into(),
                    }],
                    devices: 0,
                    deployment_id: id,
                });
            }
        }
    }
    let changed = objects.iter().any(|o| o.result != "unchanged");
    Ok(Report {
        objects,
        blast_radius: reached.len() as u64,
        changed,
        cluster: cluster.is_some(),
        offline,
    })
}

pub fn render(report: &Report, output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Output::Text => {
            let mut s = String::new();
            if let Some(why) = &report.offline {
                s.push_str(&format!(
                    "Offline plan (no cluster read: {why}): every object is planned as new and none for deletion.\n"
                ));
            }
            for o in &report.objects {
                s.push_str(&format!("{} {}/{}: {}", o.kind, o.namespace, o.name, o.result));
                if o.kind == "ExpeditedDeployment" && o.result != "delete" && o.result != "orphan" {
                    s.push_str(&format!(" ({} devices)", o.devices));
                }
                s.push('\n');
                for c in &o.changes {
                    s.push_str(&format!("  - {c}\n"));
                }
            }
            s.push_str(&format!(
                "Blast radius: {} distinct devices would be offered an expedite.\n",
                report.blast_radius
            ));
            s.push_str(&summary(report));
            s
        }
        Output::Markdown => {
            let mut s = String::from("### wufb-operator plan\n\n");
            if let Some(why) = &report.offline {
                s.push_str(&format!(
                    "> **Offline plan** (no cluster read: {why}): every object is planned as new and none for deletion.\n\n"
                ));
            }
            s.push_str("| Object | Result | Devices | Changes |\n|---|---|---:|---|\n");
            for o in &report.objects {
                let changes = if o.changes.is_empty() {
                    "-".to_string()
                } else {
                    o.changes.join("<br>")
                };
                s.push_str(&format!(
                    "| {} `{}/{}` | **{}** | {} | {} |\n",
                    o.kind,
                    o.namespace,
                    o.name,
                    o.result,
                    o.devices,
                    changes.replace('|', "\\|")
                ));
            }
            s.push_str(&format!(
                "\n**Blast radius:** {} distinct devices would be offered an expedite.\n\n",
                report.blast_radius
            ));
            s.push_str(&summary(report));
            s
        }
    }
}

fn summary(report: &Report) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &report.objects {
        *counts.entry(o.result.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("Plan: {}.\n", parts.join(", "))
}

/// Runs the command; returns the exit code.
pub async fn run(args: &PlanArgs) -> u8 {
    crate::telemetry::init_logging_with(crate::telemetry::LogFormat::Text, "error");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (docs, load_errors) = manifests::load(&args.paths);
    // Warnings (a DeviceGroup only in the cluster) are the plan's to resolve; errors stop it.
    let findings: Vec<_> = validate::check(&docs)
        .into_iter()
        .filter(|f| f.fails(false))
        .collect();
    if !load_errors.is_empty() || !findings.is_empty() {
        for e in &load_errors {
            eprintln!("{}: document: {}", e.location, e.message);
        }
        for f in &findings {
            eprintln!("{f}");
        }
        eprintln!("plan: the manifests are not valid (run `wufb-operator validate`)");
        return 1;
    }
    let graph = match graph(args) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("plan: {e:#}");
            return 1;
        }
    };
    let cluster = match super::cluster::connect(&args.cluster, args.namespace.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plan: {e}");
            return 1;
        }
    };
    match build(&docs, args, &graph, &cluster).await {
        Ok(report) => {
            print!("{}", render(&report, args.output));
            if report.changed { 2 } else { 0 }
        }
        Err(e) => {
            eprintln!("plan: {e:#}");
            1
        }
    }
}
