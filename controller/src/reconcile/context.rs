//! What every pass shares: the clients, the stores, the Event publisher, metrics and settings.

use std::sync::Arc;

use kube::Resource;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};

use super::error::Error;
use super::events::Events;
use super::metrics::{CategoryLabel, ReconcileMetrics};
use super::reasons::Reason;
use super::settings::Settings;
use super::status::Outcome;
use super::writes::LastWrites;
use crate::connections::{ConnKey, Connections, Refusal, UsesConnection};
use crate::crd::{ClusterGraphConnection, DeviceGroup, ExpeditedDeployment, GraphConnection};
use crate::graph::GraphClient;

/// The connection objects and the namespaces' labels, watched when connections are on, and the way
/// to wake the objects that wait for a connection once it is ready.
#[derive(Clone)]
pub struct ConnectionStores {
    pub graph: Store<GraphConnection>,
    pub cluster: Store<ClusterGraphConnection>,
    pub namespaces: Store<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>>,
    pub wake_deployments: tokio::sync::mpsc::UnboundedSender<ObjectRef<ExpeditedDeployment>>,
    pub wake_groups: tokio::sync::mpsc::UnboundedSender<ObjectRef<DeviceGroup>>,
}

/// Shared by every reconcile. A pass over an object that names a connection works in a copy whose
/// `graph` is that connection's client ([`Context::for_object`]).
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub graph: Arc<GraphClient>,
    pub events: Events,
    pub deployments: Store<ExpeditedDeployment>,
    pub groups: Store<DeviceGroup>,
    pub metrics: ReconcileMetrics,
    pub settings: Settings,
    /// What this process last wrote to each object (passes never act on a copy older than that).
    pub writes: Arc<LastWrites>,
    /// The namespaces watched (every namespace when empty).
    pub namespaces: Vec<String>,
    /// The devices Entra-backed DeviceGroups last read, for the deployments that use them.
    pub entra: Arc<super::observe::EntraDevices>,
    /// The Graph clients of the connections that are ready.
    pub connections: Arc<Connections>,
    /// The connection objects and namespace labels (`None`: connections are off).
    pub connection_stores: Option<ConnectionStores>,
    /// The connection `graph` reaches (`None`: the operator-wide credentials).
    pub connection: Option<ConnKey>,
    /// The tenant `graph` signs in to, in lower case (`None`: not known, as with an emulator without
    /// sign-in).
    pub tenant_id: Option<String>,
}

impl Context {
    /// The context a pass over `obj` works in: this one for an object without `spec.connectionRef`,
    /// else a copy whose Graph client and tenant are the connection's, once the object may use it
    /// and it is ready.
    pub fn for_object<K: UsesConnection>(self: &Arc<Self>, obj: &K) -> Result<Arc<Context>, Refusal> {
        self.for_ref(
            obj.connection_ref(),
            obj.meta().namespace.as_deref().unwrap_or_default(),
        )
    }

    /// [`Context::for_object`] for a reference read from an object in namespace `ns`.
    pub fn for_ref(
        self: &Arc<Self>,
        r: Option<&crate::crd::ConnectionRef>,
        ns: &str,
    ) -> Result<Arc<Context>, Refusal> {
        let Some(r) = r else {
            return Ok(self.clone());
        };
        let Some(stores) = &self.connection_stores else {
            return Err(Refusal::Disabled);
        };
        let key = crate::connections::resolve(
            r,
            ns,
            |k| {
                stores
                    .graph
                    .get(&kube::runtime::reflector::ObjectRef::new(&k.name).within(&k.namespace))
            },
            |k| {
                stores
                    .cluster
                    .get(&kube::runtime::reflector::ObjectRef::new(&k.name))
            },
            |n| {
                stores
                    .namespaces
                    .get(&kube::runtime::reflector::ObjectRef::new(n))
                    .map(|m| m.metadata.labels.clone().unwrap_or_default())
            },
        )?;
        let connected = self.connections.client(&key)?;
        Ok(Arc::new(Context {
            graph: connected.client.clone(),
            connection: Some(key),
            tenant_id: Some(connected.tenant_id.clone()),
            ..(**self).clone()
        }))
    }

    /// The bound on the passes of `obj`'s connection, when it names a ready one: a pass holds a permit
    /// from before it is admitted until it ends, so one tenant's slow or throttled objects never take
    /// every slot of the admission gate.
    pub fn connection_passes<K: UsesConnection>(&self, obj: &K) -> Option<Arc<tokio::sync::Semaphore>> {
        let r = obj.connection_ref()?;
        let key = ConnKey::of(r, obj.meta().namespace.as_deref().unwrap_or_default());
        self.connections.held(&key).map(|c| c.passes.clone())
    }

    /// Records a reconcile error (log, metric, Warning Event) and returns the outcome to report:
    /// progressing when the error is transient, stalled when it is not. The one error-reporting path of
    /// both reconcilers.
    pub fn record_error<K: Resource<DynamicType = ()>>(&self, obj: &K, err: &Error) -> Outcome {
        let message = err.to_string();
        let reason = Reason::category(err.category());
        tracing::warn!(error = %message, category = err.category().as_str(), "reconcile failed");
        self.metrics
            .errors
            .get_or_create(&CategoryLabel {
                category: err.category().as_str().into(),
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
