//! The API: `ExpeditedDeployment`, `DeviceGroup`, `GraphConnection` and `ClusterGraphConnection`
//! (`wufb.dev/v1alpha1`). The only place the API shape is defined; `crds/` and the chart are generated
//! from these types.

pub mod annotations;
pub mod audience_item;
pub mod device_group;
pub mod device_id;
pub mod duration;
pub mod expedited_deployment;
pub mod graph_connection;
pub mod schema;
pub mod text;
pub mod validate;

pub use audience_item::{AudienceItem, AudienceItemFields};
pub use device_group::{DeviceGroup, DeviceGroupSpec, DeviceGroupStatus};
pub use device_id::DeviceId;
pub use expedited_deployment::*;
pub use graph_connection::{
    ClusterGraphConnection, ClusterGraphConnectionSpec, ConnectionKind, ConnectionRef, ConnectionSpec,
    GraphConnection, GraphConnectionSpec, GraphConnectionStatus, ServiceBehaviour,
};

use kube::CustomResourceExt;

/// The finalizer that guards Graph cleanup.
pub const FINALIZER: &str = "wufb.dev/cleanup";

/// The oldest Kubernetes (major, minor) the CRDs work on: CEL validation rules are GA from 1.29 and CRD
/// validation ratcheting (an upgraded schema never refuses an unchanged field stored under the old one)
/// is on by default from 1.30 (KEP-4008: beta 1.30, GA 1.33). The chart's `kubeVersion`, the README and
/// the test API server's `/version` agree with it (a test keeps them so).
pub const MIN_KUBERNETES: (u32, u32) = (1, 30);
pub use annotations::{
    ABORT as ABORT_ANNOTATION, CATALOG_POLL as CATALOG_POLL_ANNOTATION, PROGRESS as PROGRESS_ANNOTATION,
    PROMOTE as PROMOTE_ANNOTATION, RECONCILE_REQUESTED as RECONCILE_REQUESTED_ANNOTATION,
    RESYNC as RESYNC_ANNOTATION, RETRY as RETRY_ANNOTATION,
};

/// Every CRD of the operator, in a stable order.
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    vec![
        ExpeditedDeployment::crd(),
        DeviceGroup::crd(),
        GraphConnection::crd(),
        ClusterGraphConnection::crd(),
    ]
}

/// The CRDs as YAML documents, in a stable order.
pub fn crd_yaml() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        (
            "expediteddeployments.wufb.dev.yaml",
            serde_yaml::to_string(&ExpeditedDeployment::crd())?,
        ),
        (
            "devicegroups.wufb.dev.yaml",
            serde_yaml::to_string(&DeviceGroup::crd())?,
        ),
        (
            "graphconnections.wufb.dev.yaml",
            serde_yaml::to_string(&GraphConnection::crd())?,
        ),
        (
            "clustergraphconnections.wufb.dev.yaml",
            serde_yaml::to_string(&ClusterGraphConnection::crd())?,
        ),
    ])
}
