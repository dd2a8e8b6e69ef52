//! observe: everything a pass needs to decide, read into plain data. Kubernetes facts come from an
//! [`Objects`] source (the controller's stores, or `plan`'s manifests and cluster), Graph facts from the
//! Graph client. Nothing here decides what to write; [`super::plan`] does, over an [`Observation`].
//!
//! Reads run in the order the brake needs: the deployment first (a pause must not wait for anything
//! else), then, if the spec is valid, the audience's groups and the catalog. A read that fails ends the
//! observation there; what was read so far is kept (`failed` holds the error).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::adopt;
pub use super::devices::{Devices, EntraDevices, group_facts, group_from_store};
use super::error::Error;
pub use super::spec::{
    catalog_poll, content_source, deployment_id, describe_newest, follows_releases, newest_filter, passes,
    referencing, settings_of,
};
use crate::crd::{
    AudienceItem, DeviceError, DeviceGroup, DeviceId, ExpeditedDeployment, NewestSpec, ResolvedContent,
    validate,
};
use crate::graph::models::{CatalogEntry, Content, Deployment};
use crate::graph::{AssetRef, Audience, AudienceOf, GraphClient, GroupDevices, SettingsRequest};

/// Device errors listed in status at most.
pub const MAX_DEVICE_ERRORS: usize = 50;

/// What a pass knows of a Graph object it has an id for.
#[derive(Debug)]
pub enum Known<T> {
    /// No id is recorded or named.
    None,
    /// Graph has no object with this id.
    Missing(String),
    Found(T),
    /// It could not be read (the error is the observation's `failed`).
    Unread(String),
}

impl<T> Known<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Known::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// Content as Graph carries it (or, when Graph does not say, as the operator recorded it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployedContent {
    CatalogEntry(String),
    ReleaseDate(String),
    Unknown,
}

/// A Graph deployment and its audience, as the planner compares them with the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedDeployment {
    pub id: String,
    pub content: DeployedContent,
    pub settings: SettingsRequest,
    /// The `userExperience` fields Graph holds that the operator does not own: a PATCH sends them back
    /// as they are.
    pub ux_unowned: serde_json::Map<String, serde_json::Value>,
    /// Created with the legacy settings type (release-date content).
    pub legacy: bool,
    pub paused_requested: bool,
    pub members: BTreeSet<AssetRef>,
    pub exclusions: BTreeSet<AssetRef>,
}

/// The deployment facts status reports besides what the planner compares.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentFacts {
    pub observed: ObservedDeployment,
    /// The effective Graph state.
    pub graph_state: Option<String>,
    pub state_reasons: Vec<String>,
    /// Registration errors of audience devices (at most [`MAX_DEVICE_ERRORS`]).
    pub device_errors: Vec<DeviceError>,
    /// Graph answered 404 for both audience lists (never used, or not exposed: Intune deployments).
    pub audience_never_listed: bool,
    /// The deployment's audience id, when known (recorded, named by Graph, or looked up once).
    pub audience_id: Option<String>,
}

/// What an audience item resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemFact {
    /// A device id (lower case).
    Device(DeviceId),
    /// A Graph group and the device ids in it (lower case), shared with whoever else holds them.
    Group { id: String, devices: Devices },
    /// It cannot be used yet, and why.
    Waiting(String),
}

/// The audience items of the spec, resolved, in spec order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AudienceFacts {
    pub members: Vec<ItemFact>,
    pub exclusions: Vec<ItemFact>,
    /// The members of each of `spec.rollout.waves`, in spec order.
    pub waves: Vec<Vec<ItemFact>>,
}

/// What the catalog says about `spec.content`.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogFact {
    /// Resolved before for the same `spec.content` (recorded in status): the catalog is not asked again.
    Recorded(ResolvedContent),
    /// The security releases of that date, as the catalog lists them; when there are none, the
    /// release dates of the newest expeditable entries, to name the nearest.
    ReleaseDate {
        date: String,
        entries: Vec<CatalogEntry>,
        nearby: Vec<String>,
    },
    /// The entry with that id, if the catalog has it.
    Entry { id: String, entry: Option<CatalogEntry> },
    /// The newest expeditable quality updates (newest first), to pick the newest that passes `filter`.
    Newest {
        filter: NewestSpec,
        entries: Vec<CatalogEntry>,
    },
}

/// How many of the newest expeditable entries `newest` chooses from: two years of monthly releases and
/// the out-of-band ones among them.
pub const NEWEST_WINDOW: usize = 36;

/// How often `refresh: OnNewRelease` reads the catalog again for a newer entry.
pub const CATALOG_POLL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Everything an ExpeditedDeployment pass reads.
#[derive(Debug)]
pub struct Observation {
    /// When the observation started: the clock the planner's waits are measured by.
    pub at: DateTime<Utc>,
    /// For a create whose answer was lost (an intent without an id): what to adopt.
    pub adoption: Option<adopt::Decision>,
    pub deployment: Known<DeploymentFacts>,
    /// `None` when not read (an invalid spec, or a failed read).
    pub audience: Option<AudienceFacts>,
    /// `None` when not read.
    pub content: Option<CatalogFact>,
    /// The read that failed, if one did; nothing after it was read.
    pub failed: Option<Error>,
}

/// The Kubernetes side of observe.
pub trait Objects {
    /// The Graph group id and the devices of a DeviceGroup, or why it cannot be used yet. An exclusion
    /// group must hold all its devices first (Ready); a member group may fill while it is used.
    fn group(&self, ns: &str, name: &str, exclusion: bool) -> Result<(String, Devices), String>;

    /// Every ExpeditedDeployment this operator manages, read from the API server (not a cache), to tell
    /// which deployments other objects have claimed.
    fn deployments(&self) -> impl Future<Output = Result<Vec<ExpeditedDeployment>, Error>> + Send;

    /// How often `refresh: OnNewRelease` reads the catalog again unless an object's annotation says
    /// otherwise (`--catalog-poll-interval`).
    fn catalog_poll(&self) -> std::time::Duration {
        CATALOG_POLL
    }
}

fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A deployment and its audience as the planner sees them.
pub fn deployment_facts(
    d: &Deployment,
    audience: Audience,
    recorded: Option<&ResolvedContent>,
) -> DeploymentFacts {
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
    DeploymentFacts {
        observed: ObservedDeployment {
            id: d.id.clone(),
            legacy: matches!(content, DeployedContent::ReleaseDate(_)),
            content,
            settings: SettingsRequest {
                days_until_forced_reboot: ux.days_until_forced_reboot,
                offer_as_optional: ux.offer_as_optional,
                readiness_test: settings.expedite.is_some_and(|e| e.is_readiness_test),
            },
            ux_unowned: ux
                .unowned
                .into_iter()
                .filter(|(k, _)| !k.starts_with('@'))
                .collect(),
            paused_requested: d.is_paused_by_request(),
            members: audience.members,
            exclusions: audience.exclusions,
        },
        graph_state: d.state.effective().map(|s| s.to_string()),
        state_reasons: d.state.reason_values(),
        device_errors: audience
            .device_errors
            .into_iter()
            .take(MAX_DEVICE_ERRORS)
            .map(|(device_id, reasons)| DeviceError { device_id, reasons })
            .collect(),
        audience_never_listed: audience.never_listed,
        audience_id: d.audience_id().map(str::to_string),
    }
}

/// Reads a deployment and its audience. The audience is addressed by its id: `audience_id` when status
/// records it for this deployment, else the one Graph names, else looked up once (and then recorded);
/// through the deployment only when the service gives no id.
async fn read_deployment(
    graph: &GraphClient,
    id: &str,
    recorded: Option<&ResolvedContent>,
    audience_id: Option<&str>,
) -> Result<Known<DeploymentFacts>, Error> {
    let Some(d) = graph.get_deployment(id).await? else {
        return Ok(Known::Missing(id.to_string()));
    };
    let aid = match audience_id.or(d.audience_id()) {
        Some(a) => Some(a.to_string()),
        None => graph.deployment_audience_id(&d.id).await?,
    };
    let of = aid
        .as_deref()
        .map_or(AudienceOf::Deployment(&d.id), AudienceOf::Id);
    let audience = graph.audience(of).await?;
    let mut facts = deployment_facts(&d, audience, recorded);
    facts.audience_id = aid;
    Ok(Known::Found(facts))
}

/// What an object's pending create may have made: the deployments Graph lists since the intent, matched
/// against the other objects' claims and pending creates (see [`adopt`]).
pub async fn adoption(
    obj: &ExpeditedDeployment,
    graph: &GraphClient,
    objects: &impl Objects,
    match_settings: bool,
) -> Result<Option<adopt::Decision>, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let Some(intent) = status
        .create_intent
        .as_ref()
        .filter(|_| deployment_id(obj).is_none())
    else {
        return Ok(None);
    };
    let started_at = parse_time(&intent.started_at).unwrap_or_else(Utc::now);
    let me = adopt::Pending {
        uid: obj.uid().unwrap_or_default(),
        started_at,
        catalog_entry_id: intent.catalog_entry_id.clone(),
        release_date: intent.release_date.clone(),
        audience_id: intent.audience_id.clone(),
        settings: match_settings.then(|| settings_of(&obj.spec)),
    };
    let mut claimed = BTreeSet::new();
    let mut others = Vec::new();
    for o in objects
        .deployments()
        .await?
        .iter()
        .filter(|o| o.uid() != obj.uid())
    {
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
                started_at: parse_time(&i.started_at).unwrap_or(started_at),
                catalog_entry_id: i.catalog_entry_id.clone(),
                release_date: i.release_date.clone(),
                audience_id: i.audience_id.clone(),
                settings: Some(settings_of(&o.spec)),
            });
        }
    }
    let found = graph
        .deployments_created_since(started_at - chrono::Duration::seconds(30))
        .await?;
    Ok(Some(adopt::decide(&me, &others, &claimed, &found)))
}

/// Resolves one audience item.
async fn item_fact(
    item: &AudienceItem,
    ns: &str,
    exclusion: bool,
    graph: &GraphClient,
    objects: &impl Objects,
) -> Result<ItemFact, Error> {
    if let Some(d) = item.device() {
        return Ok(ItemFact::Device(d.to_lowercase()));
    }
    if let Some(id) = item.asset_group_id() {
        return Ok(match graph.group_devices(id).await? {
            Some(m) => ItemFact::Group {
                id: id.to_string(),
                devices: std::sync::Arc::new(m.devices.into_iter().collect()),
            },
            None => ItemFact::Waiting(format!("updatableAssetGroup {id} does not exist in Graph")),
        });
    }
    let name = item.device_group().unwrap_or_default();
    Ok(match objects.group(ns, name, exclusion) {
        Ok((id, devices)) => ItemFact::Group { id, devices },
        Err(why) => ItemFact::Waiting(why),
    })
}

async fn audience_facts(
    obj: &ExpeditedDeployment,
    graph: &GraphClient,
    objects: &impl Objects,
) -> Result<AudienceFacts, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let mut facts = AudienceFacts::default();
    for wave in obj.spec.rollout.iter().flat_map(|r| &r.waves) {
        let mut items = Vec::with_capacity(wave.members.len());
        for item in &wave.members {
            items.push(item_fact(item, &ns, false, graph, objects).await?);
        }
        facts.waves.push(items);
    }
    let Some(a) = &obj.spec.audience else {
        return Ok(facts);
    };
    for item in &a.members {
        facts
            .members
            .push(item_fact(item, &ns, false, graph, objects).await?);
    }
    for item in &a.exclusions {
        facts
            .exclusions
            .push(item_fact(item, &ns, true, graph, objects).await?);
    }
    Ok(facts)
}

/// What the catalog says about the spec's content (the recorded resolution while the source is the same).
async fn catalog_fact(
    obj: &ExpeditedDeployment,
    graph: &GraphClient,
    default_poll: std::time::Duration,
    at: DateTime<Utc>,
) -> Result<CatalogFact, Error> {
    let source = content_source(&obj.spec);
    let poll = catalog_poll(obj, default_poll);
    if let Some(recorded) = obj
        .status
        .as_ref()
        .and_then(|s| s.resolved_content.as_ref())
        .filter(|r| r.source == source)
        // `latest`/`newest` that has since stopped being deployable is looked up again, and so is one
        // that follows new releases once the catalog poll is due.
        .filter(|r| !(newest_filter(&obj.spec).is_some() && r.expired_at(at)))
        .filter(|r| !(follows_releases(&obj.spec) && poll_due(r, at, poll)))
    {
        return Ok(CatalogFact::Recorded(recorded.clone()));
    }
    let c = &obj.spec.content;
    Ok(if let Some(date) = &c.release_date {
        let entries = graph.security_releases_on(date).await?;
        let nearby = if entries.is_empty() {
            let recent = graph.expeditable_updates(24).await?;
            recent
                .iter()
                .filter_map(|e| e.release_date().map(str::to_string))
                .collect()
        } else {
            Vec::new()
        };
        CatalogFact::ReleaseDate {
            date: date.clone(),
            entries,
            nearby,
        }
    } else if let Some(id) = &c.catalog_entry_id {
        CatalogFact::Entry {
            id: id.clone(),
            entry: graph.catalog_entry(id).await?,
        }
    } else {
        CatalogFact::Newest {
            filter: newest_filter(&obj.spec).unwrap_or_default(),
            // A poll shorter than the client's catalog cache reads the catalog itself.
            entries: graph.expeditable_updates_within(NEWEST_WINDOW, poll).await?,
        }
    })
}

/// Whether the catalog poll is due for a resolution (one that records no read time is due).
fn poll_due(r: &ResolvedContent, now: DateTime<Utc>, poll: std::time::Duration) -> bool {
    r.resolved_time
        .as_deref()
        .and_then(parse_time)
        .is_none_or(|t| now - t >= chrono::Duration::from_std(poll).unwrap_or_default())
}

/// Reads everything a pass over an ExpeditedDeployment needs: the deployment first, then (for a valid
/// spec) the audience's groups and the catalog.
pub async fn observe(obj: &ExpeditedDeployment, graph: &GraphClient, objects: &impl Objects) -> Observation {
    let mut o = Observation {
        at: Utc::now(),
        adoption: None,
        deployment: Known::None,
        audience: None,
        content: None,
        failed: None,
    };
    let recorded = obj.status.as_ref().and_then(|s| s.resolved_content.as_ref());
    let problems = validate::expedited_deployment(&obj.spec);
    // A spec.deploymentId that breaks its rules is never sent to Graph; the one status recorded (this
    // operator's own) still is, so that a pause reaches it.
    if !problems.is_empty() && !obj.spec.paused {
        // Nothing to decide from Graph: the spec stalls, and there is no pause to write.
        return o;
    }
    let named_ok = !problems.iter().any(|p| p.field == "spec.deploymentId");
    let mut id = if named_ok {
        deployment_id(obj)
    } else {
        obj.status.as_ref().and_then(|s| s.deployment_id.clone())
    };
    if id.is_none() {
        match adoption(obj, graph, objects, true).await {
            Ok(decision) => {
                if let Some(adopt::Decision::Adopt(one)) = &decision {
                    id = Some(one.clone());
                }
                o.adoption = decision;
            }
            Err(e) => {
                o.failed = Some(e);
                return o;
            }
        }
    }
    if let Some(id) = id {
        // What this operator resolved stands in for content Graph does not name, but only on a deployment
        // it created: an adopted one's content is what Graph says, or unknown.
        let recorded = recorded.filter(|_| obj.spec.deployment_id.is_none());
        let status = obj.status.as_ref();
        let audience_id = status
            .filter(|s| s.deployment_id.as_deref() == Some(id.as_str()))
            .and_then(|s| s.audience_id.as_deref());
        match read_deployment(graph, &id, recorded, audience_id).await {
            Ok(known) => o.deployment = known,
            Err(e) => {
                o.deployment = Known::Unread(id);
                o.failed = Some(e);
                return o;
            }
        }
    }
    if !problems.is_empty() {
        return o;
    }
    match audience_facts(obj, graph, objects).await {
        Ok(a) => o.audience = Some(a),
        Err(e) => {
            o.failed = Some(e);
            return o;
        }
    }
    match catalog_fact(obj, graph, objects.catalog_poll(), o.at).await {
        Ok(c) => o.content = Some(c),
        Err(e) => o.failed = Some(e),
    }
    o
}

/// Everything a DeviceGroup pass reads: its Graph group's members, and for a group that takes its
/// devices from Entra ID, those devices.
#[derive(Debug)]
pub struct GroupObservation {
    /// When the reads were made.
    pub at: DateTime<Utc>,
    pub group: Known<GroupDevices>,
    /// `spec.entraGroupId`'s devices: `Some(Some(..))` read, `Some(None)` the Entra group does not
    /// exist, `None` the spec lists its devices (or the read was not made).
    pub entra: Option<Option<Devices>>,
    pub failed: Option<Error>,
}

/// `held` is the set of devices the group last read from Entra ID, if any: a read that finds the same
/// devices shares it instead of holding a second copy.
pub async fn observe_group(
    obj: &DeviceGroup,
    graph: &GraphClient,
    held: Option<Devices>,
) -> GroupObservation {
    let mut o = GroupObservation {
        at: Utc::now(),
        group: Known::None,
        entra: None,
        failed: None,
    };
    // Entra first: its read is compared with the set held and let go before the group's members are
    // read, so a pass never holds both lists and the set at once (at 100,000 devices, 2.4 MB each). The
    // read is sized from the set held, or after a restart from the group's last member count.
    let expected = held.as_ref().map(|h| h.len()).unwrap_or_else(|| {
        obj.status
            .as_ref()
            .and_then(|s| s.member_count)
            .map_or(0, |n| n.min(1 << 24) as usize)
    });
    let entra = match obj
        .spec
        .entra_group_id
        .as_deref()
        .filter(|_| validate::device_group(&obj.spec).is_empty())
    {
        Some(entra) => Some(graph.entra_group_devices(entra, expected).await.map(|devices| {
            devices.map(|ids| match held.filter(|h| h.iter().eq(ids.iter())) {
                Some(same) => same,
                None => std::sync::Arc::new(ids.into_iter().collect()),
            })
        })),
        None => None,
    };
    if let Some(id) = obj.status.as_ref().and_then(|s| s.group_id.clone()) {
        // A member list answered 404 is checked against the group itself.
        let members = match graph.group_devices(&id).await {
            Ok(None) => match graph.group_exists(&id).await {
                Ok(true) => Ok(Some(GroupDevices::default())),
                Ok(false) => Ok(None),
                Err(e) => Err(e),
            },
            other => other,
        };
        match members {
            Ok(Some(m)) => o.group = Known::Found(m),
            Ok(None) => o.group = Known::Missing(id),
            Err(e) => {
                o.group = Known::Unread(id);
                o.failed = Some(e.into());
                return o;
            }
        }
    }
    match entra {
        Some(Ok(devices)) => o.entra = Some(devices),
        Some(Err(e)) => o.failed = Some(e.into()),
        None => {}
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_poll_is_due_once_the_interval_has_passed_since_the_recorded_read() {
        let now = Utc::now();
        let at = |ago: i64| ResolvedContent {
            resolved_time: Some((now - chrono::Duration::minutes(ago)).to_rfc3339()),
            ..Default::default()
        };
        assert!(!poll_due(&at(1), now, CATALOG_POLL));
        assert!(poll_due(&at(16), now, CATALOG_POLL));
        assert!(
            poll_due(&ResolvedContent::default(), now, CATALOG_POLL),
            "no read time: due"
        );
        assert!(poll_due(&at(2), now, std::time::Duration::from_secs(60)));
    }
}
