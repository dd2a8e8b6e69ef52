//! The quarantine: what an object this operator version cannot decode (see [`super::decode`]) still
//! gets. It:
//!
//! - logs one bounded line per object version and counts them in `wufb_undecodable_objects{kind}`;
//! - writes a `Stalled` status (conditions only, without decoding the spec) and a Warning Event naming
//!   the field that could not be read;
//! - still pauses, and still cleans up on deletion, through the planner: the raw fields the brake and the
//!   cleanup read are decoded one by one into the same typed facts a pass has (see [`deployment_facts`]),
//!   and [`plan::brake`], [`plan::plan_cleanup`] and [`plan::plan_group_cleanup`] decide, as they do
//!   for a readable object; a field they need that cannot be read holds the finalizer with a message
//!   naming it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::decode::{Notice, Undecodable, Which, bounded};
use crate::crd::{
    DeviceGroup, DeviceGroupStatus, ExpeditedDeployment, ExpeditedDeploymentStatus, FINALIZER,
    ManagementPolicy,
};
use crate::reconcile::act;
use crate::reconcile::context::Context;
use crate::reconcile::error::Error;
use crate::reconcile::metrics::KindLabel;
use crate::reconcile::observe::{self, Known, Observation};
use crate::reconcile::plan::{self, Cleanup, GroupCleanup, Step, Target};
use crate::reconcile::reasons::Reason;
use crate::reconcile::status::{self, Outcome};

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

pub(super) fn kind_name(which: Which) -> &'static str {
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
        (Ok(pass), _, true) => release(&pass, h.which, &raw, &h.meta)
            .await
            .map(|stalled_on| (None, stalled_on)),
        (Ok(pass), Which::Deployment, false) => {
            let (obj, unreadable) = deployment_facts(&h.meta, &raw);
            brake(&pass, &obj, &unreadable).await.map(|paused| (paused, None))
        }
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

/// Marks an object Stalled for `reason` without decoding its spec: its status conditions and
/// observedGeneration only (see [`status::write_stall`]: nothing else the status holds is touched), and a
/// Warning Event. Nothing is written when `old` already says it.
pub(super) async fn stall(
    ctx: &Context,
    which: Which,
    meta: &ObjectMeta,
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    reason: Reason,
    message: String,
    action: &str,
) -> Result<(), Error> {
    if status::already_stalled(old, reason, &message) {
        return Ok(());
    }
    let (ns, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let generation = meta.generation;
    let conditions = status::conditions(&Outcome::stalled(reason, message.clone()), generation, old);
    let ar = resource(which);
    status::write_stall(ctx.client.clone(), &ar, &ns, &name, generation, &conditions).await?;
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

/// One raw field, decoded on its own: absent or null gives the default; a value that cannot be read
/// gives the default too, and its path goes to `unreadable`.
fn field<T: DeserializeOwned + Default>(
    raw: &Value,
    path: &'static str,
    unreadable: &mut Vec<&'static str>,
) -> T {
    match path.split('.').try_fold(raw, |v, k| v.get(k)) {
        None | Some(Value::Null) => T::default(),
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|_| {
            unreadable.push(path);
            T::default()
        }),
    }
}

/// An ExpeditedDeployment holding what the brake and the cleanup read, each field decoded from the raw
/// object on its own, so that one field this version cannot read hides no other; and the paths of the
/// fields among them that could not be read.
pub(super) fn deployment_facts(meta: &ObjectMeta, raw: &Value) -> (ExpeditedDeployment, Vec<&'static str>) {
    let mut unreadable = Vec::new();
    let u = &mut unreadable;
    let mut obj = ExpeditedDeployment {
        metadata: meta.clone(),
        spec: Default::default(),
        status: None,
    };
    obj.spec.paused = field(raw, "spec.paused", u);
    obj.spec.deployment_id = field(raw, "spec.deploymentId", u);
    obj.spec.deletion_policy = field(raw, "spec.deletionPolicy", u);
    obj.spec.management_policy = field(raw, "spec.managementPolicy", u);
    if !raw["status"].is_null() {
        obj.status = Some(ExpeditedDeploymentStatus {
            deployment_id: field(raw, "status.deploymentId", u),
            audience_id: field(raw, "status.audienceId", u),
            create_intent: field(raw, "status.createIntent", u),
            rollout: field(raw, "status.rollout", u),
            ..Default::default()
        });
    }
    (obj, unreadable)
}

/// A DeviceGroup holding what its cleanup reads: the recorded Graph group.
fn group_facts(meta: &ObjectMeta, raw: &Value) -> (DeviceGroup, Vec<&'static str>) {
    let mut unreadable = Vec::new();
    let group_id: Option<String> = field(raw, "status.groupId", &mut unreadable);
    let group = DeviceGroup {
        metadata: meta.clone(),
        spec: Default::default(),
        status: group_id.map(|id| DeviceGroupStatus {
            group_id: Some(id),
            ..Default::default()
        }),
    };
    (group, unreadable)
}

/// The brake for a deployment known only by its facts (an undecodable object, or one whose pass
/// panicked): the pause [`plan::brake`] decides, for the spec's `paused` or a halt or abort recorded
/// before. Returns a note for the condition.
pub(super) async fn brake(
    ctx: &Context,
    obj: &ExpeditedDeployment,
    unreadable: &[&str],
) -> Result<Option<String>, Error> {
    let recorded = obj.status.as_ref().and_then(|s| s.rollout.as_ref());
    let hold = crate::reconcile::rollout::recorded_hold(recorded);
    let why = if obj.spec.paused {
        "as spec.paused asks"
    } else if hold {
        "as its halted or aborted rollout holds it"
    } else {
        return Ok(None);
    };
    let Some(id) = observe::deployment_id(obj) else {
        return Ok(None);
    };
    if unreadable.contains(&"spec.managementPolicy") || obj.spec.management_policy != ManagementPolicy::Manage
    {
        return Ok(Some(format!(
            "deployment {id} was not paused: spec.managementPolicy is not Manage"
        )));
    }
    let deployment = match ctx.graph.get_deployment(&id).await {
        Ok(Some(d)) => Known::Found(observe::deployment_facts(&d, Default::default(), None)),
        Ok(None) => Known::Missing(id.clone()),
        // Paused anyway: the write is idempotent.
        Err(_) => Known::Unread(id.clone()),
    };
    let found = matches!(deployment, Known::Found(_));
    let observation = Observation {
        at: chrono::Utc::now(),
        adoption: None,
        deployment,
        audience: None,
        content: None,
        failed: None,
    };
    match plan::brake(obj, &observation, hold) {
        Some(Step::SetPaused {
            target: Target::Existing(id),
            paused,
        }) => {
            ctx.graph.set_paused(&id, paused).await.map_err(Error::Graph)?;
            tracing::info!(deployment = %id, "paused the deployment of an object that cannot be reconciled");
            Ok(Some(format!("deployment {id} is paused, {why}")))
        }
        _ if found => Ok(Some(format!("deployment {id} is paused, {why}"))),
        _ => Ok(None),
    }
}

/// Cleanup of an undecodable object being deleted, from its facts, as the planner decides it. `Ok(None)`
/// when the finalizer was removed; `Ok(Some(why))` when it must stay until the object is fixed.
async fn release(
    ctx: &Context,
    which: Which,
    raw: &Value,
    meta: &ObjectMeta,
) -> Result<Option<String>, Error> {
    let ours = meta
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !ours {
        return Ok(None);
    }
    let (ns, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    match which {
        Which::Deployment => {
            let (obj, unreadable) = deployment_facts(meta, raw);
            if unreadable
                .iter()
                .any(|f| matches!(*f, "spec.deletionPolicy" | "spec.managementPolicy"))
            {
                return Ok(Some("the object cannot be deleted until spec.deletionPolicy and spec.managementPolicy can be read (Delete or Orphan; Manage or ObserveOnly); or remove the finalizer wufb.dev/cleanup to leave Graph as it is".into()));
            }
            if let Some(field) = unreadable.iter().find(|f| f.starts_with("status.")) {
                return Ok(Some(format!(
                    "the object cannot be deleted while {field} cannot be read: it says what the operator made in Graph (delete that in Graph, then remove the finalizer wufb.dev/cleanup)"
                )));
            }
            // A pending create's deployment cannot be matched while the spec cannot be read: no adoption.
            match plan::plan_cleanup(&obj, None) {
                Cleanup::Unresolved { started_at } => {
                    return Ok(Some(format!(
                        "a create started at {started_at} was in flight and its deployment cannot be adopted while the spec cannot be read; delete any deployment it made in Graph, then remove the finalizer wufb.dev/cleanup"
                    )));
                }
                cleanup => act::clean_up(ctx, &obj, &cleanup).await?,
            }
        }
        Which::Group => {
            let (group, unreadable) = group_facts(meta, raw);
            if let Some(field) = unreadable.first() {
                return Ok(Some(format!(
                    "the object cannot be deleted while {field} cannot be read: it names the Graph group to delete (delete it in Graph, then remove the finalizer wufb.dev/cleanup)"
                )));
            }
            let deployments = ctx.deployments.state();
            let users = observe::referencing(deployments.iter().map(|d| d.as_ref()), &ns, &name);
            match plan::plan_group_cleanup(&group, users) {
                wait @ GroupCleanup::Wait { .. } => {
                    return Ok(wait.outcome().map(|o| o.message().to_string()));
                }
                GroupCleanup::Delete { id } => {
                    if let Some(refused) = act::clean_up_group(ctx, &group, id.as_deref()).await? {
                        return Ok(Some(refused.message().to_string()));
                    }
                }
            }
        }
    }
    remove_finalizer(ctx, which, meta).await?;
    Ok(None)
}

/// Removes the operator's finalizer (a test of the list first: a concurrent writer gets a conflict).
async fn remove_finalizer(ctx: &Context, which: Which, meta: &ObjectMeta) -> Result<(), Error> {
    let (ns, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let remaining: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &resource(which));
    let ops = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": meta.finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]);
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(Error::encode("the finalizer patch"))?;
    api.patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(Error::kube("remove finalizer"))?;
    Ok(())
}

fn resource(which: Which) -> ApiResource {
    match which {
        Which::Deployment => ApiResource::erase::<ExpeditedDeployment>(&()),
        Which::Group => ApiResource::erase::<DeviceGroup>(&()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_the_brake_and_cleanup_read_is_decoded_on_its_own() {
        let meta = ObjectMeta {
            name: Some("skewed".into()),
            ..Default::default()
        };
        let raw = json!({
            "spec": {"paused": true, "deletionPolicy": "Shred", "equivalentContent": "everything"},
            "status": {"deploymentId": "d1", "audienceId": "a1", "rollout": {"phase": 7}}
        });
        let (obj, unreadable) = deployment_facts(&meta, &raw);
        assert_eq!(unreadable, ["spec.deletionPolicy", "status.rollout"]);
        assert!(obj.spec.paused);
        let status = obj.status.unwrap();
        assert_eq!(status.deployment_id.as_deref(), Some("d1"));
        assert_eq!(
            status.audience_id.as_deref(),
            Some("a1"),
            "the audience is not lost to another field"
        );
        assert_eq!(obj.metadata.name.as_deref(), Some("skewed"));

        let (clean, unreadable) =
            deployment_facts(&meta, &json!({"spec": {"managementPolicy": "ObserveOnly"}}));
        assert!(unreadable.is_empty());
        assert_eq!(clean.spec.management_policy, ManagementPolicy::ObserveOnly);
        assert!(clean.status.is_none());

        let (group, unreadable) = group_facts(&meta, &json!({"status": {"groupId": 42}}));
        assert_eq!(unreadable, ["status.groupId"]);
        assert!(group.status.is_none());
    }
}
