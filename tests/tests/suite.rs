//! Every integration test of `wufb-e2e`, in one test binary: each file of this directory is a module
//! of it (one link and one binary instead of one per file). Run one file's tests with
//! `cargo test -p wufb-e2e --test suite <file>::`.

mod alerts;
mod bad_input;
mod book;
mod brake;
mod chart;
mod check;
mod contain;
mod demo;
mod e2e;
mod gitops;
mod gitops_health;
mod graph_lag;
mod harness;
mod hostile;
mod image;
mod lifecycle;
mod plan_matches;
mod poison;
mod pr_action;
mod progress;
mod proxy;
mod real_server;
mod release;
mod reliability;
mod rings;
mod rules;
mod tenants;
mod waves;
