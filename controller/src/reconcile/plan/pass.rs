//! One ExpeditedDeployment pass: the gates, in the order they apply, each of which may end the pass
//! (a [`Blocker`], or an end of its own), then the changes and how the pass ends. Adding a blocker is one
//! gate here and one row in the blocker table of the tests.

use super::*;
use crate::crd::annotations::Request;
use crate::crd::validate;
use crate::crd::{
    AudienceStatus, ExpeditedDeployment, ExpeditedDeploymentStatus, ManagementPolicy, ResolvedContent,
};
use crate::graph::AssetRef;
use crate::reconcile::observe::{
    AudienceFacts, DeployedContent, DeploymentFacts, Known, Observation, content_source,
};
use crate::reconcile::outcome::{Next, Outcome};
use crate::reconcile::reasons::Reason;
use crate::reconcile::{adopt, rollout};

/// Why a pass stops at a gate.
enum Stop {
    /// Something blocks it: it writes nothing but the pause, and says why.
    Blocked(Blocker),
    /// It ends with the plan as it stands (its end set by the gate).
    Ended,
}

/// The rest of the pass, or why it stops here.
type Gate<T = ()> = Result<T, Stop>;

/// One ExpeditedDeployment pass being planned: what its gates read, and the plan as it is built.
struct Pass<'a> {
    obj: &'a ExpeditedDeployment,
    obs: &'a Observation,
    cfg: &'a PlanConfig,
    status: ExpeditedDeploymentStatus,
    found: Option<&'a DeploymentFacts>,
    /// The spec's problems (the invalid-spec gate).
    problems: Vec<validate::FieldError>,
    /// What `spec.content` resolves to, once, when the catalog was read for a valid spec.
    content: Option<Result<ResolvedContent, Blocker>>,
    /// The rollout's decision, for a valid spec with waves.
    rollout: Option<rollout::Decision>,
    /// Whether the brake paused the deployment this pass.
    braked: bool,
    /// What a pass that stops early records of the rollout: a new halt or abort (its pause was
    /// written), nothing else (a wave is recorded as sent only by a pass that sends it).
    held: Option<(crate::crd::RolloutStatus, Vec<Notice>)>,
    p: Plan,
}

pub(super) fn plan_pass(obj: &ExpeditedDeployment, obs: &Observation, cfg: &PlanConfig) -> Plan {
    let mut pass = Pass::new(obj, obs, cfg);
    match pass.gates() {
        Ok(()) => {}
        Err(Stop::Blocked(b)) => pass.block(b),
        Err(Stop::Ended) => {}
    }
    pass.p
}

impl<'a> Pass<'a> {
    fn new(obj: &'a ExpeditedDeployment, obs: &'a Observation, cfg: &'a PlanConfig) -> Self {
        let found = obs.deployment.found();
        let problems = validate::expedited_deployment(&obj.spec);
        let content = obs
            .content
            .as_ref()
            .filter(|_| problems.is_empty())
            .map(|c| resolve_content(content_source(&obj.spec), c, obs.at));
        Pass {
            obj,
            obs,
            cfg,
            status: obj.status.clone().unwrap_or_default(),
            found,
            problems,
            content,
            rollout: None,
            braked: false,
            held: None,
            p: Plan {
                notices: Vec::new(),
                steps: Vec::new(),
                end: End::ObserveFailed,
                facts: Facts {
                    content: None,
                    audience: None,
                    device_errors: found.map(|d| d.device_errors.clone()).unwrap_or_default(),
                    missing_since: None,
                    audience_id: found.and_then(|d| d.audience_id.clone()),
                    rollout: None,
                    deployment: found.map(|d| {
                        (
                            d.observed.id.clone(),
                            d.graph_state.clone(),
                            d.state_reasons.clone(),
                        )
                    }),
                },
                desired: None,
                blocker: None,
                poll: None,
            },
        }
    }

    /// The gates, in the order they apply; each may end the pass.
    fn gates(&mut self) -> Gate {
        self.adopt();
        self.decide_rollout();
        self.brake();
        self.spec_valid()?;
        self.adoption_unambiguous()?;
        let audience = self.observed()?;
        self.audience_usable(audience)?;
        let content = self.content_current()?;
        let desired = self.desired(audience, &content);
        let desired = self.observe_only(desired)?;
        let desired = self.audience_manageable(desired)?;
        let desired = self.within_limits(desired)?;
        let desired = self.adopted_matches(desired, &content)?;
        let desired = self.absence_confirmed(desired)?;
        let changes = self.changes(&desired, audience);
        self.not_lagging(&changes)?;
        self.take_steps(changes);
        self.end(desired)
    }

    /// Ends the pass blocked: the outcome and when to look again are the blocker's, and a new halt or
    /// abort is recorded.
    fn block(&mut self, b: Blocker) {
        self.p.end = End::Report {
            outcome: b.outcome(),
            next: b.next(),
        };
        self.p.blocker = Some(b);
        if let Some((st, notices)) = &self.held {
            self.p.facts.rollout = Some(st.clone());
            self.p.notices.extend(notices.iter().cloned());
        }
    }

    /// Ends the pass blocked with `desired` known.
    fn block_with(&mut self, desired: Desired, b: Blocker) -> Stop {
        self.p.desired = Some(desired);
        Stop::Blocked(b)
    }

    /// Records the deployment a lost create made.
    fn adopt(&mut self) {
        if let Some(adopt::Decision::Adopt(id)) = &self.obs.adoption {
            self.p.steps.push(Step::Adopt { id: id.clone() });
        }
    }

    /// The rollout's decision comes before the brake: a halt or an abort is a pause, and a pause goes
    /// first.
    fn decide_rollout(&mut self) {
        let (obj, obs) = (self.obj, self.obs);
        let Some(spec) = obj.spec.rollout.as_ref().filter(|_| self.problems.is_empty()) else {
            return;
        };
        let facts = obs.audience.as_ref().map(wave_facts);
        // The entry this pass deploys: when it is not the one the waves were sent for, they move to the
        // new deployment and the gates measure it afresh.
        let entry = match &self.content {
            Some(Ok(c)) => Some(c.catalog_entry_id.as_str()),
            _ => None,
        };
        let note = |k| crate::crd::annotations::request(obj.metadata.annotations.as_ref(), k);
        let decision = rollout::decide(rollout::Inputs {
            spec,
            paused: obj.spec.paused,
            generation: obj.metadata.generation.unwrap_or_default(),
            promote: note(Request::Promote),
            abort: note(Request::Abort),
            retry: note(Request::Retry),
            recorded: self.status.rollout.as_ref(),
            waves: facts.as_deref(),
            content: entry,
            now: obs.at,
        });
        self.held = Some(&decision)
            .filter(|d| d.hold.is_some() && obs.failed.is_none())
            .map(|d| (d.status.clone(), d.notices.clone()));
        self.rollout = Some(decision);
    }

    /// Pause first, whatever else blocks the pass. A spec that cannot be read keeps a halt or abort
    /// recorded before.
    fn brake(&mut self) {
        let obj = self.obj;
        let recorded = self.status.rollout.as_ref();
        let hold = match &self.rollout {
            Some(d) => d.hold.is_some(),
            None => {
                !self.problems.is_empty()
                    && (rollout::recorded_hold(recorded)
                        || rollout::abort_requested(
                            crate::crd::annotations::request(
                                obj.metadata.annotations.as_ref(),
                                Request::Abort,
                            ),
                            recorded,
                        ))
            }
        };
        self.p.steps.extend(brake(obj, self.obs, hold));
        self.braked = self
            .p
            .steps
            .iter()
            .any(|s| matches!(s, Step::SetPaused { paused: true, .. }));
    }

    fn spec_valid(&mut self) -> Gate {
        if self.problems.is_empty() {
            return Ok(());
        }
        Err(Stop::Blocked(Blocker::InvalidSpec(std::mem::take(
            &mut self.problems,
        ))))
    }

    fn adoption_unambiguous(&self) -> Gate {
        match &self.obs.adoption {
            Some(adopt::Decision::Ambiguous(ids)) => Err(Stop::Blocked(Blocker::AmbiguousAdoption {
                ids: ids.clone(),
                since: (self.status.create_intent.as_ref())
                    .map(|i| i.started_at.clone())
                    .unwrap_or_default(),
            })),
            _ => Ok(()),
        }
    }

    /// The reads a pass needs: a failed one ends it (its error is reported after the brake).
    fn observed(&mut self) -> Gate<&'a AudienceFacts> {
        let obs = self.obs;
        match (&obs.failed, &obs.audience, &obs.content) {
            (None, Some(audience), Some(_)) => Ok(audience),
            // Not read although nothing failed: only an invalid spec skips the reads, and that ended
            // before.
            _ => {
                self.p.end = End::ObserveFailed;
                Err(Stop::Ended)
            }
        }
    }

    fn audience_usable(&self, audience: &AudienceFacts) -> Gate {
        match waiting(self.obj, audience, self.rollout.as_ref()) {
            Some(w) => Err(Stop::Blocked(w)),
            None => Ok(()),
        }
    }

    /// The content, resolved and still deployable.
    fn content_current(&mut self) -> Gate<ResolvedContent> {
        let content = match self.content.take() {
            Some(Ok(c)) => c,
            Some(Err(b)) => return Err(Stop::Blocked(b)),
            None => {
                self.p.end = End::ObserveFailed;
                return Err(Stop::Ended);
            }
        };
        self.p.facts.content = Some(content.clone());
        if content.expired_at(self.obs.at) {
            return Err(Stop::Blocked(Blocker::Content {
                reason: Reason::CONTENT_EXPIRED,
                message: format!(
                    "spec.content: catalog entry {} ({}) was deployable until {} and Graph no longer deploys it; choose newer content (content.latest, or a newer catalogEntryId or releaseDate)",
                    content.catalog_entry_id,
                    content.display_name.as_deref().unwrap_or("no display name"),
                    content.deployable_until.as_deref().unwrap_or_default()
                ),
            }));
        }
        Ok(content)
    }

    /// What the spec asks for. Sent waves removed from the spec keep their devices offered until
    /// withdrawnWaves names them: nothing Graph's audience holds is taken out meanwhile.
    fn desired(&mut self, audience: &AudienceFacts, content: &ResolvedContent) -> Desired {
        let mut desired = desired(self.obj, audience, content, self.cfg, self.rollout.as_ref());
        let retained = self
            .rollout
            .as_ref()
            .is_some_and(|d| !d.status.retained_waves.is_empty());
        if retained && let (Some(d), Some(r)) = (self.found, self.rollout.as_mut()) {
            let kept: Vec<AssetRef> = d.observed.members.difference(&desired.members).cloned().collect();
            r.status.retained_devices = Some(kept.len() as u64);
            desired.members.extend(kept);
        }
        desired
    }

    /// ObserveOnly reports what it sees and writes nothing.
    fn observe_only(&mut self, desired: Desired) -> Gate<Desired> {
        if self.obj.spec.management_policy != ManagementPolicy::ObserveOnly {
            return Ok(desired);
        }
        self.p.facts.audience = self.found.map(|d| AudienceStatus {
            members: d.observed.members.len() as u64,
            exclusions: d.observed.exclusions.len() as u64,
            devices: 0,
        });
        self.p.desired = Some(desired);
        match self.found {
            Some(d) => {
                self.p.end = End::Report {
                    outcome: Outcome::converged(format!(
                        "observing deployment {} (ObserveOnly: nothing is written)",
                        d.observed.id
                    )),
                    next: Next::Resync,
                };
                Err(Stop::Ended)
            }
            None => Err(Stop::Blocked(Blocker::NothingToObserve)),
        }
    }

    /// Graph lists no audience: for an adopted deployment that may be one Intune manages (whose
    /// audience Graph does not expose, a documented known issue), which the operator must not write. For
    /// its own deployment it only means empty or not visible yet (a read lagging the audience write, or
    /// the 404 the service answers for an audience that never had members): the lists read as empty,
    /// and the writes, which are set operations, are sent again.
    fn audience_manageable(&mut self, desired: Desired) -> Gate<Desired> {
        match self.found {
            Some(d) if d.audience_never_listed && desired.adopted => {
                let id = d.observed.id.clone();
                Err(self.block_with(desired, Blocker::AudienceNotManageable { id }))
            }
            _ => Ok(desired),
        }
    }

    /// The blast-radius guard. A rollout is bounded as a whole: every wave counts, sent or not.
    fn within_limits(&mut self, desired: Desired) -> Gate<Desired> {
        let devices = desired.devices.max(desired.rollout_devices);
        match desired.device_limit {
            Some((limit, source)) if devices > limit => Err(self.block_with(
                desired,
                Blocker::AudienceTooLarge {
                    devices,
                    limit,
                    source,
                },
            )),
            _ => Ok(desired),
        }
    }

    /// An adopted deployment is never created or replaced: it must exist and carry the content.
    fn adopted_matches(&mut self, desired: Desired, content: &ResolvedContent) -> Gate<Desired> {
        if !desired.adopted {
            return Ok(desired);
        }
        let id = self.obj.spec.deployment_id.clone().unwrap_or_default();
        match self.found {
            None => Err(self.block_with(desired, Blocker::AdoptedDeploymentMissing { id })),
            Some(d) if !content_matches(&desired, &d.observed.content) => {
                let b = Blocker::AdoptedContentDiffers {
                    id,
                    deployed: describe_content(&d.observed.content),
                    wanted: content.catalog_entry_id.clone(),
                };
                Err(self.block_with(desired, b))
            }
            Some(d) if d.observed.content == DeployedContent::Unknown => {
                // Graph did not name the adopted deployment's catalog entry: it is managed as asked, and
                // the admin is told that its content could not be checked.
                self.p.notices.push(Notice {
                    warning: true,
                    reason: Reason::CONTENT_UNVERIFIED,
                    action: "Adopt",
                    message: format!(
                        "Graph does not name the catalog entry of adopted deployment {id}, so the operator cannot check that it deploys {}; check it in Graph",
                        content.catalog_entry_id
                    ),
                });
                Ok(desired)
            }
            Some(_) => Ok(desired),
        }
    }

    /// A recorded deployment Graph answers 404 for is created again only when it stays missing: a read
    /// can lag the write that made it, and one 404 must never make a second deployment.
    fn absence_confirmed(&mut self, desired: Desired) -> Gate<Desired> {
        let (Some(id), Known::Missing(_), None, false) = (
            &self.status.deployment_id,
            &self.obs.deployment,
            self.found,
            desired.adopted,
        ) else {
            return Ok(desired);
        };
        if let Some((since, left)) = absence_wait(self.status.missing_since.as_deref(), self.obs.at, self.cfg)
        {
            self.p.facts.missing_since = Some(since);
            self.p.end = End::Report {
                outcome: Outcome::progressing(
                    Reason::CONFIRMING_ABSENCE,
                    format!(
                        "Graph answered 404 for deployment {id}; reading it again in {}s before creating it again (a read can lag a write, so one 404 is not proof it is gone)",
                        left.as_secs().max(1)
                    ),
                ),
                // Read again soon (most lag is seconds), and at the latest when the wait is over.
                next: Next::After(left.clamp(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(5),
                )),
            };
            self.p.desired = Some(desired);
            return Err(Stop::Ended);
        }
        self.p.notices.push(Notice {
            warning: true,
            reason: Reason::DEPLOYMENT_MISSING,
            action: "Recreate",
            message: format!(
                "deployment {id} was deleted outside the operator (Graph answered 404 for at least {}s); creating it again",
                self.cfg.absence_confirm.as_secs()
            ),
        });
        Ok(desired)
    }

    /// Nothing blocks: the changes, after the brake (whose pause they need not repeat).
    fn changes(&mut self, desired: &Desired, audience: &AudienceFacts) -> Vec<Step> {
        let observed = self.found.map(|d| {
            let mut o = d.observed.clone();
            o.paused_requested |= self.braked;
            o
        });
        let changes = changes(desired, observed.as_ref(), self.cfg.batch_size);
        // With waves, taking devices out of the audience is worth a Warning: what was offered is
        // withdrawn.
        let withdrawn: usize = changes
            .iter()
            .map(|s| match s {
                Step::UpdateAudience { diff, .. } => diff.remove_members.len(),
                _ => 0,
            })
            .sum();
        if self.obj.spec.rollout.is_some() && withdrawn > 0 {
            self.p.notices.push(Notice {
                warning: true,
                reason: Reason::MEMBERS_WITHDRAWN,
                action: "Withdraw",
                message: format!(
                    "withdrawing {withdrawn} audience member(s) the spec no longer lists: they are no longer offered the update"
                ),
            });
        }
        self.p.facts.audience = Some(AudienceStatus {
            members: desired.members.len() as u64,
            exclusions: audience.exclusions.len() as u64,
            devices: desired.devices,
        });
        changes
    }

    /// The spec is the one the last write carried out, and that write is recent: what Graph does not
    /// show may be lag, so it is waited for (within the budget) instead of sent twice. A create is never
    /// waited for (its absence is confirmed above), nor is the brake. A rollout that moved this pass (a
    /// wave sent, a halt lifted) asks for something new: not lag.
    fn not_lagging(&mut self, changes: &[Step]) -> Gate {
        let moved = self
            .rollout
            .as_ref()
            .is_some_and(|d| rollout::moved_from(d, self.status.rollout.as_ref()));
        let Some(left) = lag_left(self.obj, &self.status, self.obs.at, self.cfg) else {
            return Ok(());
        };
        if moved
            || changes.is_empty()
            || changes.iter().any(|s| matches!(s, Step::Create { .. }))
            || self.p.steps.iter().any(|s| matches!(s, Step::Adopt { .. }))
        {
            return Ok(());
        }
        self.p.end = End::Report {
            outcome: Outcome::progressing(
                Reason::VERIFYING,
                format!(
                    "Graph does not show all of the last write yet (reads can lag writes); waiting up to {}s more (--read-lag-budget) before sending what is still missing",
                    left.as_secs().max(1)
                ),
            ),
            next: Next::After(left.min(std::time::Duration::from_secs(5))),
        };
        Err(Stop::Ended)
    }

    /// The changes join the plan's steps (an interrupted create's audience used again, not made twice).
    fn take_steps(&mut self, changes: Vec<Step>) {
        let intent = self.status.create_intent.as_ref();
        if let Some(intent) = intent.filter(|i| i.audience_id.is_none())
            && changes.iter().any(|s| matches!(s, Step::Create { .. }))
        {
            // Audiences carry no name or time to find one by: the one an interrupted create may have
            // made cannot be found again.
            self.p.notices.push(Notice {
                warning: true,
                reason: Reason::CREATE_INTERRUPTED,
                action: "Create",
                message: format!(
                    "a create started at {} was interrupted before its audience id was recorded; an empty deploymentAudience may be left in the tenant (no deployment uses it); creating the audience again",
                    intent.started_at
                ),
            });
        }
        let reused = intent.and_then(|i| i.audience_id.clone());
        self.p.steps.extend(changes.into_iter().map(|s| match s {
            Step::Create {
                content, settings, ..
            } => Step::Create {
                content,
                settings,
                audience: reused.clone(),
            },
            other => other,
        }));
        // The brake's pause, too, shows in Graph before an audience write.
        self.p.steps = await_pauses(std::mem::take(&mut self.p.steps));
    }

    /// How the pass ends: the rollout's hold, retained waves or gate wait, else verifying or converged.
    fn end(&mut self, desired: Desired) -> Gate {
        let p = &mut self.p;
        p.desired = Some(desired);
        let next = if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        };
        if let Some(d) = self.rollout.take() {
            p.notices.extend(d.notices);
            let retained = !d.status.retained_waves.is_empty();
            let retained_waves = d.status.retained_waves.join(", ");
            let kept = d.status.retained_devices.unwrap_or_default();
            p.facts.rollout = Some(d.status);
            if let Some(h) = d.hold {
                p.end = End::Report {
                    outcome: Outcome::stalled(h.reason(), h.message()),
                    next,
                };
                return Ok(());
            }
            if retained && p.steps.is_empty() {
                p.end = End::Report {
                    outcome: Outcome::progressing(
                        Reason::WITHDRAWAL_NOT_CONFIRMED,
                        format!(
                            "spec.rollout.waves no longer lists sent wave(s) {retained_waves}: their devices stay offered ({kept} audience member(s) kept) until spec.rollout.withdrawnWaves names them, or rename a wave with renamedFrom"
                        ),
                    ),
                    next: Next::Resync,
                };
                return Ok(());
            }
            if let (Some((message, after)), true) = (d.waiting, p.steps.is_empty()) {
                p.end = End::Report {
                    outcome: Outcome::progressing(Reason::WAITING_FOR_GATE, message),
                    next: after.map_or(Next::Resync, |a| {
                        Next::After(a.max(std::time::Duration::from_secs(1)))
                    }),
                };
                return Ok(());
            }
        }
        p.end = End::Report {
            outcome: if p.steps.is_empty() {
                Outcome::converged("Graph matches the spec")
            } else {
                let n = p
                    .steps
                    .iter()
                    .filter(|s| !matches!(s, Step::Adopt { .. } | Step::AwaitPaused { .. }))
                    .count();
                Outcome::progressing(
                    Reason::VERIFYING,
                    format!("sent {n} change(s) to Graph; verifying"),
                )
            },
            next,
        };
        Ok(())
    }
}
