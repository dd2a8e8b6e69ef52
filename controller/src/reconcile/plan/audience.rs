//! The audience: what the spec asks for, and the one place for its set arithmetic and blast radius.

use std::collections::BTreeSet;

use super::*;
use crate::crd::{DeviceId, ExpeditedDeployment, ResolvedContent};
use crate::graph::{AssetRef, ContentRequest, SettingsRequest};
use crate::reconcile::observe::{AudienceFacts, ItemFact, settings_of};

/// What the spec asks for, resolved against the catalog and the groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Always `catalogContent`: every content form resolves to one catalog entry.
    pub content: ContentRequest,
    /// The release date of a `releaseDate` spec: a deployment an earlier version made in the legacy
    /// release-date form for it still matches.
    pub release_date: Option<String>,
    pub settings: SettingsRequest,
    pub paused: bool,
    pub members: BTreeSet<AssetRef>,
    pub exclusions: BTreeSet<AssetRef>,
    /// Distinct devices the audience offers the update to: member devices, direct or through groups
    /// (and the waves sent), that no exclusion covers.
    pub devices: u64,
    /// The same over every wave of `spec.rollout`, sent or not: what the device limits bound.
    pub rollout_devices: u64,
    /// The tightest device limit and where it comes from.
    pub device_limit: Option<(u64, &'static str)>,
    /// `spec.deploymentId`: an adopted deployment is never recreated or replaced.
    pub adopted: bool,
}

pub(super) fn diff(
    desired: &Desired,
    members: &BTreeSet<AssetRef>,
    exclusions: &BTreeSet<AssetRef>,
) -> AudienceDiff {
    AudienceDiff {
        add_members: desired.members.difference(members).cloned().collect(),
        remove_members: members.difference(&desired.members).cloned().collect(),
        add_exclusions: desired.exclusions.difference(exclusions).cloned().collect(),
        remove_exclusions: exclusions.difference(&desired.exclusions).cloned().collect(),
    }
}

/// The first audience item that cannot be used yet: of the members, the exclusions, or a wave already
/// sent (a wave not sent yet waits at its gate instead).
pub(super) fn waiting(
    obj: &ExpeditedDeployment,
    audience: &AudienceFacts,
    rollout: Option<&crate::reconcile::rollout::Decision>,
) -> Option<Blocker> {
    if let Some(r) = rollout {
        // The waves sent, and the first one while none is: a rollout that cannot send its first wave
        // yet makes no Graph deployment (it would be an empty one).
        let none_sent = !r.promoted.iter().any(|p| *p);
        for (k, wave) in audience.waves.iter().enumerate() {
            let sent = r.promoted.get(k).copied().unwrap_or(false);
            if !(sent || (k == 0 && none_sent)) {
                continue;
            }
            for (i, fact) in wave.iter().enumerate() {
                if let ItemFact::Waiting(why) = fact {
                    let field = obj
                        .spec
                        .rollout
                        .as_ref()
                        .and_then(|s| s.waves.get(k))
                        .and_then(|w| w.members.get(i))
                        .map_or("deviceGroup", |it| {
                            if it.asset_group_id().is_some() {
                                "assetGroupId"
                            } else {
                                "deviceGroup"
                            }
                        });
                    return Some(Blocker::Waiting {
                        field: format!("spec.rollout.waves[{k}].members[{i}].{field}"),
                        why: why.clone(),
                    });
                }
            }
        }
    }
    let no_audience = crate::crd::AudienceSpec::default();
    let spec_items = obj.spec.audience.as_ref().unwrap_or(&no_audience);
    for (list, facts, items) in [
        ("members", &audience.members, &spec_items.members),
        ("exclusions", &audience.exclusions, &spec_items.exclusions),
    ] {
        for (i, fact) in facts.iter().enumerate() {
            if let ItemFact::Waiting(why) = fact {
                let field = if items.get(i).is_some_and(|it| it.asset_group_id().is_some()) {
                    "assetGroupId"
                } else {
                    "deviceGroup"
                };
                return Some(Blocker::Waiting {
                    field: format!("spec.audience.{list}[{i}].{field}"),
                    why: why.clone(),
                });
            }
        }
    }
    None
}

/// The ids `lists` give (devices, and the devices of groups), in one list sized once (grown by
/// doubling, a list of 100,000 references would hold twice that while it is copied).
pub(super) fn fact_ids<'a>(lists: &[&'a [ItemFact]]) -> Vec<&'a DeviceId> {
    let facts = || lists.iter().flat_map(|l| l.iter());
    let count = facts()
        .map(|f| match f {
            ItemFact::Device(_) => 1,
            ItemFact::Group { devices, .. } => devices.len(),
            ItemFact::Waiting(_) => 0,
        })
        .sum();
    let mut out = Vec::with_capacity(count);
    for f in facts() {
        match f {
            ItemFact::Device(d) => out.push(d),
            ItemFact::Group { devices, .. } => out.extend(devices.iter()),
            ItemFact::Waiting(_) => {}
        }
    }
    out
}

/// The distinct ids, sorted: 8 bytes an id (a B-tree set of the same references takes about 20, which
/// counts at 100,000 devices); looked up by binary search.
pub(super) fn id_set(mut ids: Vec<&DeviceId>) -> Vec<&DeviceId> {
    ids.sort_unstable();
    ids.dedup();
    ids.shrink_to_fit();
    ids
}

/// Distinct devices offered the update: member devices (direct or through groups, and every wave's)
/// that no exclusion covers. The blast radius of one object, its whole rollout.
pub fn offered_devices(audience: &AudienceFacts) -> Vec<&DeviceId> {
    offered_devices_of(audience, None)
}

/// Distinct devices offered by the members and the waves `promoted` marks (every wave when `None`),
/// less exclusions, sorted.
pub fn offered_devices_of<'a>(audience: &'a AudienceFacts, promoted: Option<&[bool]>) -> Vec<&'a DeviceId> {
    let excluded = id_set(fact_ids(&[&audience.exclusions]));
    let lists: Vec<&[ItemFact]> = std::iter::once(&audience.members[..])
        .chain(
            (audience.waves.iter().enumerate())
                .filter(|(k, _)| promoted.is_none_or(|p| p.get(*k).copied().unwrap_or(false)))
                .map(|(_, w)| &w[..]),
        )
        .collect();
    let mut out = id_set(fact_ids(&lists));
    out.retain(|d| excluded.binary_search(d).is_err());
    out
}

/// Each wave's devices (sorted), less exclusions: a device in several waves belongs to the first.
pub fn wave_devices(audience: &AudienceFacts) -> Vec<Vec<&DeviceId>> {
    let mut taken = id_set(fact_ids(&[&audience.exclusions]));
    audience
        .waves
        .iter()
        .map(|wave| {
            let mut ids = id_set(fact_ids(&[wave]));
            ids.retain(|d| taken.binary_search(d).is_err());
            taken = id_set(taken.iter().chain(&ids).copied().collect());
            ids
        })
        .collect()
}

/// What the rollout needs to know of each wave: its devices and the first member not usable yet.
pub fn wave_facts(audience: &AudienceFacts) -> Vec<crate::reconcile::rollout::WaveFact> {
    wave_devices(audience)
        .into_iter()
        .zip(&audience.waves)
        .enumerate()
        .map(|(k, (ids, facts))| crate::reconcile::rollout::WaveFact {
            devices: ids.len() as u64,
            waiting: facts.iter().enumerate().find_map(|(i, f)| match f {
                ItemFact::Waiting(why) => Some(format!("spec.rollout.waves[{k}].members[{i}]: {why}")),
                _ => None,
            }),
        })
        .collect()
}

/// What the spec asks for, from a resolved audience and content.
pub fn desired(
    obj: &ExpeditedDeployment,
    audience: &AudienceFacts,
    content: &ResolvedContent,
    cfg: &PlanConfig,
    rollout: Option<&crate::reconcile::rollout::Decision>,
) -> Desired {
    let refs = |facts: &[ItemFact]| -> BTreeSet<AssetRef> {
        facts
            .iter()
            .filter_map(|f| match f {
                ItemFact::Device(d) => Some(AssetRef::device(d.to_string())),
                ItemFact::Group { id, .. } => Some(AssetRef::group(id.clone())),
                ItemFact::Waiting(_) => None,
            })
            .collect()
    };
    let spec = &obj.spec;
    // Without a rollout every wave counts (there are none); with one, the waves it sends.
    let promoted = rollout.map(|r| r.promoted.as_slice());
    let mut members = refs(&audience.members);
    for (k, wave) in audience.waves.iter().enumerate() {
        if promoted.is_none_or(|p| p.get(k).copied().unwrap_or(false)) {
            members.extend(refs(wave));
        }
    }
    Desired {
        content: ContentRequest::CatalogEntry(content.catalog_entry_id.clone()),
        release_date: spec.content.release_date.clone(),
        settings: settings_of(spec),
        // A halt or an abort holds the deployment paused, as spec.paused does.
        paused: spec.paused || rollout.is_some_and(|r| r.hold.is_some()),
        members,
        exclusions: refs(&audience.exclusions),
        devices: offered_devices_of(audience, promoted).len() as u64,
        rollout_devices: offered_devices(audience).len() as u64,
        device_limit: [
            spec.max_devices.map(|l| (l, "spec.maxDevices")),
            cfg.operator_limit.map(|l| (l, "--max-audience-devices")),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(l, _)| *l),
        adopted: spec.deployment_id.is_some(),
    }
}
