//! The API: `ExpeditedDeployment` and `DeviceGroup` (`wufb.dev/v1alpha1`). The only place the API shape
//! is defined; `crds/` and the chart are generated from these types.

pub mod device_group;
pub mod expedited_deployment;
pub mod schema;
pub mod validate;

pub use device_group::{DeviceGroup, DeviceGroupSpec, DeviceGroupStatus};
pub use expedited_deployment::*;

use kube::CustomResourceExt;

/// The finalizer that guards Graph cleanup.
pub const FINALIZER: &str = "wufb.dev/cleanup";
/// Annotation: per-object resync interval (e.g. `5m`, `1h`).
pub const RESYNC_ANNOTATION: &str = "wufb.dev/resync-interval";
/// Per-object override of how often `refresh: OnNewRelease` reads the catalog again (`15m`, `1h`, ...).
pub const CATALOG_POLL_ANNOTATION: &str = "wufb.dev/catalog-poll-interval";
/// Per-object rollout progress poll interval (`5m`, `90s`, ...), overriding `--progress-interval`.
pub const PROGRESS_ANNOTATION: &str = "wufb.dev/progress-interval";

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
    ])
}
