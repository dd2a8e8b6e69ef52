//! Resolves an ExpeditedDeployment spec into the desired Graph state: content against the catalog,
//! DeviceGroup references against their Graph groups, and the distinct devices the audience reaches.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::context::{Context, Error};
use super::plan::Desired;
use crate::crd::{AudienceItem, DeviceGroup, ExpeditedDeployment, ManagementPolicy, ResolvedContent};
use crate::graph::{AssetKind, AssetRef, ContentRequest, GraphClient, SettingsRequest};

/// The result of resolving a spec.
#[derive(Debug)]
pub enum Resolution {
    Ready {
        desired: Box<Desired>,
        content: ResolvedContent,
        members: u64,
        exclusions: u64,
    },
    /// Something the spec references is not ready yet; retry soon, write nothing.
    Waiting { reason: &'static str, message: String },
    /// The spec names something that cannot work; wait for a change.
    Invalid { reason: &'static str, message: String },
}

/// `releaseDate:…`, `catalogEntryId:…` or `latest`: what the content was resolved from.
pub fn content_source(obj: &ExpeditedDeployment) -> String {
    let c = &obj.spec.content;
    match (&c.release_date, &c.catalog_entry_id) {
        (Some(d), _) => format!("releaseDate:{d}"),
        (None, Some(id)) => format!("catalogEntryId:{id}"),
        _ => "latest".into(),
    }
}

/// Resolves `spec.content` against the catalog, reusing the recorded resolution while the source is the
/// same. `Err((reason, message))` when the catalog cannot serve it.
pub async fn resolve_content(
    obj: &ExpeditedDeployment,
    graph: &GraphClient,
) -> Result<Result<ResolvedContent, (&'static str, String)>, Error> {
    let source = content_source(obj);
    if let Some(recorded) = obj
        .status
        .as_ref()
        .and_then(|s| s.resolved_content.as_ref())
        .filter(|r| r.source == source)
    {
        return Ok(Ok(recorded.clone()));
    }
    let c = &obj.spec.content;
    let entry = if let Some(date) = &c.release_date {
        match graph.security_release_on(date).await? {
            Some(e) => e,
            None => {
                return Ok(Err((
                    "ContentNotFound",
                    format!(
                        "spec.content.releaseDate: no security update was released on {date} (use the date of a monthly security release, the second Tuesday of a month, listed in the update catalog)"
                    ),
                )));
            }
        }
    } else if let Some(id) = &c.catalog_entry_id {
        match graph.catalog_entry(id).await? {
            Some(e) if e.can_expedite() => e,
            Some(e) => {
                return Ok(Err((
                    "ContentNotExpeditable",
                    format!(
                        "spec.content.catalogEntryId: catalog entry {id} ({}) cannot be expedited (pick an entry whose isExpeditable is true, or use content.latest)",
                        e.display_name.unwrap_or_default()
                    ),
                )));
            }
            None => {
                return Ok(Err((
                    "ContentNotFound",
                    format!(
                        "spec.content.catalogEntryId: the update catalog has no entry {id} (copy an id from the catalog, or use content.latest)"
                    ),
                )));
            }
        }
    } else {
        match graph.expeditable_updates(1).await?.into_iter().next() {
            Some(e) => e,
            None => {
                return Ok(Err((
                    "ContentNotFound",
                    "spec.content.latest: the update catalog lists no expeditable quality update".into(),
                )));
            }
        }
    };
    Ok(Ok(ResolvedContent {
        source,
        release_date: entry.release_date().map(str::to_string),
        display_name: entry.display_name.clone(),
        catalog_entry_id: entry.id,
    }))
}

/// What an audience item resolves to, or why it cannot yet. A group carries its devices.
enum Item {
    Device(AssetRef),
    Group(AssetRef, BTreeSet<String>),
    Waiting(String),
}

/// Where `deviceGroup` references resolve: the controller's store, or (for `plan`) the manifests and the
/// cluster.
pub trait GroupSource {
    /// The Graph group id and the devices of a DeviceGroup, or why it cannot be used yet. An exclusion
    /// group must hold all its devices first; a member group may fill while it is used.
    fn group(&self, ns: &str, name: &str, exclusion: bool) -> Result<(String, BTreeSet<String>), String>;
}

impl GroupSource for Store<DeviceGroup> {
    fn group(&self, ns: &str, name: &str, exclusion: bool) -> Result<(String, BTreeSet<String>), String> {
        let group = self
            .get(&ObjectRef::<DeviceGroup>::new(name).within(ns))
            .ok_or_else(|| format!("DeviceGroup {name} does not exist in namespace {ns}"))?;
        let status = group.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            && status.observed_generation == group.metadata.generation;
        match status.group_id {
            Some(id) if (ready || !exclusion) && group.metadata.deletion_timestamp.is_none() => {
                Ok((id, group.spec.devices.iter().map(|d| d.to_lowercase()).collect()))
            }
            _ => Err(format!("DeviceGroup {name} is not Ready yet")),
        }
    }
}

async fn resolve_item(
    item: &AudienceItem,
    ns: &str,
    exclusion: bool,
    graph: &GraphClient,
    groups: &impl GroupSource,
) -> Result<Item, Error> {
    if let Some(d) = &item.device {
        return Ok(Item::Device(AssetRef::device(d.to_lowercase())));
    }
    if let Some(id) = &item.asset_group_id {
        let devices = match graph.group_members(id).await? {
            Some(m) => m
                .into_iter()
                .filter(|a| a.kind() == AssetKind::Device)
                .map(|a| a.id.to_lowercase())
                .collect(),
            None => {
                return Ok(Item::Waiting(format!(
                    "updatableAssetGroup {id} does not exist in Graph"
                )));
            }
        };
        return Ok(Item::Group(AssetRef::group(id.clone()), devices));
    }
    let name = item.device_group.as_deref().unwrap_or_default();
    Ok(match groups.group(ns, name, exclusion) {
        Ok((id, devices)) => Item::Group(AssetRef::group(id), devices),
        Err(why) => Item::Waiting(why),
    })
}

/// Resolves the spec. Graph calls: the catalog (once per content change) and the member lists of
/// `assetGroupId` items.
pub async fn resolve(
    obj: &ExpeditedDeployment,
    graph: &GraphClient,
    groups: &impl GroupSource,
    operator_limit: Option<u64>,
) -> Result<Resolution, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let mut members = BTreeSet::new();
    let mut exclusions = BTreeSet::new();
    // The devices of referenced groups, members' and exclusions'.
    let mut member_groups = Vec::new();
    let mut excluded_groups = Vec::new();
    let no_items = Vec::new();
    let (member_items, exclusion_items) = match &obj.spec.audience {
        Some(a) => (&a.members, &a.exclusions),
        None => (&no_items, &no_items),
    };
    for (list, items, refs, groups_devices) in [
        ("members", member_items, &mut members, &mut member_groups),
        (
            "exclusions",
            exclusion_items,
            &mut exclusions,
            &mut excluded_groups,
        ),
    ] {
        for (i, item) in items.iter().enumerate() {
            match resolve_item(item, &ns, list == "exclusions", graph, groups).await? {
                Item::Device(r) => {
                    refs.insert(r);
                }
                Item::Group(r, d) => {
                    refs.insert(r);
                    groups_devices.push(d);
                }
                Item::Waiting(why) => {
                    let field = if item.asset_group_id.is_some() {
                        "assetGroupId"
                    } else {
                        "deviceGroup"
                    };
                    return Ok(Resolution::Waiting {
                        reason: "WaitingForDeviceGroup",
                        message: format!(
                            "spec.audience.{list}[{i}].{field}: {why} (nothing is written until it is)"
                        ),
                    });
                }
            }
        }
    }
    let content = match resolve_content(obj, graph).await? {
        Ok(c) => c,
        Err((reason, message)) => return Ok(Resolution::Invalid { reason, message }),
    };
    let request = match &obj.spec.content.release_date {
        Some(date) => ContentRequest::ReleaseDate {
            date: date.clone(),
            equivalent_content: obj.spec.equivalent_content.as_str().into(),
        },
        None => ContentRequest::CatalogEntry(content.catalog_entry_id.clone()),
    };
    let ux = obj.spec.user_experience.clone().unwrap_or_default();
    let limit = [
        obj.spec.max_devices.map(|l| (l, "spec.maxDevices")),
        operator_limit.map(|l| (l, "--max-audience-devices")),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|(l, _)| *l);
    // Devices offered the update: member devices (direct or through groups) that no exclusion covers.
    fn device_ids<'a>(refs: &'a BTreeSet<AssetRef>, groups: &'a [BTreeSet<String>]) -> BTreeSet<&'a str> {
        refs.iter()
            .filter(|r| r.kind == AssetKind::Device)
            .map(|r| r.id.as_str())
            .chain(groups.iter().flatten().map(String::as_str))
            .collect()
    }
    let excluded = device_ids(&exclusions, &excluded_groups);
    let devices = device_ids(&members, &member_groups)
        .iter()
        .filter(|d| !excluded.contains(*d))
        .count() as u64;
    let (m, e) = (members.len() as u64, exclusions.len() as u64);
    let desired = Desired {
        content: request,
        settings: SettingsRequest {
            days_until_forced_reboot: ux.days_until_forced_reboot,
            offer_as_optional: ux.offer_as_optional,
            readiness_test: obj.spec.readiness_test,
        },
        paused: obj.spec.paused,
        members,
        exclusions,
        devices,
        device_limit: limit,
        observe_only: obj.spec.management_policy == ManagementPolicy::ObserveOnly,
        adopted: obj.spec.deployment_id.is_some(),
    };
    Ok(Resolution::Ready {
        desired: Box::new(desired),
        content,
        members: m,
        exclusions: e,
    })
}

/// The Graph settings a spec asks for.
pub fn settings_of(spec: &crate::crd::ExpeditedDeploymentSpec) -> SettingsRequest {
    let ux = spec.user_experience.clone().unwrap_or_default();
    SettingsRequest {
        days_until_forced_reboot: ux.days_until_forced_reboot,
        offer_as_optional: ux.offer_as_optional,
        readiness_test: spec.readiness_test,
    }
}

/// Names of the ExpeditedDeployments in `ns` that reference DeviceGroup `name`.
pub fn referencing(ctx: &Context, ns: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = ctx
        .deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns))
        .filter(|d| {
            d.spec.audience.as_ref().is_some_and(|a| {
                a.members
                    .iter()
                    .chain(&a.exclusions)
                    .any(|i| i.device_group.as_deref() == Some(name))
            })
        })
        .map(|d| d.name_any())
        .collect();
    out.sort();
    out
}
