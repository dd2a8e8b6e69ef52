//! The pure middle of the reconcile: `(desired, observed) -> Plan`. No I/O; every branch is a table test,
//! and property tests check that a plan applied to the observed state yields the desired state.

use std::collections::BTreeSet;

use crate::graph::{AssetRef, AudienceDiff, ContentRequest, SettingsRequest};

/// Content as Graph carries it (or, when Graph does not say, as the operator recorded it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployedContent {
    CatalogEntry(String),
    ReleaseDate(String),
    Unknown,
}

/// What the spec asks for, resolved against the catalog and DeviceGroups.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub content: ContentRequest,
    pub settings: SettingsRequest,
    pub paused: bool,
    pub members: BTreeSet<AssetRef>,
    pub exclusions: BTreeSet<AssetRef>,
    /// Distinct devices the audience offers the update to.
    pub devices: u64,
    /// The tightest device limit and where it comes from.
    pub device_limit: Option<(u64, &'static str)>,
    /// `ObserveOnly`: never write.
    pub observe_only: bool,
    /// `spec.deploymentId`: an adopted deployment is never recreated or replaced.
    pub adopted: bool,
}

/// A Graph deployment as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedDeployment {
    pub id: String,
    pub content: DeployedContent,
    pub settings: SettingsRequest,
    /// Created with the legacy settings type (release-date content).
    pub legacy: bool,
    pub paused_requested: bool,
    pub members: BTreeSet<AssetRef>,
    pub exclusions: BTreeSet<AssetRef>,
}

/// Which deployment an action targets: an existing one, or the one the plan's `Create` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Existing(String),
    New,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create {
        content: ContentRequest,
        settings: SettingsRequest,
    },
    SetPaused {
        target: Target,
        paused: bool,
    },
    UpdateSettings {
        id: String,
        settings: SettingsRequest,
        legacy: bool,
    },
    UpdateAudience {
        target: Target,
        diff: AudienceDiff,
    },
    /// Delete a deployment this plan replaced.
    DeleteReplaced {
        id: String,
    },
}

impl Action {
    /// A short description for Events and the plan command.
    pub fn describe(&self) -> String {
        match self {
            Action::Create { content, .. } => match content {
                ContentRequest::CatalogEntry(id) => format!("create deployment of catalog entry {id}"),
                ContentRequest::ReleaseDate { date, .. } => {
                    format!("create deployment of the {date} security update")
                }
            },
            Action::SetPaused { paused: true, .. } => "pause deployment".into(),
            Action::SetPaused { paused: false, .. } => "resume deployment".into(),
            Action::UpdateSettings { .. } => "update deployment settings".into(),
            Action::UpdateAudience { diff, .. } => format!(
                "update audience: +{} members, -{} members, +{} exclusions, -{} exclusions",
                diff.add_members.len(),
                diff.remove_members.len(),
                diff.add_exclusions.len(),
                diff.remove_exclusions.len()
            ),
            Action::DeleteReplaced { id } => format!("delete replaced deployment {id}"),
        }
    }
}

/// Why nothing may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    AudienceTooLarge {
        devices: u64,
        limit: u64,
        source: &'static str,
    },
    /// An adopted deployment that no longer exists.
    AdoptedDeploymentMissing,
    /// An adopted deployment carries other content than the spec.
    AdoptedContentDiffers { deployed: String },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub blocked: Option<Blocked>,
}

impl Plan {
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty() && self.blocked.is_none()
    }
}

fn content_matches(desired: &ContentRequest, deployed: &DeployedContent) -> bool {
    match (desired, deployed) {
        (_, DeployedContent::Unknown) => true,
        (ContentRequest::CatalogEntry(a), DeployedContent::CatalogEntry(b)) => a == b,
        (ContentRequest::ReleaseDate { date, .. }, DeployedContent::ReleaseDate(d)) => date == d,
        _ => false,
    }
}

fn settings_differ(desired: &SettingsRequest, observed: &SettingsRequest) -> bool {
    (desired.days_until_forced_reboot.is_some()
        && desired.days_until_forced_reboot != observed.days_until_forced_reboot)
        || (desired.offer_as_optional.is_some() && desired.offer_as_optional != observed.offer_as_optional)
        || desired.readiness_test != observed.readiness_test
}

fn diff(desired: &Desired, members: &BTreeSet<AssetRef>, exclusions: &BTreeSet<AssetRef>) -> AudienceDiff {
    AudienceDiff {
        add_members: desired.members.difference(members).cloned().collect(),
        remove_members: members.difference(&desired.members).cloned().collect(),
        add_exclusions: desired.exclusions.difference(exclusions).cloned().collect(),
        remove_exclusions: exclusions.difference(&desired.exclusions).cloned().collect(),
    }
}

/// Plans the Graph writes that make `observed` match `desired`.
pub fn plan(desired: &Desired, observed: Option<&ObservedDeployment>) -> Plan {
    if desired.observe_only {
        return Plan::default();
    }
    if let Some((limit, source)) = desired.device_limit
        && desired.devices > limit
    {
        return Plan {
            actions: Vec::new(),
            blocked: Some(Blocked::AudienceTooLarge {
                devices: desired.devices,
                limit,
                source,
            }),
        };
    }
    let fresh = |actions: &mut Vec<Action>| {
        actions.push(Action::Create {
            content: desired.content.clone(),
            settings: desired.settings.clone(),
        });
        if desired.paused {
            actions.push(Action::SetPaused {
                target: Target::New,
                paused: true,
            });
        }
        let d = diff(desired, &BTreeSet::new(), &BTreeSet::new());
        if !d.is_empty() {
            actions.push(Action::UpdateAudience {
                target: Target::New,
                diff: d,
            });
        }
    };
    let mut actions = Vec::new();
    match observed {
        None if desired.adopted => {
            return Plan {
                actions,
                blocked: Some(Blocked::AdoptedDeploymentMissing),
            };
        }
        None => fresh(&mut actions),
        Some(o) if !content_matches(&desired.content, &o.content) => {
            if desired.adopted {
                let deployed = match &o.content {
                    DeployedContent::CatalogEntry(id) => format!("catalog entry {id}"),
                    DeployedContent::ReleaseDate(d) => format!("the {d} security update"),
                    DeployedContent::Unknown => "unknown content".into(),
                };
                return Plan {
                    actions,
                    blocked: Some(Blocked::AdoptedContentDiffers { deployed }),
                };
            }
            // Content cannot change in Graph: create the new deployment with the same audience, then
            // delete the old one, so no device loses the update in between.
            fresh(&mut actions);
            actions.push(Action::DeleteReplaced { id: o.id.clone() });
        }
        Some(o) => {
            let target = Target::Existing(o.id.clone());
            if desired.paused && !o.paused_requested {
                actions.push(Action::SetPaused {
                    target: target.clone(),
                    paused: true,
                });
            }
            if settings_differ(&desired.settings, &o.settings) {
                actions.push(Action::UpdateSettings {
                    id: o.id.clone(),
                    settings: desired.settings.clone(),
                    legacy: o.legacy,
                });
            }
            let d = diff(desired, &o.members, &o.exclusions);
            if !d.is_empty() {
                actions.push(Action::UpdateAudience {
                    target: target.clone(),
                    diff: d,
                });
            }
            if !desired.paused && o.paused_requested {
                actions.push(Action::SetPaused {
                    target,
                    paused: false,
                });
            }
        }
    }
    Plan {
        actions,
        blocked: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dev(i: u32) -> AssetRef {
        AssetRef::device(format!("00000000-0000-4000-8000-{i:012}"))
    }

    fn desired() -> Desired {
        Desired {
            content: ContentRequest::CatalogEntry("e1".into()),
            settings: SettingsRequest {
                days_until_forced_reboot: Some(2),
                offer_as_optional: None,
                readiness_test: false,
            },
            paused: false,
            members: [dev(1), dev(2), AssetRef::group("g1")].into(),
            exclusions: [dev(3)].into(),
            devices: 2,
            device_limit: None,
            observe_only: false,
            adopted: false,
        }
    }

    fn observed_of(d: &Desired) -> ObservedDeployment {
        ObservedDeployment {
            id: "d1".into(),
            content: match &d.content {
                ContentRequest::CatalogEntry(id) => DeployedContent::CatalogEntry(id.clone()),
                ContentRequest::ReleaseDate { date, .. } => DeployedContent::ReleaseDate(date.clone()),
            },
            settings: d.settings.clone(),
            legacy: false,
            paused_requested: d.paused,
            members: d.members.clone(),
            exclusions: d.exclusions.clone(),
        }
    }

    #[test]
    fn create_when_nothing_exists_then_pause_before_audience() {
        let mut d = desired();
        d.paused = true;
        let p = plan(&d, None);
        assert_eq!(p.actions.len(), 3);
        assert!(matches!(p.actions[0], Action::Create { .. }));
        assert_eq!(
            p.actions[1],
            Action::SetPaused {
                target: Target::New,
                paused: true
            }
        );
        let Action::UpdateAudience {
            target: Target::New,
            diff,
        } = &p.actions[2]
        else {
            panic!("{:?}", p.actions[2])
        };
        assert_eq!(diff.add_members.len(), 3);
        assert_eq!(diff.add_exclusions, vec![dev(3)]);
    }

    #[test]
    fn converged_plans_nothing() {
        let d = desired();
        assert!(plan(&d, Some(&observed_of(&d))).is_converged());
    }

    #[test]
    fn unknown_content_is_not_replaced() {
        let d = desired();
        let mut o = observed_of(&d);
        o.content = DeployedContent::Unknown;
        assert!(plan(&d, Some(&o)).is_converged());
    }

    #[test]
    fn audience_edits_are_set_differences() {
        let d = desired();
        let mut o = observed_of(&d);
        o.members.remove(&dev(2));
        o.members.insert(dev(9));
        o.exclusions.clear();
        let p = plan(&d, Some(&o));
        assert_eq!(
            p.actions,
            vec![Action::UpdateAudience {
                target: Target::Existing("d1".into()),
                diff: AudienceDiff {
                    add_members: vec![dev(2)],
                    remove_members: vec![dev(9)],
                    add_exclusions: vec![dev(3)],
                    remove_exclusions: vec![]
                },
            }]
        );
    }

    #[test]
    fn pause_goes_first_and_resume_goes_last() {
        let mut d = desired();
        d.paused = true;
        let mut o = observed_of(&desired());
        o.members.clear();
        let p = plan(&d, Some(&o));
        assert_eq!(
            p.actions[0],
            Action::SetPaused {
                target: Target::Existing("d1".into()),
                paused: true
            }
        );
        assert!(matches!(p.actions[1], Action::UpdateAudience { .. }));
        d.paused = false;
        o.paused_requested = true;
        let p = plan(&d, Some(&o));
        assert!(matches!(p.actions[0], Action::UpdateAudience { .. }));
        assert_eq!(
            p.actions[1],
            Action::SetPaused {
                target: Target::Existing("d1".into()),
                paused: false
            }
        );
    }

    #[test]
    fn settings_change_is_a_patch() {
        let mut d = desired();
        let o = observed_of(&d);
        d.settings.days_until_forced_reboot = Some(5);
        assert_eq!(
            plan(&d, Some(&o)).actions,
            vec![Action::UpdateSettings {
                id: "d1".into(),
                settings: d.settings.clone(),
                legacy: false
            }]
        );
        // An unset field is not managed.
        d.settings.days_until_forced_reboot = None;
        assert!(plan(&d, Some(&o)).is_converged());
    }

    #[test]
    fn content_change_replaces_with_the_same_audience() {
        let d = desired();
        let mut o = observed_of(&d);
        o.content = DeployedContent::CatalogEntry("old".into());
        let p = plan(&d, Some(&o));
        assert!(
            matches!(&p.actions[0], Action::Create { content: ContentRequest::CatalogEntry(e), .. } if e == "e1")
        );
        let Action::UpdateAudience {
            target: Target::New,
            diff,
        } = &p.actions[1]
        else {
            panic!()
        };
        assert_eq!(
            diff.add_members.iter().cloned().collect::<BTreeSet<_>>(),
            d.members
        );
        assert_eq!(
            p.actions.last(),
            Some(&Action::DeleteReplaced { id: "d1".into() })
        );
    }

    #[test]
    fn adopted_deployments_are_never_recreated_or_replaced() {
        let mut d = desired();
        d.adopted = true;
        assert_eq!(plan(&d, None).blocked, Some(Blocked::AdoptedDeploymentMissing));
        let mut o = observed_of(&d);
        o.content = DeployedContent::ReleaseDate("2026-01-13".into());
        assert_eq!(
            plan(&d, Some(&o)).blocked,
            Some(Blocked::AdoptedContentDiffers {
                deployed: "the 2026-01-13 security update".into()
            })
        );
        assert!(plan(&d, Some(&o)).actions.is_empty());
    }

    #[test]
    fn audience_too_large_writes_nothing() {
        let mut d = desired();
        d.devices = 11;
        d.device_limit = Some((10, "spec.maxDevices"));
        let mut o = observed_of(&desired());
        o.members.clear();
        let p = plan(&d, Some(&o));
        assert!(p.actions.is_empty(), "nothing sent, nothing removed");
        assert_eq!(
            p.blocked,
            Some(Blocked::AudienceTooLarge {
                devices: 11,
                limit: 10,
                source: "spec.maxDevices"
            })
        );
        assert_eq!(plan(&d, None).actions, vec![], "not even a create");
    }

    #[test]
    fn observe_only_never_writes() {
        let mut d = desired();
        d.observe_only = true;
        assert!(plan(&d, None).actions.is_empty());
        let mut o = observed_of(&desired());
        o.members.clear();
        o.paused_requested = true;
        assert!(plan(&d, Some(&o)).actions.is_empty());
    }

    /// Applies a plan to an observed state the way Graph would.
    fn apply(p: &Plan, o: Option<&ObservedDeployment>) -> Option<ObservedDeployment> {
        let mut cur = o.cloned();
        let mut new: Option<ObservedDeployment> = None;
        for a in &p.actions {
            match a {
                Action::Create { content, settings } => {
                    new = Some(ObservedDeployment {
                        id: "new".into(),
                        content: match content {
                            ContentRequest::CatalogEntry(id) => DeployedContent::CatalogEntry(id.clone()),
                            ContentRequest::ReleaseDate { date, .. } => {
                                DeployedContent::ReleaseDate(date.clone())
                            }
                        },
                        settings: settings.clone(),
                        legacy: false,
                        paused_requested: false,
                        members: BTreeSet::new(),
                        exclusions: BTreeSet::new(),
                    })
                }
                Action::SetPaused { target, paused } => {
                    let d = if *target == Target::New {
                        new.as_mut()
                    } else {
                        cur.as_mut()
                    };
                    d.expect("target exists").paused_requested = *paused;
                }
                Action::UpdateSettings { settings, .. } => {
                    cur.as_mut().expect("exists").settings = settings.clone()
                }
                Action::UpdateAudience { target, diff } => {
                    let d = if *target == Target::New {
                        new.as_mut()
                    } else {
                        cur.as_mut()
                    };
                    let d = d.expect("target exists");
                    for m in &diff.add_members {
                        d.members.insert(m.clone());
                    }
                    for m in &diff.remove_members {
                        d.members.remove(m);
                    }
                    for m in &diff.add_exclusions {
                        d.exclusions.insert(m.clone());
                    }
                    for m in &diff.remove_exclusions {
                        d.exclusions.remove(m);
                    }
                }
                Action::DeleteReplaced { .. } => cur = None,
            }
        }
        new.or(cur)
    }

    fn assets() -> impl Strategy<Value = BTreeSet<AssetRef>> {
        proptest::collection::btree_set(
            prop_oneof![
                (0u32..30).prop_map(dev),
                (0u32..4).prop_map(|i| AssetRef::group(format!("g{i}")))
            ],
            0..20,
        )
    }

    fn desired_strategy() -> impl Strategy<Value = Desired> {
        (
            assets(),
            assets(),
            any::<bool>(),
            prop_oneof![Just("e1"), Just("e2")],
            proptest::option::of(0i32..5),
        )
            .prop_map(|(members, exclusions, paused, entry, days)| Desired {
                content: ContentRequest::CatalogEntry(entry.into()),
                settings: SettingsRequest {
                    days_until_forced_reboot: days,
                    offer_as_optional: None,
                    readiness_test: false,
                },
                paused,
                devices: members.len() as u64,
                members,
                exclusions,
                device_limit: None,
                observe_only: false,
                adopted: false,
            })
    }

    fn observed_strategy() -> impl Strategy<Value = Option<ObservedDeployment>> {
        proptest::option::of(
            (
                assets(),
                assets(),
                any::<bool>(),
                prop_oneof![Just("e1"), Just("e2")],
                proptest::option::of(0i32..5),
            )
                .prop_map(|(members, exclusions, paused, entry, days)| ObservedDeployment {
                    id: "d1".into(),
                    content: DeployedContent::CatalogEntry(entry.into()),
                    settings: SettingsRequest {
                        days_until_forced_reboot: days,
                        offer_as_optional: None,
                        readiness_test: false,
                    },
                    legacy: false,
                    paused_requested: paused,
                    members,
                    exclusions,
                }),
        )
    }

    proptest! {
        #[test]
        fn applying_the_plan_yields_the_desired_state(d in desired_strategy(), o in observed_strategy()) {
            let p = plan(&d, o.as_ref());
            let after = apply(&p, o.as_ref()).expect("a deployment exists after the plan");
            prop_assert_eq!(&after.members, &d.members);
            prop_assert_eq!(&after.exclusions, &d.exclusions);
            prop_assert_eq!(after.paused_requested, d.paused);
            prop_assert!(content_matches(&d.content, &after.content));
            // A second plan against the result is empty.
            prop_assert!(plan(&d, Some(&after)).is_converged());
        }

        #[test]
        fn no_action_removes_a_member_the_spec_keeps(d in desired_strategy(), o in observed_strategy()) {
            for a in plan(&d, o.as_ref()).actions {
                if let Action::UpdateAudience { diff, .. } = a {
                    prop_assert!(diff.remove_members.iter().all(|m| !d.members.contains(m)));
                    prop_assert!(diff.remove_exclusions.iter().all(|m| !d.exclusions.contains(m)));
                }
            }
        }
    }
}
