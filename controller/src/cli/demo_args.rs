//! The `demo` subcommand's flags, parsed by every build; the demo itself needs the `demo` feature.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Stay up after convergence, printing `kubeconfig: PATH` and `graph: URL` for kubectl and curl.
    #[arg(long)]
    pub keep_running: bool,
    /// Apply the manifests under this path instead of the built-in examples.
    #[arg(long, short = 'f')]
    pub examples: Option<PathBuf>,
    /// Namespace the examples are applied to.
    #[arg(long, default_value = "wufb-demo")]
    pub namespace: String,
    /// Give up when not converged after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Latency the emulator adds to every Graph call, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub graph_latency_ms: u64,
}
