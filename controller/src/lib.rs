//! wufb-operator: a Kubernetes controller that drives the Microsoft Graph Windows Update for Business
//! deployment service until it matches `ExpeditedDeployment` and `DeviceGroup` objects, in one tenant or
//! many (`GraphConnection`, `ClusterGraphConnection`).

pub mod cli;
pub mod connections;
pub mod crd;
pub mod graph;
pub mod leader;
pub mod panics;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod telemetry;
