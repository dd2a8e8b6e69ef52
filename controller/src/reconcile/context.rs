//! What every pass shares: the clients, the stores, the Event publisher, metrics and settings.

use std::sync::Arc;

use kube::Resource;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;

use super::error::Error;
use super::events::Events;
use super::metrics::{CategoryLabel, ReconcileMetrics};
use super::reasons::Reason;
use super::settings::Settings;
use super::status::Outcome;
use super::writes::LastWrites;
use crate::crd::{DeviceGroup, ExpeditedDeployment};
use crate::graph::GraphClient;

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub graph: Arc<GraphClient>,
    pub events: Events,
    pub deployments: Store<ExpeditedDeployment>,
    pub groups: Store<DeviceGroup>,
    pub metrics: ReconcileMetrics,
    pub settings: Settings,
    /// What this process last wrote to each object (passes never act on a copy older than that).
    pub writes: LastWrites,
    /// The namespaces watched (every namespace when empty).
    pub namespaces: Vec<String>,
    /// The devices Entra-backed DeviceGroups last read, for the deployments that use them.
    pub entra: super::observe::EntraDevices,
}

impl Context {
    /// Records a reconcile error (log, metric, Warning Event) and returns the outcome to report:
    /// progressing when the error is transient, stalled when it is not. The one error-reporting path of
    /// both reconcilers.
    pub fn record_error<K: Resource<DynamicType = ()>>(&self, obj: &K, err: &Error) -> Outcome {
        let message = err.to_string();
        let reason = Reason::category(err.category());
        tracing::warn!(error = %message, category = err.category(), "reconcile failed");
        self.metrics
            .errors
            .get_or_create(&CategoryLabel {
                category: err.category().into(),
            })
            .inc();
        self.events
            .notify(obj, EventType::Warning, reason, "Reconcile", message.clone());
        if err.is_transient() {
            Outcome::progressing(reason, message)
        } else {
            Outcome::stalled(reason, message)
        }
    }

    /// Sends the Events a plan noticed before acting.
    pub fn notices<K: Resource<DynamicType = ()>>(&self, obj: &K, notices: &[super::plan::Notice]) {
        for n in notices {
            let type_ = if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.events
                .notify(obj, type_, n.reason, n.action, n.message.clone());
        }
    }

    /// A Warning Event for a stalled outcome, unless the object's conditions (`old`) already say it:
    /// one Event per reason and message, not one per pass.
    pub fn stalled_once<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        outcome: &Outcome,
    ) {
        if outcome.is_stalled() && !super::status::already_stalled(old, outcome.reason(), outcome.message()) {
            self.events.notify(
                obj,
                EventType::Warning,
                outcome.reason(),
                "Validate",
                outcome.message().to_string(),
            );
        }
    }

    /// The API of `K` in `obj`'s namespace.
    pub fn api<K>(&self, obj: &K) -> kube::Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        kube::Api::namespaced(
            self.client.clone(),
            obj.meta().namespace.as_deref().unwrap_or_default(),
        )
    }
}
