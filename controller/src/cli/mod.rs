//! Subcommands: `run`, `crdgen`, `validate`, `plan`, `demo`.

pub mod crdgen;
pub mod demo;
pub mod manifests;
pub mod plan;
pub mod run;
pub mod validate;
