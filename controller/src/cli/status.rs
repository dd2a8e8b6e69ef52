//! `wufb-operator status [-n NS] [NAME] [--devices]`, also `kubectl wufb status` (the binary named, or
//! linked as, `kubectl-wufb` on the PATH is a kubectl plugin): each rollout's funnel as its status
//! records it (targeted, up to date, pending, failed, not reporting, and when Graph was read), and with
//! `--devices` the targeted devices of one rollout that are not up to date, with their last known build
//! and error, read live from Graph (device profiles and assets need `WindowsUpdates.Read.All`; the
//! reference lists `WindowsUpdates.ReadWrite.All` for the catalog entry read).

use std::collections::BTreeSet;

use anyhow::Context as _;
use kube::api::{Api, ListParams};

use crate::crd::{DeviceId, ExpeditedDeployment};
use crate::graph::{AssetKind, AudienceOf};
use crate::reconcile::progress::{self, DeviceState};

/// Flags of `status`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// One ExpeditedDeployment (every one in the namespace when unset).
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(long, short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// List the targeted devices not up to date, read from Graph now (needs NAME, and Graph
    /// credentials as for `plan`: AZURE_* variables).
    #[arg(long, requires = "name")]
    pub devices: bool,
    #[command(flatten)]
    pub graph: super::GraphArgs,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
    /// The operator's namespace, where ClusterGraphConnections keep their Secrets (needed only for
    /// --devices of a rollout that names a ClusterGraphConnection with a secretRef).
    #[arg(long, env = "WUFB_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,
}

fn row(cells: &[String], widths: &[usize]) -> String {
    cells
        .iter()
        .zip(widths)
        .map(|(c, w)| format!("{c:<w$}"))
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_string()
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = vec![row(
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        &widths,
    )];
    out.extend(rows.iter().map(|r| row(r, &widths)));
    out.join("\n")
}

/// The funnel of each object, one line each.
pub fn funnel_table(objects: &[ExpeditedDeployment]) -> String {
    let rows = objects
        .iter()
        .map(|o| {
            let s = o.status.clone().unwrap_or_default();
            let p = s.progress.clone();
            let n = |f: fn(&crate::crd::RolloutProgress) -> u64| {
                p.as_ref().map_or("-".into(), |p| f(p).to_string())
            };
            vec![
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default(),
                s.graph_state.clone().unwrap_or_else(|| "-".into()),
                s.rollout.as_ref().map_or("-".into(), |r| {
                    format!("{} ({})", r.current_wave.as_deref().unwrap_or("-"), r.phase)
                }),
                p.as_ref()
                    .and_then(|p| p.installed.clone())
                    .unwrap_or_else(|| "-".into()),
                n(|p| p.pending),
                n(|p| p.failed),
                n(|p| p.not_reporting),
                p.as_ref()
                    .and_then(|p| p.observed_time.clone())
                    .unwrap_or_else(|| "not read yet".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "NAME",
            "GRAPH",
            "WAVE",
            "INSTALLED",
            "PENDING",
            "FAILED",
            "NOT-REPORTING",
            "READ",
        ],
        rows,
    )
}

/// The waves of one rollout: each wave's devices, when it was sent and its figures; then what the
/// rollout waits for, or why it stopped.
pub fn wave_table(obj: &ExpeditedDeployment) -> Option<String> {
    let r = obj.status.as_ref()?.rollout.as_ref()?;
    let rows = r
        .waves
        .iter()
        .map(|w| {
            let p = w.progress.as_ref();
            let n = |f: fn(&crate::crd::RolloutProgress) -> u64| p.map_or("-".into(), |p| f(p).to_string());
            vec![
                w.name.clone(),
                w.devices.to_string(),
                w.promoted_time.clone().unwrap_or_else(|| "not sent".into()),
                n(|p| p.up_to_date),
                n(|p| p.failed),
                n(|p| p.not_reporting),
            ]
        })
        .collect();
    let mut out = table(
        &["WAVE", "DEVICES", "SENT", "UP-TO-DATE", "FAILED", "NOT-REPORTING"],
        rows,
    );
    out.push_str(&format!("\nrollout: {}", r.phase));
    if let Some(m) = &r.message {
        out.push_str(&format!(": {m}"));
    }
    if let Some(t) = &r.next_promotion_time {
        out.push_str(&format!("\nnext promotion: {t}"));
    }
    Some(out)
}

/// The targeted devices of one rollout that are not up to date, read from Graph.
async fn devices(
    args: &StatusArgs,
    obj: &ExpeditedDeployment,
    client: &kube::Client,
) -> anyhow::Result<String> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let status = obj.status.clone().unwrap_or_default();
    let audience = status
        .audience_id
        .clone()
        .with_context(|| format!("{name} has no Graph audience yet (status.audienceId is empty)"))?;
    let entry = status
        .resolved_content
        .as_ref()
        .map(|c| c.catalog_entry_id.clone())
        .with_context(|| format!("{name} has no resolved content yet"))?;
    // Through the object's connection, as the controller reads it.
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let refs = obj
        .spec
        .connection_ref
        .iter()
        .map(|r| crate::connections::ConnKey::of(r, &ns));
    let graphs = super::tenants::connect(
        args.graph.client()?,
        &[],
        refs,
        Some(client),
        args.operator_namespace.as_deref(),
    )
    .await?;
    let graph = graphs.of(obj.spec.connection_ref.as_ref(), &ns)?;
    let current = graph.audience(AudienceOf::Id(&audience)).await?;
    let expand = async |refs: &BTreeSet<crate::graph::AssetRef>| -> anyhow::Result<BTreeSet<DeviceId>> {
        let mut out = BTreeSet::new();
        for r in refs {
            match r.kind {
                AssetKind::Device => {
                    out.insert(DeviceId::new(&r.id.to_lowercase()));
                }
                AssetKind::Group => {
                    out.extend(graph.group_devices(&r.id).await?.unwrap_or_default().devices);
                }
            }
        }
        Ok(out)
    };
    let members = expand(&current.members).await?;
    let excluded = expand(&current.exclusions).await?;
    let targeted: Vec<&DeviceId> = members.difference(&excluded).collect();
    let signals = graph.device_signals_within(std::time::Duration::ZERO).await?;
    let revisions = graph.entry_revisions(&entry).await?;
    let (p, stragglers) = progress::funnel(
        &targeted,
        &signals.builds,
        &signals.errors,
        &revisions,
        &signals.read_time,
    );
    let rows = stragglers
        .iter()
        .map(|s| {
            vec![
                s.device.clone(),
                match s.state {
                    DeviceState::UpToDate => "up to date",
                    DeviceState::Pending => "pending",
                    DeviceState::Failed => "failed",
                    DeviceState::NotReporting => "not reporting",
                }
                .to_string(),
                s.build.map_or("-".into(), |b| {
                    format!(
                        "{}.{}.{}.{}",
                        b.major_version, b.minor_version, b.build_number, b.update_build_revision
                    )
                }),
                s.error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    Ok(format!(
        "{name}: {} of {} targeted devices up to date, {} pending, {} failed, {} not reporting (Graph read {})\n{}",
        p.up_to_date,
        p.targeted,
        p.pending,
        p.failed,
        p.not_reporting,
        signals.read_time,
        table(&["DEVICE", "STATE", "LAST BUILD", "ERROR"], rows)
    ))
}

/// Runs `status`; exit code 0, 1 on an error.
pub async fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let (client, namespace) = super::cluster::live(
        &args.cluster,
        args.namespace.as_deref(),
        "status reads the cluster",
    )
    .await?;
    let api: Api<ExpeditedDeployment> = if args.all_namespaces {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &namespace)
    };
    let objects = match &args.name {
        Some(name) => vec![api.get(name).await.map_err(|e| {
            super::cluster::object_error(
                e,
                &format!("ExpeditedDeployment {namespace}/{name}"),
                &format!("kubectl get expd -n {namespace}"),
            )
        })?],
        None => {
            api.list(&ListParams::default())
                .await
                .context("listing ExpeditedDeployments")?
                .items
        }
    };
    println!("{}", funnel_table(&objects));
    if args.name.is_some()
        && let Some(waves) = objects.first().and_then(wave_table)
    {
        println!("\n{waves}");
    }
    if args.devices
        && let Some(obj) = objects.first()
    {
        println!("\n{}", devices(args, obj, &client).await?);
    }
    Ok(())
}
