//! Reconcile metrics (no object names in labels): passes and their duration by kind, errors by
//! category, passes waiting for admission, objects that cannot be decoded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// A kind and an admission class (`urgent`: new or changed specs and deletions; `routine`: verification
/// and resync).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub kind: String,
    pub class: String,
}

/// A device state of rollout progress (`upToDate`, `pending`, `failed`, `notReporting`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// Reconcile metrics (no object names in labels).
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<CategoryLabel, Counter>,
    pub duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    /// Passes that panicked (each contained to its object), by kind.
    pub panics: Family<KindLabel, Counter>,
    /// Objects seen that cannot be decoded, by kind.
    pub undecodable: Family<KindLabel, Gauge>,
    /// Passes waiting for admission, by kind and class.
    pub queue_depth: Family<QueueLabel, Gauge>,
    /// Targeted devices over every ExpeditedDeployment, by progress state (the last poll of each).
    pub rollout_devices: Family<StateLabel, Gauge>,
    /// The last progress of each object, by uid, that the gauge sums.
    pub progress: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, [i64; 4]>>>,
    /// The stores the state metrics (`wufb_objects`, `wufb_rollout_*`, `wufb_connection_ready`) are read
    /// from at each scrape.
    pub state: super::state_metrics::StateSource,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        ReconcileMetrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            panics: Family::default(),
            undecodable: Family::default(),
            queue_depth: Family::default(),
            rollout_devices: Family::default(),
            progress: Default::default(),
            state: Default::default(),
        }
    }
}

impl ReconcileMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = ReconcileMetrics::default();
        registry.register("wufb_reconcile", "Reconciles by kind", m.reconciles.clone());
        registry.register(
            "wufb_reconcile_errors",
            "Reconcile errors by category",
            m.errors.clone(),
        );
        registry.register(
            "wufb_reconcile_duration_seconds",
            "Reconcile duration by kind",
            m.duration.clone(),
        );
        registry.register(
            "wufb_reconcile_panics",
            "Passes that panicked, by kind (each contained to its object, which is Stalled with reason InternalError and retried with backoff)",
            m.panics.clone(),
        );
        registry.register(
            "wufb_undecodable_objects",
            "Objects this operator version cannot decode, by kind (each has a Stalled condition)",
            m.undecodable.clone(),
        );
        registry.register(
            "wufb_reconcile_queue_depth",
            "Passes waiting for admission, by kind and class (urgent: new or changed specs and deletions)",
            m.queue_depth.clone(),
        );
        registry.register(
            "wufb_rollout_devices",
            "Targeted devices of every ExpeditedDeployment by state (upToDate, pending, failed, notReporting), as last polled",
            m.rollout_devices.clone(),
        );
        // Every error category and kind from the start, at zero, so that a rate over them (an alert)
        // has a series before the first error.
        for e in super::reasons::REGISTRY
            .iter()
            .filter(|e| e.kind == super::reasons::Kind::Category)
        {
            drop(m.errors.get_or_create(&CategoryLabel {
                category: e.reason.as_str().into(),
            }));
        }
        for kind in ["ExpeditedDeployment", "DeviceGroup"] {
            drop(m.undecodable.get_or_create(&KindLabel { kind: kind.into() }));
        }
        registry.register_collector(Box::new(super::state_metrics::StateCollector(m.state.clone())));
        registry.register(
            "wufb_build",
            "The operator's version",
            prometheus_client::metrics::info::Info::new(vec![("version", crate::leader::VERSION)]),
        );
        m
    }

    /// Records one object's progress (`None`: the object is gone) and sets the gauges to the sums.
    pub fn set_progress(&self, uid: &str, counts: Option<[u64; 4]>) {
        let mut all = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        match counts {
            Some(c) => {
                all.insert(uid.to_string(), c.map(|n| i64::try_from(n).unwrap_or(i64::MAX)));
            }
            None => {
                all.remove(uid);
            }
        }
        let mut sums = [0i64; 4];
        for c in all.values() {
            for (s, n) in sums.iter_mut().zip(c) {
                *s = s.saturating_add(*n);
            }
        }
        for (state, n) in ["upToDate", "pending", "failed", "notReporting"].iter().zip(sums) {
            self.rollout_devices
                .get_or_create(&StateLabel {
                    state: (*state).into(),
                })
                .set(n);
        }
    }
}
