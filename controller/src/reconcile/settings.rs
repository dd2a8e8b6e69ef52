//! Operator-wide settings of the reconcilers.

use std::time::Duration;

/// Default of `--absence-confirm`.
pub const DEFAULT_ABSENCE_CONFIRM: Duration = Duration::from_secs(120);

/// Default of `--read-lag-budget`.
pub const DEFAULT_READ_LAG_BUDGET: Duration = Duration::from_secs(60);

/// Operator-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Periodic resync of a converged object (jittered by up to 10%).
    pub resync: Duration,
    /// Operator-wide blast-radius limit on devices per deployment.
    pub max_audience_devices: Option<u64>,
    /// Delay before the read that verifies a write.
    pub verify_delay: Duration,
    /// Reconciles working at once per kind. Each holds its object's desired and observed audience, so
    /// this bounds memory; more than the Graph concurrency would only wait on it. Passes that act on a
    /// spec change are admitted before verification and resync passes.
    pub reconcile_concurrency: u16,
    /// How long a recorded Graph object must stay missing (a 404 at the start and another at least this
    /// much later) before it is created again: one 404 is not proof, since reads can lag writes.
    pub absence_confirm: Duration,
    /// How long after its own last write a pass waits for Graph to show it before it sends again what it
    /// does not show (audience reads have been seen to lag writes).
    pub read_lag_budget: Duration,
    /// How often each deployment's rollout progress is read (per object: the
    /// `wufb.dev/progress-interval` annotation); the tenant's device signals are read at most once per
    /// interval for all objects together.
    pub progress_interval: Duration,
    /// How often `refresh: OnNewRelease` reads the catalog again (per object: the
    /// `wufb.dev/catalog-poll-interval` annotation).
    pub catalog_poll: Duration,
    /// GraphConnection and ClusterGraphConnection: whether they are served, and what their clients take
    /// from the operator's flags.
    pub connections: ConnectionDefaults,
    /// The part of the tenants this process serves (`--shards`, `--shard`).
    pub shard: crate::connections::Shard,
}

/// What a connection's Graph client takes from the operator unless the connection sets it.
#[derive(Debug, Clone)]
pub struct ConnectionDefaults {
    /// Connections are watched and `spec.connectionRef` is honoured (`--connections`).
    pub enabled: bool,
    /// GraphConnections (namespaced) may use workload identity (`--namespaced-workload-identity`).
    pub namespaced_workload_identity: bool,
    /// The operator's service-account token for workload identity connections.
    pub federated_token_file: Option<std::path::PathBuf>,
    /// How often a connection is looked at again (its Secret read: a rotation is picked up within
    /// this).
    pub check_interval: std::time::Duration,
    /// Where ClusterGraphConnections' Secrets are.
    pub operator_namespace: String,
    /// Limits and retries of each connection's client (its budget overrides rate, burst, concurrency).
    pub transport: crate::graph::TransportConfig,
    pub batch_size: usize,
    /// The Graph request metrics, labelled with each connection.
    pub metrics: crate::graph::GraphMetrics,
}

impl Default for ConnectionDefaults {
    fn default() -> Self {
        ConnectionDefaults {
            enabled: true,
            namespaced_workload_identity: false,
            federated_token_file: None,
            check_interval: std::time::Duration::from_secs(60),
            operator_namespace: "default".into(),
            transport: Default::default(),
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
            metrics: Default::default(),
        }
    }
}

/// Default of `--progress-interval`.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(300);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(600),
            max_audience_devices: None,
            verify_delay: Duration::from_millis(200),
            reconcile_concurrency: 32,
            absence_confirm: DEFAULT_ABSENCE_CONFIRM,
            read_lag_budget: DEFAULT_READ_LAG_BUDGET,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            catalog_poll: super::observe::CATALOG_POLL,
            connections: ConnectionDefaults::default(),
            shard: Default::default(),
        }
    }
}
