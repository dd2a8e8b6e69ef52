//! How `plan` reaches each tenant: the operator's own client (the flags and `AZURE_*` variables) for
//! objects without `spec.connectionRef`, and for each connection the manifests name a client built as
//! the controller builds it ([`crate::reconcile::connection::plan_connection`]): the connection from the
//! manifests, else from the cluster, and its Secret from the cluster.

use std::collections::BTreeMap;

use kube::api::Api;

use super::manifests::Document;
use crate::connections::ConnKey;
use crate::crd::{ClusterGraphConnection, ConnectionRef, ConnectionSpec, GraphConnection};
use crate::graph::{GraphClient, GraphMetrics};
use crate::reconcile::connection::{SecretRead, plan_connection};
use crate::reconcile::settings::ConnectionDefaults;

/// The Graph clients a plan reads through.
pub struct Graphs {
    pub default: GraphClient,
    pub by_connection: BTreeMap<ConnKey, GraphClient>,
    /// The connections no client could be built for, and why: their objects are planned as unknown.
    pub unreadable: BTreeMap<ConnKey, String>,
}

impl Graphs {
    /// The client for an object in `ns` with this reference, or why there is none.
    pub fn of(&self, r: Option<&ConnectionRef>, ns: &str) -> anyhow::Result<&GraphClient> {
        match r {
            None => Ok(&self.default),
            Some(r) => {
                let key = ConnKey::of(r, ns);
                self.by_connection
                    .get(&key)
                    .ok_or_else(|| match self.unreadable.get(&key) {
                        Some(why) => anyhow::anyhow!("spec.connectionRef: {why}"),
                        None => anyhow::anyhow!("spec.connectionRef: {key} could not be read"),
                    })
            }
        }
    }
}

/// The connection reference of a manifest, if it names one.
pub fn reference(doc: &Document) -> Option<ConnectionRef> {
    serde_json::from_value(doc.value["spec"].get("connectionRef")?.clone()).ok()
}

/// Builds a client for every connection `refs` name; one that cannot be built is recorded with why.
/// `operator_namespace` is where ClusterGraphConnections keep their Secrets.
pub async fn connect(
    default: GraphClient,
    docs: &[&Document],
    refs: impl IntoIterator<Item = ConnKey>,
    cluster: Option<&kube::Client>,
    operator_namespace: Option<&str>,
) -> anyhow::Result<Graphs> {
    let mut by_connection = BTreeMap::new();
    let mut unreadable = BTreeMap::new();
    for key in refs {
        if by_connection.contains_key(&key) || unreadable.contains_key(&key) {
            continue;
        }
        match client_for(&key, docs, cluster, operator_namespace).await {
            Ok(client) => {
                by_connection.insert(key, client);
            }
            Err(e) => {
                unreadable.insert(key, format!("{e:#}"));
            }
        }
    }
    Ok(Graphs {
        default,
        by_connection,
        unreadable,
    })
}

/// A client for one connection, built as the controller builds it: its spec from the manifests, else
/// the cluster, and its Secret from the cluster.
pub async fn client_for(
    key: &ConnKey,
    docs: &[&Document],
    cluster: Option<&kube::Client>,
    operator_namespace: Option<&str>,
) -> anyhow::Result<GraphClient> {
    let spec = connection_spec(key, docs, cluster).await?;
    let secret = match &spec.credential.secret_ref {
        None => SecretRead::NotNeeded,
        Some(r) => {
            let client = cluster.ok_or_else(|| {
                anyhow::anyhow!(
                    "{key}: its Secret {} is read from the cluster, and this plan reads none (give it a kubeconfig that may read the Secret, without --offline)",
                    r.name
                )
            })?;
            let ns = match key.kind {
                crate::crd::ConnectionKind::GraphConnection => key.namespace.clone(),
                crate::crd::ConnectionKind::ClusterGraphConnection => operator_namespace
                    .ok_or_else(|| anyhow::anyhow!("{key}: its Secret is in the operator's namespace; name it with --operator-namespace"))?
                    .to_string(),
            };
            SecretRead::get(client, &ns, &r.name).await?
        }
    };
    // The planner is not the operator: workload identity uses the token file of the environment it
    // runs in (a CI job's federated token).
    let defaults = ConnectionDefaults {
        namespaced_workload_identity: true,
        federated_token_file: std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").map(Into::into),
        ..Default::default()
    };
    let namespaced = key.kind == crate::crd::ConnectionKind::GraphConnection;
    let planned = plan_connection(&spec, None, namespaced, &defaults, &secret)
        .map_err(|o| anyhow::anyhow!("{key}: {}", o.message()))?;
    Ok(GraphClient::new(planned.config, GraphMetrics::default())?)
}

/// A connection's spec: from the manifests when they hold it, else from the cluster.
async fn connection_spec(
    key: &ConnKey,
    docs: &[&Document],
    cluster: Option<&kube::Client>,
) -> anyhow::Result<ConnectionSpec> {
    let in_manifests = docs.iter().find(|d| {
        d.kind() == key.kind.as_str()
            && d.name() == key.name
            && (key.kind == crate::crd::ConnectionKind::ClusterGraphConnection
                || d.namespace().unwrap_or(&key.namespace) == key.namespace)
    });
    if let Some(d) = in_manifests {
        return Ok(serde_json::from_value(d.value["spec"].clone())?);
    }
    let client = cluster.ok_or_else(|| {
        anyhow::anyhow!("{key} is not in the manifests, and this plan reads no cluster (give it a kubeconfig, without --offline)")
    })?;
    let spec = match key.kind {
        crate::crd::ConnectionKind::GraphConnection => {
            Api::<GraphConnection>::namespaced(client.clone(), &key.namespace)
                .get_opt(&key.name)
                .await?
                .map(|c| c.spec.connection)
        }
        crate::crd::ConnectionKind::ClusterGraphConnection => {
            Api::<ClusterGraphConnection>::all(client.clone())
                .get_opt(&key.name)
                .await?
                .map(|c| c.spec.connection)
        }
    };
    spec.ok_or_else(|| anyhow::anyhow!("{key} does not exist in the manifests or the cluster"))
}
