//! Every integration test of `wufb-test-apiserver`, in one test binary: each file of this directory is a module
//! of it (one link and one binary instead of one per file). Run one file's tests with
//! `cargo test -p wufb-test-apiserver --test suite <file>::`.

mod behaviour;
mod hostile;
