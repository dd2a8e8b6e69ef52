//! `GraphConnection` (namespaced) and `ClusterGraphConnection` (cluster-scoped): a tenant, an app
//! registration and its credential, which ExpeditedDeployments and DeviceGroups name in
//! `spec.connectionRef` to reach that tenant. Objects without a reference use the operator-wide
//! credentials.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A Microsoft Entra tenant the operator reaches through Microsoft Graph, for the objects of this
/// namespace that name it in spec.connectionRef.
// The derive reads several `printcolumn(type_ = …)` attributes; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "wufb.dev",
    version = "v1alpha1",
    kind = "GraphConnection",
    namespaced,
    status = "GraphConnectionStatus",
    shortname = "gc",
    category = "wufb",
    doc = "A Microsoft Entra tenant and the app registration the operator signs in as, for the objects of this namespace that name it in spec.connectionRef.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantId"),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.userCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct GraphConnectionSpec {
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

/// A Microsoft Entra tenant the operator reaches through Microsoft Graph, for the objects of the
/// namespaces its namespaceSelector admits.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "wufb.dev",
    version = "v1alpha1",
    kind = "ClusterGraphConnection",
    status = "GraphConnectionStatus",
    shortname = "cgc",
    category = "wufb",
    doc = "A Microsoft Entra tenant and the app registration the operator signs in as, for the objects of the namespaces its namespaceSelector admits.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantId"),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.userCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGraphConnectionSpec {
    #[serde(flatten)]
    pub connection: ConnectionSpec,

    /// The namespaces whose objects may use this connection, by their labels. Required: `{}` admits
    /// every namespace; a selector that matches none admits none.
    pub namespace_selector: LabelSelector,
}

/// What both connection kinds hold.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// The Entra tenant (directory) id, a GUID.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub tenant_id: String,

    /// The application (client) id of the app registration the operator signs in as, a GUID. It
    /// needs the Graph application permission WindowsUpdates.ReadWrite.All in this tenant (and
    /// GroupMember.Read.All with Device.Read.All for DeviceGroups that read Entra groups).
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub client_id: String,

    /// How the operator proves it is that app: exactly one of secretRef or workloadIdentity.
    pub credential: ConnectionCredential,

    /// The Microsoft cloud: global (default), us-gov (GCC High) or us-gov-dod. The deployment service
    /// is not offered in china.
    #[serde(default)]
    pub cloud: ConnectionCloud,

    /// Endpoints that replace the cloud's: a Graph proxy, or the project's Graph emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<ConnectionEndpoints>,

    /// This tenant's own Graph request budget; unset fields take the operator's flags. A tenant
    /// answering 429 or failing sign-in slows only the objects that use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<ConnectionBudget>,
}

/// The Microsoft clouds.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionCloud {
    #[default]
    Global,
    UsGov,
    UsGovDod,
    China,
}

/// The credential of a connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
// CEL cost: 31
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.workloadIdentity)").message("set exactly one of secretRef or workloadIdentity"))]
pub struct ConnectionCredential {
    /// A Secret holding the app's client secret (key clientSecret) or its certificate and private key in
    /// PEM (key clientCertificate). A GraphConnection's Secret is in its own namespace; a
    /// ClusterGraphConnection's is in the operator's namespace. A change to the Secret is picked up
    /// without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,

    /// Sign in with the operator's own Kubernetes service-account token (workload identity
    /// federation: the app registration trusts the operator's service account), so no secret is kept.
    /// Only ClusterGraphConnections may use it, unless the operator runs with
    /// --namespaced-workload-identity: with it, anyone who can create a GraphConnection can sign in as
    /// any app that trusts the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
}

/// A Secret, by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Workload identity federation with the operator's service-account token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {}

/// Endpoints that replace the cloud's.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEndpoints {
    /// The Graph base URL with its version, e.g. https://graph.microsoft.com/beta.
    #[schemars(length(min = 1, max = 2048))]
    pub graph_url: String,

    /// The sign-in authority host, e.g. https://login.microsoftonline.com (default: the Graph URL's
    /// origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub authority_host: Option<String>,
}

/// A connection's own Graph request budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionBudget {
    /// Sustained Graph requests per second to this tenant (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10000))]
    pub requests_per_second: Option<u32>,

    /// Requests allowed at once after an idle period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<u32>,

    /// Graph requests in flight at once to this tenant; also bounds the reconciles working on its
    /// objects at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<u32>,
}

/// The observed state of a connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GraphConnectionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The objects that use this connection (namespace/Kind/name, at most 50 listed). While any do,
    /// the connection is not deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,

    /// How many objects use this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,

    /// When the operator last signed in and read Graph through this connection (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<String>,

    /// When the certificate of a certificate credential expires (its notAfter, RFC 3339), as read from
    /// the Secret at the last check. Renew it in the app registration and the Secret before then; the
    /// chart's WufbCertificateExpiringSoon alert fires 14 days ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiry_time: Option<String>,

    /// What the operator found the service does where the reference is silent or has changed (audience
    /// paging, the deployments filter, device signals), at the last check; `wufb-operator check`
    /// reports the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub service_behaviours: Vec<ServiceBehaviour>,

    /// Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One service behaviour the operator adapts to, as found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBehaviour {
    /// `audience-paging`, `deployment-filter` or `device-signals`.
    pub name: String,
    /// `served`, `refused`, `readable` or `unknown`.
    pub value: String,
    /// What was found, in a sentence.
    pub found: String,
}

/// Which connection an ExpeditedDeployment or DeviceGroup reaches its tenant through.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    /// GraphConnection (default: one in the object's own namespace) or ClusterGraphConnection (one
    /// whose namespaceSelector admits the object's namespace).
    #[serde(default)]
    pub kind: ConnectionKind,

    /// The connection's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The kinds of connection.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
)]
pub enum ConnectionKind {
    #[default]
    GraphConnection,
    ClusterGraphConnection,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::GraphConnection => "GraphConnection",
            ConnectionKind::ClusterGraphConnection => "ClusterGraphConnection",
        }
    }
}

impl std::fmt::Display for ConnectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}
