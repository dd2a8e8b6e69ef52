//! Subcommands: `run`, `crdgen`, `validate`, `plan`, `demo`.

pub mod crdgen;
pub mod run;
