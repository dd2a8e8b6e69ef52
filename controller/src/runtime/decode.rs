//! Objects are decoded one at a time, so one that this operator version cannot read (an enum value added
//! by a newer version, a downgrade, an object stored before the CRD's schema was tightened) never stops
//! the others. A typed list fails as a whole; here the watcher reads [`Decoded`] objects, passes the
//! readable ones on as the typed kind and sends the others to [`quarantine`], which:
//!
//! - logs one bounded line per object version and counts them in `wufb_undecodable_objects{kind}`;
//! - writes a `Stalled` status (by merge patch of conditions only, without decoding the spec) and a
//!   Warning Event naming the field that could not be read;
//! - still pauses: an ExpeditedDeployment whose raw spec says `paused: true` and whose status names a
//!   deployment is paused in Graph (unless its raw managementPolicy is not `Manage`);
//! - lets it be deleted: the finalizer is removed once the raw deletionPolicy is honoured (or, when it
//!   cannot be read, the object stalls saying which field to fix).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::crd::{DeviceGroup, ExpeditedDeployment, FINALIZER};
use crate::reconcile::context::Context;
use crate::reconcile::metrics::KindLabel;
use crate::reconcile::reasons::Reason;
use crate::reconcile::status::{self, Outcome};

/// Longest decode error kept in a log line, a condition or an Event.
const MAX_ERROR: usize = 300;

/// An object as listed or watched: the typed object, or the raw one and why it could not be read.
#[derive(Clone, Debug)]
pub struct Decoded<K> {
    pub object: Result<K, Box<Undecodable>>,
}

/// An object that could not be decoded as its kind.
#[derive(Clone, Debug)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    pub raw: Arc<Value>,
    /// The field that could not be read and why, e.g. `spec.deletionPolicy: unknown variant ...`.
    pub error: String,
}

fn bounded(mut s: String) -> String {
    if s.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl<K: Resource> Decoded<K> {
    pub fn metadata(&self) -> &ObjectMeta {
        match &self.object {
            Ok(k) => k.meta(),
            Err(bad) => &bad.metadata,
        }
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The object's text is kept as it came (no tree of values is built): the typed decode reads it
        // once, as a typed watcher would. Only an object that fails is read again, for the field path
        // and its raw fields.
        let text = Box::<serde_json::value::RawValue>::deserialize(d)?;
        if let Ok(k) = serde_json::from_str::<K>(text.get()) {
            return Ok(Decoded { object: Ok(k) });
        }
        let raw: Value = serde_json::from_str(text.get()).map_err(serde::de::Error::custom)?;
        let metadata = ObjectMeta::deserialize(&raw["metadata"]).map_err(serde::de::Error::custom)?;
        let mut de = serde_json::Deserializer::from_str(text.get());
        let error = match serde_path_to_error::deserialize::<_, K>(&mut de) {
            Ok(_) => "the object could not be decoded".to_string(),
            Err(e) => {
                let path = e.path().to_string();
                bounded(format!("{path}: {}", e.into_inner()))
            }
        };
        Ok(Decoded {
            object: Err(Box::new(Undecodable {
                metadata,
                raw: Arc::new(raw),
                error,
            })),
        })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.metadata()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.object {
            Ok(k) => k.meta_mut(),
            Err(bad) => &mut bad.metadata,
        }
    }
}

/// A kind the controller watches.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
    /// Which one (the quarantine acts per kind).
    const WHICH: Which;
    /// A stand-in holding only `meta`, to take an object out of a store.
    fn placeholder(meta: ObjectMeta) -> Self;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Deployment,
    Group,
}

impl Watched for ExpeditedDeployment {
    const WHICH: Which = Which::Deployment;
    fn placeholder(metadata: ObjectMeta) -> Self {
        ExpeditedDeployment {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

impl Watched for DeviceGroup {
    const WHICH: Which = Which::Group;
    fn placeholder(metadata: ObjectMeta) -> Self {
        DeviceGroup {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

/// What the quarantine hears from a watch.
#[derive(Debug)]
pub enum Notice {
    /// An object version that cannot be decoded.
    Bad(Box<Undecodable>),
    /// An object (by uid) that is readable again, or gone.
    Clear { uid: String },
}

/// The watch events of `K`, decoded one object at a time: readable objects pass on as `K`; an object
/// that cannot be read goes to `notices` and is taken out of the store (a stale readable copy must not
/// be acted on).
pub fn decoded<K: Watched>(
    events: impl futures::Stream<Item = Result<watcher::Event<Decoded<K>>, watcher::Error>> + Send + 'static,
    notices: mpsc::UnboundedSender<(Which, Notice)>,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    let tell = move |n: Notice| {
        let _ = notices.send((K::WHICH, n));
    };
    events.filter_map(move |event| {
        let uid = |d: &Decoded<K>| d.metadata().uid.clone().unwrap_or_default();
        let out = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Init) => Some(Ok(watcher::Event::Init)),
            Ok(watcher::Event::InitDone) => Some(Ok(watcher::Event::InitDone)),
            Ok(watcher::Event::Delete(d)) => {
                tell(Notice::Clear { uid: uid(&d) });
                Some(Ok(watcher::Event::Delete(match d.object {
                    Ok(k) => k,
                    Err(bad) => K::placeholder(bad.metadata),
                })))
            }
            Ok(watcher::Event::Apply(d)) | Ok(watcher::Event::InitApply(d)) if d.object.is_err() => {
                let meta = d.metadata().clone();
                if let Err(bad) = d.object {
                    tell(Notice::Bad(bad));
                }
                // Out of the store (during a relist it is simply not listed).
                Some(Ok(watcher::Event::Delete(K::placeholder(meta))))
            }
            Ok(watcher::Event::Apply(d)) => {
                tell(Notice::Clear { uid: uid(&d) });
                d.object.ok().map(|k| Ok(watcher::Event::Apply(lean(k))))
            }
            Ok(watcher::Event::InitApply(d)) => {
                tell(Notice::Clear { uid: uid(&d) });
                d.object.ok().map(|k| Ok(watcher::Event::InitApply(lean(k))))
            }
        };
        std::future::ready(out)
    })
}

/// The annotation client-side `kubectl apply` keeps a whole second copy of the object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object as the stores keep it: without its managedFields and the last-applied annotation, which no
/// pass reads and which can be larger than the rest of the object.
fn lean<K: Resource>(mut k: K) -> K {
    let meta = k.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    k
}

/// One quarantined object.
struct Held {
    which: Which,
    meta: ObjectMeta,
    bad: Undecodable,
    /// The version last handled successfully (see [`version`]).
    handled: Option<String>,
    /// The version last logged.
    logged: Option<String>,
}

/// What makes a quarantined object worth handling again: its spec (generation), its finalizers and its
/// deletion. The operator's own status writes do not count.
fn version(meta: &ObjectMeta) -> Option<String> {
    Some(format!(
        "{}/{:?}/{}",
        meta.generation.unwrap_or_default(),
        meta.finalizers,
        meta.deletion_timestamp.is_some()
    ))
}

fn kind_name(which: Which) -> &'static str {
    match which {
        Which::Deployment => "ExpeditedDeployment",
        Which::Group => "DeviceGroup",
    }
}

/// Handles undecodable objects until `notices` closes. Failed handling is retried every `retry`.
pub async fn quarantine(
    ctx: Arc<Context>,
    mut notices: mpsc::UnboundedReceiver<(Which, Notice)>,
    retry: Duration,
) {
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut tick = tokio::time::interval(retry);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = notices.recv() => match n {
                None => return,
                Some((which, Notice::Bad(bad))) => {
                    let meta = bad.metadata.clone();
                    let bad = *bad;
                    let uid = meta.uid.clone().unwrap_or_default();
                    let (handled, logged) = held.remove(&uid).map_or((None, None), |h| (h.handled, h.logged));
                    let mut h = Held { which, meta, bad, handled, logged };
                    contained_handle(&ctx, &mut h).await;
                    held.insert(uid, h);
                    count(&ctx, &held);
                }
                Some((_, Notice::Clear { uid })) => {
                    if held.remove(&uid).is_some() {
                        count(&ctx, &held);
                    }
                }
            },
            _ = tick.tick() => {
                for h in held.values_mut().filter(|h| h.handled != version(&h.meta)) {
                    contained_handle(&ctx, h).await;
                }
            }
        }
    }
}

fn count(ctx: &Context, held: &HashMap<String, Held>) {
    for which in [Which::Deployment, Which::Group] {
        let n = held.values().filter(|h| h.which == which).count();
        ctx.metrics
            .undecodable
            .get_or_create(&KindLabel {
                kind: kind_name(which).into(),
            })
            .set(n as i64);
    }
}

/// [`handle`], with a panic contained to the object (logged; tried again at the next tick).
async fn contained_handle(ctx: &Arc<Context>, h: &mut Held) {
    let (kind, key) = (
        kind_name(h.which),
        format!(
            "{}/{}",
            h.meta.namespace.as_deref().unwrap_or_default(),
            h.meta.name.as_deref().unwrap_or_default()
        ),
    );
    if let Err(caught) = crate::panics::Contained::new(handle(ctx, h)).await {
        ctx.metrics
            .panics
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        tracing::error!(kind, object = %key, location = %caught.location, panic = %caught.message, "handling an undecodable object panicked; tried again later, other objects go on");
    }
}

/// One attempt at everything an undecodable object still gets. Records the version once it worked.
async fn handle(ctx: &Arc<Context>, h: &mut Held) {
    if h.handled.is_some() && h.handled == version(&h.meta) {
        return;
    }
    let kind = kind_name(h.which);
    let (ns, name) = (
        h.meta.namespace.clone().unwrap_or_default(),
        h.meta.name.clone().unwrap_or_default(),
    );
    if h.logged != version(&h.meta) {
        h.logged = version(&h.meta);
        tracing::error!(kind, namespace = %ns, name = %name, resource_version = h.meta.resource_version.as_deref().unwrap_or(""), error = %h.bad.error, "object cannot be decoded; it is not reconciled until it can");
    }
    let raw = h.bad.raw.clone();
    let raw_key = raw["spec"]
        .get("connectionRef")
        .and_then(|r| serde_json::from_value::<crate::crd::ConnectionRef>(r.clone()).ok())
        .map(|r| crate::connections::ConnKey::of(&r, &ns));
    if !ctx.settings.shard.serves(raw_key.as_ref()) {
        // Another shard's object: its owner holds it apart.
        return;
    }
    let deleting = h.meta.deletion_timestamp.is_some();
    // Its tenant, from the raw reference: never the operator's own for an object that names another.
    let pass = match raw["spec"].get("connectionRef").filter(|v| !v.is_null()) {
        None => Ok(ctx.clone()),
        Some(r) => match serde_json::from_value::<crate::crd::ConnectionRef>(r.clone()) {
            Ok(r) => ctx.for_ref(Some(&r), &ns).map_err(|refusal| refusal.message()),
            Err(e) => Err(bounded(format!(
                "spec.connectionRef cannot be read ({e}), so its tenant is not known; nothing was written to Graph"
            ))),
        },
    };
    let result = match (pass, h.which, deleting) {
        (Err(why), Which::Deployment, false) => Ok((
            (raw["spec"]["paused"] == Value::Bool(true))
                .then(|| format!("the deployment was not paused: {why}")),
            None,
        )),
        (Err(why), _, true) => Ok((None, Some(why))),
        (Err(_), Which::Group, false) => Ok((None, None)),
        (Ok(pass), _, true) => release(&pass, h.which, &raw, &h.meta).await,
        (Ok(pass), Which::Deployment, false) => brake(&pass, &raw).await.map(|paused| (paused, None)),
        (Ok(_), Which::Group, false) => Ok((None, None)),
    };
    let (note, stalled_on) = match result {
        Ok((note, stalled_on)) => (note, stalled_on),
        Err(e) => {
            tracing::warn!(kind, namespace = %ns, name = %name, error = %e, "could not act on an undecodable object; retrying");
            return;
        }
    };
    if deleting && stalled_on.is_none() {
        // The finalizer is gone; the object goes with it.
        h.handled = version(&h.meta);
        return;
    }
    let mut message = format!(
        "this operator version cannot read the object: {} (fix that field, or run an operator version that knows its value); nothing else is done until it can be read",
        h.bad.error
    );
    if let Some(n) = &note {
        message.push_str("; ");
        message.push_str(n);
    }
    if let Some(s) = &stalled_on {
        message.push_str("; ");
        message.push_str(s);
    }
    let old = raw_conditions(&raw);
    if let Err(e) = stall(
        ctx,
        h.which,
        &h.meta,
        &old,
        Reason::UNDECODABLE_OBJECT,
        message,
        "Decode",
    )
    .await
    {
        tracing::warn!(kind, namespace = %ns, name = %name, error = %e, "could not write the status of an undecodable object; retrying");
        return;
    }
    h.handled = version(&h.meta);
}

/// The conditions of an object's raw status (those that can be read).
pub(super) fn raw_conditions(raw: &Value) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    raw["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Marks an object Stalled for `reason` without decoding its spec: a merge patch of its status
/// conditions and observedGeneration only (nothing else the status holds is touched), and a Warning
/// Event. Nothing is written when `old` already says it.
pub(super) async fn stall(
    ctx: &Context,
    which: Which,
    meta: &ObjectMeta,
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    reason: Reason,
    message: String,
    action: &str,
) -> Result<(), kube::Error> {
    if status::already_stalled(old, reason, &message) {
        return Ok(());
    }
    let (ns, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let generation = meta.generation;
    let conditions = status::conditions(&Outcome::stalled(reason, message.clone()), generation, old);
    let patch = json!({"status": {"observedGeneration": generation, "conditions": conditions}});
    let ar = match which {
        Which::Deployment => ApiResource::erase::<ExpeditedDeployment>(&()),
        Which::Group => ApiResource::erase::<DeviceGroup>(&()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
    let params = PatchParams {
        field_manager: Some(status::MANAGER.into()),
        ..Default::default()
    };
    api.patch_status(&name, &params, &Patch::Merge(&patch)).await?;
    let reference = ObjectReference {
        api_version: Some(ar.api_version.clone()),
        kind: Some(kind_name(which).into()),
        name: Some(name),
        namespace: Some(ns),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    };
    ctx.events.send(
        Event {
            type_: EventType::Warning,
            reason: reason.as_str().into(),
            note: Some(message),
            action: action.into(),
            secondary: None,
        },
        reference,
    );
    Ok(())
}

fn raw_str<'a>(raw: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(raw, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

/// The raw management policy allows writes: absent or `Manage`.
fn managed(raw: &Value) -> bool {
    matches!(raw_str(raw, &["spec", "managementPolicy"]), None | Some("Manage"))
}

/// Pauses the deployment of an undecodable ExpeditedDeployment whose raw spec asks for a pause. Returns
/// a note for the condition.
pub(super) async fn brake(ctx: &Context, raw: &Value) -> Result<Option<String>, crate::graph::GraphError> {
    if raw["spec"]["paused"] != Value::Bool(true) {
        return Ok(None);
    }
    let id = raw_str(raw, &["status", "deploymentId"]).or_else(|| raw_str(raw, &["spec", "deploymentId"]));
    let Some(id) = id else { return Ok(None) };
    if !managed(raw) {
        return Ok(Some(format!(
            "deployment {id} was not paused: spec.managementPolicy is not Manage"
        )));
    }
    match ctx.graph.get_deployment(id).await {
        Ok(Some(d)) if d.is_paused_by_request() => {
            return Ok(Some(format!("deployment {id} is paused, as spec.paused asks")));
        }
        Ok(None) => return Ok(None),
        Ok(Some(_)) | Err(_) => {}
    }
    ctx.graph.set_paused(id, true).await?;
    tracing::info!(deployment = %id, "paused the deployment of an undecodable object");
    Ok(Some(format!("deployment {id} is paused, as spec.paused asks")))
}

/// Cleanup of an undecodable object being deleted, from its raw fields. `Ok((note, None))` when the
/// finalizer was removed; `Ok((note, Some(why)))` when it must stay until the object is fixed.
async fn release(
    ctx: &Context,
    which: Which,
    raw: &Value,
    meta: &ObjectMeta,
) -> Result<(Option<String>, Option<String>), crate::graph::GraphError> {
    let ours = meta
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !ours {
        return Ok((None, None));
    }
    let (ns, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    match which {
        Which::Deployment => {
            let policy = raw_str(raw, &["spec", "deletionPolicy"]);
            let management = raw_str(raw, &["spec", "managementPolicy"]);
            let keep = match (policy, management) {
                (_, Some("ObserveOnly")) | (Some("Orphan"), None | Some("Manage")) => true,
                (None | Some("Delete"), None | Some("Manage")) => false,
                _ => {
                    return Ok((
                        None,
                        Some("the object cannot be deleted until spec.deletionPolicy and spec.managementPolicy can be read (Delete or Orphan; Manage or ObserveOnly); or remove the finalizer wufb.dev/cleanup to leave Graph as it is".into()),
                    ));
                }
            };
            let ids: std::collections::BTreeSet<&str> = [
                raw_str(raw, &["status", "deploymentId"]),
                raw_str(raw, &["spec", "deploymentId"]),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !keep {
                if ids.is_empty() && !raw["status"]["createIntent"].is_null() {
                    return Ok((
                        None,
                        Some("a create was in flight and its deployment cannot be adopted while the spec cannot be read; delete any deployment it made in Graph, then remove the finalizer wufb.dev/cleanup".into()),
                    ));
                }
                for id in &ids {
                    ctx.graph.delete_deployment(id).await?;
                }
            }
        }
        Which::Group => {
            let deployments = ctx.deployments.state();
            let users =
                crate::reconcile::observe::referencing(deployments.iter().map(|d| d.as_ref()), &ns, &name);
            if !users.is_empty() {
                return Ok((
                    None,
                    Some(format!(
                        "still referenced by ExpeditedDeployment {}; the Graph group is removed once they stop using it",
                        users.join(", ")
                    )),
                ));
            }
            if let Some(id) = raw_str(raw, &["status", "groupId"]) {
                ctx.graph.delete_group(id).await?;
            }
        }
    }
    let remaining: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let ar = match which {
        Which::Deployment => ApiResource::erase::<ExpeditedDeployment>(&()),
        Which::Group => ApiResource::erase::<DeviceGroup>(&()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
    let ops = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": meta.finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]);
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| crate::graph::GraphError::Protocol {
            operation: "remove finalizer",
            detail: e.to_string(),
        })?;
    if let Err(e) = api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        tracing::warn!(error = %e, "could not remove the finalizer of an undecodable object; retrying");
        return Ok((None, Some("the finalizer could not be removed yet".into())));
    }
    Ok((None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bad_object_names_its_field_and_keeps_its_metadata() {
        let raw = json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
            "metadata": {"name": "skewed", "namespace": "n", "uid": "u1", "resourceVersion": "7"},
            "spec": {"content": {"latest": true}, "deletionPolicy": "Shred"}
        });
        let d: Decoded<ExpeditedDeployment> = serde_json::from_str(&raw.to_string()).unwrap();
        assert_eq!(d.metadata().name.as_deref(), Some("skewed"));
        let bad = d.object.unwrap_err();
        assert!(
            bad.error
                .starts_with("spec.deletionPolicy: unknown variant `Shred`"),
            "{}",
            bad.error
        );
        let good: Decoded<ExpeditedDeployment> = serde_json::from_str(
            &json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
                "metadata": {"name": "fine", "namespace": "n"},
                "spec": {"content": {"latest": true}}
            })
            .to_string(),
        )
        .unwrap();
        assert!(good.object.is_ok());
    }

    #[test]
    fn a_list_with_one_bad_item_decodes_the_others() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "spec": {"devices": ["x"]}},
            {"metadata": {"name": "b"}, "spec": {"devices": [42]}},
            {"metadata": {"name": "c"}, "spec": {"devices": []}},
        ]});
        #[derive(Deserialize)]
        struct List {
            items: Vec<Decoded<DeviceGroup>>,
        }
        let l: List = serde_json::from_str(&list.to_string()).unwrap();
        let ok: Vec<bool> = l.items.iter().map(|d| d.object.is_ok()).collect();
        assert_eq!(ok, [true, false, true]);
        let err = l.items[1].object.as_ref().unwrap_err();
        assert!(err.error.starts_with("spec.devices[0]:"), "{}", err.error);
    }

    #[test]
    fn the_stores_keep_objects_without_managed_fields_or_the_last_applied_copy() {
        let applied = |annotations: Value| -> ExpeditedDeployment {
            serde_json::from_value(json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
                "metadata": {
                    "name": "a", "namespace": "n", "annotations": annotations,
                    "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {}}}]
                },
                "spec": {"content": {"latest": true}}
            }))
            .unwrap()
        };
        let kept = lean(applied(
            json!({LAST_APPLIED: "{\"big\": true}", "wufb.dev/promote": "broad"}),
        ));
        assert!(kept.metadata.managed_fields.is_none());
        let annotations = kept.metadata.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["wufb.dev/promote"],
            "other annotations stay"
        );
        let only_copy = lean(applied(json!({LAST_APPLIED: "{}"})));
        assert!(only_copy.metadata.annotations.is_none());
        assert_eq!(only_copy.spec.content.latest, Some(true), "the spec is untouched");
    }

    #[test]
    fn errors_are_bounded() {
        let long = "x".repeat(10_000);
        assert!(bounded(long).len() <= MAX_ERROR + 3);
    }
}
