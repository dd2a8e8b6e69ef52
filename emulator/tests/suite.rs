//! Every integration test of `wufb-graph-emulator`, in one test binary: each file of this directory is a module
//! of it (one link and one binary instead of one per file). Run one file's tests with
//! `cargo test -p wufb-graph-emulator --test suite <file>::`.

mod cli;
mod graph_api;
mod hostile;
