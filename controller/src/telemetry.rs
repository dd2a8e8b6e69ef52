//! Logging (JSON or text, filtered by `RUST_LOG`) and the metrics registry.

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber; later calls are no-ops.
pub fn init_logging(format: LogFormat) {
    init_logging_with(format, "info,kube=warn,hyper=warn");
}

/// Like [`init_logging`], with the filter used when `RUST_LOG` is unset.
pub fn init_logging_with(format: LogFormat, default_filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide registry served at `/metrics`.
pub type SharedRegistry = Arc<Mutex<Registry>>;

/// Encodes the registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "failed to encode metrics");
    }
    out
}
