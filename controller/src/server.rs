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

async fn metrics(State(p): State<Probes>) -> impl IntoResponse {
    let mut body = match p.registry.lock() {
        Ok(r) => encode(&r),
        Err(_) => String::new(),
    };
    // The leader flag is served alongside the registry's metrics.
    let leader = u8::from(p.leader.load(Ordering::Relaxed));
    let eof = body.rfind("# EOF").unwrap_or(body.len());
    body.insert_str(eof, &format!("# HELP wufb_leader Whether this replica holds the leader lease.\n# TYPE wufb_leader gauge\nwufb_leader {leader}\n"));
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
