//! `wufb-graph-emulator`: the Microsoft Graph Windows Update for Business deployment service
//! (`/beta/admin/windows/updates`) and the identity platform token endpoint, served on loopback with a
//! seeded catalog, for tests, demos and benchmarks. See the README for what it emulates and how.

pub mod admin;
pub mod auth;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod fleet;
pub mod odata;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{AppRegistration, EmulatorConfig, FaultConfig, RetryAfterForm};
pub use state::{LogEntry, Shared};

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Emulator {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and serves in the background.
    pub async fn start(config: EmulatorConfig, addr: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let router = server::router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Ok(Emulator {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: the authority host and the admin API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/beta`: the Graph base URL a client is configured with.
    pub fn graph_url(&self) -> String {
        format!("{}/beta", self.base_url())
    }

    /// Replaces the fault configuration.
    /// Moves the tenant's time on by `by` (read lag, token expiry, the fleet's time), without waiting.
    pub fn advance(&self, by: std::time::Duration) {
        self.shared.clock.advance(by);
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        let mut f = state::lock(&self.shared.faults);
        f.rng = state::Rng::new(faults.seed);
        f.config = faults;
    }

    /// Publishes a catalog entry (a new release).
    pub fn publish_catalog_entry(&self, entry: serde_json::Value) {
        self.shared.publish(entry);
    }

    /// A copy of the catalog, newest first.
    pub fn catalog(&self) -> Vec<serde_json::Value> {
        state::lock(&self.shared.catalog).clone()
    }

    /// The simulated fleet's devices as they are now (their truth: build, outcome, error, reporting).
    pub fn fleet(&self) -> std::collections::BTreeMap<String, fleet::Device> {
        self.shared.read_fleet();
        state::lock(&self.shared.fleet).devices()
    }

    /// Sets a device's build and error in the simulated fleet.
    pub fn set_device(&self, id: &str, build: Option<fleet::Build>, error: Option<Option<String>>) {
        self.shared.read_fleet();
        let mut fleet = state::lock(&self.shared.fleet);
        let mut store = state::lock(&self.shared.store);
        fleet.set(&mut store, id, build, error);
    }

    /// A copy of the request log.
    pub fn requests(&self) -> Vec<LogEntry> {
        state::lock(&self.shared.log).entries.iter().cloned().collect()
    }

    /// Requests made for one operation (any status).
    pub fn count(&self, operation: &str) -> u64 {
        state::lock(&self.shared.log)
            .counts
            .get(operation)
            .map_or(0, |m| m.values().sum())
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
