//! ExpeditedDeployment: observe -> plan -> act -> report, with exactly-once create and cleanup.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument};

use super::adopt;
use super::context::{Context, Error, KindLabel};
use super::desired::{Resolution, resolve};
use super::gate;
use super::plan::{Action as Step, Blocked, DeployedContent, ObservedDeployment, Target, plan};
use super::status::{self, Outcome};
use crate::crd::{
    AudienceStatus, CreateIntent, DeletionPolicy, DeviceError, ExpeditedDeployment,
    ExpeditedDeploymentStatus, FINALIZER, ManagementPolicy, ResolvedContent, validate,
};
use crate::graph::models::{Content, Deployment};
use crate::graph::{Audience, SettingsRequest};

const KIND: &str = "ExpeditedDeployment";
/// Device errors listed in status at most.
pub const MAX_DEVICE_ERRORS: usize = 50;

/// Entry point for the controller.
#[instrument(skip_all, fields(name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<ExpeditedDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The wait may be long: the pass works on the newest copy, or not at all if the object is gone.
    let observed = obj.status.as_ref().and_then(|s| s.observed_generation);
    let api: Api<ExpeditedDeployment> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let admitted = gate::admit(
        &ctx.deployment_gate,
        &ctx.deployments,
        &api,
        &ctx.writes,
        obj,
        observed,
    )
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
            Finalizer::Cleanup(o) => cleanup(&o, &ctx).await,
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

/// The resync delay of an object: its annotation, or the operator default, jittered by up to 10%.
pub fn resync_after(obj: &impl Resource, default: Duration) -> Duration {
    let base = obj
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::crd::RESYNC_ANNOTATION))
        .and_then(|v| parse_duration(v))
        .unwrap_or(default);
    let seed = obj
        .meta()
        .uid
        .as_deref()
        .unwrap_or("")
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let frac = ((seed ^ u64::from(nanos)) % 1000) as f64 / 10_000.0;
    base.mul_f64(1.0 + frac)
}

/// `90s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The observed deployment, as the planner sees it.
pub fn observed_from(
    d: &Deployment,
    audience: &Audience,
    recorded: Option<&ResolvedContent>,
) -> ObservedDeployment {
    let content = match &d.content {
        Some(Content::Catalog { entry_id: Some(id) }) => DeployedContent::CatalogEntry(id.clone()),
        Some(Content::ExpeditedReleaseDate { release_date, .. }) => {
            DeployedContent::ReleaseDate(release_date.clone())
        }
        _ => recorded.map_or(DeployedContent::Unknown, |r| {
            DeployedContent::CatalogEntry(r.catalog_entry_id.clone())
        }),
    };
    let settings = d.settings.clone().unwrap_or_default();
    let ux = settings.user_experience.unwrap_or_default();
    ObservedDeployment {
        id: d.id.clone(),
        legacy: matches!(content, DeployedContent::ReleaseDate(_)),
        content,
        settings: SettingsRequest {
            days_until_forced_reboot: ux.days_until_forced_reboot,
            offer_as_optional: ux.offer_as_optional,
            readiness_test: settings.expedite.is_some_and(|e| e.is_readiness_test),
        },
        paused_requested: d.is_paused_by_request(),
        members: audience.members.clone(),
        exclusions: audience.exclusions.clone(),
    }
}

/// What the report step writes, gathered along the way.
#[derive(Default)]
struct Report {
    deployment_id: Option<String>,
    graph_state: Option<String>,
    reasons: Vec<String>,
    content: Option<ResolvedContent>,
    audience: Option<AudienceStatus>,
    device_errors: Vec<DeviceError>,
}

impl Report {
    fn record_deployment(&mut self, d: &Deployment) {
        self.deployment_id = Some(d.id.clone());
        self.graph_state = d.state.effective().map(|s| s.to_string());
        self.reasons = d.state.reason_values();
    }
}

/// Writes the status a pass ends with; `current` is the status as last written (normally the object's).
async fn write_report(
    ctx: &Context,
    obj: &ExpeditedDeployment,
    current: Option<&ExpeditedDeploymentStatus>,
    api: &Api<ExpeditedDeployment>,
    report: Report,
    outcome: &Outcome,
) -> Result<(), Error> {
    let old = current.cloned().unwrap_or_default();
    let generation = obj.metadata.generation;
    let status = ExpeditedDeploymentStatus {
        observed_generation: generation,
        deployment_id: report.deployment_id.or(old.deployment_id.clone()),
        graph_state: report.graph_state.or(old.graph_state.clone()),
        state_reasons: if report.reasons.is_empty() {
            old.state_reasons.clone()
        } else {
            report.reasons
        },
        resolved_content: report.content.or(old.resolved_content.clone()),
        audience: report.audience.or(old.audience.clone()),
        device_errors: report.device_errors,
        last_sync_time: Some(status::timestamp()),
        create_intent: None,
        conditions: status::conditions(outcome, generation, &old.conditions),
    };
    status::apply(api, &ctx.writes, &obj.name_any(), KIND, current, &status).await?;
    Ok(())
}

/// Decides what to adopt for a create whose answer was lost (see [`super::adopt`]).
async fn adoption(
    obj: &ExpeditedDeployment,
    intent: &CreateIntent,
    settings: Option<SettingsRequest>,
    ctx: &Context,
) -> Result<adopt::Decision, Error> {
    let started_at = chrono::DateTime::parse_from_rfc3339(&intent.started_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let me = adopt::Pending {
        uid: obj.uid().unwrap_or_default(),
        started_at,
        catalog_entry_id: intent.catalog_entry_id.clone(),
        release_date: intent.release_date.clone(),
        settings,
    };
    // Claims are read from the API server, not the store: a claim recorded a moment ago by another
    // object's pass may not have reached the store yet, and adopting that deployment again would give
    // two objects one deployment.
    let mut everyone = Vec::new();
    let lists: Vec<Api<ExpeditedDeployment>> = if ctx.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    for api in lists {
        everyone.extend(
            api.list(&Default::default())
                .await
                .map_err(Error::kube("list objects to adopt a deployment"))?
                .items,
        );
    }
    let mut claimed = BTreeSet::new();
    let mut others = Vec::new();
    for o in everyone.iter().filter(|o| o.uid() != obj.uid()) {
        let status = o.status.clone().unwrap_or_default();
        claimed.extend(
            status
                .deployment_id
                .iter()
                .chain(o.spec.deployment_id.iter())
                .cloned(),
        );
        if let (Some(i), None) = (&status.create_intent, &status.deployment_id) {
            others.push(adopt::Pending {
                uid: o.uid().unwrap_or_default(),
                started_at: chrono::DateTime::parse_from_rfc3339(&i.started_at)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(started_at),
                catalog_entry_id: i.catalog_entry_id.clone(),
                release_date: i.release_date.clone(),
                settings: Some(super::desired::settings_of(&o.spec)),
            });
        }
    }
    let found = ctx
        .graph
        .deployments_created_since(started_at - chrono::Duration::seconds(30))
        .await?;
    Ok(adopt::decide(&me, &others, &claimed, &found))
}

fn device_errors(audience: &Audience) -> Vec<DeviceError> {
    audience
        .device_errors
        .iter()
        .take(MAX_DEVICE_ERRORS)
        .map(|(id, reasons)| DeviceError {
            device_id: id.clone(),
            reasons: reasons.clone(),
        })
        .collect()
}

/// Reports an error: stalled when permanent, progressing when transient. Permanent errors are retried at
/// the resync interval (a fixed permission or tenant starts working without a spec change).
async fn report_error(
    obj: &ExpeditedDeployment,
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
    report: Report,
    err: Error,
) -> Result<Action, Error> {
    let outcome = ctx.error_outcome(obj, &err).await;
    write_report(ctx, obj, obj.status.as_ref(), api, report, &outcome).await?;
    super::context::after_error(obj, err, ctx.settings.resync)
}

async fn apply(
    obj: &ExpeditedDeployment,
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
) -> Result<Action, Error> {
    let mut report = Report::default();
    // Pause first: nothing below (validation, group readiness, the blast-radius guard, a failed read)
    // may hold back a pause.
    if let Err(e) = brake(obj, ctx, &mut report).await {
        return report_error(obj, ctx, api, report, e).await;
    }
    let problems = validate::expedited_deployment(&obj.spec);
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return stall(obj, ctx, api, report, "InvalidSpec", message).await;
    }
    let (desired, content, counts) =
        match resolve(obj, &ctx.graph, &ctx.groups, ctx.settings.max_audience_devices).await {
            Ok(Resolution::Ready {
                desired,
                content,
                members,
                exclusions,
            }) => (desired, content, (members, exclusions)),
            Ok(Resolution::Waiting { reason, message }) => {
                write_report(
                    ctx,
                    obj,
                    obj.status.as_ref(),
                    api,
                    report,
                    &Outcome::progressing(reason, message),
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(15)));
            }
            Ok(Resolution::Invalid { reason, message }) => {
                return stall(obj, ctx, api, report, reason, message).await;
            }
            Err(e) => return report_error(obj, ctx, api, report, e).await,
        };
    report.content = Some(content.clone());
    match observe_and_act(obj, ctx, api, &desired, &content, counts, &mut report).await {
        Ok(action) => Ok(action),
        Err(e) => report_error(obj, ctx, api, report, e).await,
    }
}

/// Writes the pause when the spec asks for one and a Graph deployment is known for the object: the one
/// write an invalid or blocked spec may cause, since a pause only reduces exposure. ObserveOnly never
/// writes, not even a pause. A deployment that cannot be read is paused anyway (the write is idempotent).
async fn brake(obj: &ExpeditedDeployment, ctx: &Context, report: &mut Report) -> Result<(), Error> {
    if !obj.spec.paused || obj.spec.management_policy == ManagementPolicy::ObserveOnly {
        return Ok(());
    }
    let known = obj
        .spec
        .deployment_id
        .clone()
        .or_else(|| obj.status.as_ref().and_then(|s| s.deployment_id.clone()));
    let Some(id) = known else { return Ok(()) };
    match ctx.graph.get_deployment(&id).await {
        Ok(Some(d)) if d.is_paused_by_request() => {
            report.record_deployment(&d);
            return Ok(());
        }
        Ok(None) => return Ok(()),
        Ok(Some(_)) => {}
        Err(e) => {
            tracing::warn!(deployment = %id, error = %e, "could not read the deployment; pausing it anyway")
        }
    }
    let d = ctx.graph.set_paused(&id, true).await?;
    report.record_deployment(&d);
    ctx.event(
        obj,
        EventType::Normal,
        "Paused",
        "Paused",
        format!("Paused deployment {id}"),
    )
    .await;
    info!(deployment = %id, "paused deployment");
    Ok(())
}

async fn stall(
    obj: &ExpeditedDeployment,
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
    report: Report,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let changed = obj.status.as_ref().is_none_or(|s| {
        !s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == reason && c.message == message)
    });
    if changed {
        ctx.event(obj, EventType::Warning, reason, "Validate", message.clone())
            .await;
    }
    write_report(
        ctx,
        obj,
        obj.status.as_ref(),
        api,
        report,
        &Outcome::stalled(reason, message),
    )
    .await?;
    Ok(Action::requeue(resync_after(obj, ctx.settings.resync)))
}

#[allow(clippy::too_many_arguments)]
async fn observe_and_act(
    obj: &ExpeditedDeployment,
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
    desired: &super::plan::Desired,
    content: &ResolvedContent,
    (member_count, exclusion_count): (u64, u64),
    report: &mut Report,
) -> Result<Action, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let mut deployment_id = obj.spec.deployment_id.clone().or(status.deployment_id.clone());
    // A create whose answer was lost: adopt what it made before deciding anything.
    if deployment_id.is_none()
        && let Some(intent) = &status.create_intent
    {
        match adoption(obj, intent, Some(desired.settings.clone()), ctx).await? {
            adopt::Decision::None => {}
            adopt::Decision::Adopt(one) => {
                status::merge::<_, ExpeditedDeploymentStatus>(
                    api,
                    &ctx.writes,
                    &obj.name_any(),
                    None,
                    json!({"deploymentId": one, "createIntent": null, "resolvedContent": content}),
                )
                .await?;
                ctx.event(
                    obj,
                    EventType::Normal,
                    "Adopted",
                    "Adopt",
                    format!("Adopted deployment {one}: the answer to its create was lost"),
                )
                .await;
                info!(deployment = %one, "adopted deployment after an interrupted create");
                deployment_id = Some(one.clone());
            }
            adopt::Decision::Ambiguous(many) => {
                let message = format!(
                    "found {} Graph deployments created for this content since {} and not claimed by another object: {}; set spec.deploymentId to the right one and delete the others in Graph",
                    many.len(),
                    intent.started_at,
                    many.join(", ")
                );
                return stall(
                    obj,
                    ctx,
                    api,
                    std::mem::take(report),
                    "AmbiguousAdoption",
                    message,
                )
                .await;
            }
        }
    }

    let observed_deployment = match &deployment_id {
        Some(id) => ctx.graph.get_deployment(id).await?,
        None => None,
    };
    let audience = match &observed_deployment {
        Some(d) => ctx.graph.audience(&d.id).await?,
        None => Audience::default(),
    };
    if let Some(d) = &observed_deployment {
        report.record_deployment(d);
        report.device_errors = device_errors(&audience);
        let expected_members = status
            .audience
            .as_ref()
            .is_some_and(|a| a.members + a.exclusions > 0);
        if audience.never_listed && (desired.adopted || expected_members) {
            let message = format!(
                "Graph does not expose the audience of deployment {} (deployments created through Intune cannot be managed through Graph); manage it in Intune, or remove spec.deploymentId",
                d.id
            );
            return stall(
                obj,
                ctx,
                api,
                std::mem::take(report),
                "AudienceNotManageable",
                message,
            )
            .await;
        }
    }
    let observed = observed_deployment
        .as_ref()
        .map(|d| observed_from(d, &audience, status.resolved_content.as_ref()));
    let planned = plan(desired, observed.as_ref());

    if let Some(blocked) = planned.blocked {
        let (reason, message) = match blocked {
            Blocked::AudienceTooLarge {
                devices,
                limit,
                source,
            } => (
                "AudienceTooLarge",
                format!(
                    "the audience reaches {devices} devices, more than the limit of {limit} set by {source}; nothing was sent to Graph (raise the limit or shrink the audience)"
                ),
            ),
            Blocked::AdoptedDeploymentMissing => (
                "DeploymentNotFound",
                format!(
                    "spec.deploymentId: Graph has no deployment {} (remove spec.deploymentId to let the operator create one)",
                    deployment_id.unwrap_or_default()
                ),
            ),
            Blocked::AdoptedContentDiffers { deployed } => (
                "ContentDiffers",
                format!(
                    "spec.content resolves to {} but adopted deployment {} carries {deployed}; change spec.content to match, or remove spec.deploymentId to let the operator replace it",
                    content.catalog_entry_id,
                    deployment_id.unwrap_or_default()
                ),
            ),
        };
        return stall(obj, ctx, api, std::mem::take(report), reason, message).await;
    }

    let devices = AudienceStatus {
        members: member_count,
        exclusions: exclusion_count,
        devices: desired.devices,
    };
    if desired.observe_only {
        report.audience = observed.as_ref().map(|o| AudienceStatus {
            members: o.members.len() as u64,
            exclusions: o.exclusions.len() as u64,
            devices: 0,
        });
        let message = match &observed_deployment {
            Some(d) => format!("observing deployment {} (ObserveOnly: nothing is written)", d.id),
            None => "ObserveOnly: no deployment to observe (set spec.deploymentId)".into(),
        };
        let outcome = if observed_deployment.is_some() {
            Outcome::Converged { message }
        } else {
            Outcome::stalled("DeploymentNotFound", message)
        };
        write_report(
            ctx,
            obj,
            obj.status.as_ref(),
            api,
            std::mem::take(report),
            &outcome,
        )
        .await?;
        return Ok(Action::requeue(resync_after(obj, ctx.settings.resync)));
    }

    if planned.actions.is_empty() {
        report.audience = Some(devices);
        write_report(
            ctx,
            obj,
            obj.status.as_ref(),
            api,
            std::mem::take(report),
            &Outcome::Converged {
                message: "Graph matches the spec".into(),
            },
        )
        .await?;
        return Ok(Action::requeue(resync_after(obj, ctx.settings.resync)));
    }

    if status.deployment_id.is_some() && observed_deployment.is_none() && !desired.adopted {
        ctx.event(
            obj,
            EventType::Warning,
            "DeploymentMissing",
            "Recreate",
            format!(
                "deployment {} was deleted outside the operator; creating it again",
                status.deployment_id.clone().unwrap_or_default()
            ),
        )
        .await;
    }

    let mut new_id: Option<String> = None;
    // The status as the last write left it (a create records its id at once).
    let mut latest_status: Option<ExpeditedDeploymentStatus> = None;
    for step in &planned.actions {
        let target_id = |t: &Target| match t {
            Target::Existing(id) => Some(id.clone()),
            Target::New => new_id.clone(),
        };
        match step {
            Step::Create {
                content: request,
                settings,
            } => {
                let intent = CreateIntent {
                    started_at: status::timestamp(),
                    catalog_entry_id: content.catalog_entry_id.clone(),
                    release_date: obj.spec.content.release_date.clone(),
                };
                // Recorded with a resourceVersion check: a second writer gets a conflict, not a second deployment.
                status::merge::<_, ExpeditedDeploymentStatus>(
                    api,
                    &ctx.writes,
                    &obj.name_any(),
                    obj.metadata.resource_version.as_deref(),
                    json!({"createIntent": intent}),
                )
                .await?;
                let created = ctx.graph.create_deployment(request, settings).await?;
                latest_status = status::merge::<_, ExpeditedDeploymentStatus>(
                    api,
                    &ctx.writes,
                    &obj.name_any(),
                    None,
                    json!({"deploymentId": created.id, "createIntent": null, "resolvedContent": content}),
                )
                .await?
                .status;
                report.record_deployment(&created);
                ctx.event(
                    obj,
                    EventType::Normal,
                    "Created",
                    "Create",
                    format!("Created Graph deployment {} ({})", created.id, step.describe()),
                )
                .await;
                info!(deployment = %created.id, "created deployment");
                new_id = Some(created.id);
            }
            Step::SetPaused { target, paused } => {
                let Some(id) = target_id(target) else { continue };
                let d = ctx.graph.set_paused(&id, *paused).await?;
                report.record_deployment(&d);
                let reason = if *paused { "Paused" } else { "Resumed" };
                ctx.event(
                    obj,
                    EventType::Normal,
                    reason,
                    reason,
                    format!("{} deployment {id}", reason),
                )
                .await;
            }
            Step::UpdateSettings { id, settings, legacy } => {
                let d = ctx.graph.update_settings(id, settings, *legacy).await?;
                report.record_deployment(&d);
                ctx.event(
                    obj,
                    EventType::Normal,
                    "SettingsUpdated",
                    "Update",
                    format!("Updated the settings of deployment {id}"),
                )
                .await;
            }
            Step::UpdateAudience { target, diff } => {
                let Some(id) = target_id(target) else { continue };
                let calls = ctx.graph.apply_audience_diff(&id, diff).await?;
                ctx.event(
                    obj,
                    EventType::Normal,
                    "AudienceUpdated",
                    "Update",
                    format!(
                        "Deployment {id}: {} in {calls} call(s)",
                        step.describe().trim_start_matches("update audience: ")
                    ),
                )
                .await;
            }
            Step::DeleteReplaced { id } => {
                ctx.graph.delete_deployment(id).await?;
                ctx.event(
                    obj,
                    EventType::Normal,
                    "Replaced",
                    "Replace",
                    format!(
                        "Content changed: deployment {id} replaced by {}",
                        new_id.clone().unwrap_or_default()
                    ),
                )
                .await;
            }
        }
    }
    report.audience = Some(devices);
    // Verify the writes with a read on the next pass (a 202 is not proof).
    let current = latest_status.as_ref().or(obj.status.as_ref());
    write_report(
        ctx,
        obj,
        current,
        api,
        std::mem::take(report),
        &Outcome::progressing(
            "Verifying",
            format!("sent {} change(s) to Graph; verifying", planned.actions.len()),
        ),
    )
    .await?;
    Ok(Action::requeue(ctx.settings.verify_delay))
}

async fn cleanup(obj: &ExpeditedDeployment, ctx: &Context) -> Result<Action, Error> {
    let status = obj.status.clone().unwrap_or_default();
    if obj.spec.deletion_policy == DeletionPolicy::Orphan
        || obj.spec.management_policy == ManagementPolicy::ObserveOnly
    {
        if let Some(id) = status.deployment_id.or(obj.spec.deployment_id.clone()) {
            ctx.event(
                obj,
                EventType::Normal,
                "Orphaned",
                "Delete",
                format!("Left deployment {id} in Graph (deletionPolicy Orphan)"),
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    let mut ids: BTreeSet<String> = status
        .deployment_id
        .iter()
        .chain(obj.spec.deployment_id.iter())
        .cloned()
        .collect();
    if ids.is_empty()
        && let Some(intent) = &status.create_intent
    {
        // The create's answer was lost: delete what it made, if that is unambiguous.
        if let adopt::Decision::Adopt(id) = adoption(obj, intent, None, ctx).await? {
            ids.insert(id);
        }
    }
    for id in ids {
        match ctx.graph.delete_deployment(&id).await {
            Ok(true) => {
                ctx.event(
                    obj,
                    EventType::Normal,
                    "Deleted",
                    "Delete",
                    format!("Deleted Graph deployment {id}"),
                )
                .await
            }
            Ok(false) => {}
            Err(e) => {
                let err = Error::Graph(e);
                ctx.event(
                    obj,
                    EventType::Warning,
                    err.category(),
                    "Delete",
                    format!("{err}; retrying (set spec.deletionPolicy: Orphan to leave the deployment in Graph and let the object go)"),
                )
                .await;
                return Err(err);
            }
        }
    }
    Ok(Action::await_change())
}
