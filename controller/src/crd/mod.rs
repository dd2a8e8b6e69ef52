//! The API: `ExpeditedDeployment`, `DeviceGroup`, `GraphConnection` and `ClusterGraphConnection`
//! (`wufb.dev/v1alpha1`). The only place the API shape is defined; `crds/` and the chart are generated
//! from these types.

pub mod audience_item;
pub mod device_group;
pub mod device_id;
pub mod expedited_deployment;
pub mod graph_connection;
pub mod schema;
pub mod validate;

pub use audience_item::{AudienceItem, AudienceItemFields};
pub use device_group::{DeviceGroup, DeviceGroupSpec, DeviceGroupStatus};
pub use device_id::DeviceId;
pub use expedited_deployment::*;
pub use graph_connection::{
    ClusterGraphConnection, ClusterGraphConnectionSpec, ConnectionKind, ConnectionRef, ConnectionSpec,
    GraphConnection, GraphConnectionSpec, GraphConnectionStatus,
};

use kube::CustomResourceExt;

/// The finalizer that guards Graph cleanup.
pub const FINALIZER: &str = "wufb.dev/cleanup";
/// Annotation: per-object resync interval (e.g. `5m`, `1h`).
pub const RESYNC_ANNOTATION: &str = "wufb.dev/resync-interval";
/// Per-object override of how often `refresh: OnNewRelease` reads the catalog again (`15m`, `1h`, ...).
pub const CATALOG_POLL_ANNOTATION: &str = "wufb.dev/catalog-poll-interval";
/// Per-object rollout progress poll interval (`5m`, `90s`, ...), overriding `--progress-interval`.
pub const PROGRESS_ANNOTATION: &str = "wufb.dev/progress-interval";

/// Annotation: promote the waves up to and including the one named, past their gates (never past a
/// halt, an abort or spec.paused). Set by `wufb-operator promote`.
pub const PROMOTE_ANNOTATION: &str = "wufb.dev/promote";
/// Annotation: stop promoting for good and keep the deployment paused until the spec changes; any new
/// value is a new request. Set by `wufb-operator abort`.
pub const ABORT_ANNOTATION: &str = "wufb.dev/abort";
/// Annotation: lift a halt and resume the gates; any new value is a new request. Set by
/// `wufb-operator retry`.
pub const RETRY_ANNOTATION: &str = "wufb.dev/retry";

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
