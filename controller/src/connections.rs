//! Many tenants from one operator: which Graph client an object's pass uses.
//!
//! An ExpeditedDeployment or DeviceGroup without `spec.connectionRef` uses the operator-wide client
//! (its flags and credentials). One with a reference uses the client of that GraphConnection (in the
//! object's own namespace) or ClusterGraphConnection (whose namespaceSelector admits the object's
//! namespace), which the connection controller (`reconcile::connection`) builds once the connection
//! has signed in and read Graph, and keeps here. Each such client has its own token cache, rate
//! limiter and concurrency, and each connection bounds how many passes of its objects work at once, so
//! a tenant that throttles or fails sign-in slows only its own objects.
//!
//! [`resolve`] is pure: it decides from the connection objects and the namespace's labels whether a
//! reference may be used. [`Connections`] holds the clients of the connections that are ready.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use kube::core::{Selector, SelectorExt};

use crate::crd::{ClusterGraphConnection, ConnectionKind, ConnectionRef, GraphConnection};
use crate::graph::GraphClient;

/// The objects that may name a connection.
pub trait UsesConnection: kube::Resource {
    fn connection_ref(&self) -> Option<&ConnectionRef>;
    /// The tenant its status says its Graph objects live in.
    fn recorded_tenant(&self) -> Option<&str>;
    /// Whether its status records anything made in Graph (or a create that may have made something).
    fn has_graph_state(&self) -> bool;
    /// Its status conditions.
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition];
}

impl UsesConnection for crate::crd::ExpeditedDeployment {
    fn connection_ref(&self) -> Option<&ConnectionRef> {
        self.spec.connection_ref.as_ref()
    }
    fn recorded_tenant(&self) -> Option<&str> {
        self.status.as_ref()?.tenant_id.as_deref()
    }
    fn has_graph_state(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.deployment_id.is_some() || s.audience_id.is_some() || s.create_intent.is_some()
        }) || self.spec.deployment_id.is_some()
    }
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }
}

impl UsesConnection for crate::crd::DeviceGroup {
    fn connection_ref(&self) -> Option<&ConnectionRef> {
        self.spec.connection_ref.as_ref()
    }
    fn recorded_tenant(&self) -> Option<&str> {
        self.status.as_ref()?.tenant_id.as_deref()
    }
    fn has_graph_state(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.group_id.is_some() || s.create_intent.is_some())
    }
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }
}

/// A connection object, by kind, namespace (empty for the cluster kind) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub kind: ConnectionKind,
    pub namespace: String,
    pub name: String,
}

impl ConnKey {
    pub fn graph(namespace: &str, name: &str) -> Self {
        ConnKey {
            kind: ConnectionKind::GraphConnection,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn cluster(name: &str) -> Self {
        ConnKey {
            kind: ConnectionKind::ClusterGraphConnection,
            namespace: String::new(),
            name: name.into(),
        }
    }

    /// The key `r` names for an object in `namespace`.
    pub fn of(r: &ConnectionRef, namespace: &str) -> Self {
        match r.kind {
            ConnectionKind::GraphConnection => ConnKey::graph(namespace, &r.name),
            ConnectionKind::ClusterGraphConnection => ConnKey::cluster(&r.name),
        }
    }

    /// The metric label of the connection: `GraphConnection/ns/name` or `ClusterGraphConnection/name`
    /// (bounded by the number of connections, which are configuration).
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for ConnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ConnectionKind::GraphConnection => write!(f, "GraphConnection/{}/{}", self.namespace, self.name),
            ConnectionKind::ClusterGraphConnection => write!(f, "ClusterGraphConnection/{}", self.name),
        }
    }
}

/// Which part of the tenants this process serves when several operator instances split them: each
/// connection belongs to one shard (by a stable hash of its kind, namespace and name), objects without a
/// connection to shard 0, and only the shard's owner (one Lease per shard) reads or writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub count: u32,
    pub index: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { count: 1, index: 0 }
    }
}

impl Shard {
    /// The shard of a connection (`None`: the operator-wide credentials, shard 0).
    pub fn of(count: u32, key: Option<&ConnKey>) -> u32 {
        let Some(key) = key.filter(|_| count > 1) else {
            return 0;
        };
        // FNV-1a: stable across processes, versions and platforms.
        let hash = key.label().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % u64::from(count)) as u32
    }

    /// Whether this process serves `key`'s objects.
    pub fn serves(&self, key: Option<&ConnKey>) -> bool {
        Shard::of(self.count, key) == self.index
    }
}

/// The connection an object names, as a key (`None`: the operator-wide credentials).
pub fn key_of<K: UsesConnection>(obj: &K) -> Option<ConnKey> {
    obj.connection_ref()
        .map(|r| ConnKey::of(r, obj.meta().namespace.as_deref().unwrap_or_default()))
}

/// Why a reference cannot be used, as the object's condition says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Multi-tenancy is off (`--connections=false`): no reference can be used. Stalls.
    Disabled,
    /// The connection does not exist (yet): waits, as GitOps may apply it later.
    NotFound(ConnKey),
    /// A ClusterGraphConnection whose namespaceSelector does not admit the object's namespace. Stalls.
    NotAllowed { key: ConnKey, namespace: String },
    /// The connection exists but has not signed in and read Graph yet (or cannot): waits.
    NotReady { key: ConnKey, why: String },
}

impl Refusal {
    /// Whether the object waits (the reference may become usable by itself) rather than stalls.
    pub fn waits(&self) -> bool {
        matches!(self, Refusal::NotFound(_) | Refusal::NotReady { .. })
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Disabled => "spec.connectionRef: the operator runs with multi-tenancy off (--connections=false, chart value connections.enabled); remove spec.connectionRef to use the operator's own credentials, or turn connections on; nothing was written to Graph".into(),
            Refusal::NotFound(key) => format!(
                "spec.connectionRef: {key} does not exist; create it (a GraphConnection must be in the object's own namespace); nothing was written to Graph"
            ),
            Refusal::NotAllowed { key, namespace } => format!(
                "spec.connectionRef: {key} does not admit namespace {namespace} (its spec.namespaceSelector does not match the namespace's labels); label the namespace or use another connection; nothing was written to Graph"
            ),
            Refusal::NotReady { key, why } => format!(
                "spec.connectionRef: {key} is not ready ({why}); nothing was written to Graph"
            ),
        }
    }
}

/// Whether a ClusterGraphConnection admits a namespace with these labels. A selector that cannot be
/// read admits none.
pub fn admits(connection: &ClusterGraphConnection, namespace_labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(connection.spec.namespace_selector.clone()).is_ok_and(|s| s.matches(namespace_labels))
}

/// The connection a reference names, if the object in `namespace` may use it (the client still has to
/// be ready: [`Connections::client`]). `graph` and `cluster` look connection objects up by key;
/// `labels` gives a namespace's labels (`None`: not known).
pub fn resolve(
    r: &ConnectionRef,
    namespace: &str,
    graph: impl Fn(&ConnKey) -> Option<Arc<GraphConnection>>,
    cluster: impl Fn(&ConnKey) -> Option<Arc<ClusterGraphConnection>>,
    labels: impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> Result<ConnKey, Refusal> {
    let key = ConnKey::of(r, namespace);
    match r.kind {
        ConnectionKind::GraphConnection => match graph(&key) {
            Some(_) => Ok(key),
            None => Err(Refusal::NotFound(key)),
        },
        ConnectionKind::ClusterGraphConnection => {
            let Some(c) = cluster(&key) else {
                return Err(Refusal::NotFound(key));
            };
            if admits(&c, &labels(namespace).unwrap_or_default()) {
                Ok(key)
            } else {
                Err(Refusal::NotAllowed {
                    key,
                    namespace: namespace.into(),
                })
            }
        }
    }
}

/// A ready connection: its client and tenant, and the bound on its passes.
#[derive(Debug)]
pub struct Connected {
    pub client: Arc<GraphClient>,
    pub tenant_id: String,
    /// What the client was built from (the spec's generation, the Secret's resourceVersion): a change
    /// builds a new one.
    pub built_from: String,
    /// Passes of this connection's objects working at once.
    pub passes: Arc<tokio::sync::Semaphore>,
}

/// The clients of the connections that are ready, and why the others are not.
#[derive(Debug, Default)]
pub struct Connections {
    ready: RwLock<HashMap<ConnKey, Arc<Connected>>>,
    not_ready: RwLock<HashMap<ConnKey, String>>,
}

impl Connections {
    /// The ready client of `key`, or why there is none.
    pub fn client(&self, key: &ConnKey) -> Result<Arc<Connected>, Refusal> {
        if let Some(c) = self.ready.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(c.clone());
        }
        let why = self
            .not_ready
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_else(|| "it has not signed in yet".into());
        Err(Refusal::NotReady {
            key: key.clone(),
            why,
        })
    }

    /// The client held for `key`, ready or not checked again yet.
    pub fn held(&self, key: &ConnKey) -> Option<Arc<Connected>> {
        self.ready
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Records a connection that signed in and read Graph.
    pub fn set_ready(&self, key: &ConnKey, connected: Arc<Connected>) {
        self.not_ready
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.ready
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), connected);
    }

    /// Records why a connection cannot be used; `keep` keeps the client it had (a passing failure of a
    /// connection that worked: its objects go on with it).
    pub fn set_not_ready(&self, key: &ConnKey, why: &str, keep: bool) {
        if !keep {
            self.ready.write().unwrap_or_else(|e| e.into_inner()).remove(key);
        }
        self.not_ready
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), why.to_string());
    }

    /// Forgets a deleted connection.
    pub fn forget(&self, key: &ConnKey) {
        self.ready.write().unwrap_or_else(|e| e.into_inner()).remove(key);
        self.not_ready
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(selector: serde_json::Value) -> Arc<ClusterGraphConnection> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "ClusterGraphConnection",
                "metadata": {"name": "shared"},
                "spec": {"tenantId": "00000000-0000-4000-8000-000000000001", "clientId": "00000000-0000-4000-8000-000000000002",
                         "credential": {"workloadIdentity": {}}, "namespaceSelector": selector},
            }))
            .unwrap(),
        )
    }

    fn local() -> Arc<GraphConnection> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "GraphConnection",
                "metadata": {"name": "tenant-a", "namespace": "team-a"},
                "spec": {"tenantId": "00000000-0000-4000-8000-000000000001", "clientId": "00000000-0000-4000-8000-000000000002",
                         "credential": {"secretRef": {"name": "tenant-a"}}},
            }))
            .unwrap(),
        )
    }

    fn reference(kind: ConnectionKind, name: &str) -> ConnectionRef {
        ConnectionRef {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn a_reference_resolves_only_to_a_connection_the_namespace_may_use() {
        let graph = |k: &ConnKey| (k == &ConnKey::graph("team-a", "tenant-a")).then(local);
        let team = |selector| {
            move |k: &ConnKey| {
                (k == &ConnKey::cluster("shared")).then(|| cluster(serde_json::json!(selector)))
            }
        };
        let labels = |ns: &str| {
            Some(match ns {
                "team-a" => BTreeMap::from([("wufb.dev/tenant".to_string(), "contoso".to_string())]),
                _ => BTreeMap::new(),
            })
        };
        let local_ref = reference(ConnectionKind::GraphConnection, "tenant-a");
        let shared_ref = reference(ConnectionKind::ClusterGraphConnection, "shared");
        let other_ref = reference(ConnectionKind::ClusterGraphConnection, "other");
        type Row<'a> = (
            &'a str,
            &'a ConnectionRef,
            &'a str,
            serde_json::Value,
            Result<ConnKey, &'a str>,
        );
        let rows: Vec<Row> = vec![
            (
                "a GraphConnection in the object's namespace",
                &local_ref,
                "team-a",
                serde_json::json!({}),
                Ok(ConnKey::graph("team-a", "tenant-a")),
            ),
            (
                "a GraphConnection of that name in another namespace is not seen",
                &local_ref,
                "team-b",
                serde_json::json!({}),
                Err("not found"),
            ),
            (
                "a cluster connection whose selector matches",
                &shared_ref,
                "team-a",
                serde_json::json!({"matchLabels": {"wufb.dev/tenant": "contoso"}}),
                Ok(ConnKey::cluster("shared")),
            ),
            (
                "a cluster connection whose selector does not match",
                &shared_ref,
                "team-b",
                serde_json::json!({"matchLabels": {"wufb.dev/tenant": "contoso"}}),
                Err("not allowed"),
            ),
            (
                "an expression selector",
                &shared_ref,
                "team-b",
                serde_json::json!({"matchExpressions": [{"key": "wufb.dev/tenant", "operator": "DoesNotExist"}]}),
                Ok(ConnKey::cluster("shared")),
            ),
            (
                "an empty selector admits every namespace",
                &shared_ref,
                "team-b",
                serde_json::json!({}),
                Ok(ConnKey::cluster("shared")),
            ),
            (
                "a missing cluster connection",
                &other_ref,
                "team-a",
                serde_json::json!({}),
                Err("not found"),
            ),
        ];
        for (name, r, ns, selector, want) in rows {
            let got = resolve(r, ns, graph, team(selector), labels);
            match (got, want) {
                (Ok(k), Ok(w)) => assert_eq!(k, w, "{name}"),
                (Err(Refusal::NotFound(_)), Err("not found")) => {}
                (Err(Refusal::NotAllowed { .. }), Err("not allowed")) => {}
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn shards_split_connections_stably_and_keep_the_operators_own_objects_on_shard_0() {
        let keys: Vec<ConnKey> = (0..64)
            .map(|i| ConnKey::graph("tenants", &format!("t{i}")))
            .collect();
        let of = |k: &ConnKey| Shard::of(4, Some(k));
        let counts = keys.iter().fold([0; 4], |mut c, k| {
            c[of(k) as usize] += 1;
            c
        });
        assert!(
            counts.iter().all(|n| *n >= 8),
            "spread over every shard: {counts:?}"
        );
        assert_eq!(of(&keys[7]), of(&ConnKey::graph("tenants", "t7")), "stable");
        assert_eq!(Shard::of(4, None), 0);
        assert_eq!(Shard::of(1, Some(&keys[3])), 0, "one shard serves all");
        let mine = Shard {
            count: 4,
            index: of(&keys[5]),
        };
        assert!(mine.serves(Some(&keys[5])));
        assert_eq!(mine.serves(None), mine.index == 0);
    }

    #[test]
    fn a_refusal_says_whether_the_object_waits_or_stalls_and_names_the_fix() {
        let key = ConnKey::cluster("shared");
        assert!(Refusal::NotFound(key.clone()).waits());
        assert!(
            Refusal::NotReady {
                key: key.clone(),
                why: "x".into()
            }
            .waits()
        );
        let refused = Refusal::NotAllowed {
            key,
            namespace: "team-b".into(),
        };
        assert!(!refused.waits());
        assert!(refused.message().contains("namespaceSelector") && refused.message().contains("team-b"));
        assert!(!Refusal::Disabled.waits());
    }
}
