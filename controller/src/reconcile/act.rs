//! act: runs a plan's steps through the Graph client, in order, stopping at the first failure, and
//! records what happened for the report. The exactly-once bookkeeping of a create (intent first, with a
//! resourceVersion check; the id at once after) lives here, next to the write it guards.

use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::context::Context;
use super::error::Error;
use super::plan::{Cleanup, GroupStep, Plan, Step, Target};
use super::reasons::Reason;
use super::status;
use crate::crd::{
    CreateIntent, DeviceGroup, DeviceGroupStatus, ExpeditedDeployment, ExpeditedDeploymentStatus,
    ResolvedContent,
};
use crate::graph::models::Deployment;
use crate::graph::{AudienceUpdate, GraphClient, GraphError};

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
}

/// Sends `updateAudience` requests wave by wave, each wave's requests at once (see
/// [`super::plan::AudienceDiff::waves`]). Returns the number of calls made.
pub async fn send_audience(
    graph: &GraphClient,
    deployment_id: &str,
    waves: &[Vec<AudienceUpdate<'_>>],
) -> Result<usize, GraphError> {
    let mut calls = 0;
    for wave in waves {
        let sent =
            futures::future::join_all(wave.iter().map(|u| graph.update_audience(deployment_id, u))).await;
        for r in sent {
            calls += r?;
        }
    }
    Ok(calls)
}

/// Sends group member batches (`(add, ids)`) at once. Returns the number of calls made.
pub async fn send_group_batches(
    graph: &GraphClient,
    group_id: &str,
    batches: &[(bool, &[String])],
) -> Result<usize, GraphError> {
    let sent = futures::future::join_all(
        batches
            .iter()
            .map(|(adding, ids)| graph.change_group_members(group_id, *adding, ids)),
    )
    .await;
    let mut calls = 0;
    for r in sent {
        calls += r?;
    }
    Ok(calls)
}

/// The status merge that records the object's deployment and ends its create intent. A merge keeps
/// what it does not name, so an optional subfield the new resolution lacks is cleared by name (else the
/// old content's display name and date would stay).
pub fn id_record(id: &str, content: Option<&ResolvedContent>) -> Result<serde_json::Value, Error> {
    let mut record = json!({"deploymentId": id, "createIntent": null});
    if let Some(c) = content {
        let mut resolved = serde_json::to_value(c).map_err(Error::encode("the resolved content"))?;
        for optional in ["displayName", "releaseDate"] {
            if resolved.get(optional).is_none() {
                resolved[optional] = serde_json::Value::Null;
            }
        }
        record["resolvedContent"] = resolved;
    }
    Ok(record)
}

/// Records the id of the object's deployment (made, or adopted) and ends the create intent; returns the
/// status as written.
async fn record_id(
    ctx: &Context,
    api: &Api<ExpeditedDeployment>,
    name: &str,
    id: &str,
    content: Option<&ResolvedContent>,
) -> Result<Option<ExpeditedDeploymentStatus>, Error> {
    Ok(
        status::merge::<_, ExpeditedDeploymentStatus>(api, &ctx.writes, name, None, id_record(id, content)?)
            .await?
            .status,
    )
}

fn target_id(target: &Target, created: Option<&String>) -> Option<String> {
    match target {
        Target::Existing(id) => Some(id.clone()),
        Target::New => created.cloned(),
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
    for step in &plan.steps {
        match step {
            Step::Adopt { id } => {
                acted.status = record_id(ctx, api, &name, id, content).await?;
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
            } => {
                let intent = CreateIntent {
                    started_at: status::timestamp(),
                    catalog_entry_id: content.map(|c| c.catalog_entry_id.clone()).unwrap_or_default(),
                    release_date: obj.spec.content.release_date.clone(),
                };
                // Recorded with a resourceVersion check: a second writer gets a conflict, not a second
                // deployment.
                status::merge::<_, ExpeditedDeploymentStatus>(
                    api,
                    &ctx.writes,
                    &name,
                    obj.meta().resource_version.as_deref(),
                    json!({"createIntent": intent}),
                )
                .await?;
                let made = ctx.graph.create_deployment(request, settings).await?;
                acted.calls += 1;
                acted.status = record_id(ctx, api, &name, &made.id, content).await?;
                event(
                    Reason::CREATED,
                    "Create",
                    format!("Created Graph deployment {} ({})", made.id, step.describe()),
                );
                info!(deployment = %made.id, "created deployment");
                acted.recorded = Some(made.id.clone());
                created = Some(made.id.clone());
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
            Step::UpdateAudience { target, diff, batch } => {
                let Some(id) = target_id(target, created.as_ref()) else {
                    continue;
                };
                let calls = send_audience(&ctx.graph, &id, &diff.waves(*batch)).await?;
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
        Cleanup::Delete { ids } => {
            for id in ids {
                match ctx.graph.delete_deployment(id).await {
                    Ok(true) => ctx.events.notify(
                        obj,
                        EventType::Normal,
                        Reason::DELETED,
                        "Delete",
                        format!("Deleted Graph deployment {id}"),
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

/// What acting on a DeviceGroup did.
#[derive(Debug, Default)]
pub struct GroupActed {
    /// The id of a group this pass created.
    pub created: Option<String>,
    pub calls: usize,
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
                let intent = json!({"createIntent": {"startedAt": status::timestamp()}});
                status::merge::<_, DeviceGroupStatus>(
                    api,
                    &ctx.writes,
                    &obj.name_any(),
                    obj.meta().resource_version.as_deref(),
                    intent,
                )
                .await?;
                let id = ctx.graph.create_group().await?;
                acted.calls += 1;
                status::merge::<_, DeviceGroupStatus>(
                    api,
                    &ctx.writes,
                    &obj.name_any(),
                    None,
                    json!({"groupId": id, "createIntent": null}),
                )
                .await?;
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
    use super::*;

    #[test]
    fn recording_a_new_resolution_clears_the_old_ones_subfields() {
        let mut status = json!({"resolvedContent": {"source": "latest", "catalogEntryId": "old",
            "displayName": "2026.10 B", "releaseDate": "2026-10-13"}, "createIntent": {"startedAt": "t"}});
        let fresh = ResolvedContent {
            source: "catalogEntryId:new".into(),
            catalog_entry_id: "new".into(),
            display_name: None,
            release_date: None,
            deployable_until: None,
        };
        let record = id_record("d2", Some(&fresh)).unwrap();
        json_patch::merge(&mut status, &record);
        assert_eq!(
            status,
            json!({"deploymentId": "d2", "resolvedContent": {"source": "catalogEntryId:new", "catalogEntryId": "new"}}),
            "no stale display name or date, and the intent is gone"
        );
    }
}
