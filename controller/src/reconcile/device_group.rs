//! DeviceGroup: keep a Graph updatableAssetGroup's devices equal to `spec.devices` (observe -> plan ->
//! act -> report); on deletion remove the group unless a deployment still references it.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::act::{GroupActed, act_group, clean_up_group};
use super::context::Context;
use super::error::Error;
use super::observe::{observe_group, referencing};
use super::plan::{End, GroupCleanup, GroupPlan, plan_group, plan_group_cleanup};
use super::reasons::Reason;
use super::requeue::{Next, action, after_error, reread_on_conflict};
use super::status::{self, Outcome};
use crate::crd::{DeviceGroup, DeviceGroupStatus};

pub const KIND: &str = "DeviceGroup";

/// One pass over an admitted object (see `runtime` for admission and [`super::driver`] for its shape).
pub async fn reconcile(obj: Arc<DeviceGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::driver::reconcile(obj, ctx).await
}

impl super::driver::Kind for DeviceGroup {
    const KIND: &'static str = KIND;

    async fn apply(&self, ctx: &Context, api: &Api<Self>) -> Result<Action, Error> {
        apply(self, ctx, api).await
    }

    async fn cleanup(&self, ctx: &Context, api: &Api<Self>) -> Result<Action, Error> {
        cleanup(self, ctx, api).await
    }
}

async fn apply(obj: &DeviceGroup, ctx: &Context, api: &Api<DeviceGroup>) -> Result<Action, Error> {
    let held = ctx
        .entra
        .get(&obj.namespace().unwrap_or_default(), &obj.name_any());
    let mut observation = observe_group(obj, &ctx.graph, held).await;
    if let Some(Some(devices)) = &mut observation.entra {
        // Deployments that use this group resolve against what it just read.
        *devices = ctx.entra.set(
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
            devices.clone(),
        );
    }
    let plan = plan_group(obj, &observation, &super::expedited::plan_config(ctx));
    ctx.notices(obj, &plan.notices);
    let mut acted = GroupActed::default();
    let failure = match act_group(ctx, api, obj, &plan.steps, &mut acted).await {
        Err(e) => Some(e),
        Ok(()) => observation.failed.take(),
    };
    if let Some(err) = failure {
        if let Some(again) = reread_on_conflict(&err, acted.calls) {
            return Ok(again);
        }
        let outcome = ctx.record_error(obj, &err);
        write(ctx, api, obj, Some((&plan, &acted)), &outcome).await?;
        return after_error(obj, err, ctx.settings.resync);
    }
    let End::Report { outcome, next } = &plan.end else {
        return Ok(action(Next::Soon, obj, &ctx.settings));
    };
    let old = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    ctx.stalled_once(obj, old, outcome);
    write(ctx, api, obj, Some((&plan, &acted)), outcome).await?;
    Ok(action(*next, obj, &ctx.settings))
}

/// Writes the status a pass ends with (what the plan and acting found, the rest as it was).
async fn write(
    ctx: &Context,
    api: &Api<DeviceGroup>,
    obj: &DeviceGroup,
    pass: Option<(&GroupPlan, &GroupActed)>,
    outcome: &Outcome,
) -> Result<(), Error> {
    // The status as last written: a create intent this pass recorded stays until the group's id is.
    let old = pass
        .and_then(|(_, acted)| acted.status.clone())
        .or_else(|| obj.status.clone())
        .unwrap_or_default();
    let (group_id, member_count, device_errors) = match pass {
        Some((plan, acted)) => (
            acted.created.clone().or(plan.group_id.clone()),
            plan.member_count,
            // Errors of the group observed, or none for a group this pass made.
            (plan.group_id.is_some() || acted.created.is_some()).then(|| plan.device_errors.clone()),
        ),
        None => (None, None, None),
    };
    let status = DeviceGroupStatus {
        observed_generation: obj.metadata.generation,
        group_id: group_id.or(old.group_id.clone()),
        tenant_id: ctx.tenant_id.clone().or(old.tenant_id.clone()),
        member_count: member_count.or(old.member_count),
        device_errors: device_errors.unwrap_or(old.device_errors.clone()),
        last_sync_time: Some(status::timestamp()),
        missing_since: pass.and_then(|(plan, _)| plan.missing_since.clone()),
        create_intent: old.create_intent.clone(),
        conditions: status::conditions(outcome, obj.metadata.generation, &old.conditions),
    };
    let written = pass
        .and_then(|(_, acted)| acted.status.as_ref())
        .or(obj.status.as_ref());
    status::write(api, &ctx.writes, &obj.name_any(), written, &status, None).await?;
    Ok(())
}

async fn cleanup(obj: &DeviceGroup, ctx: &Context, api: &Api<DeviceGroup>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let deployments = ctx.deployments.state();
    let users = referencing(deployments.iter().map(|d| d.as_ref()), &ns, &obj.name_any());
    match plan_group_cleanup(obj, users) {
        wait @ GroupCleanup::Wait { .. } => {
            let outcome = wait
                .outcome()
                .unwrap_or_else(|| Outcome::progressing(Reason::IN_USE, ""));
            write(ctx, api, obj, None, &outcome).await?;
            // An error keeps the finalizer (a successful cleanup would remove it) and requeues.
            Err(Error::Waiting {
                reason: Reason::IN_USE,
                message: outcome.message().to_string(),
                retry: Duration::from_secs(5),
            })
        }
        GroupCleanup::Delete { id } => {
            if let Some(outcome) = clean_up_group(ctx, obj, id.as_deref()).await? {
                write(ctx, api, obj, None, &outcome).await?;
                return Err(Error::Waiting {
                    reason: Reason::IN_USE,
                    message: outcome.message().to_string(),
                    retry: Duration::from_secs(30),
                });
            }
            if let Some(uid) = obj.meta().uid.as_deref() {
                ctx.writes.forget(uid);
            }
            ctx.entra.forget(&ns, &obj.name_any());
            Ok(Action::await_change())
        }
    }
}
