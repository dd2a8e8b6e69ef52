//! The controller wiring: watches (decoding one object at a time), triggers (a DeviceGroup change
//! requeues every deployment that references it), admission of passes ([`gate`]), the error policy
//! with backoff honouring Retry-After, and shutdown. The passes themselves are [`crate::reconcile`]'s.
//!
//! - [`gate`]: at most N passes of a kind work at once; spec changes go before verification and
//!   resync; a pass works on the newest copy of its object.
//! - [`decode`]: objects this version cannot decode are held apart; [`quarantine`]: what they still get
//!   (a status, the brake and cleanup the planner decides from their readable fields).

pub mod contain;
pub mod decode;
pub mod gate;
pub mod quarantine;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use crate::crd::{ClusterGraphConnection, DeviceGroup, ExpeditedDeployment, GraphConnection};
use crate::graph::GraphClient;
use crate::reconcile::context::ConnectionStores;
use crate::reconcile::events::Events;
use crate::reconcile::metrics::QueueLabel;
use crate::reconcile::requeue::Backoff;
use crate::reconcile::{Context, Error, ReconcileMetrics, Settings, connection, device_group, expedited};
use decode::{Decoded, decoded};
use gate::Gate;
use quarantine::quarantine;

/// Where the controllers watch.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Watch only these namespaces; every namespace when empty.
    pub namespaces: Vec<String>,
}

/// A pass over one object of kind `K`.
pub type PassFn<K> = fn(Arc<K>, Arc<Context>) -> Pass;

/// The pass each kind's controller runs: the reconcilers (the default), or a wrapper around them
/// that an embedding process uses to observe or decorate every pass.
#[derive(Clone, Copy)]
pub struct Passes {
    pub deployment: PassFn<ExpeditedDeployment>,
    pub group: PassFn<DeviceGroup>,
}

impl Default for Passes {
    fn default() -> Self {
        Passes {
            deployment: |obj, ctx| Box::pin(expedited::reconcile(obj, ctx)),
            group: |obj, ctx| Box::pin(device_group::reconcile(obj, ctx)),
        }
    }
}

/// What the wiring shares with every pass it schedules.
struct Runtime {
    ctx: Arc<Context>,
    passes: Passes,
    backoff: Backoff,
    deployment_gate: Arc<Gate>,
    group_gate: Arc<Gate>,
}

fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default()
    )
}

fn error_policy<K: Resource>(obj: Arc<K>, err: &Error, rt: Arc<Runtime>) -> Action {
    let wait = rt.backoff.next(&key(obj.as_ref()), err.retry_after());
    tracing::debug!(object = %key(obj.as_ref()), category = err.category().as_str(), wait_ms = wait.as_millis() as u64, "requeue after error");
    Action::requeue(wait)
}

pub type Pass = Pin<Box<dyn Future<Output = Result<Action, Error>> + Send>>;

/// Admits a pass through `gate` (waiting as a small future that holds only the key), then runs it on
/// the newest copy of the object.
fn admitted<K>(
    gate: Arc<Gate>,
    store: reflector::Store<K>,
    ctx: Arc<Context>,
    obj: Arc<K>,
    observed_generation: Option<i64>,
    pass: PassFn<K>,
) -> Pass
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + decode::Watched
        + crate::connections::UsesConnection
        + serde::Serialize
        + Send
        + Sync
        + 'static,
{
    // A panic anywhere in the pass is its object's alone (see `contain`). Only the key is kept for
    // the report: the object is read from the store again then.
    let reference = ObjectRef::from_obj(obj.as_ref());
    let (root, held) = (ctx.clone(), store.clone());
    let pass = contain::Contained::new(async move {
        // Another shard's object: its owner reads and writes it.
        if !ctx
            .settings
            .shard
            .serves(crate::connections::key_of(obj.as_ref()).as_ref())
        {
            return Ok(Action::await_change());
        }
        // A connection's passes are bounded before admission: one tenant that answers slowly never
        // holds every slot of the gate.
        let _connection_slot = match ctx.connection_passes(obj.as_ref()) {
            Some(passes) => passes.acquire_owned().await.ok(),
            None => None,
        };
        let api: Api<K> = ctx.api(obj.as_ref());
        let admitted = gate::admit(&gate, &store, &api, &ctx.writes, obj, observed_generation)
            .await
            .map_err(Error::kube("read the object"))?;
        let Some((_permit, obj)) = admitted else {
            return Ok(Action::await_change());
        };
        // Boxed, so a pass waiting above holds none of the pass's own state (a pass's future is
        // kilobytes; a thousand wait at once).
        Box::pin(pass(obj, ctx)).await
    });
    Box::pin(async move {
        match pass.await {
            Ok(result) => result,
            Err(caught) => match held.get(&reference) {
                Some(obj) => Err(contain::panicked(&root, K::WHICH, obj.as_ref(), caught).await),
                None => {
                    let key = format!(
                        "{}/{}",
                        reference.namespace.as_deref().unwrap_or_default(),
                        reference.name
                    );
                    Err(contain::panicked_without_object(
                        &root,
                        kind_of::<K>(),
                        &key,
                        caught,
                    ))
                }
            },
        }
    })
}

fn kind_of<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

fn deployment_pass(obj: Arc<ExpeditedDeployment>, rt: Arc<Runtime>) -> Pass {
    let observed = obj.status.as_ref().and_then(|s| s.observed_generation);
    admitted(
        rt.deployment_gate.clone(),
        rt.ctx.deployments.clone(),
        rt.ctx.clone(),
        obj,
        observed,
        rt.passes.deployment,
    )
}

fn group_pass(obj: Arc<DeviceGroup>, rt: Arc<Runtime>) -> Pass {
    let observed = obj.status.as_ref().and_then(|s| s.observed_generation);
    admitted(
        rt.group_gate.clone(),
        rt.ctx.groups.clone(),
        rt.ctx.clone(),
        obj,
        observed,
        rt.passes.group,
    )
}

fn connection_pass<K: connection::ConnectionObject>(obj: Arc<K>, rt: Arc<Runtime>) -> Pass {
    if !rt.ctx.settings.shard.serves(Some(&obj.key())) {
        return Box::pin(std::future::ready(Ok(Action::await_change())));
    }
    let name = obj.meta().name.clone().unwrap_or_default();
    let pass = contain::Contained::new(connection::reconcile(obj, rt.ctx.clone()));
    Box::pin(async move {
        pass.await.unwrap_or_else(|caught| {
            Err(contain::panicked_without_object(
                &rt.ctx,
                kind_of::<K>(),
                &name,
                caught,
            ))
        })
    })
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

fn gate(metrics: &ReconcileMetrics, kind: &str, permits: usize) -> Arc<Gate> {
    let depth = |class: &str| {
        metrics
            .queue_depth
            .get_or_create(&QueueLabel {
                kind: kind.into(),
                class: class.into(),
            })
            .clone()
    };
    Gate::with_depth(permits, (depth("urgent"), depth("routine")))
}

/// Runs both controllers until `shutdown` resolves, then lets the passes already admitted finish
/// (the caller bounds how long) and sends the queued Events.
pub async fn run(
    client: kube::Client,
    graph: Arc<GraphClient>,
    settings: Settings,
    metrics: ReconcileMetrics,
    reporter: Reporter,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    run_with(
        client,
        graph,
        settings,
        metrics,
        reporter,
        scope,
        shutdown,
        Passes::default(),
    )
    .await;
}

/// [`run`] with the passes given.
#[allow(clippy::too_many_arguments)]
pub async fn run_with(
    client: kube::Client,
    graph: Arc<GraphClient>,
    settings: Settings,
    metrics: ReconcileMetrics,
    reporter: Reporter,
    scope: Scope,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    passes: Passes,
) {
    // Panics inside contained passes are reported by the pass, once, with the object's key.
    crate::panics::install_hook();
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

    // Connections: the objects of both kinds and the namespaces' labels (for ClusterGraphConnection
    // selectors), kept in stores the passes resolve references against.
    let connections_on = settings.connections.enabled;
    let (gc_reader, gc_writer) = reflector::store::<GraphConnection>();
    let (cgc_reader, cgc_writer) = reflector::store::<ClusterGraphConnection>();
    let (ns_reader, ns_writer) = reflector::store();
    metrics.state.set(crate::reconcile::state_metrics::Stores {
        deployments: ed_reader.clone(),
        groups: dg_reader.clone(),
        connections: gc_reader.clone(),
        cluster_connections: cgc_reader.clone(),
    });
    let gc_streams = futures::stream::select_all(
        apis::<GraphConnection>(&client, &scope)
            .into_iter()
            .map(|api| watcher(api, config.clone()).default_backoff().boxed()),
    );
    let cgc_stream =
        watcher(Api::<ClusterGraphConnection>::all(client.clone()), config.clone()).default_backoff();
    let ns_stream = watcher(
        Api::<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>>::all(client.clone()),
        config.clone(),
    )
    .default_backoff();

    // A connection that becomes ready wakes the objects that wait for it.
    let (wake_ed_tx, wake_ed_rx) = tokio::sync::mpsc::unbounded_channel();
    let (wake_dg_tx, wake_dg_rx) = tokio::sync::mpsc::unbounded_channel();
    let permits = usize::from(settings.reconcile_concurrency);
    let (events, events_drain) = Events::spawn_with_drain(client.clone(), reporter);
    let rt = Arc::new(Runtime {
        deployment_gate: gate(&metrics, expedited::KIND, permits),
        group_gate: gate(&metrics, device_group::KIND, permits),
        backoff: Backoff::default(),
        passes,
        ctx: Arc::new(Context {
            client: client.clone(),
            tenant_id: graph.tenant_id().map(str::to_lowercase),
            graph,
            events,
            deployments: ed_reader.clone(),
            groups: dg_reader.clone(),
            metrics,
            settings,
            writes: Default::default(),
            namespaces: scope.namespaces.clone(),
            entra: Default::default(),
            connections: Default::default(),
            connection_stores: connections_on.then(|| ConnectionStores {
                graph: gc_reader.clone(),
                cluster: cgc_reader.clone(),
                namespaces: ns_reader.clone(),
                wake_deployments: wake_ed_tx,
                wake_groups: wake_dg_tx,
            }),
            connection: None,
        }),
    });

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    // On shutdown: passes waiting at the gates give up, the controllers stop scheduling and wait for
    // the passes already admitted, and the DeviceGroup reflector ends.
    let gates = (rt.deployment_gate.clone(), rt.group_gate.clone());
    let stopping = async move {
        shutdown.await;
        tracing::info!("stopping the controllers");
        gates.0.close();
        gates.1.close();
        let _ = shutdown_tx.send(true);
    };

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
    let dg_driver = dg_streams
        .reflect_shared(dg_writer)
        .take_until(signal(shutdown_rx.clone()))
        .for_each(|_| std::future::ready(()));
    let dg_changes = spec_changes(dg_for_groups);

    let mapper_store = ed_reader.clone();
    let ed_rt = rt.clone();
    let deployments = Controller::for_stream(ed_changes, ed_reader)
        .watches_shared_stream(dg_for_deployments, move |group: Arc<DeviceGroup>| {
            let ns = group.namespace().unwrap_or_default();
            let name = group.name_any();
            mapper_store
                .state()
                .iter()
                .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                .filter(|d| d.spec.uses_device_group(&name))
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
        .reconcile_on(received(wake_ed_rx))
        // Unbounded here: a scheduled pass waits as a small future at the gate, which bounds the work
        // and orders it (see `gate`).
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .graceful_shutdown_on(signal(shutdown_rx.clone()))
        .run(deployment_pass, error_policy, ed_rt.clone())
        .for_each(move |result| finished(result, ed_rt.clone()));

    let quarantined = {
        let (ctx, stop) = (rt.ctx.clone(), signal(shutdown_rx.clone()));
        async move {
            tokio::select! {
                () = quarantine(ctx, notices_rx, std::time::Duration::from_secs(30)) => {}
                () = stop => {}
            }
        }
    };
    let dg_rt = rt.clone();
    let groups = Controller::for_shared_stream(dg_changes, dg_reader)
        .reconcile_on(received(wake_dg_rx))
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .graceful_shutdown_on(signal(shutdown_rx.clone()))
        .run(group_pass, error_policy, dg_rt.clone())
        .for_each(move |result| finished(result, dg_rt.clone()));

    // The connection controllers (when connections are on): a connection becomes usable once it has
    // signed in and read Graph.
    let connection_controllers = {
        let (gc_rt, cgc_rt) = (rt.clone(), rt.clone());
        let shutdown_rx = shutdown_rx.clone();
        async move {
            if !connections_on {
                return;
            }
            let namespaces = reflector::reflector(ns_writer, ns_stream)
                .take_until(signal(shutdown_rx.clone()))
                .for_each(|_| std::future::ready(()));
            let gc = Controller::for_stream(
                reflector::reflector(gc_writer, gc_streams).applied_objects(),
                gc_reader,
            )
            .graceful_shutdown_on(signal(shutdown_rx.clone()))
            .run(connection_pass::<GraphConnection>, error_policy, gc_rt.clone())
            .for_each(move |result| finished(result, gc_rt.clone()));
            let cgc = Controller::for_stream(
                reflector::reflector(cgc_writer, cgc_stream).applied_objects(),
                cgc_reader,
            )
            .graceful_shutdown_on(signal(shutdown_rx.clone()))
            .run(
                connection_pass::<ClusterGraphConnection>,
                error_policy,
                cgc_rt.clone(),
            )
            .for_each(move |result| finished(result, cgc_rt.clone()));
            futures::join!(gc, cgc, namespaces);
        }
    };
    futures::join!(
        stopping,
        deployments,
        groups,
        dg_driver,
        quarantined,
        connection_controllers
    );
    // Every sender goes with the context; then the queued Events are sent (bounded).
    drop(rt);
    events_drain.wait(std::time::Duration::from_secs(3)).await;
}

/// The items sent to a channel, as a stream.
fn received<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// After a pass: a success resets the object's error backoff.
async fn finished<K: Resource, E: std::fmt::Display>(
    result: Result<(ObjectRef<K>, Action), E>,
    rt: Arc<Runtime>,
) {
    match result {
        Ok((obj, _)) => rt.backoff.reset(&format!(
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
