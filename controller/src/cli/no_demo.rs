//! `demo` in a production build (without the `demo` feature): the emulator and the test API server are
//! not in this binary, so the subcommand says so instead of running.

pub use super::demo_args::DemoArgs;

/// Refuses: this build carries no demo.
pub async fn demo(_args: DemoArgs) -> anyhow::Result<bool> {
    anyhow::bail!(
        "this build has no demo: it was built without the `demo` feature (as the container image is); run `cargo run --release -p wufb-operator -- demo` from a source checkout"
    )
}
