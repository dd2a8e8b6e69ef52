//! Every integration test of `wufb-operator`, in one test binary: each file of this directory is a module
//! of it (one link and one binary instead of one per file). Run one file's tests with
//! `cargo test -p wufb-operator --test suite <file>::`.

mod cel_cost;
mod check;
mod crds;
mod fuzz_corpus;
mod graph_client;
mod hostile_graph;
mod layers;
mod scenarios;
mod tls;
