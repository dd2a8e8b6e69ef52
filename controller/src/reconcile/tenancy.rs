//! The first step of a pass over an ExpeditedDeployment or DeviceGroup: which tenant it reaches. An
//! object without `spec.connectionRef` works with the operator's own client; one with it works with its
//! connection's ([`Context::for_object`]). A pass that cannot use its connection, or whose connection
//! now leads to another tenant than the one its Graph objects live in, stops here: nothing reaches
//! Graph (not even a pause, which would have to go to a tenant the object may not use), and the
//! condition says why.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use serde_json::json;

use super::context::Context;
use super::error::Error;
use super::reasons::Reason;
use super::status::{self, Outcome};
use crate::connections::{ConnKey, Refusal, UsesConnection};
use crate::crd::{ExpeditedDeployment, FINALIZER};

/// How soon an object that waits for its connection looks again.
pub const WAIT: Duration = Duration::from_secs(10);

/// Why a pass stops before Graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop(pub Outcome);

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        let reason = match &r {
            Refusal::Disabled => Reason::CONNECTIONS_DISABLED,
            Refusal::NotFound(_) => Reason::CONNECTION_NOT_FOUND,
            Refusal::NotAllowed { .. } => Reason::CONNECTION_NOT_ALLOWED,
            Refusal::NotReady { .. } => Reason::CONNECTION_NOT_READY,
        };
        Stop(if r.waits() {
            Outcome::progressing(reason, r.message())
        } else {
            Outcome::stalled(reason, r.message())
        })
    }
}

/// The tenant check: an object whose Graph objects live in one tenant never writes to another through
/// a changed reference, or changed operator-wide credentials (`by_reference`: whether the object names
/// a connection). Pure.
pub fn same_tenant(
    recorded: Option<&str>,
    now: Option<&str>,
    has_graph_state: bool,
    by_reference: bool,
) -> Result<(), Stop> {
    match (recorded, now) {
        (Some(was), Some(is)) if has_graph_state && !was.eq_ignore_ascii_case(is) => {
            Err(Stop(Outcome::stalled(
                Reason::CONNECTION_CHANGED,
                if by_reference {
                    format!(
                        "spec.connectionRef: its Graph objects live in tenant {was}, but the connection now leads to tenant {is}; set spec.connectionRef back (delete the object with its old connection to remove them, then create it with the new one); nothing was written to either tenant"
                    )
                } else {
                    format!(
                        "status.tenantId: its Graph objects live in tenant {was}, but the operator's own credentials now lead to tenant {is}; run the operator with the credentials of tenant {was}, or name a connection to it in spec.connectionRef; nothing was written to either tenant"
                    )
                },
            )))
        }
        _ => Ok(()),
    }
}

/// The DeviceGroups of a deployment must live in its tenant: a group named in the audience whose
/// connection differs stalls the deployment. Groups not found are left to the audience's own wait.
pub fn groups_share_connection(obj: &ExpeditedDeployment, ctx: &Context) -> Result<(), Stop> {
    let ns = obj.namespace().unwrap_or_default();
    let mine = obj.spec.connection_ref.as_ref().map(|r| ConnKey::of(r, &ns));
    for name in obj.spec.device_groups() {
        let Some(group) = ctx
            .groups
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(&ns))
        else {
            continue;
        };
        let theirs = group.spec.connection_ref.as_ref().map(|r| ConnKey::of(r, &ns));
        if theirs != mine {
            let say = |k: &Option<ConnKey>| {
                k.as_ref()
                    .map_or("the operator's own credentials".to_string(), |k| k.to_string())
            };
            return Err(Stop(Outcome::stalled(
                Reason::CONNECTION_MISMATCH,
                format!(
                    "spec.audience: DeviceGroup {name} uses {} but this deployment uses {}; a group lives in one tenant, so set the same spec.connectionRef on both; nothing was written to Graph",
                    say(&theirs),
                    say(&mine)
                ),
            )));
        }
    }
    Ok(())
}

/// The objects a pass starts with this step: ExpeditedDeployment and DeviceGroup.
pub trait Tenanted:
    UsesConnection<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Tenanted for K where
    K: UsesConnection<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The context of a pass over `obj`, or why it stops.
pub fn context_for<K: UsesConnection>(ctx: &Arc<Context>, obj: &K) -> Result<Arc<Context>, Stop> {
    let pass = ctx.for_object(obj)?;
    same_tenant(
        obj.recorded_tenant(),
        pass.tenant_id.as_deref(),
        obj.has_graph_state(),
        obj.connection_ref().is_some(),
    )?;
    Ok(pass)
}

/// The first step of a pass: the context it works in (`check` adds the kind's own reasons to stop), or,
/// when it stops before Graph, the action it ends with ([`stopped`]).
pub async fn enter<K: Tenanted>(
    ctx: &Arc<Context>,
    obj: &Arc<K>,
    api: &Api<K>,
    check: impl FnOnce(&Context) -> Result<(), Stop>,
) -> Result<Result<Arc<Context>, Action>, Error> {
    match context_for(ctx, obj.as_ref()).and_then(|pass| check(&pass).map(|()| pass)) {
        Ok(pass) => Ok(Ok(pass)),
        Err(stop) => stopped(obj.clone(), ctx, api, stop).await.map(Err),
    }
}

/// Ends a pass that stopped before Graph: the condition and a Warning Event for a stall (once), and a
/// look again soon. A deleted object whose status records nothing in Graph lets its
/// finalizer go; one that does waits, as cleaning up needs its tenant.
async fn stopped<K: Tenanted>(obj: Arc<K>, ctx: &Context, api: &Api<K>, stop: Stop) -> Result<Action, Error> {
    let Stop(outcome) = stop;
    if obj.meta().deletion_timestamp.is_some() && !obj.has_graph_state() {
        return finalizer(api, FINALIZER, obj, |event| async move {
            match event {
                Finalizer::Apply(_) | Finalizer::Cleanup(_) => Ok::<_, Error>(Action::await_change()),
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
    }
    let conditions = obj.conditions();
    ctx.stalled_once(obj.as_ref(), conditions, &outcome);
    let generation = obj.meta().generation;
    let new = status::conditions(&outcome, generation, conditions);
    if new != conditions {
        // The whole status as read, with the stop's conditions: every write carries all of it.
        let mut st =
            serde_json::to_value(obj.as_ref()).map_err(Error::encode("the status"))?["status"].take();
        if !st.is_object() {
            st = json!({});
        }
        st["observedGeneration"] = json!(generation);
        st["conditions"] = serde_json::to_value(&new).map_err(Error::encode("the status"))?;
        status::write::<K, serde_json::Value>(api, &ctx.writes, &obj.name_any(), None, &st, None).await?;
    }
    if obj.meta().deletion_timestamp.is_some() {
        return Err(Error::Waiting {
            reason: outcome.reason(),
            message: format!("cleanup waits: {}", outcome.message()),
            retry: WAIT,
        });
    }
    // What stops a pass here is mended outside the object (a namespace's labels, a connection, a
    // group), which no watch of the object sees: look again soon. Another look costs no Graph call and,
    // while nothing changed, no write.
    Ok(Action::requeue(WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_connection_never_writes_to_another_tenant() {
        let a = "aaaaaaaa-0000-4000-8000-000000000001";
        let b = "bbbbbbbb-0000-4000-8000-000000000002";
        let rows = [
            ("same tenant", Some(a), Some(a), true, true),
            (
                "same tenant, other case",
                Some(a),
                Some(&*a.to_uppercase()),
                true,
                true,
            ),
            ("another tenant with Graph objects", Some(a), Some(b), true, false),
            (
                "another tenant before anything was made",
                Some(a),
                Some(b),
                false,
                true,
            ),
            ("nothing recorded yet", None, Some(b), true, true),
            ("a tenant not known (no sign-in)", Some(a), None, true, true),
        ];
        for (name, recorded, now, state, ok) in rows {
            let got = same_tenant(recorded, now, state, true);
            assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
            if let Err(Stop(o)) = got {
                assert!(
                    o.is_stalled() && o.reason() == Reason::CONNECTION_CHANGED,
                    "{name}"
                );
                assert!(
                    o.message().contains(a) && o.message().contains(b),
                    "{name}: names both tenants"
                );
            }
        }
        let moved = same_tenant(Some(a), Some(b), true, false).unwrap_err().0;
        assert!(
            moved.message().starts_with("status.tenantId")
                && moved.message().contains("operator's own credentials"),
            "{}",
            moved.message()
        );
    }

    #[test]
    fn a_refused_reference_waits_or_stalls_with_its_own_reason() {
        let key = ConnKey::graph("team-a", "tenant-a");
        let rows = [
            (
                Refusal::NotFound(key.clone()),
                Reason::CONNECTION_NOT_FOUND,
                false,
            ),
            (
                Refusal::NotReady {
                    key: key.clone(),
                    why: "signing in failed".into(),
                },
                Reason::CONNECTION_NOT_READY,
                false,
            ),
            (
                Refusal::NotAllowed {
                    key,
                    namespace: "team-b".into(),
                },
                Reason::CONNECTION_NOT_ALLOWED,
                true,
            ),
            (Refusal::Disabled, Reason::CONNECTIONS_DISABLED, true),
        ];
        for (refusal, reason, stalls) in rows {
            let Stop(o) = Stop::from(refusal.clone());
            assert_eq!((o.reason(), o.is_stalled()), (reason, stalls), "{refusal:?}");
            assert!(o.message().starts_with("spec.connectionRef"), "{}", o.message());
        }
    }
}
