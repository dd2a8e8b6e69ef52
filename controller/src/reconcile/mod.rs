//! The reconcile pipeline, one module per step: [`observe`] reads everything a pass needs into plain
//! data, [`plan`] decides (pure), [`act`] runs the plan through the Graph client, and the drivers
//! ([`expedited`], [`device_group`]) report it through [`status`]. `plan` (the CLI) runs the same
//! observe and plan.
//!
//! Shared pieces, each with one concern: [`context`] (what a pass shares), [`settings`], [`error`],
//! [`requeue`] (resync, backoff, verify), [`events`], [`finalizer`], [`metrics`], [`reasons`] (condition
//! types and reasons), [`writes`] (what this process last wrote), [`adopt`] (matching a lost create), [`rollout`] (wave gates, halts and aborts).
//! Admission, watches and triggers are the controller wiring's: see [`crate::runtime`].

pub mod act;
pub mod adopt;
pub mod connection;
pub mod context;
pub mod device_group;
pub mod devices;
pub mod driver;
pub mod error;
pub mod events;
pub mod expedited;
pub mod finalizer;
pub mod metrics;
pub mod observe;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod reasons;
pub mod requeue;
pub mod rollout;
pub mod settings;
pub mod spec;
pub mod state_metrics;
pub mod status;
pub mod tenancy;
pub mod writes;

pub use context::Context;
pub use error::Error;
pub use metrics::ReconcileMetrics;
pub use settings::Settings;
