//! DeviceGroup: keep a Graph updatableAssetGroup's devices equal to `spec.devices`; on deletion remove the
//! group unless a deployment still references it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use serde_json::json;
use tracing::instrument;

use super::context::{Context, Error, KindLabel, after_error};
use super::desired::referencing;
use super::expedited::{MAX_DEVICE_ERRORS, resync_after};
use super::gate;
use super::status::{self, Outcome};
use crate::crd::{DeviceError, DeviceGroup, DeviceGroupStatus, FINALIZER, validate};
use crate::graph::AssetKind;

const KIND: &str = "DeviceGroup";

#[instrument(skip_all, fields(name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<DeviceGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The wait may be long: the pass works on the newest copy, or not at all if the object is gone.
    let observed = obj.status.as_ref().and_then(|s| s.observed_generation);
    let api: Api<DeviceGroup> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let admitted = gate::admit(&ctx.group_gate, &ctx.groups, &api, &ctx.writes, obj, observed)
        .await
        .map_err(Error::kube("read the object"))?;
    let Some((_permit, obj)) = admitted else {
        return Ok(Action::await_change());
    };
    let started = Instant::now();
    let label = KindLabel { kind: KIND.into() };
    ctx.metrics.reconciles.get_or_create(&label).inc();
    // The finalizer goes on first; the pass then goes on with the object as written.
    let obj = super::context::with_finalizer(&api, &ctx.writes, obj).await?;
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(o) => apply(&o, &ctx, &api).await,
            Finalizer::Cleanup(o) => cleanup(&o, &ctx, &api).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .duration
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    result
}

struct Report {
    group_id: Option<String>,
    member_count: Option<u64>,
    device_errors: Vec<DeviceError>,
}

async fn write(
    ctx: &Context,
    obj: &DeviceGroup,
    api: &Api<DeviceGroup>,
    report: Report,
    outcome: &Outcome,
) -> Result<(), Error> {
    let old = obj.status.clone().unwrap_or_default();
    let status = DeviceGroupStatus {
        observed_generation: obj.metadata.generation,
        group_id: report.group_id.or(old.group_id.clone()),
        member_count: report.member_count.or(old.member_count),
        device_errors: report.device_errors,
        last_sync_time: Some(status::timestamp()),
        conditions: status::conditions(outcome, obj.metadata.generation, &old.conditions),
    };
    status::apply(
        api,
        &ctx.writes,
        &obj.name_any(),
        KIND,
        obj.status.as_ref(),
        &status,
    )
    .await?;
    Ok(())
}

async fn apply(obj: &DeviceGroup, ctx: &Context, api: &Api<DeviceGroup>) -> Result<Action, Error> {
    let empty = Report {
        group_id: None,
        member_count: None,
        device_errors: Vec::new(),
    };
    let problems = validate::device_group(&obj.spec);
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if obj.status.as_ref().is_none_or(|s| {
            !s.conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.message == message)
        }) {
            ctx.event(
                obj,
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                message.clone(),
            )
            .await;
        }
        write(ctx, obj, api, empty, &Outcome::stalled("InvalidSpec", message)).await?;
        return Ok(Action::requeue(resync_after(obj, ctx.settings.resync)));
    }
    match sync(obj, ctx, api).await {
        Ok(action) => Ok(action),
        Err(err) => {
            let outcome = ctx.error_outcome(obj, &err).await;
            write(ctx, obj, api, empty, &outcome).await?;
            after_error(obj, err, ctx.settings.resync)
        }
    }
}

async fn sync(obj: &DeviceGroup, ctx: &Context, api: &Api<DeviceGroup>) -> Result<Action, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let desired: BTreeSet<String> = obj.spec.devices.iter().map(|d| d.to_lowercase()).collect();
    let (group_id, members) = match &status.group_id {
        Some(id) => match ctx.graph.group_members(id).await? {
            Some(m) => (Some(id.clone()), m),
            None => {
                ctx.event(
                    obj,
                    EventType::Warning,
                    "GroupMissing",
                    "Recreate",
                    format!("updatableAssetGroup {id} was deleted outside the operator; creating it again"),
                )
                .await;
                (None, Vec::new())
            }
        },
        None => (None, Vec::new()),
    };
    let group_id = match group_id {
        Some(id) => id,
        None => {
            let id = ctx.graph.create_group().await?;
            status::merge::<_, DeviceGroupStatus>(
                api,
                &ctx.writes,
                &obj.name_any(),
                None,
                json!({"groupId": id}),
            )
            .await?;
            ctx.event(
                obj,
                EventType::Normal,
                "Created",
                "Create",
                format!("Created updatableAssetGroup {id}"),
            )
            .await;
            id
        }
    };
    let current: BTreeSet<String> = members
        .iter()
        .filter(|m| m.kind() == AssetKind::Device)
        .map(|m| m.id.to_lowercase())
        .collect();
    let add: Vec<String> = desired.difference(&current).cloned().collect();
    let remove: Vec<String> = current.difference(&desired).cloned().collect();
    let device_errors: Vec<DeviceError> = members
        .iter()
        .filter(|m| !m.errors.is_empty() && desired.contains(&m.id.to_lowercase()))
        .take(MAX_DEVICE_ERRORS)
        .map(|m| DeviceError {
            device_id: m.id.clone(),
            reasons: m
                .errors
                .iter()
                .filter_map(|e| e.reason.as_ref().map(|r| r.to_string()))
                .collect(),
        })
        .collect();
    let report = Report {
        group_id: Some(group_id.clone()),
        member_count: Some(desired.len() as u64),
        device_errors,
    };
    if add.is_empty() && remove.is_empty() {
        let message = if report.device_errors.is_empty() {
            format!("{} devices in group {group_id}", desired.len())
        } else {
            format!(
                "{} devices in group {group_id}; {} could not be registered (see status.deviceErrors)",
                desired.len(),
                report.device_errors.len()
            )
        };
        write(ctx, obj, api, report, &Outcome::Converged { message }).await?;
        return Ok(Action::requeue(resync_after(obj, ctx.settings.resync)));
    }
    let calls = ctx.graph.apply_group_diff(&group_id, &add, &remove).await?;
    ctx.event(
        obj,
        EventType::Normal,
        "MembersUpdated",
        "Update",
        format!(
            "Group {group_id}: +{} -{} devices in {calls} call(s)",
            add.len(),
            remove.len()
        ),
    )
    .await;
    write(
        ctx,
        obj,
        api,
        report,
        &Outcome::progressing(
            "Verifying",
            format!(
                "sent +{} -{} devices to Graph; verifying",
                add.len(),
                remove.len()
            ),
        ),
    )
    .await?;
    Ok(Action::requeue(ctx.settings.verify_delay))
}

async fn cleanup(obj: &DeviceGroup, ctx: &Context, api: &Api<DeviceGroup>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let users = referencing(ctx, &ns, &obj.name_any());
    if !users.is_empty() {
        let message = format!(
            "still referenced by ExpeditedDeployment {}; the Graph group is removed once they stop using it",
            users.join(", ")
        );
        let outcome = Outcome::progressing("InUse", message.clone());
        let report = Report {
            group_id: None,
            member_count: None,
            device_errors: obj.status.clone().unwrap_or_default().device_errors,
        };
        write(ctx, obj, api, report, &outcome).await?;
        // An error keeps the finalizer (a successful cleanup would remove it) and requeues.
        return Err(Error::Waiting {
            reason: "InUse",
            message,
            retry: Duration::from_secs(5),
        });
    }
    if let Some(id) = obj.status.as_ref().and_then(|s| s.group_id.clone())
        && ctx.graph.delete_group(&id).await?
    {
        ctx.event(
            obj,
            EventType::Normal,
            "Deleted",
            "Delete",
            format!("Deleted updatableAssetGroup {id}"),
        )
        .await;
    }
    Ok(Action::await_change())
}
