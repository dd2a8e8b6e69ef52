//! `/metrics`, `/healthz` and `/readyz` on the metrics port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::telemetry::{SharedRegistry, encode};

/// Shared with the probes.
#[derive(Clone)]
pub struct Probes {
    pub registry: SharedRegistry,
    /// Set once the process can serve (leader or standby).
    pub ready: Arc<AtomicBool>,
    /// Set while this replica holds the leader lease.
    pub leader: Arc<AtomicBool>,
}

/// `wufb_leader`: whether this replica holds the leader Lease, read from the flag at each scrape.
#[derive(Debug)]
pub struct LeaderCollector(pub Arc<AtomicBool>);

impl prometheus_client::collector::Collector for LeaderCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        let leader = i64::from(self.0.load(Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "wufb_leader",
            "Whether this replica holds the leader lease",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        prometheus_client::metrics::gauge::ConstGauge::new(leader).encode(metric)
    }
}

impl Probes {
    /// Probes with the leader gauge registered in `registry`.
    pub fn new(mut registry: prometheus_client::registry::Registry) -> Probes {
        let leader = Arc::new(AtomicBool::new(false));
        registry.register_collector(Box::new(LeaderCollector(leader.clone())));
        Probes {
            registry: Arc::new(std::sync::Mutex::new(registry)),
            ready: Arc::new(AtomicBool::new(false)),
            leader,
        }
    }
}

async fn metrics(State(p): State<Probes>) -> impl IntoResponse {
    let body = match p.registry.lock() {
        Ok(r) => encode(&r),
        Err(_) => String::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn readyz(State(p): State<Probes>) -> StatusCode {
    if p.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(probes)
}

/// Serves the probes until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probes: Probes,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(probes))
        .with_graceful_shutdown(shutdown)
        .await
}
