//! ExpeditedDeployment: observe -> plan -> act -> report, and cleanup on deletion.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::act::{Acted, act, clean_up};
use super::context::Context;
use super::error::Error;
use super::observe::{self, Objects, observe};
use super::plan::{End, Plan, PlanConfig, Step, plan, plan_cleanup, poll};
use super::progress;
use super::reasons::Reason;
use super::requeue::{action, after_error, reread_on_conflict};
use super::status::{self, Outcome};
use super::tenancy;
use crate::crd::{
    ExpeditedDeployment, ExpeditedDeploymentStatus, PreviousContent, ResolvedContent, RolloutProgress,
};

pub const KIND: &str = "ExpeditedDeployment";

/// Kubernetes as the controller's observe sees it: DeviceGroups from the store; the objects that may
/// claim deployments from the API server itself (a claim made a moment ago may not be in the store).
pub struct ClusterObjects<'a>(pub &'a Context);

impl Objects for ClusterObjects<'_> {
    fn catalog_poll(&self) -> std::time::Duration {
        self.0.settings.catalog_poll
    }

    fn group(&self, ns: &str, name: &str, exclusion: bool) -> Result<(String, observe::Devices), String> {
        observe::group_from_store(&self.0.groups, &self.0.entra, ns, name, exclusion)
    }

    async fn deployments(&self) -> Result<Vec<ExpeditedDeployment>, Error> {
        let ctx = self.0;
        let apis: Vec<Api<ExpeditedDeployment>> = if ctx.namespaces.is_empty() {
            vec![Api::all(ctx.client.clone())]
        } else {
            ctx.namespaces
                .iter()
                .map(|ns| Api::namespaced(ctx.client.clone(), ns))
                .collect()
        };
        let mut all = Vec::new();
        for api in apis {
            all.extend(
                api.list(&Default::default())
                    .await
                    .map_err(Error::kube("list objects to adopt a deployment"))?
                    .items,
            );
        }
        Ok(all)
    }
}

/// One pass over an admitted object (see `runtime` for admission and [`super::driver`] for its shape).
pub async fn reconcile(obj: Arc<ExpeditedDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::driver::reconcile(obj, ctx).await
}

impl super::driver::Kind for ExpeditedDeployment {
    const KIND: &'static str = KIND;

    fn check(&self, pass: &Context) -> Result<(), tenancy::Stop> {
        tenancy::groups_share_connection(self, pass)
    }

    async fn apply(&self, ctx: &Context, api: &Api<Self>) -> Result<Action, Error> {
        apply(self, ctx, api).await
    }

    async fn cleanup(&self, ctx: &Context, api: &Api<Self>) -> Result<Action, Error> {
        cleanup(self, ctx, api).await
    }
}

/// The planner's settings from the operator's.
pub fn plan_config(ctx: &Context) -> PlanConfig {
    // The tenant's client: a connection may set its own batch size.
    PlanConfig {
        batch_size: ctx.graph.batch_size(),
        ..PlanConfig::from(&ctx.settings)
    }
}

async fn apply(
    obj: &ExpeditedDeployment,
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
) -> Result<Action, Error> {
    let mut observation = observe(obj, &ctx.graph, &ClusterObjects(ctx)).await;
    let mut plan = plan(obj, &observation, &plan_config(ctx));
    // The audience facts move to the poll the planner asked for (a group's devices are shared, not
    // copied); the devices are worked out when it counts.
    let targeted: Option<Targeted> = plan.poll.take().and_then(|poll| {
        observation
            .audience
            .take()
            .map(|audience| Targeted { audience, poll })
    });
    // What only the decision needed goes now: a pass holds one copy of an audience while it acts.
    observation.audience = None;
    observation.deployment = super::observe::Known::None;
    plan.desired = None;
    ctx.notices(obj, &plan.notices);
    let mut acted = Acted::default();
    let failure = match act(ctx, api, obj, &plan, &mut acted).await {
        Err(e) => Some(e),
        Ok(()) => observation.failed.take(),
    };
    if let Some(err) = failure {
        if let Some(again) = reread_on_conflict(&err, acted.calls) {
            return Ok(again);
        }
        let outcome = ctx.record_error(obj, &err);
        report(ctx, api, obj, &plan, &acted, &outcome, (None, &[])).await?;
        return after_error(obj, err, ctx.settings.resync);
    }
    let old_content = obj.status.as_ref().and_then(|s| s.resolved_content.as_ref());
    if let (Some(previous), Some(new)) = (refreshed(old_content, &plan, &acted), &plan.facts.content) {
        ctx.events.notify(
            obj,
            kube::runtime::events::EventType::Normal,
            Reason::CONTENT_REFRESHED,
            "Replace",
            format!(
                "A newer catalog entry matches spec.content: replaced {} with {} ({}), same audience",
                previous
                    .short_name
                    .as_deref()
                    .unwrap_or(&previous.catalog_entry_id),
                new.short_name.as_deref().unwrap_or(&new.catalog_entry_id),
                new.catalog_entry_id
            ),
        );
    }
    let End::Report { outcome, next } = &plan.end else {
        // A plan ends in a failed read only when the observation holds the error (taken above).
        return Ok(action(super::requeue::Next::Soon, obj, &ctx.settings));
    };
    let old = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !plan.stall_told(outcome) {
        ctx.stalled_once(obj, old, outcome);
    }
    let deployment = acted
        .recorded
        .clone()
        .or_else(|| plan.facts.deployment.as_ref().map(|d| d.0.clone()));
    let entry = plan.facts.content.as_ref().map(|c| c.catalog_entry_id.clone());
    let polled = match (targeted, deployment, entry) {
        (Some(targeted), Some(_), Some(entry)) => poll_progress(ctx, obj, &targeted, &entry).await,
        _ => Figures::NotDue,
    };
    let (progress, waves) = match &polled {
        Figures::Read(p, w) => (Some(p), w.as_slice()),
        _ => (None, &[][..]),
    };
    report(ctx, api, obj, &plan, &acted, outcome, (progress, waves)).await?;
    // A converged object with a deployment looks again when its progress is next due, or soon when
    // the tenant's device signals are still being read.
    let next = poll::next_look(
        *next,
        plan.facts.deployment.is_some() || acted.recorded.is_some(),
        plan.facts.rollout.as_ref().is_some_and(|r| !r.phase.is_held()),
        polled.kind(),
        poll::progress_interval(obj, ctx.settings.progress_interval),
        super::requeue::resync_after(obj, ctx.settings.resync),
    );
    Ok(action(next, obj, &ctx.settings))
}

/// Counts the funnel from the newest snapshot of the tenant's device signals (shared by every object,
/// read in the background at most once per interval; the pass never waits for it) and the entry's
/// revisions, sends the milestone Events and sets the gauges. Without a snapshot yet, or when a read
/// fails, the recorded progress stays as it was (logged; the rollout itself is not affected).
async fn poll_progress(
    ctx: &Context,
    obj: &ExpeditedDeployment,
    targeted: &Targeted,
    entry: &str,
) -> Figures {
    let interval = targeted.poll.interval;
    // Never waits for the tenant-wide read: the newest snapshot, a background read when it is due.
    let Some(signals) = ctx.graph.device_signals_nowait(interval) else {
        return Figures::Waiting;
    };
    let revisions = match ctx.graph.entry_revisions(entry).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the entry's revisions; keeping the last progress figures");
            return Figures::Waiting;
        }
    };
    let count = |devices: &[&crate::crd::DeviceId]| {
        progress::count(
            devices,
            &signals.builds,
            &signals.errors,
            &revisions,
            &signals.read_time,
        )
    };
    let a = &targeted.audience;
    let p = count(&super::plan::offered_devices_of(
        a,
        targeted.poll.promoted().as_deref(),
    ));
    let waves = match &targeted.poll.waves {
        Some(waves) => super::plan::wave_devices(a)
            .iter()
            .zip(waves)
            .filter(|(_, (_, sent))| *sent)
            .map(|(devices, (name, _))| (name.clone(), count(devices)))
            .collect(),
        None => Vec::new(),
    };
    let old = obj.status.as_ref().and_then(|s| s.progress.as_ref());
    for m in progress::milestones(old, &p) {
        let type_ = if m.warning {
            kube::runtime::events::EventType::Warning
        } else {
            kube::runtime::events::EventType::Normal
        };
        ctx.events.notify(obj, type_, m.reason, "Progress", m.note);
    }
    if let Some(uid) = obj.meta().uid.as_deref() {
        ctx.metrics
            .set_progress(uid, Some([p.up_to_date, p.pending, p.failed, p.not_reporting]));
    }
    Figures::Read(p, waves)
}

/// What a progress poll counts: all the deployment offers, and each wave sent apart (with waves: their
/// names and which were sent).
struct Targeted {
    audience: super::observe::AudienceFacts,
    poll: poll::Poll,
}

/// What a progress poll gave.
enum Figures {
    /// Figures from the newest snapshot of the tenant's device signals, and per wave sent.
    Read(RolloutProgress, Vec<(String, RolloutProgress)>),
    /// No snapshot yet (one is being read in the background), or the entry's revisions could not be
    /// read: look again soon.
    Waiting,
    /// Not due, or nothing to count (no deployment, no content, no audience read).
    NotDue,
}

impl Figures {
    fn kind(&self) -> poll::Polled {
        match self {
            Figures::Read(..) => poll::Polled::Read,
            Figures::Waiting => poll::Polled::Waiting,
            Figures::NotDue => poll::Polled::NotDue,
        }
    }
}

/// The entry a completed refresh replacement moved away from: the content resolved from the same
/// source changed, and this pass deleted the deployment that carried the old entry.
fn refreshed(old: Option<&ResolvedContent>, plan: &Plan, acted: &Acted) -> Option<PreviousContent> {
    let (old, new) = (old?, plan.facts.content.as_ref()?);
    let replaced = acted.complete
        && plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::DeleteReplaced { .. }));
    (replaced && old.source == new.source && old.catalog_entry_id != new.catalog_entry_id).then(|| {
        PreviousContent {
            catalog_entry_id: old.catalog_entry_id.clone(),
            short_name: old.short_name.clone(),
            release_date: old.release_date.clone(),
            replaced_time: Some(status::timestamp()),
        }
    })
}

/// The status a pass ends with.
fn status_of(
    obj: &ExpeditedDeployment,
    current: Option<&ExpeditedDeploymentStatus>,
    plan: &Plan,
    acted: &Acted,
    outcome: &Outcome,
    progress: Option<&RolloutProgress>,
    waves: &[(String, RolloutProgress)],
) -> ExpeditedDeploymentStatus {
    let old = current.cloned().unwrap_or_default();
    let generation = obj.metadata.generation;
    // The deployment as last seen this pass: written, else observed.
    let seen = acted
        .deployment
        .as_ref()
        .map(|d| {
            (
                d.id.clone(),
                d.state.effective().map(|s| s.to_string()),
                d.state.reason_values(),
            )
        })
        .or_else(|| plan.facts.deployment.clone());
    let observed = plan.facts.deployment.is_some();
    let deployment_id = acted
        .recorded
        .clone()
        .or_else(|| seen.as_ref().map(|s| s.0.clone()))
        .or(old.deployment_id.clone());
    // The audience of that deployment: the one a create made, else the one observed for it, else the
    // one recorded for it.
    let observed_id = plan.facts.deployment.as_ref().map(|d| &d.0);
    let audience_id = if acted.recorded.is_some() {
        acted.audience_id.clone()
    } else if observed_id.is_some() && observed_id == deployment_id.as_ref() {
        plan.facts.audience_id.clone()
    } else {
        old.audience_id
            .clone()
            .filter(|_| old.deployment_id == deployment_id)
    };
    ExpeditedDeploymentStatus {
        observed_generation: generation,
        deployment_id,
        tenant_id: old.tenant_id.clone(),
        audience_id,
        graph_state: seen.as_ref().map_or(old.graph_state.clone(), |s| s.1.clone()),
        state_reasons: seen.map_or(old.state_reasons.clone(), |s| s.2),
        resolved_content: plan.facts.content.clone().or(old.resolved_content.clone()),
        audience: plan.facts.audience.clone().or(old.audience.clone()),
        device_errors: if observed {
            plan.facts.device_errors.clone()
        } else {
            old.device_errors.clone()
        },
        progress: progress.cloned().or(old.progress.clone()),
        // A spec without waves has no rollout to report.
        rollout: obj
            .spec
            .rollout
            .as_ref()
            .and_then(|_| plan.facts.rollout.clone().or(old.rollout.clone()))
            .map(|mut r| {
                super::rollout::record_figures(&mut r, waves);
                r
            }),
        last_sync_time: Some(status::timestamp()),
        // Only a pass that sent all it planned is waited for: what a failed one left out was never sent.
        last_write_time: if acted.calls > 0 && acted.complete {
            Some(status::timestamp())
        } else {
            old.last_write_time.clone()
        },
        missing_since: plan.facts.missing_since.clone(),
        // Against the status the pass began with: a create has already recorded the new entry.
        previous_content: refreshed(
            obj.status.as_ref().and_then(|s| s.resolved_content.as_ref()),
            plan,
            acted,
        )
        .or(old.previous_content.clone()),
        // A create intent stays until the pass that made it records the deployment (this report ends
        // it): a create whose outcome is unknown is adopted, never made again.
        create_intent: old.create_intent.clone().filter(|_| acted.recorded.is_none()),
        conditions: status::conditions(outcome, generation, &old.conditions),
    }
}

/// What a failed cleanup's conditions say.
fn cleanup_message(e: &Error) -> String {
    format!(
        "deleting: the Graph cleanup failed ({e}); retrying (set spec.deletionPolicy: Orphan to leave the deployment in Graph and let the object go)"
    )
}

async fn report(
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
    obj: &ExpeditedDeployment,
    plan: &Plan,
    acted: &Acted,
    outcome: &Outcome,
    (progress, waves): (Option<&RolloutProgress>, &[(String, RolloutProgress)]),
) -> Result<(), Error> {
    // The status as last written (a create's intent and audience id; its deployment id comes with this
    // report).
    let current = acted.status.as_ref().or(obj.status.as_ref());
    let mut status = status_of(obj, current, plan, acted, outcome, progress, waves);
    // The tenant the pass reached (the tenant check keeps it from changing once Graph holds anything).
    status.tenant_id = ctx.tenant_id.clone().or(status.tenant_id);
    status::write(api, &ctx.writes, &obj.name_any(), current, &status, None).await?;
    Ok(())
}

async fn cleanup(
    obj: &ExpeditedDeployment,
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
) -> Result<Action, Error> {
    let adoption = observe::adoption(obj, &ctx.graph, &ClusterObjects(ctx), false).await?;
    let cleanup = plan_cleanup(obj, adoption.as_ref());
    if let Err(e) = clean_up(ctx, obj, &cleanup).await {
        // The object waits for its cleanup: its conditions say so (the Event went out with the failure).
        let outcome = if e.is_transient() {
            Outcome::progressing(Reason::category(e.category()), cleanup_message(&e))
        } else {
            Outcome::stalled(Reason::category(e.category()), cleanup_message(&e))
        };
        let current = obj.status.as_ref();
        let mut status = current.cloned().unwrap_or_default();
        status.conditions = status::conditions(
            &outcome,
            obj.metadata.generation,
            current.map(|s| s.conditions.as_slice()).unwrap_or_default(),
        );
        if let Err(write) = status::write(api, &ctx.writes, &obj.name_any(), current, &status, None).await {
            tracing::warn!(error = %write, "could not record the failed cleanup in status");
        }
        return Err(e);
    }
    if let Some(uid) = obj.meta().uid.as_deref() {
        ctx.writes.forget(uid);
        ctx.metrics.set_progress(uid, None);
    }
    Ok(Action::await_change())
}
