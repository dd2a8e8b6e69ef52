//! plan: every decision of a pass, pure, over an [`Observation`]. No I/O; `plan` (the CLI) and the
//! controller run the same functions, so a preview cannot disagree with what the controller then does.
//!
//! The rules, in the order they apply:
//! 1. **Pause first.** A paused spec with a known deployment that is not paused gets the pause before
//!    anything else, whatever else blocks the pass (an invalid spec, a waiting group, the blast-radius
//!    guard, a failed read). It is the one write a blocked spec may cause. ObserveOnly never writes.
//! 2. **Blocked passes write nothing else.** Each [`Blocker`] says why, in the words status and Events
//!    use.
//! 3. **Changes** go in a safe order: a new deployment is paused (when asked) before it gets an audience;
//!    exclusions are added before members and removed last; a resume goes last; a content change creates
//!    the replacement with the same audience before the old one is deleted. Audience writes are set
//!    differences, batched, never re-sending what is there.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::adopt;
use super::observe::{
    AudienceFacts, CatalogFact, DeployedContent, GroupObservation, ItemFact, Known, Observation,
    ObservedDeployment, content_source, describe_newest, passes, settings_of,
};
use super::reasons::Reason;
use super::requeue::Next;
use super::status::Outcome;
use crate::crd::annotations::Request;
use crate::crd::validate::{self, FieldError};
use crate::crd::{
    AudienceStatus, DeletionPolicy, DeviceError, DeviceGroup, DeviceId, ExpeditedDeployment,
    ExpeditedDeploymentStatus, ManagementPolicy, ResolvedContent,
};
use crate::graph::models::{CatalogEntry, Expedite, SettingsPatch};
use crate::graph::{AssetRef, AudienceUpdate, ContentRequest, SettingsRequest};

/// What the planner needs besides the object and its observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// The operator-wide device limit (`--max-audience-devices`).
    pub operator_limit: Option<u64>,
    /// Assets per audience or group write.
    pub batch_size: usize,
    /// How long a recorded deployment must stay missing before it is created again.
    pub absence_confirm: std::time::Duration,
    /// See `Settings::read_lag_budget`.
    pub read_lag_budget: std::time::Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            operator_limit: None,
            batch_size: crate::graph::DEFAULT_BATCH_SIZE,
            absence_confirm: crate::reconcile::settings::DEFAULT_ABSENCE_CONFIRM,
            read_lag_budget: std::time::Duration::ZERO,
        }
    }
}

impl From<&crate::reconcile::settings::Settings> for PlanConfig {
    /// The planner's settings from the operator's: what `run` and every CLI command that plans use.
    fn from(s: &crate::reconcile::settings::Settings) -> Self {
        PlanConfig {
            operator_limit: s.max_audience_devices,
            batch_size: s.connections.batch_size,
            absence_confirm: s.absence_confirm,
            read_lag_budget: s.read_lag_budget,
        }
    }
}

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

/// Which deployment a step targets: an existing one, or the one the plan's `Create` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Existing(String),
    New,
}

/// Set differences to apply to an audience.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AudienceDiff {
    pub add_members: Vec<AssetRef>,
    pub remove_members: Vec<AssetRef>,
    pub add_exclusions: Vec<AssetRef>,
    pub remove_exclusions: Vec<AssetRef>,
}

impl AudienceDiff {
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    pub fn size(&self) -> usize {
        self.add_members.len()
            + self.remove_members.len()
            + self.add_exclusions.len()
            + self.remove_exclusions.len()
    }

    /// The `updateAudience` requests that apply the diff, in waves: each wave's requests may go at once,
    /// and a wave starts when the one before it is done (and, where it depends on it, visible: see
    /// `act::send_audience`). Requests hold at most `batch` assets; the waves are those adding
    /// exclusions, then the member changes, then those removing exclusions, so no device is offered the
    /// update before its exclusion is in place and the number of calls stays at the lower bound
    /// (`ceil(assets / batch)`, one more at most for the pairs below). An asset both excluded and added
    /// as a member goes in one request with both, first: a device in both lists is documented as not
    /// targeted, so no order of applying requests can offer it the update.
    pub fn waves(&self, batch: usize) -> Vec<Vec<AudienceUpdate<'_>>> {
        type Item<'a> = (&'static str, &'a AssetRef);
        let batch = batch.max(1);
        let excluded: BTreeSet<&AssetRef> = self.add_exclusions.iter().collect();
        let paired: BTreeSet<&AssetRef> = self.add_members.iter().filter(|a| excluded.contains(a)).collect();
        // Units that must share a request: a pair, or one asset.
        let units: Vec<Vec<Item>> = paired
            .iter()
            .map(|a| vec![("addExclusions", *a), ("addMembers", *a)])
            .chain(
                self.add_exclusions
                    .iter()
                    .filter(|a| !paired.contains(a))
                    .map(|a| vec![("addExclusions", a)]),
            )
            .chain(self.remove_members.iter().map(|a| vec![("removeMembers", a)]))
            .chain(
                self.add_members
                    .iter()
                    .filter(|a| !paired.contains(a))
                    .map(|a| vec![("addMembers", a)]),
            )
            .chain(
                self.remove_exclusions
                    .iter()
                    .map(|a| vec![("removeExclusions", a)]),
            )
            .collect();
        let mut chunks: Vec<Vec<Item>> = Vec::new();
        for unit in units {
            match chunks.last_mut() {
                Some(c) if c.len() + unit.len() <= batch => c.extend(unit),
                _ => chunks.push(unit),
            }
        }
        let adds_exclusions = |c: &[Item]| c.iter().any(|(f, _)| *f == "addExclusions");
        let removes_exclusions = |c: &[Item]| c.iter().any(|(f, _)| *f == "removeExclusions");
        // 0: adds exclusions; 2: removes exclusions (and adds none); 1: the member changes.
        let wave_of = |c: &[Item]| {
            if adds_exclusions(c) {
                0
            } else if removes_exclusions(c) {
                2
            } else {
                1
            }
        };
        let mut waves: [Vec<AudienceUpdate<'_>>; 3] = Default::default();
        for chunk in &chunks {
            waves[wave_of(chunk)].push(AudienceUpdate::of(chunk.iter().copied()));
        }
        waves.into_iter().filter(|w| !w.is_empty()).collect()
    }
}

/// One planned write, and the bookkeeping around it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Record the deployment a lost create made (a status write; no Graph write).
    Adopt {
        id: String,
    },
    /// Record a create intent (resourceVersion-checked), create, record the id.
    Create {
        content: ContentRequest,
        settings: SettingsRequest,
        /// The audience an interrupted create already made, reused; `None`: one is created first.
        audience: Option<String>,
    },
    SetPaused {
        target: Target,
        paused: bool,
    },
    UpdateSettings {
        id: String,
        /// The owned settings after the write.
        settings: SettingsRequest,
        /// What the PATCH sends: the parts that differ.
        patch: SettingsPatch,
        legacy: bool,
    },
    /// Read the deployment until Graph shows it paused (bounded), before an audience write: a PATCH is
    /// answered 202, accepted and not yet applied, so the order of requests proves nothing.
    AwaitPaused {
        target: Target,
    },
    UpdateAudience {
        target: Target,
        diff: AudienceDiff,
        /// Assets per request: the requests are `diff.waves(batch)`.
        batch: usize,
    },
    /// Delete the deployment this plan replaced.
    DeleteReplaced {
        id: String,
    },
}

impl Step {
    /// A short description for Events and the plan command.
    pub fn describe(&self) -> String {
        match self {
            Step::Adopt { id } => format!("adopt deployment {id} (made by a create whose answer was lost)"),
            Step::Create { content, .. } => match content {
                ContentRequest::CatalogEntry(id) => format!("create deployment of catalog entry {id}"),
                ContentRequest::ReleaseDate { date, .. } => {
                    format!("create deployment of the {date} security update")
                }
            },
            Step::SetPaused { paused: true, .. } => "pause deployment".into(),
            Step::SetPaused { paused: false, .. } => "resume deployment".into(),
            Step::UpdateSettings { .. } => "update deployment settings".into(),
            Step::AwaitPaused { .. } => "wait until Graph shows the pause".into(),
            Step::UpdateAudience { diff, .. } => {
                let mut s = format!(
                    "update audience: +{} members, -{} members, +{} exclusions, -{} exclusions",
                    diff.add_members.len(),
                    diff.remove_members.len(),
                    diff.add_exclusions.len(),
                    diff.remove_exclusions.len()
                );
                if !diff.remove_members.is_empty() {
                    s.push_str(&format!("; withdraw {} (destructive)", diff.remove_members.len()));
                }
                s
            }
            Step::DeleteReplaced { id } => format!("delete replaced deployment {id}"),
        }
    }

    /// The Graph writes the step makes, by operation (as the Graph client names them).
    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            Step::Adopt { .. } | Step::AwaitPaused { .. } => vec![],
            Step::Create { audience: None, .. } => vec!["create deployment audience", "create deployment"],
            Step::Create { .. } => vec!["create deployment"],
            Step::SetPaused { paused: true, .. } => vec!["pause deployment"],
            Step::SetPaused { paused: false, .. } => vec!["resume deployment"],
            Step::UpdateSettings { .. } => vec!["update deployment settings"],
            Step::UpdateAudience { diff, batch, .. } => {
                vec!["update deployment audience"; diff.size().div_ceil((*batch).max(1))]
            }
            Step::DeleteReplaced { .. } => vec!["delete deployment"],
        }
    }
}

/// An Event the pass sends before it acts (what it noticed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: Reason,
    pub action: &'static str,
    pub message: String,
}

/// Why a pass writes nothing (but the pause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    InvalidSpec(Vec<FieldError>),
    AmbiguousAdoption {
        ids: Vec<String>,
        since: String,
    },
    /// An audience item cannot be used yet (`field` is its path).
    Waiting {
        field: String,
        why: String,
    },
    Content {
        reason: Reason,
        message: String,
    },
    AudienceNotManageable {
        id: String,
    },
    AudienceTooLarge {
        devices: u64,
        limit: u64,
        source: &'static str,
    },
    AdoptedDeploymentMissing {
        id: String,
    },
    AdoptedContentDiffers {
        id: String,
        deployed: String,
        wanted: String,
    },
    /// ObserveOnly with no deployment to observe.
    NothingToObserve,
}

impl Blocker {
    /// How status and Events say it.
    pub fn outcome(&self) -> Outcome {
        match self {
            Blocker::InvalidSpec(problems) => Outcome::stalled(
                Reason::INVALID_SPEC,
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Blocker::AmbiguousAdoption { ids, since } => Outcome::stalled(
                Reason::AMBIGUOUS_ADOPTION,
                format!(
                    "found {} Graph deployments created since {since} with this object's settings and either its content or content Graph does not name, not claimed by another object: {}; set spec.deploymentId to the right one and delete the others in Graph",
                    ids.len(),
                    ids.join(", ")
                ),
            ),
            Blocker::Waiting { field, why } => Outcome::progressing(
                Reason::WAITING_FOR_DEVICE_GROUP,
                format!("{field}: {why} (nothing is written until it is)"),
            ),
            Blocker::Content { reason, message } => Outcome::stalled(*reason, message.clone()),
            Blocker::AudienceNotManageable { id } => Outcome::stalled(
                Reason::AUDIENCE_NOT_MANAGEABLE,
                format!(
                    "Graph does not expose the audience of deployment {id} (deployments created through Intune cannot be managed through Graph); manage it in Intune, or remove spec.deploymentId"
                ),
            ),
            Blocker::AudienceTooLarge {
                devices,
                limit,
                source,
            } => Outcome::stalled(
                Reason::AUDIENCE_TOO_LARGE,
                format!(
                    "the audience reaches {devices} devices, more than the limit of {limit} set by {source}; nothing was sent to Graph (raise the limit or shrink the audience)"
                ),
            ),
            Blocker::AdoptedDeploymentMissing { id } => Outcome::stalled(
                Reason::DEPLOYMENT_NOT_FOUND,
                format!(
                    "spec.deploymentId: Graph has no deployment {id} (remove spec.deploymentId to let the operator create one)"
                ),
            ),
            Blocker::AdoptedContentDiffers { id, deployed, wanted } => Outcome::stalled(
                Reason::CONTENT_DIFFERS,
                format!(
                    "spec.content resolves to {wanted} but adopted deployment {id} carries {deployed}; change spec.content to match, or remove spec.deploymentId to let the operator replace it"
                ),
            ),
            Blocker::NothingToObserve => Outcome::stalled(
                Reason::DEPLOYMENT_NOT_FOUND,
                "ObserveOnly: no deployment to observe (set spec.deploymentId)",
            ),
        }
    }

    /// When to look again: a waiting group soon, anything else at the resync.
    pub fn next(&self) -> Next {
        match self {
            Blocker::Waiting { .. } => Next::Soon,
            _ => Next::Resync,
        }
    }
}

/// How a pass ends once its steps are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Report this outcome and look again then.
    Report { outcome: Outcome, next: Next },
    /// A read failed: report its error (after the steps, which are at most the brake).
    ObserveFailed,
}

/// The status facts a pass reports besides its outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub content: Option<ResolvedContent>,
    pub audience: Option<AudienceStatus>,
    pub device_errors: Vec<DeviceError>,
    /// The deployment as observed: id, effective state and state reasons.
    pub deployment: Option<(String, Option<String>, Vec<String>)>,
    /// When the recorded deployment was first seen missing, while that is being confirmed.
    pub missing_since: Option<String>,
    /// The observed deployment's audience id.
    pub audience_id: Option<String>,
    /// Where `spec.rollout` stands after this pass, when the pass decided it.
    pub rollout: Option<crate::crd::RolloutStatus>,
}

/// The plan of an ExpeditedDeployment pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub notices: Vec<Notice>,
    pub steps: Vec<Step>,
    pub end: End,
    pub facts: Facts,
    /// What the spec resolved to, when it resolved.
    pub desired: Option<Desired>,
    /// Why the pass writes nothing (but the pause), when it does not.
    pub blocker: Option<Blocker>,
}

impl Plan {
    /// Whether the pass's own Warnings already tell the stall it ends in (a halt or an abort sends its
    /// Warning as it happens): the stall then gets no second Warning.
    pub fn stall_told(&self, outcome: &Outcome) -> bool {
        outcome.is_stalled()
            && self
                .notices
                .iter()
                .any(|n| n.warning && n.reason == outcome.reason())
    }

    /// Whether Graph already matches: no step, and nothing blocks.
    pub fn is_converged(&self) -> bool {
        self.steps.is_empty() && self.blocker.is_none() && self.end != End::ObserveFailed
    }

    /// Every Graph write the plan makes, by operation.
    pub fn graph_writes(&self) -> Vec<&'static str> {
        self.steps.iter().flat_map(Step::graph_writes).collect()
    }
}

fn content_matches(desired: &Desired, deployed: &DeployedContent) -> bool {
    match (&desired.content, deployed) {
        (_, DeployedContent::Unknown) => true,
        // The legacy form an earlier version sent for the same release date: kept, not replaced.
        (_, DeployedContent::ReleaseDate(d)) => desired.release_date.as_ref() == Some(d),
        (ContentRequest::CatalogEntry(a), DeployedContent::CatalogEntry(b)) => a == b,
        (ContentRequest::ReleaseDate { .. }, DeployedContent::CatalogEntry(_)) => false,
    }
}

/// The PATCH that makes the observed settings match, if any: each owned part that differs, with the
/// unowned `userExperience` fields Graph holds sent back unchanged.
fn settings_patch(desired: &SettingsRequest, o: &ObservedDeployment) -> Option<SettingsPatch> {
    let observed = &o.settings;
    let ux_differs = (desired.days_until_forced_reboot.is_some()
        && desired.days_until_forced_reboot != observed.days_until_forced_reboot)
        || (desired.offer_as_optional.is_some() && desired.offer_as_optional != observed.offer_as_optional);
    let patch = SettingsPatch {
        user_experience: ux_differs.then(|| {
            let mut ux = o.ux_unowned.clone();
            let days = desired
                .days_until_forced_reboot
                .or(observed.days_until_forced_reboot);
            let optional = desired.offer_as_optional.or(observed.offer_as_optional);
            if let Some(d) = days {
                ux.insert("daysUntilForcedReboot".into(), d.into());
            }
            if let Some(b) = optional {
                ux.insert("offerAsOptional".into(), b.into());
            }
            ux
        }),
        expedite: (desired.readiness_test != observed.readiness_test).then_some(Expedite {
            is_expedited: true,
            is_readiness_test: desired.readiness_test,
        }),
    };
    (patch != SettingsPatch::default()).then_some(patch)
}

fn diff(desired: &Desired, members: &BTreeSet<AssetRef>, exclusions: &BTreeSet<AssetRef>) -> AudienceDiff {
    AudienceDiff {
        add_members: desired.members.difference(members).cloned().collect(),
        remove_members: members.difference(&desired.members).cloned().collect(),
        add_exclusions: desired.exclusions.difference(exclusions).cloned().collect(),
        remove_exclusions: exclusions.difference(&desired.exclusions).cloned().collect(),
    }
}

fn audience_step(target: Target, d: AudienceDiff, batch: usize) -> Option<Step> {
    (!d.is_empty()).then_some(Step::UpdateAudience {
        target,
        diff: d,
        batch,
    })
}

/// The writes that make `observed` match `desired` (nothing blocks them). Property-tested below.
pub fn changes(desired: &Desired, observed: Option<&ObservedDeployment>, batch: usize) -> Vec<Step> {
    let fresh = |steps: &mut Vec<Step>| {
        steps.push(Step::Create {
            content: desired.content.clone(),
            settings: desired.settings.clone(),
            audience: None,
        });
        if desired.paused {
            steps.push(Step::SetPaused {
                target: Target::New,
                paused: true,
            });
        }
        steps.extend(audience_step(
            Target::New,
            diff(desired, &BTreeSet::new(), &BTreeSet::new()),
            batch,
        ));
    };
    let mut steps = Vec::new();
    match observed {
        None => fresh(&mut steps),
        Some(o) if !content_matches(desired, &o.content) => {
            // Content cannot change in Graph: create the new deployment with the same audience, then
            // delete the old one, so no device loses the update in between.
            fresh(&mut steps);
            steps.push(Step::DeleteReplaced { id: o.id.clone() });
        }
        Some(o) => {
            let target = Target::Existing(o.id.clone());
            if desired.paused && !o.paused_requested {
                steps.push(Step::SetPaused {
                    target: target.clone(),
                    paused: true,
                });
            }
            if let Some(patch) = settings_patch(&desired.settings, o) {
                steps.push(Step::UpdateSettings {
                    id: o.id.clone(),
                    settings: desired.settings.clone(),
                    patch,
                    legacy: o.legacy,
                });
            }
            steps.extend(audience_step(
                target.clone(),
                diff(desired, &o.members, &o.exclusions),
                batch,
            ));
            if !desired.paused && o.paused_requested {
                steps.push(Step::SetPaused {
                    target,
                    paused: false,
                });
            }
        }
    }
    await_pauses(steps)
}

/// While a recorded object's absence is being confirmed: when it was first seen missing (RFC 3339; `at`
/// for a first 404) and how long is left of `--absence-confirm`. `None` once it has stayed missing long
/// enough to be created again.
fn absence_wait(
    first_missing: Option<&str>,
    at: DateTime<Utc>,
    cfg: &PlanConfig,
) -> Option<(String, std::time::Duration)> {
    let since = first_missing
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t <= at)
        .unwrap_or(at);
    let waited = (at - since).to_std().unwrap_or_default();
    let left = cfg.absence_confirm.checked_sub(waited).filter(|l| !l.is_zero())?;
    Some((since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), left))
}

/// How much of the read-lag budget is left after the object's last write, when the spec is the one that
/// write carried out.
fn lag_left(
    obj: &ExpeditedDeployment,
    status: &ExpeditedDeploymentStatus,
    now: DateTime<Utc>,
    cfg: &PlanConfig,
) -> Option<std::time::Duration> {
    if status.observed_generation.is_none() || status.observed_generation != obj.metadata.generation {
        return None;
    }
    let wrote = DateTime::parse_from_rfc3339(status.last_write_time.as_deref()?).ok()?;
    let since = (now - wrote.with_timezone(&Utc)).to_std().unwrap_or_default();
    cfg.read_lag_budget.checked_sub(since).filter(|l| !l.is_zero())
}

/// Puts a wait for the pause to show between a pause and the audience write that follows it (once).
fn await_pauses(steps: Vec<Step>) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len() + 1);
    for (i, step) in steps.iter().enumerate() {
        out.push(step.clone());
        if let Step::SetPaused { target, paused: true } = step
            && !matches!(steps.get(i + 1), Some(Step::AwaitPaused { target: t }) if t == target)
            && steps[i + 1..]
                .iter()
                .any(|s| matches!(s, Step::UpdateAudience { target: t, .. } if t == target))
        {
            out.push(Step::AwaitPaused {
                target: target.clone(),
            });
        }
    }
    out
}

/// The (at most three) dates of `dates` nearest to `date` (both `YYYY-MM-DD`), or "none listed".
fn nearest(date: &str, dates: &[String]) -> String {
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let Some(target) = day(date) else {
        return "none listed".into();
    };
    let mut known: Vec<(i64, &String)> = dates
        .iter()
        .filter_map(|d| day(d).map(|x| ((x - target).num_days().abs(), d)))
        .collect();
    known.sort();
    known.dedup_by(|a, b| a.1 == b.1);
    let list: Vec<&str> = known.iter().take(3).map(|(_, d)| d.as_str()).collect();
    if list.is_empty() {
        "none listed".into()
    } else {
        list.join(", ")
    }
}

/// What `spec.content` resolves to in the catalog, or why it cannot.
///
/// `releaseDate`: the one expeditable security quality update released on that date (none: Stalled,
/// naming the nearest dates; several: Stalled, naming them; one that cannot be expedited: Stalled). `catalogEntryId`: that entry, if it can be expedited. `latest`: the
/// newest expeditable quality update.
pub fn resolve_content(
    spec_source: String,
    fact: &CatalogFact,
    at: DateTime<Utc>,
) -> Result<ResolvedContent, Blocker> {
    let entry = |e: &CatalogEntry| ResolvedContent {
        source: spec_source.clone(),
        release_date: e.release_date().map(str::to_string),
        display_name: e.display_name.clone(),
        catalog_entry_id: e.id.clone(),
        deployable_until: e.deployable_until_date_time.clone(),
        short_name: e.short_name.clone(),
        cves: e.cves(),
        max_severity: e.max_severity().map(str::to_string),
        resolved_time: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    let refuse = |reason, message: String| Blocker::Content { reason, message };
    match fact {
        CatalogFact::Recorded(r) => Ok(r.clone()),
        CatalogFact::ReleaseDate {
            date,
            entries,
            nearby,
        } => {
            let expeditable: Vec<&CatalogEntry> = entries.iter().filter(|e| e.can_expedite()).collect();
            let named = |list: &[&CatalogEntry]| {
                list.iter()
                    .map(|e| {
                        format!(
                            "{} ({})",
                            e.id,
                            e.display_name.as_deref().unwrap_or("no display name")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match expeditable[..] {
                [one] => Ok(entry(one)),
                [] if !entries.is_empty() => Err(refuse(
                    Reason::CONTENT_NOT_EXPEDITABLE,
                    format!(
                        "spec.content.releaseDate: the security update released on {date} cannot be expedited: {} (use the date of an expeditable security release, or content.latest)",
                        named(&entries.iter().collect::<Vec<_>>())
                    ),
                )),
                [] => Err(refuse(
                    Reason::CONTENT_NOT_FOUND,
                    format!(
                        "spec.content.releaseDate: no security update was released on {date}; the nearest expeditable releases are on {} (use one of those dates, or content.latest)",
                        nearest(date, nearby)
                    ),
                )),
                _ => Err(refuse(
                    Reason::CONTENT_AMBIGUOUS,
                    format!(
                        "spec.content.releaseDate: {} expeditable security updates were released on {date}: {}; name one with spec.content.catalogEntryId",
                        expeditable.len(),
                        named(&expeditable)
                    ),
                )),
            }
        }
        CatalogFact::Entry { id, entry: Some(e) } if e.can_expedite() => Ok(entry(e)),
        CatalogFact::Entry { id, entry: Some(e) } => Err(refuse(
            Reason::CONTENT_NOT_EXPEDITABLE,
            format!(
                "spec.content.catalogEntryId: catalog entry {id} ({}) cannot be expedited (pick an entry whose isExpeditable is true, or use content.latest)",
                e.display_name.clone().unwrap_or_default()
            ),
        )),
        CatalogFact::Entry { id, entry: None } => Err(refuse(
            Reason::CONTENT_NOT_FOUND,
            format!(
                "spec.content.catalogEntryId: the update catalog has no entry {id} (copy an id from the catalog, or use content.latest)"
            ),
        )),
        CatalogFact::Newest { filter, entries } => {
            let field = if spec_source == "latest" {
                "spec.content.latest"
            } else {
                "spec.content.newest"
            };
            newest(filter, entries).map(entry).ok_or_else(|| {
                let newest = entries
                    .iter()
                    .filter(|e| e.can_expedite())
                    .max_by(|a, b| a.release_date().cmp(&b.release_date()))
                    .map_or("the catalog lists no expeditable quality update".to_string(), |e| {
                        format!(
                            "the newest expeditable one is {} ({}, {})",
                            e.short_name.as_deref().unwrap_or(&e.id),
                            e.quality_update_classification.as_deref().unwrap_or("unclassified"),
                            e.release_date().unwrap_or("no release date")
                        )
                    });
                let cve = filter
                    .cve
                    .as_ref()
                    .filter(|c| !entries.iter().any(|e| e.cves().contains(c)))
                    .map(|c| {
                        format!(
                            "; none of the {} newest expeditable entries lists {c} among the exploited CVEs it fixes",
                            entries.len()
                        )
                    })
                    .unwrap_or_default();
                refuse(
                    Reason::CONTENT_NOT_FOUND,
                    format!(
                        "{field}: no expeditable quality update passes {}{cve}; {newest} (loosen the filters, or name an entry with catalogEntryId)",
                        describe_newest(filter)
                    ),
                )
            })
        }
    }
}

/// The newest expeditable entry that passes the filters. With a CVE: among the entries released on or
/// after the first one listing it (quality updates are cumulative, so each of those fixes it).
pub fn newest<'a>(filter: &crate::crd::NewestSpec, entries: &'a [CatalogEntry]) -> Option<&'a CatalogEntry> {
    let since = match &filter.cve {
        Some(cve) => Some(
            entries
                .iter()
                .filter(|e| e.cves().contains(cve))
                .filter_map(|e| e.release_date())
                .min()?,
        ),
        None => None,
    };
    entries
        .iter()
        .filter(|e| e.can_expedite() && passes(filter, e))
        .filter(|e| since.is_none_or(|s| e.release_date().is_some_and(|d| d >= s)))
        .max_by(|a, b| a.release_date().cmp(&b.release_date()))
}

/// The first audience item that cannot be used yet: of the members, the exclusions, or a wave already
/// sent (a wave not sent yet waits at its gate instead).
fn waiting(
    obj: &ExpeditedDeployment,
    audience: &AudienceFacts,
    rollout: Option<&super::rollout::Decision>,
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
fn fact_ids<'a>(lists: &[&'a [ItemFact]]) -> Vec<&'a DeviceId> {
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
fn id_set(mut ids: Vec<&DeviceId>) -> Vec<&DeviceId> {
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
pub fn wave_facts(audience: &AudienceFacts) -> Vec<super::rollout::WaveFact> {
    wave_devices(audience)
        .into_iter()
        .zip(&audience.waves)
        .enumerate()
        .map(|(k, (ids, facts))| super::rollout::WaveFact {
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
    rollout: Option<&super::rollout::Decision>,
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

fn describe_content(c: &DeployedContent) -> String {
    match c {
        DeployedContent::CatalogEntry(id) => format!("catalog entry {id}"),
        DeployedContent::ReleaseDate(d) => format!("the {d} security update"),
        DeployedContent::Unknown => "unknown content".into(),
    }
}

/// The brake: a pause for a known deployment the spec (or a rollout's halt or abort) wants paused and
/// Graph does not hold paused. A
/// deployment that could not be read is paused anyway (the write is idempotent).
pub fn brake(obj: &ExpeditedDeployment, obs: &Observation, hold: bool) -> Option<Step> {
    if !(obj.spec.paused || hold) || obj.spec.management_policy == ManagementPolicy::ObserveOnly {
        return None;
    }
    let id = match &obs.deployment {
        Known::Found(d) if !d.observed.paused_requested => d.observed.id.clone(),
        Known::Unread(id) => id.clone(),
        _ => return None,
    };
    Some(Step::SetPaused {
        target: Target::Existing(id),
        paused: true,
    })
}

/// Plans a pass over an ExpeditedDeployment.
pub fn plan(obj: &ExpeditedDeployment, obs: &Observation, cfg: &PlanConfig) -> Plan {
    let mut p = plan_pass(obj, obs, cfg);
    let old = obj.status.as_ref().map(|s| s.conditions.as_slice());
    ignored::note(&obj.metadata, old, &mut p.end, &mut p.notices);
    p
}

fn plan_pass(obj: &ExpeditedDeployment, obs: &Observation, cfg: &PlanConfig) -> Plan {
    let status = obj.status.clone().unwrap_or_default();
    let observe_only = obj.spec.management_policy == ManagementPolicy::ObserveOnly;
    let found = obs.deployment.found();
    let mut p = Plan {
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
    };
    if let Some(adopt::Decision::Adopt(id)) = &obs.adoption {
        p.steps.push(Step::Adopt { id: id.clone() });
    }
    let problems = validate::expedited_deployment(&obj.spec);
    // The rollout's decision comes before the brake: a halt or an abort is a pause, and a pause goes
    // first. A spec that cannot be read keeps a halt or abort recorded before.
    let mut rollout = obj
        .spec
        .rollout
        .as_ref()
        .filter(|_| problems.is_empty())
        .map(|r| {
            let facts = obs.audience.as_ref().map(wave_facts);
            // The entry this pass deploys: when it is not the one the waves were sent for, they move
            // to the new deployment and the gates measure it afresh.
            let entry = obs
                .content
                .as_ref()
                .and_then(|c| resolve_content(content_source(&obj.spec), c, obs.at).ok())
                .map(|c| c.catalog_entry_id);
            let note = |k| crate::crd::annotations::request(obj.metadata.annotations.as_ref(), k);
            super::rollout::decide(super::rollout::Inputs {
                spec: r,
                paused: obj.spec.paused,
                generation: obj.metadata.generation.unwrap_or_default(),
                promote: note(Request::Promote),
                abort: note(Request::Abort),
                retry: note(Request::Retry),
                recorded: status.rollout.as_ref(),
                waves: facts.as_deref(),
                content: entry.as_deref(),
                now: obs.at,
            })
        });
    let hold = match &rollout {
        Some(d) => d.hold.is_some(),
        None => {
            !problems.is_empty()
                && (super::rollout::recorded_hold(status.rollout.as_ref())
                    || super::rollout::abort_requested(
                        crate::crd::annotations::request(obj.metadata.annotations.as_ref(), Request::Abort),
                        status.rollout.as_ref(),
                    ))
        }
    };
    p.steps.extend(brake(obj, obs, hold));
    let braked = p
        .steps
        .iter()
        .any(|s| matches!(s, Step::SetPaused { paused: true, .. }));
    // A pass that stops early records a new halt or abort (its pause was written), nothing else of the
    // rollout: a wave is recorded as sent only by a pass that sends it.
    let held = rollout
        .as_ref()
        .filter(|d| d.hold.is_some() && obs.failed.is_none())
        .map(|d| (d.status.clone(), d.notices.clone()));
    let block = |mut p: Plan, b: Blocker| {
        p.end = End::Report {
            outcome: b.outcome(),
            next: b.next(),
        };
        p.blocker = Some(b);
        if let Some((st, notices)) = &held {
            p.facts.rollout = Some(st.clone());
            p.notices.extend(notices.iter().cloned());
        }
        p
    };

    if !problems.is_empty() {
        return block(p, Blocker::InvalidSpec(problems));
    }
    if let Some(adopt::Decision::Ambiguous(ids)) = &obs.adoption {
        let since = status.create_intent.map(|i| i.started_at).unwrap_or_default();
        return block(
            p,
            Blocker::AmbiguousAdoption {
                ids: ids.clone(),
                since,
            },
        );
    }
    if obs.failed.is_some() {
        p.end = End::ObserveFailed;
        return p;
    }
    let (Some(audience), Some(catalog)) = (&obs.audience, &obs.content) else {
        // Not read although nothing failed: only an invalid spec skips the reads, and that ended above.
        p.end = End::ObserveFailed;
        return p;
    };
    if let Some(w) = waiting(obj, audience, rollout.as_ref()) {
        return block(p, w);
    }
    let content = match resolve_content(content_source(&obj.spec), catalog, obs.at) {
        Ok(c) => c,
        Err(b) => return block(p, b),
    };
    if content.expired_at(obs.at) {
        let b = Blocker::Content {
            reason: Reason::CONTENT_EXPIRED,
            message: format!(
                "spec.content: catalog entry {} ({}) was deployable until {} and Graph no longer deploys it; choose newer content (content.latest, or a newer catalogEntryId or releaseDate)",
                content.catalog_entry_id,
                content.display_name.as_deref().unwrap_or("no display name"),
                content.deployable_until.as_deref().unwrap_or_default()
            ),
        };
        p.facts.content = Some(content);
        return block(p, b);
    }
    p.facts.content = Some(content.clone());
    let mut desired = desired(obj, audience, &content, cfg, rollout.as_ref());
    // Sent waves removed from the spec keep their devices offered until withdrawnWaves names them:
    // nothing Graph's audience holds is taken out meanwhile.
    let retained_waves: Vec<String> = rollout
        .as_ref()
        .map(|d| d.status.retained_waves.clone())
        .unwrap_or_default();
    if !retained_waves.is_empty()
        && let (Some(d), Some(r)) = (found, rollout.as_mut())
    {
        let kept: Vec<AssetRef> = d.observed.members.difference(&desired.members).cloned().collect();
        r.status.retained_devices = Some(kept.len() as u64);
        desired.members.extend(kept);
    }

    if observe_only {
        p.facts.audience = found.map(|d| AudienceStatus {
            members: d.observed.members.len() as u64,
            exclusions: d.observed.exclusions.len() as u64,
            devices: 0,
        });
        p.desired = Some(desired);
        return match found {
            Some(d) => {
                p.end = End::Report {
                    outcome: Outcome::converged(format!(
                        "observing deployment {} (ObserveOnly: nothing is written)",
                        d.observed.id
                    )),
                    next: Next::Resync,
                };
                p
            }
            None => block(p, Blocker::NothingToObserve),
        };
    }

    // Graph lists no audience: for an adopted deployment that may be one Intune manages (whose audience
    // Graph does not expose, a documented known issue), which the operator must not write. For its own
    // deployment it only means empty or not visible yet (a read lagging the audience write, or the 404
    // the service answers for an audience that never had members): the lists read as empty, and the
    // writes, which are set operations, are sent again.
    if let Some(d) = found
        && d.audience_never_listed
        && desired.adopted
    {
        let id = d.observed.id.clone();
        p.desired = Some(desired);
        return block(p, Blocker::AudienceNotManageable { id });
    }
    if let Some((limit, source)) = desired.device_limit
        && desired.devices.max(desired.rollout_devices) > limit
    {
        // A rollout is bounded as a whole: every wave counts, sent or not.
        let devices = desired.devices.max(desired.rollout_devices);
        p.desired = Some(desired);
        return block(
            p,
            Blocker::AudienceTooLarge {
                devices,
                limit,
                source,
            },
        );
    }
    if desired.adopted {
        let id = obj.spec.deployment_id.clone().unwrap_or_default();
        match found {
            None => {
                p.desired = Some(desired);
                return block(p, Blocker::AdoptedDeploymentMissing { id });
            }
            Some(d) if !content_matches(&desired, &d.observed.content) => {
                let b = Blocker::AdoptedContentDiffers {
                    id,
                    deployed: describe_content(&d.observed.content),
                    wanted: content.catalog_entry_id.clone(),
                };
                p.desired = Some(desired);
                return block(p, b);
            }
            Some(d) if d.observed.content == DeployedContent::Unknown => {
                // Graph did not name the adopted deployment's catalog entry: it is managed as asked, and
                // the admin is told that its content could not be checked.
                p.notices.push(Notice {
                    warning: true,
                    reason: Reason::CONTENT_UNVERIFIED,
                    action: "Adopt",
                    message: format!(
                        "Graph does not name the catalog entry of adopted deployment {id}, so the operator cannot check that it deploys {}; check it in Graph",
                        content.catalog_entry_id
                    ),
                });
            }
            Some(_) => {}
        }
    }

    // A recorded deployment Graph answers 404 for is created again only when it stays missing: a read
    // can lag the write that made it, and one 404 must never make a second deployment.
    if found.is_none()
        && let (Some(id), Known::Missing(_)) = (&status.deployment_id, &obs.deployment)
        && !desired.adopted
    {
        if let Some((since, left)) = absence_wait(status.missing_since.as_deref(), obs.at, cfg) {
            p.facts.missing_since = Some(since);
            p.end = End::Report {
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
            p.desired = Some(desired);
            return p;
        }
        p.notices.push(Notice {
            warning: true,
            reason: Reason::DEPLOYMENT_MISSING,
            action: "Recreate",
            message: format!(
                "deployment {id} was deleted outside the operator (Graph answered 404 for at least {}s); creating it again",
                cfg.absence_confirm.as_secs()
            ),
        });
    }

    // Nothing blocks: the changes, after the brake (whose pause they need not repeat).
    let observed = found.map(|d| {
        let mut o = d.observed.clone();
        o.paused_requested |= braked;
        o
    });
    let changes = changes(&desired, observed.as_ref(), cfg.batch_size);
    // With waves, taking devices out of the audience is worth a Warning: what was offered is withdrawn.
    let withdrawn: usize = changes
        .iter()
        .map(|s| match s {
            Step::UpdateAudience { diff, .. } => diff.remove_members.len(),
            _ => 0,
        })
        .sum();
    if obj.spec.rollout.is_some() && withdrawn > 0 {
        p.notices.push(Notice {
            warning: true,
            reason: Reason::MEMBERS_WITHDRAWN,
            action: "Withdraw",
            message: format!(
                "withdrawing {withdrawn} audience member(s) the spec no longer lists: they are no longer offered the update"
            ),
        });
    }
    p.facts.audience = Some(AudienceStatus {
        members: desired.members.len() as u64,
        exclusions: audience.exclusions.len() as u64,
        devices: desired.devices,
    });
    // The spec is the one the last write carried out, and that write is recent: what Graph does not show
    // may be lag, so it is waited for (within the budget) instead of sent twice. A create is never
    // waited for (its absence is confirmed above), nor is the brake.
    // A rollout that moved this pass (a wave sent, a halt lifted) asks for something new: not lag.
    let moved = rollout
        .as_ref()
        .is_some_and(|d| super::rollout::moved_from(d, status.rollout.as_ref()));
    if let Some(left) = lag_left(obj, &status, obs.at, cfg)
        && !moved
        && !changes.is_empty()
        && !changes.iter().any(|s| matches!(s, Step::Create { .. }))
        && !p.steps.iter().any(|s| matches!(s, Step::Adopt { .. }))
    {
        p.end = End::Report {
            outcome: Outcome::progressing(
                Reason::VERIFYING,
                format!(
                    "Graph does not show all of the last write yet (reads can lag writes); waiting up to {}s more (--read-lag-budget) before sending what is still missing",
                    left.as_secs().max(1)
                ),
            ),
            next: Next::After(left.min(std::time::Duration::from_secs(5))),
        };
        return p;
    }
    if let Some(intent) = status.create_intent.as_ref().filter(|i| i.audience_id.is_none())
        && changes.iter().any(|s| matches!(s, Step::Create { .. }))
    {
        // Audiences carry no name or time to find one by: the one an interrupted create may have made
        // cannot be found again.
        p.notices.push(Notice {
            warning: true,
            reason: Reason::CREATE_INTERRUPTED,
            action: "Create",
            message: format!(
                "a create started at {} was interrupted before its audience id was recorded; an empty deploymentAudience may be left in the tenant (no deployment uses it); creating the audience again",
                intent.started_at
            ),
        });
    }
    p.steps.extend(changes.into_iter().map(|s| match s {
        // An interrupted create's audience is used again, not made twice.
        Step::Create {
            content, settings, ..
        } => Step::Create {
            content,
            settings,
            audience: status.create_intent.as_ref().and_then(|i| i.audience_id.clone()),
        },
        other => other,
    }));
    // The brake's pause, too, shows in Graph before an audience write.
    p.steps = await_pauses(std::mem::take(&mut p.steps));
    if let Some(d) = rollout {
        p.notices.extend(d.notices);
        p.facts.rollout = Some(d.status);
        let next = if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        };
        if let Some(h) = d.hold {
            p.end = End::Report {
                outcome: Outcome::stalled(h.reason(), h.message()),
                next,
            };
            p.desired = Some(desired);
            return p;
        }
        if !retained_waves.is_empty() && p.steps.is_empty() {
            let kept = p
                .facts
                .rollout
                .as_ref()
                .and_then(|r| r.retained_devices)
                .unwrap_or_default();
            p.end = End::Report {
                outcome: Outcome::progressing(
                    Reason::WITHDRAWAL_NOT_CONFIRMED,
                    format!(
                        "spec.rollout.waves no longer lists sent wave(s) {}: their devices stay offered ({kept} audience member(s) kept) until spec.rollout.withdrawnWaves names them, or rename a wave with renamedFrom",
                        retained_waves.join(", ")
                    ),
                ),
                next: Next::Resync,
            };
            p.desired = Some(desired);
            return p;
        }
        if let (Some((message, after)), true) = (d.waiting, p.steps.is_empty()) {
            p.end = End::Report {
                outcome: Outcome::progressing(Reason::WAITING_FOR_GATE, message),
                next: after.map_or(Next::Resync, |a| {
                    Next::After(a.max(std::time::Duration::from_secs(1)))
                }),
            };
            p.desired = Some(desired);
            return p;
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
        next: if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        },
    };
    p.desired = Some(desired);
    p
}

/// What deleting an ExpeditedDeployment does in Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Leave the deployment (deletionPolicy Orphan, or ObserveOnly); `id` when there is one.
    Orphan { id: Option<String> },
    /// Delete these deployments, then these audiences the operator created for them (a 404 is
    /// success).
    Delete {
        ids: Vec<String>,
        audiences: Vec<String>,
    },
    /// A create was in flight and no deployment is recorded, and what it made is not known (`adoption`
    /// was not decided: the spec it would be matched by cannot be read): the finalizer stays until an
    /// admin deletes what it made and removes it.
    Unresolved { started_at: String },
}

impl Cleanup {
    /// What the plan command calls it: `orphan`, `delete` or `waiting`.
    pub fn result(&self) -> &'static str {
        match self {
            Cleanup::Orphan { .. } => "orphan",
            Cleanup::Delete { .. } => "delete",
            Cleanup::Unresolved { .. } => "waiting",
        }
    }

    /// What the cleanup does, one line a change.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Cleanup::Orphan { id: Some(id) } => vec![format!("leave deployment {id} in Graph")],
            Cleanup::Orphan { id: None } => vec!["remove the object (no Graph deployment)".into()],
            Cleanup::Delete { ids, audiences } if ids.is_empty() && audiences.is_empty() => {
                vec!["remove the object (no Graph deployment)".into()]
            }
            Cleanup::Delete { ids, audiences } => ids
                .iter()
                .map(|id| format!("delete deployment {id}"))
                .chain(
                    audiences
                        .iter()
                        .map(|a| format!("delete deployment audience {a}")),
                )
                .collect(),
            Cleanup::Unresolved { started_at } => vec![format!(
                "hold the object: a create started at {started_at} was in flight and what it made is not known"
            )],
        }
    }

    /// The Graph writes the cleanup makes, by operation (as the Graph client names them).
    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            Cleanup::Delete { ids, audiences } => ids
                .iter()
                .map(|_| "delete deployment")
                .chain(audiences.iter().map(|_| "delete deployment audience"))
                .collect(),
            Cleanup::Orphan { .. } | Cleanup::Unresolved { .. } => vec![],
        }
    }

    /// The deployment the cleanup is about.
    pub fn deployment(&self) -> Option<&String> {
        match self {
            Cleanup::Orphan { id } => id.as_ref(),
            Cleanup::Delete { ids, .. } => ids.first(),
            Cleanup::Unresolved { .. } => None,
        }
    }
}

/// Plans the cleanup of a deleted ExpeditedDeployment; `adoption` is what a pending create made.
pub fn plan_cleanup(obj: &ExpeditedDeployment, adoption: Option<&adopt::Decision>) -> Cleanup {
    let status = obj.status.clone().unwrap_or_default();
    if obj.spec.deletion_policy == DeletionPolicy::Orphan
        || obj.spec.management_policy == ManagementPolicy::ObserveOnly
    {
        return Cleanup::Orphan {
            id: status.deployment_id.or(obj.spec.deployment_id.clone()),
        };
    }
    let mut ids: BTreeSet<String> = status
        .deployment_id
        .iter()
        .chain(obj.spec.deployment_id.iter())
        .cloned()
        .collect();
    // The create's answer was lost: delete what it made, if that is unambiguous.
    if ids.is_empty() {
        match (adoption, &status.create_intent) {
            (Some(adopt::Decision::Adopt(id)), _) => {
                ids.insert(id.clone());
            }
            (None, Some(intent)) => {
                return Cleanup::Unresolved {
                    started_at: intent.started_at.clone(),
                };
            }
            _ => {}
        }
    }
    // The audiences this operator created: the recorded one of a deployment it made, and one a create
    // made before it was interrupted.
    let audiences: BTreeSet<String> = status
        .audience_id
        .iter()
        .filter(|_| obj.spec.deployment_id.is_none())
        .chain(status.create_intent.iter().flat_map(|i| i.audience_id.iter()))
        .cloned()
        .collect();
    Cleanup::Delete {
        ids: ids.into_iter().collect(),
        audiences: audiences.into_iter().collect(),
    }
}

// ----- DeviceGroup -----------------------------------------------------------------------------------

/// One planned write to a Graph group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupStep {
    /// Create the group and record its id.
    Create,
    /// Add and remove devices (the group the plan creates when `target` is `New`), at most `batch` ids a
    /// request (see [`group_batches`]); the requests may go at once, since adds and removes touch
    /// different ids.
    UpdateMembers {
        target: Target,
        add: Vec<DeviceId>,
        remove: Vec<DeviceId>,
        batch: usize,
    },
}

impl GroupStep {
    pub fn describe(&self) -> String {
        match self {
            GroupStep::Create => "create group".into(),
            GroupStep::UpdateMembers { add, remove, .. } => {
                format!("update group devices: +{} -{}", add.len(), remove.len())
            }
        }
    }

    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            GroupStep::Create => vec!["create device group"],
            GroupStep::UpdateMembers {
                add, remove, batch, ..
            } => group_batches(add, remove, *batch)
                .iter()
                .map(|(adding, _)| {
                    if *adding {
                        "add device group members"
                    } else {
                        "remove device group members"
                    }
                })
                .collect(),
        }
    }
}

/// The plan of a DeviceGroup pass.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub notices: Vec<Notice>,
    pub steps: Vec<GroupStep>,
    pub end: End,
    /// Status facts: the group id (when known), the devices the group holds once the plan is applied,
    /// and registration errors.
    pub group_id: Option<String>,
    pub member_count: Option<u64>,
    pub device_errors: Vec<DeviceError>,
    /// When the recorded group was first seen missing, while that is being confirmed.
    pub missing_since: Option<String>,
}

impl GroupPlan {
    pub fn graph_writes(&self) -> Vec<&'static str> {
        self.steps.iter().flat_map(GroupStep::graph_writes).collect()
    }
}

/// Group member writes of at most `batch` ids each: `(true, ids)` adds, `(false, ids)` removes.
pub fn group_batches<'a>(
    add: &'a [DeviceId],
    remove: &'a [DeviceId],
    batch: usize,
) -> Vec<(bool, &'a [DeviceId])> {
    let batch = batch.max(1);
    add.chunks(batch)
        .map(|c| (true, c))
        .chain(remove.chunks(batch).map(|c| (false, c)))
        .collect()
}

/// Plans a pass over a DeviceGroup.
pub fn plan_group(obj: &DeviceGroup, obs: &GroupObservation, cfg: &PlanConfig) -> GroupPlan {
    let mut p = plan_group_pass(obj, obs, cfg);
    let old = obj.status.as_ref().map(|s| s.conditions.as_slice());
    ignored::note(&obj.metadata, old, &mut p.end, &mut p.notices);
    p
}

fn plan_group_pass(obj: &DeviceGroup, obs: &GroupObservation, cfg: &PlanConfig) -> GroupPlan {
    let batch = cfg.batch_size;
    let mut p = GroupPlan {
        notices: Vec::new(),
        steps: Vec::new(),
        end: End::ObserveFailed,
        group_id: None,
        member_count: None,
        device_errors: Vec::new(),
        missing_since: None,
    };
    let problems = validate::device_group(&obj.spec);
    if !problems.is_empty() {
        p.end = End::Report {
            outcome: Blocker::InvalidSpec(problems).outcome(),
            next: Next::Resync,
        };
        return p;
    }
    if obs.failed.is_some() {
        return p;
    }
    let spec_devices;
    let desired: &BTreeSet<DeviceId> = match (&obj.spec.entra_group_id, &obs.entra) {
        (Some(_), Some(Some(devices))) => devices,
        (Some(entra), _) => {
            p.end = End::Report {
                outcome: Outcome::stalled(
                    Reason::ENTRA_GROUP_NOT_FOUND,
                    format!(
                        "spec.entraGroupId: Entra ID has no group {entra} (copy the group's object id from Entra ID; nothing was written)"
                    ),
                ),
                next: Next::Resync,
            };
            return p;
        }
        (None, _) => {
            spec_devices = obj.spec.devices.iter().map(|d| d.to_lowercase()).collect();
            &spec_devices
        }
    };
    let (target, current): (Target, &[DeviceId]) = match &obs.group {
        Known::Found(members) => {
            let id = obj
                .status
                .as_ref()
                .and_then(|s| s.group_id.clone())
                .unwrap_or_default();
            p.group_id = Some(id.clone());
            p.device_errors = members
                .errors
                .iter()
                .filter(|(device, _)| desired.contains(*device))
                .take(super::observe::MAX_DEVICE_ERRORS)
                .map(|(device, reasons)| DeviceError {
                    device_id: device.to_string(),
                    reasons: reasons.clone(),
                })
                .collect();
            (Target::Existing(id), &members.devices)
        }
        Known::Missing(id) => {
            // Created again only when it stays missing: a read can lag the write that made it.
            let first = obj.status.as_ref().and_then(|s| s.missing_since.as_deref());
            if let Some((since, left)) = absence_wait(first, obs.at, cfg) {
                p.group_id = Some(id.clone());
                p.missing_since = Some(since);
                p.end = End::Report {
                    outcome: Outcome::progressing(
                        Reason::CONFIRMING_ABSENCE,
                        format!(
                            "Graph answers 404 for updatableAssetGroup {id} (since {}); it is created again only if it is still missing in {}s, as a read can lag a write",
                            p.missing_since.as_deref().unwrap_or_default(),
                            left.as_secs().max(1)
                        ),
                    ),
                    next: Next::After(left.min(std::time::Duration::from_secs(5))),
                };
                return p;
            }
            p.notices.push(Notice {
                warning: true,
                reason: Reason::GROUP_MISSING,
                action: "Recreate",
                message: format!(
                    "updatableAssetGroup {id} was deleted outside the operator (Graph answered 404 for the group and its members for at least {}s); creating it again",
                    cfg.absence_confirm.as_secs()
                ),
            });
            p.steps.push(GroupStep::Create);
            (Target::New, &[])
        }
        Known::None | Known::Unread(_) => {
            if let Some(intent) = obj.status.as_ref().and_then(|s| s.create_intent.as_ref()) {
                // Graph groups carry no name or creation time to find one by: the group an interrupted
                // create may have made cannot be adopted, and is at worst left empty and unused.
                p.notices.push(Notice {
                    warning: true,
                    reason: Reason::CREATE_INTERRUPTED,
                    action: "Create",
                    message: format!(
                        "a group create started at {} was interrupted before its id was recorded; an empty updatableAssetGroup may be left in the tenant (it holds no devices and no deployment uses it); creating the group again",
                        intent.started_at
                    ),
                });
            }
            p.steps.push(GroupStep::Create);
            (Target::New, &[])
        }
    };
    let (add, remove) = sorted_diff(desired, current);
    p.member_count = Some(desired.len() as u64);
    if !add.is_empty() || !remove.is_empty() {
        p.steps.push(GroupStep::UpdateMembers {
            target,
            add,
            remove,
            batch,
        });
    }
    p.end = End::Report {
        outcome: match (&p.steps.last(), &p.group_id) {
            (Some(GroupStep::UpdateMembers { add, remove, .. }), _) => Outcome::progressing(
                Reason::VERIFYING,
                format!(
                    "sent +{} -{} devices to Graph; verifying",
                    add.len(),
                    remove.len()
                ),
            ),
            (Some(GroupStep::Create), _) => {
                Outcome::progressing(Reason::VERIFYING, "created the group; verifying")
            }
            (None, Some(id)) if p.device_errors.is_empty() => {
                Outcome::converged(format!("{} devices in group {id}", desired.len()))
            }
            (None, id) => Outcome::converged(format!(
                "{} devices in group {}; {} could not be registered (see status.deviceErrors)",
                desired.len(),
                id.clone().unwrap_or_default(),
                p.device_errors.len()
            )),
        },
        next: if p.steps.is_empty() {
            Next::Resync
        } else {
            Next::Verify
        },
    };
    p
}

/// What `current` (sorted, each id once) lacks of `desired`, and what it holds beyond it, in one walk
/// of both in order.
fn sorted_diff(desired: &BTreeSet<DeviceId>, current: &[DeviceId]) -> (Vec<DeviceId>, Vec<DeviceId>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let (mut d, mut c) = (desired.iter().peekable(), current.iter().peekable());
    loop {
        match (d.peek(), c.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => add.extend(d.next().cloned()),
                std::cmp::Ordering::Greater => remove.extend(c.next().cloned()),
                std::cmp::Ordering::Equal => {
                    d.next();
                    c.next();
                }
            },
            (Some(_), None) => add.extend(d.next().cloned()),
            (None, Some(_)) => remove.extend(c.next().cloned()),
            (None, None) => return (add, remove),
        }
    }
}

/// What deleting a DeviceGroup does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCleanup {
    /// Deployments still use the group: wait (the finalizer stays).
    Wait { users: Vec<String> },
    /// Delete the Graph group (when there is one).
    Delete { id: Option<String> },
}

impl GroupCleanup {
    /// The wait's status.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            GroupCleanup::Wait { users } => Some(Outcome::progressing(
                Reason::IN_USE,
                format!(
                    "still referenced by ExpeditedDeployment {}; the Graph group is removed once they stop using it",
                    users.join(", ")
                ),
            )),
            GroupCleanup::Delete { .. } => None,
        }
    }

    /// What the plan command calls it: `waiting` or `delete`.
    pub fn result(&self) -> &'static str {
        match self {
            GroupCleanup::Wait { .. } => "waiting",
            GroupCleanup::Delete { .. } => "delete",
        }
    }

    /// What the cleanup does, one line a change.
    pub fn describe(&self) -> Vec<String> {
        match self {
            GroupCleanup::Wait { .. } => self
                .outcome()
                .map(|o| o.message().to_string())
                .into_iter()
                .collect(),
            GroupCleanup::Delete { id: Some(id) } => vec![format!("delete group {id}")],
            GroupCleanup::Delete { id: None } => vec!["remove the object (no Graph group)".into()],
        }
    }

    /// The Graph writes the cleanup makes, by operation.
    pub fn graph_writes(&self) -> Vec<&'static str> {
        match self {
            GroupCleanup::Delete { id: Some(_) } => vec!["delete device group"],
            _ => vec![],
        }
    }

    /// Graph refused to delete the group (409): a deployment it knows still uses it, and no object here
    /// lists it, so one outside this cluster does. A clear wait, not a transient error retried forever.
    pub fn refused(id: &str, detail: &str) -> Outcome {
        Outcome::progressing(
            Reason::IN_USE,
            format!(
                "Graph refuses to delete updatableAssetGroup {id} while a deployment uses it ({detail}); no ExpeditedDeployment here lists it, so a deployment outside this cluster does: remove the group from that deployment's audience in Graph; the DeviceGroup goes once Graph lets the group go"
            ),
        )
    }
}

/// Plans the cleanup of a deleted DeviceGroup; `users` are the deployments that reference it.
pub fn plan_group_cleanup(obj: &DeviceGroup, users: Vec<String>) -> GroupCleanup {
    if users.is_empty() {
        GroupCleanup::Delete {
            id: obj.status.as_ref().and_then(|s| s.group_id.clone()),
        }
    } else {
        GroupCleanup::Wait { users }
    }
}

mod ignored;

#[cfg(test)]
mod tests;

#[cfg(test)]
use super::observe::DeploymentFacts;
