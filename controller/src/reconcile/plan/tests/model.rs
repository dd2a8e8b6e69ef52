//! A model of the whole pass over a rollout: random sequences of what people do (add, rename, remove and
//! withdraw waves, promote, abort, pause, resume) and what happens to DeviceGroups (deleted, made again),
//! each followed by a pass of the planner whose Graph writes are carried out on a model of the deployment
//! and whose rollout status is recorded, as the controller does. After every pass: a pause goes first, a
//! held rollout sends nothing and stays paused, a sent wave's devices stay offered until the spec withdraws
//! them, and a DeviceGroup the spec names anywhere is never deleted.

use std::collections::BTreeMap;

use super::properties::apply;
use super::*;

/// What a wave offers: one device, or one DeviceGroup.
#[derive(Debug, Clone, PartialEq)]
enum Member {
    Device(u32),
    Group(&'static str),
}

const GROUPS: [&str; 3] = ["ga", "gb", "gc"];

impl Member {
    fn item(&self) -> serde_json::Value {
        match self {
            Member::Device(i) => json!({"device": dev(*i).id}),
            Member::Group(g) => json!({"deviceGroup": g}),
        }
    }

    /// The audience member Graph holds for it.
    fn asset(&self) -> AssetRef {
        match self {
            Member::Device(i) => dev(*i),
            Member::Group(g) => AssetRef::group(format!("gid-{g}")),
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    AddWave(Member, bool),
    RemoveWave(usize),
    RenameWave(usize),
    /// Lists a retained wave in withdrawnWaves.
    Withdraw(usize),
    Promote(usize),
    Abort,
    Pause(bool),
    DeleteGroup(usize),
    CreateGroup(usize),
    Wait(u32),
}

fn action() -> impl Strategy<Value = Action> {
    let member = prop_oneof![
        (10u32..16).prop_map(Member::Device),
        (0usize..GROUPS.len()).prop_map(|g| Member::Group(GROUPS[g])),
    ];
    prop_oneof![
        3 => (member, any::<bool>()).prop_map(|(m, manual)| Action::AddWave(m, manual)),
        1 => (0usize..6).prop_map(Action::RemoveWave),
        1 => (0usize..6).prop_map(Action::RenameWave),
        1 => (0usize..6).prop_map(Action::Withdraw),
        2 => (0usize..6).prop_map(Action::Promote),
        1 => Just(Action::Abort),
        1 => any::<bool>().prop_map(Action::Pause),
        1 => (0usize..GROUPS.len()).prop_map(Action::DeleteGroup),
        1 => (0usize..GROUPS.len()).prop_map(Action::CreateGroup),
        1 => (1u32..120).prop_map(Action::Wait),
    ]
}

struct Wave {
    name: String,
    member: Member,
    manual: bool,
    renamed_from: Option<String>,
}

struct World {
    now: chrono::DateTime<Utc>,
    generation: i64,
    waves: Vec<Wave>,
    withdrawn: Vec<String>,
    paused: bool,
    annotations: BTreeMap<&'static str, String>,
    /// DeviceGroups that exist (Ready, with a Graph group).
    groups: BTreeSet<&'static str>,
    graph: ObservedDeployment,
    rollout: Option<serde_json::Value>,
    /// What each sent wave offered, by its current name, until withdrawnWaves names it.
    sent: BTreeMap<String, AssetRef>,
    names: u32,
}

impl World {
    fn new() -> Self {
        let mut graph = observed_of(&desired());
        graph.members.clear();
        graph.exclusions.clear();
        World {
            now: "2026-06-01T00:00:00Z".parse().unwrap(),
            generation: 1,
            waves: Vec::new(),
            withdrawn: Vec::new(),
            paused: false,
            annotations: BTreeMap::new(),
            groups: GROUPS.into_iter().collect(),
            graph,
            rollout: None,
            sent: BTreeMap::new(),
            names: 0,
        }
    }

    fn spec(&self) -> serde_json::Value {
        let waves: Vec<serde_json::Value> = self
            .waves
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let mut v = json!({"name": w.name, "members": [w.member.item()]});
                if k > 0 && w.manual {
                    v["gate"] = json!({"manual": true});
                } else if k > 0 {
                    v["gate"] = json!({"wait": "30m"});
                }
                if let Some(old) = &w.renamed_from {
                    v["renamedFrom"] = json!(old);
                }
                v
            })
            .collect();
        let mut rollout = json!({"waves": waves});
        if !self.withdrawn.is_empty() {
            rollout["withdrawnWaves"] = json!(self.withdrawn);
        }
        json!({"content": {"latest": true}, "paused": self.paused, "rollout": rollout})
    }

    fn object(&self) -> ExpeditedDeployment {
        let mut status = status_with_deployment();
        status["observedGeneration"] = json!(self.generation - 1);
        if let Some(r) = &self.rollout {
            status["rollout"] = r.clone();
        }
        let mut o = object(self.spec(), Some(status));
        o.metadata.generation = Some(self.generation);
        o.metadata.annotations = Some(
            self.annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
        o
    }

    fn observation(&self) -> Observation {
        let fact = |m: &Member| match m {
            Member::Device(i) => ItemFact::Device(dev(*i).id.into()),
            Member::Group(g) if self.groups.contains(g) => ItemFact::Group {
                id: format!("gid-{g}"),
                devices: std::sync::Arc::new([dev(20 + g.len() as u32).id.into()].into()),
            },
            Member::Group(g) => ItemFact::Waiting(format!("DeviceGroup {g} does not exist")),
        };
        let mut o = observation(Known::Found(DeploymentFacts {
            graph_state: Some(
                if self.graph.paused_requested {
                    "paused"
                } else {
                    "offering"
                }
                .into(),
            ),
            observed: self.graph.clone(),
            state_reasons: vec![],
            device_errors: vec![],
            audience_never_listed: false,
            audience_id: None,
        }));
        o.at = self.now;
        o.audience = Some(AudienceFacts {
            members: vec![],
            exclusions: vec![],
            waves: self.waves.iter().map(|w| vec![fact(&w.member)]).collect(),
        });
        o
    }

    fn fresh_name(&mut self) -> String {
        self.names += 1;
        format!("w{}", self.names)
    }

    /// Carries out a user action or a group event; a spec edit bumps the generation.
    fn act(&mut self, a: &Action) -> Result<(), TestCaseError> {
        let at = |k: usize, len: usize| (len > 0).then(|| k % len);
        match a {
            Action::AddWave(member, manual) => {
                let name = self.fresh_name();
                self.waves.push(Wave {
                    name,
                    member: member.clone(),
                    manual: *manual,
                    renamed_from: None,
                });
            }
            Action::RemoveWave(k) => {
                let Some(k) = at(*k, self.waves.len()) else {
                    return Ok(());
                };
                self.waves.remove(k);
            }
            Action::RenameWave(k) => {
                let Some(k) = at(*k, self.waves.len()) else {
                    return Ok(());
                };
                let name = self.fresh_name();
                let w = &mut self.waves[k];
                w.renamed_from = Some(std::mem::replace(&mut w.name, name.clone()));
                if let Some(asset) = self.sent.remove(w.renamed_from.as_ref().unwrap()) {
                    self.sent.insert(name, asset);
                }
            }
            Action::Withdraw(k) => {
                let retained: Vec<String> = self
                    .sent
                    .keys()
                    .filter(|n| !self.waves.iter().any(|w| &w.name == *n))
                    .cloned()
                    .collect();
                let Some(k) = at(*k, retained.len()) else {
                    return Ok(());
                };
                self.sent.remove(&retained[k]);
                self.withdrawn.push(retained[k].clone());
            }
            Action::Promote(k) => {
                let Some(k) = at(*k, self.waves.len()) else {
                    return Ok(());
                };
                let value = format!("{}@{}", self.waves[k].name, self.now.to_rfc3339());
                self.annotations.insert(crate::crd::annotations::PROMOTE, value);
                return Ok(());
            }
            Action::Abort => {
                self.annotations
                    .insert(crate::crd::annotations::ABORT, self.now.to_rfc3339());
                return Ok(());
            }
            Action::Pause(p) => self.paused = *p,
            Action::DeleteGroup(g) => {
                // The DeviceGroup's own cleanup asks who uses it, as the controller does.
                let name = GROUPS[*g];
                let obj = self.object();
                let users: Vec<String> = obj
                    .spec
                    .uses_device_group(name)
                    .then(|| "n/r".to_string())
                    .into_iter()
                    .collect();
                let group: DeviceGroup = serde_json::from_value(json!({
                    "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
                    "metadata": {"name": name, "namespace": "n"},
                    "spec": {"devices": []},
                    "status": {"groupId": format!("gid-{name}")},
                }))
                .unwrap();
                let in_use = self.waves.iter().any(|w| w.member == Member::Group(name));
                match plan_group_cleanup(&group, users) {
                    GroupCleanup::Delete { .. } => {
                        prop_assert!(!in_use, "group {name} deleted while a wave names it");
                        self.groups.remove(name);
                    }
                    GroupCleanup::Wait { .. } => prop_assert!(in_use, "group {name} held with no user"),
                }
                return Ok(());
            }
            Action::CreateGroup(g) => {
                self.groups.insert(GROUPS[*g]);
                return Ok(());
            }
            Action::Wait(mins) => {
                self.now += chrono::Duration::minutes(i64::from(*mins));
                return Ok(());
            }
        }
        self.generation += 1;
        Ok(())
    }

    /// One pass: plan, check, carry out.
    fn pass(&mut self) -> Result<(), TestCaseError> {
        let obj = self.object();
        let obs = self.observation();
        let p = plan(&obj, &obs, &PlanConfig::default());
        // A halt holds until a retry; an abort until the spec changes (a new generation).
        let held_before = self.rollout.as_ref().is_some_and(|r| {
            !r["halt"].is_null() || r["aborted"]["generation"].as_i64() == Some(self.generation)
        });
        let wants_pause = self.paused || held_before;
        if wants_pause && !self.graph.paused_requested {
            prop_assert_eq!(p.steps.first(), Some(&pause()), "pause first: {:?}", p.steps);
        }
        let sent_before: BTreeSet<String> = self.sent.keys().cloned().collect();
        let any_sent_before = self.rollout.as_ref().is_some_and(|r| {
            r["waves"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(|w| !w["promotedTime"].is_null()))
        });
        let graph = apply(&p.steps, Some(&self.graph)).expect("the deployment stays");
        // A sent wave's devices stay offered until withdrawnWaves names it.
        for (name, asset) in &self.sent {
            prop_assert!(
                graph.members.contains(asset),
                "wave {name}'s {asset:?} withdrawn: {:?}",
                p.steps
            );
        }
        if let Some(r) = &p.facts.rollout {
            let r = serde_json::to_value(r).unwrap();
            let held = !r["halt"].is_null() || !r["aborted"].is_null();
            if held || self.paused {
                prop_assert!(graph.paused_requested, "held or paused, yet offering: {r}");
            }
            for w in r["waves"].as_array().into_iter().flatten() {
                let name = w["name"].as_str().unwrap().to_string();
                if w["promotedTime"].is_null() {
                    continue;
                }
                let Some(wave) = self.waves.iter().find(|x| x.name == name) else {
                    continue;
                };
                if !sent_before.contains(&name) {
                    prop_assert!(!(held_before || held), "wave {name} sent while held: {r}");
                    // While paused only the spec's first wave goes (to the paused deployment), and
                    // only when no wave the spec lists was sent: no later wave follows.
                    let first = self.waves.first().is_some_and(|f| f.name == name);
                    let listed_sent = self.waves.iter().any(|x| sent_before.contains(&x.name));
                    prop_assert!(
                        !self.paused || (first && !listed_sent) || !any_sent_before,
                        "wave {name} sent while paused: {r}"
                    );
                    self.sent.insert(name.clone(), wave.member.asset());
                }
            }
            self.rollout = Some(r);
        }
        self.graph = graph;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_rollout_keeps_its_promises_through_any_sequence_of_passes(actions in proptest::collection::vec(action(), 1..30)) {
        let mut w = World::new();
        w.act(&Action::AddWave(Member::Device(10), false))?;
        w.pass()?;
        for a in &actions {
            w.act(a)?;
            w.pass()?;
        }
    }
}
