//! What every reconcile shares: the Kubernetes client, the Graph client, stores, the event recorder,
//! metrics and settings; and the reconcile error type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::{DeviceGroup, ExpeditedDeployment};
use crate::graph::{GraphClient, GraphError};

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(600),
            max_audience_devices: None,
            verify_delay: Duration::from_millis(200),
            reconcile_concurrency: 32,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Reconcile metrics (no object names in labels).
#[derive(Clone, Debug)]
pub struct ReconcileMetrics {
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<CategoryLabel, Counter>,
    pub duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    /// Objects seen that cannot be decoded, by kind.
    pub undecodable: Family<KindLabel, Gauge>,
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
            undecodable: Family::default(),
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
            "wufb_undecodable_objects",
            "Objects this operator version cannot decode, by kind (each has a Stalled condition)",
            m.undecodable.clone(),
        );
        m
    }
}

/// Events go out in the background, as client-go's recorder sends them: a pass does not wait for the API
/// server to store an Event before its next Graph call. Events about one object keep their order (one
/// object, one publisher); different objects' events go out in parallel.
#[derive(Clone)]
pub struct Events {
    shards: Arc<Vec<tokio::sync::mpsc::Sender<(Event, ObjectReference)>>>,
}

impl Events {
    /// Publishers, each with its own queue.
    const SHARDS: usize = 8;
    /// Events queued per publisher before new ones are dropped (and logged).
    const QUEUE: usize = 1024;

    /// Starts the publishers on the current runtime.
    pub fn spawn(recorder: Recorder) -> Events {
        Self::spawn_with_drain(recorder).0
    }

    /// Starts the publishers and returns, besides the sender, what waits for them to send what is
    /// queued once every sender is gone.
    pub fn spawn_with_drain(recorder: Recorder) -> (Events, EventsDrain) {
        let mut handles = Vec::new();
        let shards = (0..Self::SHARDS)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<(Event, ObjectReference)>(Self::QUEUE);
                let recorder = recorder.clone();
                handles.push(tokio::spawn(async move {
                    while let Some((ev, reference)) = rx.recv().await {
                        if let Err(e) = recorder.publish(&ev, &reference).await {
                            tracing::warn!(
                                name = reference.name.as_deref().unwrap_or_default(),
                                reason = %ev.reason,
                                error = %e,
                                "failed to publish event"
                            );
                        }
                    }
                }));
                tx
            })
            .collect();
        (
            Events {
                shards: Arc::new(shards),
            },
            EventsDrain { handles },
        )
    }

    /// Queues an Event; a full queue drops it with a warning (Events are best effort).
    pub fn send(&self, ev: Event, reference: ObjectReference) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&reference.namespace, &reference.name).hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % self.shards.len()];
        if let Err(e) = shard.try_send((ev, reference)) {
            let (ev, reference) = match e {
                tokio::sync::mpsc::error::TrySendError::Full(x)
                | tokio::sync::mpsc::error::TrySendError::Closed(x) => x,
            };
            tracing::warn!(
                name = reference.name.as_deref().unwrap_or_default(),
                reason = %ev.reason,
                "event dropped: the event queue is full"
            );
        }
    }
}

/// Waits for the Event publishers to send what is queued.
pub struct EventsDrain {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl EventsDrain {
    /// Waits until every queued Event is sent, or `timeout` passes (queued Events are then dropped).
    /// Only returns early once every [`Events`] sender is gone.
    pub async fn wait(self, timeout: Duration) {
        let all = futures::future::join_all(self.handles);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("some Events were not sent before shutdown");
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub graph: Arc<GraphClient>,
    pub events: Events,
    pub deployments: Store<ExpeditedDeployment>,
    pub groups: Store<DeviceGroup>,
    pub metrics: ReconcileMetrics,
    pub settings: Settings,
    pub backoff: Backoff,
    /// Admission of ExpeditedDeployment passes.
    pub deployment_gate: Arc<super::gate::Gate>,
    /// Admission of DeviceGroup passes.
    pub group_gate: Arc<super::gate::Gate>,
    /// What this process last wrote to each object (passes never act on a copy older than that).
    pub writes: super::gate::LastWrites,
    /// The namespaces watched (every namespace when empty).
    pub namespaces: Vec<String>,
}

impl Context {
    /// Queues an Event about `obj` (see [`Events`]); a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        self.events.send(ev, obj.object_ref(&()));
    }
}

impl Context {
    /// Records a reconcile error (log, metric, Warning Event) and returns the outcome to report:
    /// progressing when the error is transient, stalled when it is not.
    pub async fn error_outcome<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        err: &Error,
    ) -> super::status::Outcome {
        let message = err.to_string();
        tracing::warn!(error = %message, category = err.category(), "reconcile failed");
        self.metrics
            .errors
            .get_or_create(&CategoryLabel {
                category: err.category().into(),
            })
            .inc();
        self.event(
            obj,
            EventType::Warning,
            err.category(),
            "Reconcile",
            message.clone(),
        )
        .await;
        if err.is_transient() {
            super::status::Outcome::progressing(err.category(), message)
        } else {
            super::status::Outcome::stalled(err.category(), message)
        }
    }
}

/// What follows a reported error: a transient one goes back to the error policy (backoff honouring
/// Retry-After); a permanent one waits for the resync (a fixed permission or tenant works again without a
/// spec change).
pub fn after_error<K: Resource>(
    obj: &K,
    err: Error,
    resync: Duration,
) -> Result<kube::runtime::controller::Action, Error> {
    if err.is_transient() {
        Err(err)
    } else {
        Ok(kube::runtime::controller::Action::requeue(
            super::expedited::resync_after(obj, resync),
        ))
    }
}

/// Reconcile errors. `category()` is the metric label and Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action}: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },

    #[error(transparent)]
    Graph(#[from] GraphError),

    #[error("failed to run the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// Cleanup must wait (the finalizer stays until it can finish).
    #[error("{message}")]
    Waiting {
        reason: &'static str,
        message: String,
        retry: Duration,
    },
}

impl Error {
    pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { action, source }
    }

    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => "KubernetesConflict",
            Error::Kube { .. } => "KubernetesApi",
            Error::Graph(g) => g.category(),
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.category(),
                _ => "Finalizer",
            },
            Error::Waiting { reason, .. } => reason,
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube { .. } | Error::Waiting { .. } => true,
            Error::Graph(g) => g.is_transient(),
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.is_transient(),
                _ => true,
            },
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Graph(g) => g.retry_after(),
            Error::Waiting { retry, .. } => Some(*retry),
            Error::Finalizer(f) => match f.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.retry_after(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Per-object failure counts for exponential requeue backoff.
#[derive(Default)]
pub struct Backoff(std::sync::Mutex<BTreeMap<String, u32>>);

impl Backoff {
    pub fn next(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        *n = (*n + 1).min(16);
        let exp = Duration::from_secs(1)
            .saturating_mul(1 << (*n - 1).min(9))
            .min(Duration::from_secs(300));
        retry_after.map_or(exp, |r| r.max(Duration::from_millis(100)))
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Adds the operator's finalizer to a live object that lacks it and returns the object as written, so
/// that the pass goes on at once. (kube's `finalizer` helper ends the pass there and waits for the watch
/// to bring the change back; under load that queued every new object's first Graph write behind the
/// finalizer passes of all the objects that arrived after it.) The patch is the helper's own: a test of
/// the current list, then an add, so a concurrent writer gets a conflict instead of a lost finalizer.
pub async fn with_finalizer<K>(
    api: &kube::Api<K>,
    writes: &super::gate::LastWrites,
    obj: Arc<K>,
) -> Result<Arc<K>, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let has = obj.finalizers().iter().any(|f| f == crate::crd::FINALIZER);
    if has || obj.meta().deletion_timestamp.is_some() {
        return Ok(obj);
    }
    let ops = if obj.finalizers().is_empty() {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [crate::crd::FINALIZER]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": obj.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": crate::crd::FINALIZER},
        ])
    };
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| Error::Kube {
        action: "add finalizer",
        source: kube::Error::SerdeError(e),
    })?;
    let written = api
        .patch(
            &obj.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Json::<()>(patch),
        )
        .await
        .map_err(Error::kube("add finalizer"))?;
    writes.record(written.meta());
    Ok(Arc::new(written))
}
