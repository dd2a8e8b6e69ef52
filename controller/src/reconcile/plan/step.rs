//! The steps a plan is made of: one planned write each, and the requests an audience write is sent in.

use std::collections::BTreeSet;

use crate::graph::models::SettingsPatch;
use crate::graph::{AssetRef, AudienceUpdate, ContentRequest, SettingsRequest};

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

    /// The `updateAudience` requests that apply the diff, in phases (not to be confused with a rollout's
    /// waves): each phase's requests may go at once, and a phase starts when the one before it is done
    /// (and, where it depends on it, visible: see `act::send_audience`). Requests hold at most `batch`
    /// assets; the phases are those adding
    /// exclusions, then the member changes, then those removing exclusions, so no device is offered the
    /// update before its exclusion is in place and the number of calls stays at the lower bound
    /// (`ceil(assets / batch)`, one more at most for the pairs below). An asset both excluded and added
    /// as a member goes in one request with both, first: a device in both lists is documented as not
    /// targeted, so no order of applying requests can offer it the update.
    pub fn phases(&self, batch: usize) -> Vec<Vec<AudienceUpdate<'_>>> {
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
        let phase_of = |c: &[Item]| {
            if adds_exclusions(c) {
                0
            } else if removes_exclusions(c) {
                2
            } else {
                1
            }
        };
        let mut phases: [Vec<AudienceUpdate<'_>>; 3] = Default::default();
        for chunk in &chunks {
            phases[phase_of(chunk)].push(AudienceUpdate::of(chunk.iter().copied()));
        }
        phases.into_iter().filter(|p| !p.is_empty()).collect()
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
        /// Assets per request: the requests are `diff.phases(batch)`.
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
