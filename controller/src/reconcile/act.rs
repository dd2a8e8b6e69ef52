//! act: runs a plan's steps through the Graph client, in order, stopping at the first failure, and
//! records what happened for the report. The exactly-once bookkeeping of a create (intent first, with a
//! resourceVersion check; the audience id at once after its create; the deployment id with the pass's
//! report, which ends the intent) lives here, next to the write it guards.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::context::Context;
use super::error::Error;
use super::plan::{Cleanup, GroupCleanup, GroupStep, Plan, Step, Target};
use super::reasons::Reason;
use super::status::{self, Outcome};
use crate::crd::{
    CreateIntent, DeviceGroup, DeviceGroupStatus, ExpeditedDeployment, ExpeditedDeploymentStatus,
    ResolvedContent,
};
use crate::graph::models::Deployment;
use crate::graph::{AssetRef, AudienceOf, AudienceUpdate, GraphClient, GraphError};

/// What acting did: what the report needs besides the plan.
#[derive(Debug, Default)]
pub struct Acted {
    /// The deployment as the last write answered it.
    pub deployment: Option<Deployment>,
    /// The id a create or an adoption recorded.
    pub recorded: Option<String>,
    /// The status as the last bookkeeping write left it.
    pub status: Option<ExpeditedDeploymentStatus>,
    /// Graph write calls made.
    pub calls: usize,
    /// The audience a create made.
    pub audience_id: Option<String>,
    /// Every step was carried out (Graph accepted all of the plan's writes).
    pub complete: bool,
}

/// How long a pass waits for Graph to show a write the next one depends on. A write is answered 202
/// (accepted, applied later), so an order that matters is proven by reading it back; past this, the
/// pass ends and the next one starts from what Graph then shows.
pub const VISIBLE_WITHIN: Duration = Duration::from_secs(30);

/// Reads with `check` until it holds, backing off from 200 ms to 2 s, for at most `within`.
async fn until_visible<F, Fut>(what: String, within: Duration, mut check: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, GraphError>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        if check().await? {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= within {
            return Err(Error::Waiting {
                reason: Reason::WRITE_NOT_VISIBLE,
                message: format!(
                    "Graph accepted {what} but does not show it after {}s; nothing that depends on it is sent until it does",
                    waited.as_secs()
                ),
                retry: Duration::from_secs(5),
            });
        }
        tokio::time::sleep(delay.min(within - waited)).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Reads the deployment until Graph shows it paused.
pub async fn await_paused(graph: &GraphClient, id: &str, within: Duration) -> Result<(), Error> {
    until_visible(format!("the pause of deployment {id}"), within, async || {
        Ok(graph
            .get_deployment(id)
            .await?
            .is_some_and(|d| d.state.effective().is_some_and(|s| s.as_str() == "paused")))
    })
    .await
}

/// Sends `updateAudience` requests phase by phase, each phase's requests at once (see
/// [`super::plan::AudienceDiff::phases`]). A phase that adds members starts only once the exclusions
/// added before it show in Graph, and one that removes exclusions only once the members removed before
/// it are gone: proven by reads, within `within`. Returns the number of write calls made.
pub async fn send_audience(
    graph: &GraphClient,
    audience: AudienceOf<'_>,
    phases: &[Vec<AudienceUpdate<'_>>],
    within: Duration,
) -> Result<usize, Error> {
    let name = match audience {
        AudienceOf::Id(a) => format!("audience {a}"),
        AudienceOf::Deployment(d) => format!("the audience of deployment {d}"),
    };
    let mut calls = 0;
    let mut excluded: BTreeSet<&AssetRef> = BTreeSet::new();
    let mut removed: BTreeSet<&AssetRef> = BTreeSet::new();
    for phase in phases {
        if !excluded.is_empty() && phase.iter().any(|u| !u.add_members.is_empty()) {
            let what = format!("{} exclusion(s) of {name}", excluded.len());
            until_visible(what, within, async || {
                let now = graph.audience_assets(audience, true).await?;
                Ok(excluded.iter().all(|a| now.contains(*a)))
            })
            .await?;
            excluded.clear();
        }
        if !removed.is_empty() && phase.iter().any(|u| !u.remove_exclusions.is_empty()) {
            let what = format!("the removal of {} member(s) of {name}", removed.len());
            until_visible(what, within, async || {
                let now = graph.audience_assets(audience, false).await?;
                Ok(removed.iter().all(|a| !now.contains(*a)))
            })
            .await?;
            removed.clear();
        }
        let sent = futures::future::join_all(phase.iter().map(|u| graph.update_audience(audience, u))).await;
        for r in sent {
            calls += r?;
        }
        for u in phase {
            excluded.extend(u.add_exclusions.iter().copied());
            removed.extend(u.remove_members.iter().copied());
        }
    }
    Ok(calls)
}

/// Sends group member batches (`(add, ids)`) at once. Returns the number of calls made.
pub async fn send_group_batches(
    graph: &GraphClient,
    group_id: &str,
    batches: &[(bool, &[crate::crd::DeviceId])],
) -> Result<usize, GraphError> {
    // No more at once than the transport sends at once: a batch's body is made when it starts, so
    // 100 batches of 1,000 ids started together would hold every body at once.
    let mut calls = 0;
    for part in batches.chunks(graph.concurrency()) {
        let sent = futures::future::join_all(
            part.iter()
                .map(|(adding, ids)| graph.change_group_members(group_id, *adding, ids)),
        )
        .await;
        for r in sent {
            calls += r?;
        }
    }
    Ok(calls)
}

/// The status that records the object's deployment (made, or adopted) and ends its create intent: the
/// whole status, as every write carries it (see [`status::write`]), so the new resolution replaces the
/// old one whole.
pub fn with_id(
    current: &ExpeditedDeploymentStatus,
    id: &str,
    audience_id: Option<&str>,
    content: Option<&ResolvedContent>,
) -> ExpeditedDeploymentStatus {
    let mut st = current.clone();
    st.deployment_id = Some(id.to_string());
    st.audience_id = audience_id.map(str::to_string);
    st.create_intent = None;
    if let Some(c) = content {
        st.resolved_content = Some(c.clone());
    }
    st
}

/// Writes a pass's status whole (checked against `precondition` when given) and returns it as written.
async fn record<S>(
    ctx: &Context,
    api: &Api<impl kube::Resource<DynamicType = ()> + Clone>,
    name: &str,
    status: &S,
    precondition: Option<&str>,
) -> Result<S, Error>
where
    S: serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
{
    let written = status::write(api, &ctx.writes, name, None, status, precondition).await?;
    Ok(written.and_then(|w| w.status).unwrap_or_else(|| status.clone()))
}

fn target_id(target: &Target, created: Option<&String>) -> Option<String> {
    match target {
        Target::Existing(id) => Some(id.clone()),
        Target::New => created.cloned(),
    }
}

/// How the audience of the deployment `id` is addressed: by the audience id this pass created or
/// observed for it, else through the deployment.
fn audience_of<'a>(id: &'a str, plan: &'a Plan, created: &'a Option<(String, String)>) -> AudienceOf<'a> {
    if let Some((made, aid)) = created
        && made == id
    {
        return AudienceOf::Id(aid);
    }
    match (&plan.facts.deployment, &plan.facts.audience_id) {
        (Some((seen, ..)), Some(aid)) if seen == id => AudienceOf::Id(aid),
        _ => AudienceOf::Deployment(id),
    }
}

/// Runs the plan of an ExpeditedDeployment pass.
pub async fn act(
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
    obj: &ExpeditedDeployment,
    plan: &Plan,
    acted: &mut Acted,
) -> Result<(), Error> {
    let name = obj.name_any();
    let content = plan.facts.content.as_ref();
    let event = |reason: Reason, action: &str, note: String| {
        ctx.events.notify(obj, EventType::Normal, reason, action, note);
    };
    let mut created: Option<String> = None;
    let mut made_audience: Option<(String, String)> = None;
    // The status as last written: each write carries all of it.
    let mut current = obj.status.clone().unwrap_or_default();
    for step in &plan.steps {
        match step {
            Step::Adopt { id } => {
                current = record(ctx, api, &name, &with_id(&current, id, None, content), None).await?;
                acted.status = Some(current.clone());
                acted.recorded = Some(id.clone());
                event(
                    Reason::ADOPTED,
                    "Adopt",
                    format!("Adopted deployment {id}: the answer to its create was lost"),
                );
                info!(deployment = %id, "adopted deployment after an interrupted create");
            }
            Step::Create {
                content: request,
                settings,
                audience,
            } => {
                let intent = CreateIntent {
                    started_at: status::timestamp(),
                    catalog_entry_id: content.map(|c| c.catalog_entry_id.clone()).unwrap_or_default(),
                    release_date: obj.spec.content.release_date.clone(),
                    audience_id: audience.clone(),
                };
                // Recorded with a resourceVersion check: a second writer gets a conflict, not a second
                // deployment.
                current.create_intent = Some(intent);
                current = record(ctx, api, &name, &current, obj.meta().resource_version.as_deref()).await?;
                acted.status = Some(current.clone());
                // The audience first, recorded at once: the deployment is created with it, and a create
                // tried again after an interruption uses it again.
                let aid = match audience {
                    Some(aid) => aid.clone(),
                    None => {
                        let aid = ctx.graph.create_audience().await?;
                        acted.calls += 1;
                        if let Some(intent) = current.create_intent.as_mut() {
                            intent.audience_id = Some(aid.clone());
                        }
                        current = record(ctx, api, &name, &current, None).await?;
                        acted.status = Some(current.clone());
                        aid
                    }
                };
                let made = ctx.graph.create_deployment(request, settings, Some(&aid)).await?;
                acted.calls += 1;
                // The id rides on the pass's report (written however the pass ends, and ending the
                // intent): a write of its own would add a round trip before the audience is sent, and
                // if the report is lost the intent's audience id finds the deployment for adoption.
                event(
                    Reason::CREATED,
                    "Create",
                    format!("Created Graph deployment {} ({})", made.id, step.describe()),
                );
                info!(deployment = %made.id, "created deployment");
                acted.recorded = Some(made.id.clone());
                acted.audience_id = Some(aid.clone());
                created = Some(made.id.clone());
                made_audience = Some((made.id.clone(), aid));
                acted.deployment = Some(made);
            }
            Step::SetPaused { target, paused } => {
                let Some(id) = target_id(target, created.as_ref()) else {
                    continue;
                };
                let d = ctx.graph.set_paused(&id, *paused).await?;
                acted.calls += 1;
                acted.deployment = Some(d);
                let (reason, verb) = if *paused {
                    (Reason::PAUSED, "Paused")
                } else {
                    (Reason::RESUMED, "Resumed")
                };
                event(reason, verb, format!("{verb} deployment {id}"));
                info!(deployment = %id, paused, "set the deployment's requested state");
            }
            Step::UpdateSettings {
                id, patch, legacy, ..
            } => {
                let d = ctx.graph.update_settings(id, patch, *legacy).await?;
                acted.calls += 1;
                acted.deployment = Some(d);
                event(
                    Reason::SETTINGS_UPDATED,
                    "Update",
                    format!("Updated the settings of deployment {id}"),
                );
            }
            Step::AwaitPaused { target } => {
                let Some(id) = target_id(target, created.as_ref()) else {
                    continue;
                };
                await_paused(&ctx.graph, &id, VISIBLE_WITHIN).await?;
            }
            Step::UpdateAudience { target, diff, batch } => {
                let Some(id) = target_id(target, created.as_ref()) else {
                    continue;
                };
                let of = audience_of(&id, plan, &made_audience);
                let calls = send_audience(&ctx.graph, of, &diff.phases(*batch), VISIBLE_WITHIN).await?;
                acted.calls += calls;
                event(
                    Reason::AUDIENCE_UPDATED,
                    "Update",
                    format!(
                        "Deployment {id}: {} in {calls} call(s)",
                        step.describe().trim_start_matches("update audience: ")
                    ),
                );
            }
            Step::DeleteReplaced { id } => {
                ctx.graph.delete_deployment(id).await?;
                acted.calls += 1;
                // The replaced deployment's own audience goes with it (the one observed for it).
                if let AudienceOf::Id(aid) = audience_of(id, plan, &None)
                    && obj.spec.deployment_id.is_none()
                {
                    ctx.graph.delete_audience(aid).await?;
                    acted.calls += 1;
                }
                event(
                    Reason::REPLACED,
                    "Replace",
                    format!(
                        "Content changed: deployment {id} replaced by {}",
                        created.clone().unwrap_or_default()
                    ),
                );
            }
        }
    }
    acted.complete = true;
    Ok(())
}

/// Runs the cleanup of a deleted ExpeditedDeployment.
pub async fn clean_up(ctx: &Context, obj: &ExpeditedDeployment, cleanup: &Cleanup) -> Result<(), Error> {
    match cleanup {
        Cleanup::Orphan { id } => {
            if let Some(id) = id {
                ctx.events.notify(
                    obj,
                    EventType::Normal,
                    Reason::ORPHANED,
                    "Delete",
                    format!("Left deployment {id} in Graph (deletionPolicy Orphan)"),
                );
            }
        }
        // What the create made is not known: the finalizer stays.
        Cleanup::Unresolved { started_at } => {
            return Err(Error::Waiting {
                reason: Reason::CREATE_INTERRUPTED,
                message: format!(
                    "a create started at {started_at} was in flight and what it made is not known; delete any deployment it made in Graph, then remove the finalizer wufb.dev/cleanup"
                ),
                retry: Duration::from_secs(30),
            });
        }
        Cleanup::Delete { ids, audiences } => {
            let deployments = ids.iter().map(|id| (id, false));
            for (id, audience) in deployments.chain(audiences.iter().map(|a| (a, true))) {
                let deleted = if audience {
                    ctx.graph.delete_audience(id).await
                } else {
                    ctx.graph.delete_deployment(id).await
                };
                let what = if audience {
                    "deployment audience"
                } else {
                    "deployment"
                };
                match deleted {
                    Ok(true) => ctx.events.notify(
                        obj,
                        EventType::Normal,
                        Reason::DELETED,
                        "Delete",
                        format!("Deleted Graph {what} {id}"),
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        let err = Error::Graph(e);
                        ctx.events.notify(
                            obj,
                            EventType::Warning,
                            Reason::category(err.category()),
                            "Delete",
                            format!(
                                "{err}; retrying (set spec.deletionPolicy: Orphan to leave the deployment in Graph and let the object go)"
                            ),
                        );
                        return Err(err);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Deletes a deleted DeviceGroup's Graph group (`id`, when there is one). `Ok(Some(outcome))` when Graph
/// refuses because a deployment it knows still uses the group: the finalizer stays, with that outcome.
pub async fn clean_up_group(
    ctx: &Context,
    obj: &DeviceGroup,
    id: Option<&str>,
) -> Result<Option<Outcome>, Error> {
    let Some(id) = id else {
        return Ok(None);
    };
    match ctx.graph.delete_group(id).await {
        Err(e) if e.status() == Some(409) => Ok(Some(GroupCleanup::refused(id, &e.to_string()))),
        Err(e) => Err(Error::Graph(e)),
        Ok(deleted) => {
            if deleted {
                ctx.events.notify(
                    obj,
                    EventType::Normal,
                    Reason::DELETED,
                    "Delete",
                    format!("Deleted updatableAssetGroup {id}"),
                );
            }
            Ok(None)
        }
    }
}

/// What acting on a DeviceGroup did.
#[derive(Debug, Default)]
pub struct GroupActed {
    /// The id of a group this pass created.
    pub created: Option<String>,
    pub calls: usize,
    /// The status as last written by this pass (a create intent, then the group's id).
    pub status: Option<DeviceGroupStatus>,
}

/// Runs the steps of a DeviceGroup pass.
pub async fn act_group(
    ctx: &Context,
    api: &Api<DeviceGroup>,
    obj: &DeviceGroup,
    steps: &[GroupStep],
    acted: &mut GroupActed,
) -> Result<(), Error> {
    for step in steps {
        match step {
            GroupStep::Create => {
                // Recorded with a resourceVersion check first: a pass working on a stale copy of the
                // object gets a conflict here, not a second Graph group.
                let mut current = obj.status.clone().unwrap_or_default();
                current.create_intent = Some(crate::crd::device_group::GroupCreateIntent {
                    started_at: status::timestamp(),
                });
                let current = record(
                    ctx,
                    api,
                    &obj.name_any(),
                    &current,
                    obj.meta().resource_version.as_deref(),
                )
                .await?;
                acted.status = Some(current.clone());
                let id = ctx.graph.create_group().await?;
                acted.calls += 1;
                let mut done = current;
                done.group_id = Some(id.clone());
                done.create_intent = None;
                acted.status = Some(record(ctx, api, &obj.name_any(), &done, None).await?);
                ctx.events.notify(
                    obj,
                    EventType::Normal,
                    Reason::CREATED,
                    "Create",
                    format!("Created updatableAssetGroup {id}"),
                );
                acted.created = Some(id);
            }
            GroupStep::UpdateMembers {
                target,
                add,
                remove,
                batch,
            } => {
                let Some(id) = target_id(target, acted.created.as_ref()) else {
                    continue;
                };
                // Every batch at once (the transport bounds concurrency); adds and removes touch
                // different ids.
                let calls =
                    send_group_batches(&ctx.graph, &id, &super::plan::group_batches(add, remove, *batch))
                        .await?;
                acted.calls += calls;
                ctx.events.notify(
                    obj,
                    EventType::Normal,
                    Reason::MEMBERS_UPDATED,
                    "Update",
                    format!(
                        "Group {id}: +{} -{} devices in {calls} call(s)",
                        add.len(),
                        remove.len()
                    ),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn recording_a_new_resolution_replaces_the_old_one_whole_and_ends_the_intent() {
        let old: ExpeditedDeploymentStatus = serde_json::from_value(json!({
            "resolvedContent": {"source": "latest", "catalogEntryId": "old", "displayName": "2026.10 B",
                "releaseDate": "2026-10-13"},
            "createIntent": {"startedAt": "t", "catalogEntryId": "old"},
            "tenantId": "t1"
        }))
        .unwrap();
        let fresh = ResolvedContent {
            source: "catalogEntryId:new".into(),
            catalog_entry_id: "new".into(),
            ..Default::default()
        };
        let st = with_id(&old, "d2", Some("a2"), Some(&fresh));
        assert_eq!(
            serde_json::to_value(&st).unwrap(),
            json!({"deploymentId": "d2", "audienceId": "a2", "tenantId": "t1",
                "resolvedContent": {"source": "catalogEntryId:new", "catalogEntryId": "new"}}),
            "no stale display name or date, the intent is gone, and the rest is kept"
        );
    }
}
