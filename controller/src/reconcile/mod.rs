//! The reconcile pipeline: observe -> plan (pure) -> act -> report.

pub mod plan;
