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
pub struct DeviceGroupSpec {
    /// Entra (Azure AD) device ids, GUIDs such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01. Each id once.
    #[serde(default)]
    #[schemars(
        length(max = 50000),
        inner(regex(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub devices: Vec<DeviceId>,
}

/// An Entra device id.
pub type DeviceId = String;

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

    /// Devices in the Graph group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u64>,

    /// Devices Graph could not register, with the reason (at most 50 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_errors: Vec<DeviceError>,

    /// When the status last changed after a sync with Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,

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
