//! The reconcile pipeline: observe -> plan (pure) -> act -> report.
//!
//! - [`desired`]: resolves a spec against the catalog and DeviceGroups;
//! - [`plan`]: the pure planner;
//! - [`expedited`] and [`device_group`]: observe, act and report for each kind, with cleanup;
//! - [`status`]: conditions and status writes;
//! - [`context`]: shared state, metrics and the error type;
//! - [`gate`]: admission of reconciles (bounded, spec changes before verification and resync);
//! - [`controller`]: wiring, triggers and error policy.

pub mod adopt;
pub mod context;
pub mod controller;
pub mod decode;
pub mod desired;
pub mod device_group;
pub mod expedited;
pub mod gate;
pub mod plan;
pub mod status;

pub use context::{Context, Error, ReconcileMetrics, Settings};
