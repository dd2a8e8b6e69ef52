//! Graph request metrics: requests by operation and status code, retries, throttled answers and latency,
//! each by connection. Labels carry operation names and connection names (`default` for the
//! operator-wide credentials, else `GraphConnection/ns/name` or `ClusterGraphConnection/name`: bounded
//! by the connections, which are configuration), never object names or ids.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationCode {
    pub connection: String,
    pub operation: String,
    /// HTTP status, or `error` when no answer came.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    pub connection: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabel {
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BehaviourLabels {
    pub connection: String,
    pub behaviour: String,
    pub value: String,
}

/// The connection label of the operator-wide credentials.
pub const DEFAULT_CONNECTION: &str = "default";

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Metric handles shared by every request of a Graph client.
#[derive(Clone, Debug)]
pub struct GraphMetrics {
    pub requests: Family<OperationCode, Counter>,
    pub retries: Family<Operation, Counter>,
    pub throttled: Family<ConnectionLabel, Counter>,
    pub latency: Family<Operation, Histogram, fn() -> Histogram>,
    /// The service behaviours found, 1 for the value found (an info metric).
    pub behaviours: Family<BehaviourLabels, Gauge>,
    /// The connection these handles label.
    connection: String,
}

impl GraphMetrics {
    /// Creates the metrics and registers them (`wufb_graph_*`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = GraphMetrics::default();
        registry.register(
            "wufb_graph_requests",
            "Graph requests by operation and status code",
            m.requests.clone(),
        );
        registry.register(
            "wufb_graph_retries",
            "Graph requests retried, by operation",
            m.retries.clone(),
        );
        registry.register(
            "wufb_graph_throttled",
            "Graph answers 429 Too Many Requests",
            m.throttled.clone(),
        );
        registry.register(
            "wufb_graph_request_duration_seconds",
            "Graph request latency",
            m.latency.clone(),
        );
        registry.register(
            "wufb_graph_service_behaviour",
            "Service behaviours the operator adapts to, as found (1 for the value found), by connection",
            m.behaviours.clone(),
        );
        drop(m.throttled.get_or_create(&ConnectionLabel {
            connection: DEFAULT_CONNECTION.into(),
        }));
        m
    }

    /// Records that `behaviour` was found to be `value` (the other values of it are dropped).
    pub fn found(&self, behaviour: &str, value: &str) {
        for other in ["served", "refused", "readable", "unknown"]
            .into_iter()
            .filter(|v| *v != value)
        {
            self.behaviours.remove(&BehaviourLabels {
                connection: self.connection.clone(),
                behaviour: behaviour.into(),
                value: other.into(),
            });
        }
        self.behaviours
            .get_or_create(&BehaviourLabels {
                connection: self.connection.clone(),
                behaviour: behaviour.into(),
                value: value.into(),
            })
            .set(1);
    }

    /// The same metrics, labelled with another connection (its throttling counter starts at zero, so a
    /// rate over it has a series before the first 429).
    pub fn for_connection(&self, connection: &str) -> Self {
        drop(self.throttled.get_or_create(&ConnectionLabel {
            connection: connection.to_string(),
        }));
        GraphMetrics {
            connection: connection.to_string(),
            ..self.clone()
        }
    }

    pub fn observe(&self, operation: &str, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&OperationCode {
                connection: self.connection.clone(),
                operation: operation.into(),
                code: code.into(),
            })
            .inc();
        self.latency
            .get_or_create(&Operation {
                connection: self.connection.clone(),
                operation: operation.into(),
            })
            .observe(seconds);
        if code == "429" {
            self.throttled
                .get_or_create(&ConnectionLabel {
                    connection: self.connection.clone(),
                })
                .inc();
        }
    }

    pub fn retried(&self, operation: &str) {
        self.retries
            .get_or_create(&Operation {
                connection: self.connection.clone(),
                operation: operation.into(),
            })
            .inc();
    }
}

impl Default for GraphMetrics {
    /// Unregistered metrics, for clients whose figures nobody scrapes.
    fn default() -> Self {
        GraphMetrics {
            requests: Family::default(),
            retries: Family::default(),
            throttled: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            behaviours: Family::default(),
            connection: DEFAULT_CONNECTION.into(),
        }
    }
}
