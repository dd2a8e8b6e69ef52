//! Wires both controllers: reflectors, triggers (a DeviceGroup change requeues every deployment that
//! references it), error policy with backoff honouring Retry-After, and shutdown.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use super::context::{Backoff, Context, Error, Events, ReconcileMetrics, Settings};
use super::decode::{Decoded, decoded, quarantine};
use super::gate::Gate;
use super::{device_group, expedited};
use crate::crd::{DeviceGroup, ExpeditedDeployment};
use crate::graph::GraphClient;

fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default()
    )
}

fn error_policy<K: Resource>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff.next(&key(obj.as_ref()), err.retry_after());
    tracing::debug!(object = %key(obj.as_ref()), category = err.category(), wait_ms = wait.as_millis() as u64, "requeue after error");
    Action::requeue(wait)
}

/// Where the controllers watch.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Watch only these namespaces; every namespace when empty.
    pub namespaces: Vec<String>,
}

fn apis<K>(client: &kube::Client, scope: &Scope) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    if scope.namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        scope
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

/// Runs both controllers until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    graph: Arc<GraphClient>,
    settings: Settings,
    metrics: ReconcileMetrics,
    reporter: Reporter,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (ed_reader, ed_writer) = reflector::store::<ExpeditedDeployment>();
    // DeviceGroups feed two controllers from one shared store: a deployment triggered by a group change
    // then reads the same state the trigger saw.
    let (dg_reader, dg_writer) = reflector::store_shared::<DeviceGroup>(1024);
    let (Some(dg_for_deployments), Some(dg_for_groups)) = (dg_writer.subscribe(), dg_writer.subscribe())
    else {
        tracing::error!("the shared DeviceGroup store has no dispatcher");
        return;
    };
    let config = watcher::Config::default().any_semantic();

    // Objects are decoded one at a time: one this version cannot read goes to the quarantine instead
    // of failing the whole list.
    let (notices, notices_rx) = tokio::sync::mpsc::unbounded_channel();
    let ed_streams = futures::stream::select_all(
        apis::<Decoded<ExpeditedDeployment>>(&client, &scope)
            .into_iter()
            .map(|api| decoded(watcher(api, config.clone()).default_backoff(), notices.clone()).boxed()),
    );
    let dg_streams = futures::stream::select_all(
        apis::<Decoded<DeviceGroup>>(&client, &scope)
            .into_iter()
            .map(|api| decoded(watcher(api, config.clone()).default_backoff(), notices.clone()).boxed()),
    );
    drop(notices);

    let settings_concurrency = usize::from(settings.reconcile_concurrency);
    let (events, events_drain) = Events::spawn_with_drain(Recorder::new(client.clone(), reporter));
    let ctx = Arc::new(Context {
        client: client.clone(),
        graph,
        events,
        deployments: ed_reader.clone(),
        groups: dg_reader.clone(),
        metrics,
        settings,
        backoff: Backoff::default(),
        deployment_gate: Gate::new(settings_concurrency),
        group_gate: Gate::new(settings_concurrency),
        writes: Default::default(),
        namespaces: scope.namespaces.clone(),
    });

    // Reconcile on spec, annotation and finalizer changes (and deletion, which bumps the generation);
    // the operator's own status writes do not trigger a pass.
    let ed_changes = reflector::reflector(ed_writer, ed_streams)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers),
            Default::default(),
        );
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    // On shutdown: passes waiting at the gates give up, the controllers stop scheduling and wait for
    // the passes already admitted, and the DeviceGroup reflector ends.
    let gates = (ctx.deployment_gate.clone(), ctx.group_gate.clone());
    let stopping = async move {
        shutdown.await;
        tracing::info!("stopping the controllers");
        gates.0.close();
        gates.1.close();
        let _ = shutdown_tx.send(true);
    };

    let dg_driver = dg_streams
        .reflect_shared(dg_writer)
        .take_until(signal(shutdown_rx.clone()))
        .for_each(|_| std::future::ready(()));
    let dg_changes = spec_changes(dg_for_groups);

    let mapper_store = ed_reader.clone();

    let ed_ctx = ctx.clone();
    let deployments = Controller::for_stream(ed_changes, ed_reader)
        .watches_shared_stream(dg_for_deployments, move |group: Arc<DeviceGroup>| {
            let ns = group.namespace().unwrap_or_default();
            let name = group.name_any();
            mapper_store
                .state()
                .iter()
                .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                .filter(|d| {
                    d.spec.audience.as_ref().is_some_and(|a| {
                        a.members
                            .iter()
                            .chain(&a.exclusions)
                            .any(|i| i.device_group.as_deref() == Some(name.as_str()))
                    })
                })
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
        // Unbounded here: a scheduled pass waits as a small future at the gate, which bounds the work
        // and orders it (see `gate`).
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .graceful_shutdown_on(signal(shutdown_rx.clone()))
        .run(expedited::reconcile, error_policy, ed_ctx.clone())
        .for_each(move |result| finished(result, ed_ctx.clone()));

    let quarantined = {
        let (ctx, stop) = (ctx.clone(), signal(shutdown_rx.clone()));
        async move {
            tokio::select! {
                () = quarantine(ctx, notices_rx, std::time::Duration::from_secs(30)) => {}
                () = stop => {}
            }
        }
    };
    let dg_ctx = ctx.clone();
    let groups = Controller::for_shared_stream(dg_changes, dg_reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .graceful_shutdown_on(signal(shutdown_rx))
        .run(device_group::reconcile, error_policy, dg_ctx.clone())
        .for_each(move |result| finished(result, dg_ctx.clone()));

    futures::join!(stopping, deployments, groups, dg_driver, quarantined);
    // Every sender goes with the context; then the queued Events are sent (bounded).
    drop(ctx);
    events_drain.wait(std::time::Duration::from_secs(3)).await;
}

/// After a reconcile: a success resets the object's error backoff.
async fn finished<K: Resource, E: std::fmt::Display>(
    result: Result<(ObjectRef<K>, Action), E>,
    ctx: Arc<Context>,
) {
    match result {
        Ok((obj, _)) => ctx.backoff.reset(&format!(
            "{}/{}",
            obj.namespace.clone().unwrap_or_default(),
            obj.name
        )),
        Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
    }
}

/// Passes an object on only when its generation, annotations, finalizers or deletion changed: the
/// operator's own status writes do not trigger a pass.
fn spec_changes<K: Resource + Send + Sync + 'static>(
    stream: impl futures::Stream<Item = Arc<K>> + Send + 'static,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static {
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    let mut seen: HashMap<String, u64> = HashMap::new();
    stream.filter_map(move |obj| {
        let m = obj.meta();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        m.generation.hash(&mut h);
        m.annotations.hash(&mut h);
        m.finalizers.hash(&mut h);
        m.deletion_timestamp.is_some().hash(&mut h);
        let key = m.uid.clone().unwrap_or_default();
        let fingerprint = h.finish();
        let changed = seen.insert(key, fingerprint) != Some(fingerprint);
        std::future::ready(changed.then_some(obj))
    })
}
