//! `wufb-operator plan -f PATH...`: what the controller would do to the tenant if these manifests were
//! applied, for review before a merge. It runs the controller's own observe and plan
//! ([`crate::reconcile::observe`], [`crate::reconcile::plan`]) over the manifests, the live objects'
//! status and Graph, so the preview and what the controller then does cannot disagree. It never writes
//! anything. Exit 0 when nothing would change, 2 when something would, 1 on error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube::ResourceExt;
use serde::Serialize;

use super::cluster::Cluster;
use super::manifests::{self, Document};
use super::validate::{self, is_ours};
use crate::crd::{DeviceGroup, DeviceGroupSpec, ExpeditedDeployment, ExpeditedDeploymentSpec};
use crate::graph::GraphClient;
use crate::reconcile::error::Error;
use crate::reconcile::observe::{self, Objects, group_facts, observe, observe_group, referencing};
use crate::reconcile::plan::{
    End, GroupStep, PlanConfig, Step, offered_devices, offered_devices_of, plan, plan_cleanup, plan_group,
    plan_group_cleanup,
};
use crate::reconcile::status::Outcome;

mod live;
mod render;
mod review;
mod waves;

pub use render::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For a terminal.
    Text,
    /// For a pull-request comment.
    Markdown,
    /// For a workflow: `flags` and `review_label` say when a change needs a second review.
    Json,
}

use live::{desired_object, live, selected_names};
pub use review::REVIEW_LABEL;
use review::{deletion_flags, offered_before, resolved_at_apply, review_flags};
pub use waves::describe_gate;
use waves::wave_plans;

#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// Files or directories of manifests (`-` reads stdin). Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
    /// Namespace of manifests that name none (default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The form of the plan.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
    /// Plan without reading the cluster: every object is planned as new, and nothing is planned for
    /// deletion. The output says so on its first line.
    #[arg(long, alias = "no-cluster")]
    pub offline: bool,
    /// Plan the deletion of the live objects --selector selects that the files do not hold (as
    /// `kubectl apply --prune -l` deletes them). Without it nothing is planned for deletion, and the
    /// plan lists the live objects it left out.
    #[arg(long, requires = "selector")]
    pub prune: bool,
    /// With --prune: the label selector of the live objects these files manage (KEY=VALUE[,...], such
    /// as app.kubernetes.io/part-of=windows-rollouts).
    #[arg(long, short = 'l', requires = "prune", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Also write the report as JSON to this file (one plan, read once, for both a comment and a
    /// workflow's decisions).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Devices newly offered at once by one object above which it is flagged `blast-radius` for a
    /// second review.
    #[arg(long, default_value_t = 500, value_name = "DEVICES")]
    pub review_devices: u64,
    #[command(flatten)]
    pub graph: super::GraphArgs,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
    /// The controller's planner settings (`--max-audience-devices`, `--absence-confirm`,
    /// `--read-lag-budget`, with `run`'s environment variables): give the values the controller runs with.
    #[command(flatten)]
    pub planner: super::flags::PlannerArgs,
    /// The operator's namespace, where ClusterGraphConnections keep their Secrets (needed only to plan
    /// objects that name a ClusterGraphConnection with a secretRef).
    #[arg(long, env = "WUFB_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,
}

/// The plan for one object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectPlan {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `create`, `change`, `replace`, `delete`, `orphan`, `unchanged`, `blocked` (stalled: the controller
    /// writes nothing but a pause), `waiting` (for a DeviceGroup) or `unknown` (its tenant could not be
    /// read: the change says why; it counts as a change).
    pub result: String,
    pub changes: Vec<String>,
    /// Distinct devices the object reaches.
    pub devices: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The Graph writes the controller would make, by operation, one entry per call.
    pub writes: Vec<String>,
    /// The waves of `spec.rollout`, in order, with what each adds to the blast radius.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WavePlan>,
    /// Why the change needs a second review: `replace` (a new deployment, the old one deleted),
    /// `delete` (a Graph deployment or group deleted), `resume` (a paused deployment offered again),
    /// `blast-radius` (more than --review-devices devices newly offered at once), `wave-at-once` (a
    /// wave after the first sent by this change without waiting for its gate).
    pub flags: Vec<String>,
    /// For `latest` or `newest` content the controller is about to resolve: what it resolves to today.
    /// It is resolved again when the deployment is created, so a release the catalog lists before the
    /// merge is applied is the one deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at_apply: Option<String>,
}

/// One wave of a rollout as the plan sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WavePlan {
    pub name: String,
    /// Distinct devices the wave adds (a device in several waves counts in the first), less exclusions.
    pub devices: u64,
    /// Distinct devices offered once this wave is sent: it and every wave before it.
    pub blast_radius: u64,
    /// `sent` (before this plan), `now` (the next pass sends it) or `gated` (it waits for its gate).
    pub state: String,
    /// When it is sent: its time, or what its gate waits for.
    pub when: String,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub objects: Vec<ObjectPlan>,
    /// Distinct devices that would be offered an expedite (not paused), every wave of a rollout
    /// counted: the most the manifests can reach.
    pub blast_radius: u64,
    /// The same, counting only the waves the next pass sends: what is offered at once.
    pub blast_radius_now: u64,
    pub changed: bool,
    pub cluster: bool,
    /// Why no cluster was read, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
    /// Every object's flags, sorted: any flag asks for a second review.
    pub flags: Vec<String>,
    /// The pull-request label a workflow sets when `flags` is not empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_label: Option<String>,
    /// The selector of the live objects planned for deletion when the files lack them (`--prune -l`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<String>,
    /// Live objects the files do not hold that were not planned for deletion (`Kind ns/name`): without
    /// --prune, all of them; with it, those the selector does not select.
    pub not_planned: Vec<String>,
}

/// Kubernetes as the plan sees it: a DeviceGroup in the manifests is used as it will be (its devices,
/// the live group id when it exists already); one only in the cluster as the controller sees it there;
/// the live ExpeditedDeployments claim deployments.
struct PlanObjects {
    /// Manifest groups: (namespace, name) -> (live group id, devices).
    manifest_groups: BTreeMap<(String, String), (Option<String>, observe::Devices)>,
    /// Live groups in the cluster, by (namespace, name).
    live_groups: BTreeMap<(String, String), DeviceGroup>,
    /// The devices of the live groups that take them from Entra ID, read now.
    live_entra: BTreeMap<(String, String), observe::Devices>,
    live_deployments: Vec<ExpeditedDeployment>,
}

impl Objects for PlanObjects {
    fn group(&self, ns: &str, name: &str, exclusion: bool) -> Result<(String, observe::Devices), String> {
        let key = (ns.to_string(), name.to_string());
        if let Some((id, devices)) = self.manifest_groups.get(&key) {
            return Ok((
                id.clone().unwrap_or_else(|| format!("(new group {name})")),
                devices.clone(),
            ));
        }
        match self.live_groups.get(&key) {
            Some(g) => group_facts(g, exclusion, |_| self.live_entra.get(&key).cloned()),
            None => Err(format!(
                "DeviceGroup {name} is neither in the manifests nor in namespace {ns}"
            )),
        }
    }

    async fn deployments(&self) -> Result<Vec<ExpeditedDeployment>, Error> {
        Ok(self.live_deployments.clone())
    }
}

fn result_of(outcome: Option<&Outcome>, writes: bool, create: bool, replace: bool) -> &'static str {
    match outcome {
        Some(o) if o.is_stalled() => "blocked",
        Some(o) if o.reason() == crate::reconcile::reasons::Reason::WAITING_FOR_DEVICE_GROUP => "waiting",
        _ if replace => "replace",
        _ if create => "create",
        _ if writes => "change",
        _ => "unchanged",
    }
}

/// Builds the plan. Reads Graph and (when given) the cluster; writes nothing. `graph` reaches the
/// operator's own tenant; an object that names a connection is read through that connection.
pub async fn build(
    docs: &[Document],
    args: &PlanArgs,
    graph: GraphClient,
    cluster: &Cluster,
) -> anyhow::Result<Report> {
    let (client, default_ns, offline) = match cluster {
        Cluster::Live {
            client, namespace, ..
        } => (Some(client), namespace.as_str(), None),
        Cluster::Offline { why, namespace } => (None, namespace.as_str(), Some(why.clone())),
    };
    let ns_of = |d: &Document| d.namespace().unwrap_or(default_ns).to_string();
    let ours: Vec<&Document> = docs.iter().filter(|d| is_ours(d)).collect();
    let mut namespaces: BTreeSet<String> = ours.iter().map(|d| ns_of(d)).collect();
    let prune = args.selector.as_deref().filter(|_| args.prune);
    if prune.is_some() {
        // A directory whose every file was deleted still manages the namespace's objects.
        namespaces.insert(default_ns.to_string());
    }
    let mut live_groups = BTreeMap::new();
    let mut live_deployments = Vec::new();
    // The live objects --prune may delete: (kind, namespace, name).
    let mut selected: BTreeSet<(&str, String, String)> = BTreeSet::new();
    for ns in &namespaces {
        for g in live::<DeviceGroup>(client, ns).await? {
            live_groups.insert((ns.clone(), g.name_any()), g);
        }
        live_deployments.extend(live::<ExpeditedDeployment>(client, ns).await?);
        if let (Some(selector), Some(c)) = (prune, client) {
            for name in selected_names::<DeviceGroup>(c, ns, selector).await? {
                selected.insert(("DeviceGroup", ns.clone(), name));
            }
            for name in selected_names::<ExpeditedDeployment>(c, ns, selector).await? {
                selected.insert(("ExpeditedDeployment", ns.clone(), name));
            }
        }
    }
    // A client per connection the manifests (or the live Entra-backed groups they use) name.
    let refs: Vec<crate::connections::ConnKey> = ours
        .iter()
        .filter_map(|d| super::tenants::reference(d).map(|r| crate::connections::ConnKey::of(&r, &ns_of(d))))
        .chain(
            live_groups
                .iter()
                .filter(|(_, g)| g.spec.entra_group_id.is_some())
                .filter_map(|((ns, _), g)| {
                    g.spec
                        .connection_ref
                        .as_ref()
                        .map(|r| crate::connections::ConnKey::of(r, ns))
                }),
        )
        .collect();
    let graphs =
        super::tenants::connect(graph, &ours, refs, client, args.operator_namespace.as_deref()).await?;
    let cfg = PlanConfig {
        batch_size: graphs.default.batch_size(),
        ..PlanConfig::from(&args.planner.settings())
    };
    let mut objects = Vec::new();
    let mut reached: BTreeSet<String> = BTreeSet::new();
    let mut reached_now: BTreeSet<String> = BTreeSet::new();
    let mut manifest_groups = BTreeMap::new();

    // DeviceGroups first: deployments reference them.
    for doc in ours.iter().filter(|d| d.kind() == "DeviceGroup") {
        let (ns, name) = (ns_of(doc), doc.name().to_string());
        let spec: DeviceGroupSpec = serde_json::from_value(doc.value["spec"].clone())?;
        let live = live_groups.get(&(ns.clone(), name.clone()));
        let mut obj = desired_object(live, DeviceGroup::new(&name, spec), &ns, &name);
        obj.status = live.and_then(|l| l.status.clone());
        let graph = match graphs.of(obj.spec.connection_ref.as_ref(), &ns) {
            Ok(g) => g,
            Err(e) => {
                objects.push(unknown("DeviceGroup", &ns, &name, &e));
                let devices =
                    std::sync::Arc::new(obj.spec.devices.iter().map(|d| d.to_lowercase()).collect());
                manifest_groups.insert((ns, name), (None, devices));
                continue;
            }
        };
        let observation = observe_group(&obj, graph, None).await;
        if let Some(e) = observation.failed {
            anyhow::bail!("DeviceGroup {ns}/{name}: {e}");
        }
        let p = plan_group(&obj, &observation, &cfg);
        let outcome = match &p.end {
            End::Report { outcome, .. } => Some(outcome),
            End::ObserveFailed => None,
        };
        let create = p.steps.contains(&GroupStep::Create);
        let mut changes: Vec<String> = p.steps.iter().map(GroupStep::describe).collect();
        if let Some(o) = outcome.filter(|o| o.is_stalled()) {
            changes.push(o.message().to_string());
        }
        let devices: observe::Devices = match &observation.entra {
            Some(Some(d)) => d.clone(),
            _ => std::sync::Arc::new(obj.spec.devices.iter().map(|d| d.to_lowercase()).collect()),
        };
        objects.push(ObjectPlan {
            kind: "DeviceGroup".into(),
            namespace: ns.clone(),
            name: name.clone(),
            result: result_of(outcome, !p.steps.is_empty(), create, false).into(),
            changes,
            devices: devices.len() as u64,
            deployment_id: p.group_id.clone(),
            writes: p.graph_writes().into_iter().map(str::to_string).collect(),
            waves: Vec::new(),
            flags: Vec::new(),
            resolved_at_apply: None,
        });
        manifest_groups.insert((ns, name), (p.group_id.clone(), devices));
    }

    let mut live_entra = BTreeMap::new();
    for (key, g) in &live_groups {
        // A live group of a tenant the plan cannot reach is left out: the objects that use it are
        // planned as unknown.
        if let Some(entra) = &g.spec.entra_group_id
            && let Ok(graph) = graphs.of(g.spec.connection_ref.as_ref(), &key.0)
            && let Some(devices) = graph.entra_group_devices(entra, 0).await?
        {
            live_entra.insert(key.clone(), std::sync::Arc::new(devices.into_iter().collect()));
        }
    }
    let sources = PlanObjects {
        manifest_groups,
        live_groups,
        live_entra,
        live_deployments,
    };
    for doc in ours.iter().filter(|d| d.kind() == "ExpeditedDeployment") {
        let (ns, name) = (ns_of(doc), doc.name().to_string());
        let spec: ExpeditedDeploymentSpec = serde_json::from_value(doc.value["spec"].clone())?;
        let live = sources
            .live_deployments
            .iter()
            .find(|d| d.namespace().as_deref() == Some(ns.as_str()) && d.name_any() == name);
        let mut obj = desired_object(live, ExpeditedDeployment::new(&name, spec), &ns, &name);
        obj.status = live.and_then(|l| l.status.clone());
        let graph = match graphs.of(obj.spec.connection_ref.as_ref(), &ns) {
            Ok(g) => g,
            Err(e) => {
                objects.push(unknown("ExpeditedDeployment", &ns, &name, &e));
                continue;
            }
        };
        let mut observation = observe(&obj, graph, &sources).await;
        if let Some(e) = observation.failed.take() {
            anyhow::bail!("ExpeditedDeployment {ns}/{name}: {e}");
        }
        let p = plan(&obj, &observation, &cfg);
        let outcome = match &p.end {
            End::Report { outcome, .. } => Some(outcome),
            End::ObserveFailed => None,
        };
        let create = p.steps.iter().any(|s| matches!(s, Step::Create { .. }));
        let replace = p.steps.iter().any(|s| matches!(s, Step::DeleteReplaced { .. }));
        let mut changes: Vec<String> = p.steps.iter().map(Step::describe).collect();
        if let (Some(Step::Create { .. }), Some(c)) = (
            p.steps.iter().find(|s| !matches!(s, Step::Adopt { .. })),
            &p.facts.content,
        ) && let Some(first) = changes.iter_mut().find(|c| c.starts_with("create deployment"))
        {
            first.push_str(&format!(" ({})", c.describe()));
        }
        if let Some(b) = &p.blocker {
            changes.push(b.outcome().message().to_string());
        }
        let audience = observation.audience.as_ref();
        let devices = p.desired.as_ref().map_or(0, |d| d.devices);
        let waves = match (&obj.spec.rollout, audience) {
            (Some(r), Some(a)) => wave_plans(r, a, live.and_then(|l| l.status.as_ref()), &p),
            _ => Vec::new(),
        };
        let mut offered_now = 0;
        if p.offers_update(&obj)
            && let Some(a) = audience
        {
            reached.extend(offered_devices(a).into_iter().map(String::from));
            let sent: Option<Vec<bool>> =
                (!waves.is_empty()).then(|| waves.iter().map(|w| w.state != "gated").collect());
            let now = offered_devices_of(a, sent.as_deref());
            offered_now = now.len() as u64;
            reached_now.extend(now.into_iter().map(String::from));
        }
        let flags = review_flags(
            &p.steps,
            replace,
            &waves,
            offered_now.saturating_sub(offered_before(live)),
            args.review_devices,
        );
        let resolved_at_apply = resolved_at_apply(&obj.spec.content, &p, create || replace);
        objects.push(ObjectPlan {
            kind: "ExpeditedDeployment".into(),
            namespace: ns.clone(),
            name: name.clone(),
            result: result_of(outcome, !p.graph_writes().is_empty(), create, replace).into(),
            changes,
            devices,
            deployment_id: p
                .facts
                .deployment
                .as_ref()
                .map(|d| d.0.clone())
                .or_else(|| observe::deployment_id(&obj).filter(|_| !create)),
            writes: p.graph_writes().into_iter().map(str::to_string).collect(),
            waves,
            flags,
            resolved_at_apply,
        });
    }

    // Live objects the manifests no longer hold would be deleted (as a GitOps prune does).
    let desired_deployments: Vec<ExpeditedDeployment> = ours
        .iter()
        .filter(|d| d.kind() == "ExpeditedDeployment")
        .filter_map(|d| {
            let mut o: ExpeditedDeployment = serde_json::from_value(d.value.clone()).ok()?;
            o.metadata.namespace = Some(ns_of(d));
            Some(o)
        })
        .collect();
    let mut not_planned = Vec::new();
    for live in &sources.live_deployments {
        let (ns, name) = (live.namespace().unwrap_or_default(), live.name_any());
        if objects
            .iter()
            .any(|o| o.kind == "ExpeditedDeployment" && o.namespace == ns && o.name == name)
        {
            continue;
        }
        if !selected.contains(&("ExpeditedDeployment", ns.clone(), name.clone())) {
            not_planned.push(format!("ExpeditedDeployment {ns}/{name}"));
            continue;
        }
        let cleanup = plan_cleanup(live, None);
        let (result, changes, id) = (
            cleanup.result(),
            cleanup.describe(),
            cleanup.deployment().cloned(),
        );
        let writes = cleanup.graph_writes().into_iter().map(str::to_string).collect();
        objects.push(ObjectPlan {
            kind: "ExpeditedDeployment".into(),
            namespace: ns,
            name,
            flags: deletion_flags(result),
            result: result.into(),
            changes,
            devices: 0,
            deployment_id: id,
            writes,
            waves: Vec::new(),
            resolved_at_apply: None,
        });
    }
    for ((ns, name), live) in &sources.live_groups {
        if objects
            .iter()
            .any(|o| o.kind == "DeviceGroup" && &o.namespace == ns && &o.name == name)
        {
            continue;
        }
        if !selected.contains(&("DeviceGroup", ns.clone(), name.clone())) {
            not_planned.push(format!("DeviceGroup {ns}/{name}"));
            continue;
        }
        let users = referencing(&desired_deployments, ns, name);
        let cleanup = plan_group_cleanup(live, users);
        let (result, changes) = (cleanup.result(), cleanup.describe());
        let writes = cleanup.graph_writes().into_iter().map(str::to_string).collect();
        objects.push(ObjectPlan {
            kind: "DeviceGroup".into(),
            namespace: ns.clone(),
            name: name.clone(),
            flags: deletion_flags(result),
            result: result.into(),
            changes,
            devices: 0,
            deployment_id: live.status.as_ref().and_then(|s| s.group_id.clone()),
            writes,
            waves: Vec::new(),
            resolved_at_apply: None,
        });
    }
    // What changes first, so a long plan shows it at the top.
    objects.sort_by_key(|o| o.result == "unchanged");
    let changed = objects.iter().any(|o| o.result != "unchanged");
    let flags: Vec<String> = objects
        .iter()
        .flat_map(|o| o.flags.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Report {
        objects,
        blast_radius: reached.len() as u64,
        blast_radius_now: reached_now.len() as u64,
        changed,
        cluster: client.is_some(),
        offline,
        review_label: (!flags.is_empty()).then(|| REVIEW_LABEL.to_string()),
        flags,
        prune: prune.map(str::to_string),
        not_planned,
    })
}

/// An object the plan cannot read the tenant of: planned as `unknown`, with why and what to do.
fn unknown(kind: &str, ns: &str, name: &str, why: &anyhow::Error) -> ObjectPlan {
    ObjectPlan {
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
        result: "unknown".into(),
        changes: vec![format!("not planned: {why:#}")],
        devices: 0,
        deployment_id: None,
        writes: Vec::new(),
        waves: Vec::new(),
        flags: Vec::new(),
        resolved_at_apply: None,
    }
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
    let graph = match args.graph.client() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("plan: {e:#}");
            return 1;
        }
    };
    let cluster = match super::cluster::connect(&args.cluster, args.offline, args.namespace.as_deref()).await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plan: {e}");
            return 1;
        }
    };
    match build(&docs, args, graph, &cluster).await {
        Ok(report) => {
            if let Some(file) = &args.report_json
                && let Err(e) = std::fs::write(file, render(&report, Output::Json))
            {
                eprintln!("plan: --report-json {}: {e}", file.display());
                return 1;
            }
            print!("{}", render(&report, args.output));
            if report.changed { 2 } else { 0 }
        }
        Err(e) => {
            eprintln!("plan: {e:#}");
            1
        }
    }
}
