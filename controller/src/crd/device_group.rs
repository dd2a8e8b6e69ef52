//! `DeviceGroup`: one Graph updatableAssetGroup, edited in one place and referenced by deployments.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::expedited_deployment::DeviceError;

/// A ring of devices (a Graph updatableAssetGroup) that ExpeditedDeployments reference by name.
// The derive reads several `printcolumn(type_ = …)` attributes; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "wufb.dev",
    version = "v1alpha1",
    kind = "DeviceGroup",
    namespaced,
    status = "DeviceGroupStatus",
    shortname = "dg",
    category = "wufb",
    doc = "A group of Entra devices kept in step with a Graph updatableAssetGroup.",
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
    printcolumn(name = "Devices", type_ = "integer", json_path = ".status.memberCount"),
    printcolumn(name = "Group", type_ = "string", json_path = ".status.groupId"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
// CEL cost: 12
#[x_kube(validation = Rule::new("!(has(self.entraGroupId) && has(self.devices) && size(self.devices) > 0)").message("set either devices or entraGroupId, not both"))]
pub struct DeviceGroupSpec {
    /// Entra (Azure AD) device ids, GUIDs such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01. Each id once;
    /// at most 15000, what a cluster can store. Above about 6000, apply with `kubectl apply
    /// --server-side` (client-side apply keeps a second copy in an annotation limited to 256 KiB); for
    /// larger rings use entraGroupId.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 15000),
        inner(regex(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub devices: Vec<DeviceId>,

    /// Take the devices from this Entra ID group instead (its object id, a GUID), nested groups
    /// included, as admins keep rings (often dynamic groups); read through Microsoft Graph at every
    /// resync. Needs the Graph application permissions GroupMember.Read.All and Device.Read.All.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub entra_group_id: Option<String>,

    /// The connection (tenant and credentials) the group lives in; unset: the operator's own
    /// credentials. The ExpeditedDeployments that use the group must name the same connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_ref: Option<super::ConnectionRef>,
}

/// The most devices a DeviceGroup lists itself: what fits in one object of a cluster (etcd's 1.5 MiB)
/// with its managedFields when applied server-side (see `tests/tests/rings.rs` for the arithmetic).
pub const MAX_DEVICES: usize = 15_000;

pub use super::device_id::DeviceId;

/// The observed state of the group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeviceGroupStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The Graph updatableAssetGroup id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,

    /// The Entra tenant the group lives in (the connection's, or the operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,

    /// Devices in the Graph group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u64>,

    /// Devices Graph could not register, with the reason (at most 50 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_errors: Vec<DeviceError>,

    /// When the status last changed after a sync with Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,

    /// When Graph first answered 404 for the recorded group (RFC 3339). It is created again only if it is
    /// still missing `--absence-confirm` later; a read that finds it clears this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<String>,

    /// A group create in progress: recorded (resourceVersion-checked) before the Graph create, cleared
    /// when the group id is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_intent: Option<GroupCreateIntent>,

    /// Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A map list keyed by type: another writer's condition keeps its own owner under server-side apply.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A group create that was started.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupCreateIntent {
    /// When the create was sent (RFC 3339).
    pub started_at: String,
}
