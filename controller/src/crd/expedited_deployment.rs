//! `ExpeditedDeployment`: one Graph deployment of an expedited quality update.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};

use super::audience_item::AudienceItem;
use serde::{Deserialize, Serialize};

/// The desired expedited rollout of a Windows quality update to a set of devices.
// The derive reads several `printcolumn(type_ = …)` attributes; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "wufb.dev",
    version = "v1alpha1",
    kind = "ExpeditedDeployment",
    namespaced,
    status = "ExpeditedDeploymentStatus",
    shortname = "expd",
    category = "wufb",
    doc = "An expedited Windows quality update rollout, kept in step with the Microsoft Graph Windows Update for Business deployment service.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Graph",
        type_ = "string",
        description = "Effective Graph state",
        json_path = ".status.graphState"
    ),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.audience.members"),
    printcolumn(
        name = "Devices",
        type_ = "integer",
        priority = 1,
        json_path = ".status.audience.devices"
    ),
    printcolumn(
        name = "Installed",
        type_ = "string",
        description = "Targeted devices up to date, of all targeted",
        json_path = ".status.progress.installed"
    ),
    printcolumn(
        name = "Wave",
        type_ = "string",
        description = "The last wave sent to Graph, of spec.rollout.waves",
        json_path = ".status.rollout.currentWave"
    ),
    printcolumn(name = "Deployment", type_ = "string", json_path = ".status.deploymentId"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ExpeditedDeploymentSpec {
    /// The quality update to expedite. Set exactly one of releaseDate, catalogEntryId, latest or newest.
    /// Changing it replaces the Graph deployment (the audience is carried over).
    pub content: ContentSpec,

    /// Deprecated and ignored: it set the equivalent content of the legacy release-date form, which
    /// the current Graph schema no longer has; every content form is now deployed as the catalog entry
    /// it resolves to (`validate` warns when it is set).
    #[serde(default)]
    pub equivalent_content: EquivalentContent,

    /// How the restart is enforced on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_experience: Option<UserExperienceSpec>,

    /// Run a readiness test only (the update is not installed). Needs catalogEntryId or latest content.
    #[serde(default)]
    pub readiness_test: bool,

    /// Pause the rollout. While paused, no further devices are offered the update.
    #[serde(default)]
    pub paused: bool,

    /// The devices that get the update, and the ones that never do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<AudienceSpec>,

    /// The connection (tenant and credentials) the deployment is made in; unset: the operator's own
    /// credentials. A GraphConnection in this namespace, or a ClusterGraphConnection whose
    /// namespaceSelector admits it; the DeviceGroups it uses must name the same one. Changing it once
    /// the deployment exists is refused (the deployment lives in its tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_ref: Option<super::ConnectionRef>,

    /// What happens to the Graph deployment when this object is deleted: `Delete` (default) removes it,
    /// `Orphan` leaves it running in the tenant.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` (default) makes Graph match this object; `ObserveOnly` only reports the Graph state and
    /// never writes to Graph.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// Adopt this existing Graph deployment instead of creating one. Deployments created through Intune
    /// cannot be adopted: Graph does not expose their audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub deployment_id: Option<String>,

    /// Health-gated waves: the members are sent to the same Graph deployment a wave at a time, each
    /// later wave only when its gate holds. With waves, spec.audience.members stays empty (exclusions
    /// stay global).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,

    /// Blast-radius guard: the most devices this rollout may reach. An audience that resolves to more
    /// devices is never sent to Graph, and the object stalls with reason AudienceTooLarge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_devices: Option<u64>,
}

/// The update to expedite: exactly one of releaseDate, catalogEntryId, latest or newest.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
// CEL cost: 20
#[x_kube(validation = Rule::new("(has(self.releaseDate) ? 1 : 0) + (has(self.catalogEntryId) ? 1 : 0) + ((has(self.latest) && self.latest) ? 1 : 0) + (has(self.newest) ? 1 : 0) == 1").message("set exactly one of releaseDate, catalogEntryId, latest: true or newest"))]
// CEL cost: 18
#[x_kube(validation = Rule::new("!has(self.refresh) || self.refresh == 'Never' || has(self.newest) || (has(self.latest) && self.latest)").message("refresh: OnNewRelease needs latest: true or newest"))]
pub struct ContentSpec {
    /// Minimum compliance: the security update released on this date (YYYY-MM-DD, a Patch Tuesday such
    /// as 2026-11-10), as listed in the Windows Update catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"))]
    pub release_date: Option<String>,

    /// The id of an expeditable quality update entry in the Graph update catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub catalog_entry_id: Option<String>,

    /// The newest expeditable security quality update, resolved once when the deployment is created and
    /// recorded in status.resolvedContent. Shorthand for `newest: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<bool>,

    /// The newest expeditable quality update that passes these filters, resolved when the deployment is
    /// created and recorded in status.resolvedContent (with its short name, CVEs and severity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<NewestSpec>,

    /// For latest or newest: `Never` (default) keeps the entry resolved first; `OnNewRelease` replaces
    /// the deployment (same audience, the new one first, then the old one deleted) when the catalog
    /// lists a newer matching entry, looked for at most once per catalog poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

/// Filters for `content.newest`. Every filter that is set must hold.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NewestSpec {
    /// `security` (default), `nonSecurity` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// `monthly` (Patch Tuesday), `outOfBand` or `any` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence: Option<Cadence>,
    /// The least CVE severity the entry must fix: `low`, `moderate`, `important` or `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// Only entries that fix a CVE known to be exploited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exploited_only: Option<bool>,
    /// Only entries that fix this CVE (e.g. CVE-2026-21000): the newest matching entry released on or
    /// after the first entry that lists it (quality updates are cumulative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^CVE-[0-9]{4}-[0-9]{4,7}$"))]
    pub cve: Option<String>,
}

/// A catalog entry's `qualityUpdateClassification`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Classification {
    #[default]
    Security,
    NonSecurity,
    All,
}

/// A catalog entry's `qualityUpdateCadence`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Cadence {
    Monthly,
    OutOfBand,
    #[default]
    Any,
}

/// CVE severity, lowest first.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Low,
    Moderate,
    Important,
    Critical,
}

/// The lists of the spec that hold audience items, as JSON paths (`[]` for every element of a list).
/// [`ExpeditedDeploymentSpec::items`] walks exactly these; a test checks the generated schema has no
/// other list of audience items.
pub const AUDIENCE_ITEM_LISTS: [&str; 3] = [
    "spec.audience.members",
    "spec.audience.exclusions",
    "spec.rollout.waves[].members",
];

impl ExpeditedDeploymentSpec {
    /// Every audience item of the spec with the path of the field it sits at: the audience's members
    /// and exclusions, then every wave's members. The one answer to "what does this spec reference",
    /// for a DeviceGroup's in-use hold, the watch that wakes rollouts, `plan` and `validate`.
    pub fn items(&self) -> impl Iterator<Item = (String, &AudienceItem)> {
        let audience = self.audience.iter().flat_map(|a| {
            let members = a
                .members
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("spec.audience.members[{i}]"), item));
            let exclusions = a
                .exclusions
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("spec.audience.exclusions[{i}]"), item));
            members.chain(exclusions)
        });
        let waves = self.rollout.iter().flat_map(|r| {
            r.waves.iter().enumerate().flat_map(|(k, w)| {
                w.members
                    .iter()
                    .enumerate()
                    .map(move |(i, item)| (format!("spec.rollout.waves[{k}].members[{i}]"), item))
            })
        });
        audience.chain(waves)
    }

    /// The DeviceGroups the spec names anywhere (see [`ExpeditedDeploymentSpec::items`]).
    pub fn device_groups(&self) -> impl Iterator<Item = &str> {
        self.audience
            .iter()
            .flat_map(|a| a.members.iter().chain(&a.exclusions))
            .chain(
                self.rollout
                    .iter()
                    .flat_map(|r| r.waves.iter().flat_map(|w| &w.members)),
            )
            .filter_map(AudienceItem::device_group)
    }

    /// Whether the spec names DeviceGroup `name` anywhere.
    pub fn uses_device_group(&self, name: &str) -> bool {
        self.device_groups().any(|g| g == name)
    }
}

impl Severity {
    /// Parses Graph's `maxSeverity` value; `None` for anything else (such as `unknownFutureValue`).
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "moderate" => Some(Severity::Moderate),
            "important" => Some(Severity::Important),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// Whether `latest`/`newest` content follows new releases.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Refresh {
    #[default]
    Never,
    OnNewRelease,
}

/// Equivalent content offered with a release-date expedite.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum EquivalentContent {
    #[default]
    LatestSecurity,
    None,
}

impl EquivalentContent {
    pub fn as_str(self) -> &'static str {
        match self {
            EquivalentContent::LatestSecurity => "latestSecurity",
            EquivalentContent::None => "none",
        }
    }
}

/// Restart behaviour on the device.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserExperienceSpec {
    /// Days after installation before the device restarts on its own (0 to 30). Until then the user
    /// picks the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 30))]
    pub days_until_forced_reboot: Option<i32>,

    /// Offer the update as optional instead of required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_as_optional: Option<bool>,
}

/// Members and exclusions. A device that is excluded never gets the update, even through a group.
/// An item that is both a member and an exclusion is refused by the controller (and `validate`), not by
/// a CEL rule: comparing every member with every exclusion costs an estimated 10,008,012 at maxItems
/// (1000 x 200 object comparisons), above the API server's per-expression limit of 10,000,000, so a
/// real server could refuse the CRD (controller/tests/cel_cost.rs estimates it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AudienceSpec {
    /// Devices and groups that are offered the update. Put large device lists in a DeviceGroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub members: Vec<AudienceItem>,

    /// Devices and groups that are never offered the update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub exclusions: Vec<AudienceItem>,
}

/// Ordered waves of audience members, each promoted when its gate holds (see the README's
/// "Health-gated waves").
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// The waves, in order. The first is sent at once; each later one when its gate holds.
    #[schemars(length(min = 1, max = 10))]
    pub waves: Vec<WaveSpec>,

    /// Halt the rollout (pause the Graph deployment) whenever more than this share (percent) of the
    /// devices offered so far have failed, also after the last wave. A gate's maxFailedPercent applies
    /// while that wave waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_failed_percent: Option<u32>,

    /// Names of sent waves removed from waves whose devices may now be withdrawn from the
    /// deployment. Until a removed sent wave is named here, its devices stay offered (Ready False,
    /// WithdrawalNotConfirmed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub withdrawn_waves: Vec<String>,
}

/// One wave: a name, its members and the gate that promotes it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WaveSpec {
    /// A short name (a DNS label, such as pilot or broad), used by `wufb-operator promote`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Devices and groups this wave adds to the audience.
    #[schemars(length(min = 1, max = 1000))]
    pub members: Vec<AudienceItem>,

    /// When this wave follows the ones before it. Required for every wave but the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,

    /// The wave's previous name, when it was renamed: it keeps that wave's state (sent, figures), and
    /// its devices stay offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub renamed_from: Option<String>,
}

/// The conditions that promote a wave, measured on the devices of the waves before it. Every condition
/// that is set must hold; `manual` waits for `wufb-operator promote` instead.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
// The pattern keeps the number to 9 digits, so the product below cannot overflow.
// CEL cost: 30
#[x_kube(validation = Rule::new("!has(self.wait) || int(self.wait.substring(0, size(self.wait) - 1)) * (self.wait.endsWith('d') ? 86400 : self.wait.endsWith('h') ? 3600 : self.wait.endsWith('m') ? 60 : 1) <= 7776000").message("wait is at most 90 days: write a whole number and a unit (s, m, h or d) from 1s to 90d"))]
pub struct GateSpec {
    /// The least time since the previous wave was sent: a whole number and a unit (s, m, h or d)
    /// from 1s to 90d, such as 30m, 4h or 1d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10), regex(pattern = r"^[1-9][0-9]{0,8}[smhd]$"))]
    pub wait: Option<String>,

    /// The least share (percent) of the earlier waves' devices that must be up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_up_to_date_percent: Option<u32>,

    /// The most share (percent) of the earlier waves' devices that may have failed. Above it the
    /// operator halts the rollout: it pauses the Graph deployment and waits for retry or abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_failed_percent: Option<u32>,

    /// Wait for a person: the wave is sent only after `wufb-operator promote` (the wufb.dev/promote
    /// annotation) names it or a later wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<bool>,
}

/// What deleting the object does to the Graph deployment.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// Whether the operator writes to Graph.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ManagementPolicy {
    #[default]
    Manage,
    ObserveOnly,
}

/// The observed state of the rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExpeditedDeploymentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The Graph deployment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The Entra tenant the deployment lives in (the connection's, or the operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The id of the deployment's audience (`deploymentAudiences/{id}`), through which its members and
    /// exclusions are read and written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_id: Option<String>,

    /// The effective Graph state: scheduled, offering, paused, faulted or archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_state: Option<String>,

    /// Why Graph is in that state (for example pausedByRequest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_reasons: Vec<String>,

    /// The catalog entry the content resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_content: Option<ResolvedContent>,

    /// The entry a `refresh: OnNewRelease` replacement moved away from, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_content: Option<PreviousContent>,

    /// Audience sizes in Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<AudienceStatus>,

    /// Devices Graph could not register, with the reason (at most 50 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_errors: Vec<DeviceError>,

    /// How many targeted devices run the update, and when that was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RolloutProgress>,

    /// Where a spec.rollout stands: the waves sent, the gate waited for, a halt or an abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,

    /// When the status last changed after a sync with Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,

    /// When the operator last wrote to Graph for this object (RFC 3339): until `--read-lag-budget` after
    /// it, what a read does not show yet is waited for rather than sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_write_time: Option<String>,

    /// When Graph first answered 404 for the recorded deployment (RFC 3339). It is created again only if
    /// it is still missing `--absence-confirm` later; a read that finds it clears this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<String>,

    /// A deployment create in progress; used to adopt the deployment if the operator stopped before it
    /// recorded the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_intent: Option<CreateIntent>,

    /// Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // A map list keyed by type: another writer's condition keeps its own owner under server-side apply.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The content the spec resolved to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedContent {
    /// The spec.content this was resolved from, as `releaseDate:…`, `catalogEntryId:…` or `latest`.
    pub source: String,
    /// The catalog entry id.
    pub catalog_entry_id: String,
    /// The catalog entry's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Release date (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// The catalog entry's `deployableUntilDateTime`: after it Graph no longer deploys the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployable_until: Option<String>,
    /// The catalog entry's short name, such as `2026.11 B`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_name: Option<String>,
    /// The exploited CVEs the entry fixes, as the catalog lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
    /// The highest severity among the CVEs the entry fixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_severity: Option<String>,
    /// When the catalog was read for this resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_time: Option<String>,
}

/// The content a deployment had before a refresh replaced it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PreviousContent {
    pub catalog_entry_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// When the newer entry replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_time: Option<String>,
}

impl ResolvedContent {
    /// One line for people: name, short name, severity and exploited CVEs, as far as known.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            self.display_name
                .clone()
                .unwrap_or_else(|| self.catalog_entry_id.clone()),
        ];
        parts.extend(self.short_name.clone());
        if let Some(s) = &self.max_severity {
            parts.push(format!("max severity {s}"));
        }
        if !self.cves.is_empty() {
            parts.push(format!("exploited {}", self.cves.join(", ")));
        }
        parts.join("; ")
    }

    /// Whether the content can no longer be deployed at `now`.
    pub fn expired_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.deployable_until
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t <= now)
    }
}

/// How far the rollout has come on the devices, from Graph's device signals (see the README's
/// "Rollout progress"): polled on its own interval, not every pass.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgress {
    /// Distinct devices the audience offers the update to.
    pub targeted: u64,
    /// Reporting a build at or above the entry's revision for their Windows build (hotpatch included).
    pub up_to_date: u64,
    /// Reporting an older build (or a Windows version the entry has no revision for).
    pub pending: u64,
    /// Their asset carries errors and they are not up to date.
    pub failed: u64,
    /// Not listed in deviceProfiles at all: never counted as up to date.
    pub not_reporting: u64,
    /// `upToDate/targeted`, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<String>,
    /// When the signals were read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_time: Option<String>,
    /// Which Graph signals the figures come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Audience sizes in Graph.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AudienceStatus {
    /// Members (devices and groups).
    pub members: u64,
    /// Exclusions (devices and groups).
    pub exclusions: u64,
    /// Distinct devices offered the update: members and group devices, less exclusions.
    pub devices: u64,
}

/// A device Graph could not register.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeviceError {
    /// The Entra device id.
    pub device_id: String,
    /// Graph's reasons, such as invalidAzureADDeviceId or missingTrustType.
    pub reasons: Vec<String>,
}

/// A create that was started.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateIntent {
    /// When the create was sent (RFC 3339).
    pub started_at: String,
    /// The catalog entry id of the content sent.
    pub catalog_entry_id: String,
    /// The release date sent, for release-date content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// The audience created for the deployment, once Graph answered: the deployment is created with
    /// it, and a create tried again reuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_id: Option<String>,
}

/// Where a rollout stands.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RolloutPhase {
    /// A wave is being sent.
    #[default]
    Progressing,
    /// A later wave waits for its gate (time, health figures or a person).
    Waiting,
    /// Too many devices failed: the deployment is paused until wufb.dev/retry or wufb.dev/abort.
    Halted,
    /// wufb.dev/abort stopped promotion: the deployment stays paused until the spec changes.
    Aborted,
    /// spec.paused holds the rollout.
    Paused,
    /// Every wave was sent.
    Complete,
}

impl RolloutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Progressing => "Progressing",
            RolloutPhase::Waiting => "Waiting",
            RolloutPhase::Halted => "Halted",
            RolloutPhase::Aborted => "Aborted",
            RolloutPhase::Paused => "Paused",
            RolloutPhase::Complete => "Complete",
        }
    }

    /// Whether a halt or an abort holds the deployment paused.
    pub fn is_held(self) -> bool {
        matches!(self, RolloutPhase::Halted | RolloutPhase::Aborted)
    }
}

impl std::fmt::Display for RolloutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a spec.rollout stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Where the rollout stands.
    pub phase: RolloutPhase,
    /// The last wave sent to Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_wave: Option<String>,
    /// What the rollout waits for, or why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the next wave is due if its other conditions hold (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_promotion_time: Option<String>,
    /// Each wave, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveStatus>,
    /// The halt in force: the operator paused the Graph deployment because too many devices failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<RolloutHalt>,
    /// The abort in force: no wave is promoted and the deployment stays paused until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<RolloutAbort>,
    /// The last wufb.dev/retry value acted on, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retry: Option<RolloutRequest>,
    /// Sent waves removed from spec.rollout.waves: their devices stay offered until
    /// spec.rollout.withdrawnWaves names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained_waves: Vec<String>,
    /// The audience members kept offered for the retained waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_devices: Option<u64>,
    /// The last wufb.dev/promote value decided: acted on, or ignored and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promote: Option<RolloutRequest>,
    /// The last wufb.dev/abort value acted on (a later spec change lifts the abort, not this value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_abort: Option<RolloutRequest>,
    /// When the waves sent so far moved to a new Graph deployment because the content changed: figures
    /// read before it measured the old content, and no gate or halt trusts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_time: Option<String>,
    /// The catalog entry the waves were last sent and measured for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_entry_id: Option<String>,
}

/// One wave's state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WaveStatus {
    /// The wave's name in spec.rollout.waves.
    pub name: String,
    /// Distinct devices this wave adds (a device in several waves counts in the first), less exclusions.
    pub devices: u64,
    /// When the wave was sent to Graph (RFC 3339); unset while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_time: Option<String>,
    /// Its devices' progress at the last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RolloutProgress>,
}

/// Why and when a rollout halted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutHalt {
    /// The last wave sent when it halted.
    pub wave: String,
    /// When it halted (RFC 3339).
    pub time: String,
    /// Failed devices among those offered so far.
    pub failed: u64,
    /// Devices offered so far.
    pub devices: u64,
    /// The limit exceeded (percent).
    pub limit_percent: u32,
    /// The field that set the limit, such as spec.rollout.waves[1].gate.maxFailedPercent.
    pub limit_field: String,
}

/// An abort in force.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAbort {
    /// When it was aborted (RFC 3339).
    pub time: String,
    /// The spec generation it holds for: a spec change lifts it.
    pub generation: i64,
}

/// An annotation request acted on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRequest {
    /// The annotation's value.
    pub value: String,
    /// When it was acted on (RFC 3339). For a retry, when the last retry that lifted a halt was (empty
    /// when none has).
    pub time: String,
    /// The spec generation the request was decided under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Why the request was not acted on, when it was not (it never fires later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::CustomResourceExt;

    /// The lists of audience items in a schema node, as JSON paths.
    fn item_lists(node: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = node["properties"].as_object() {
            for (k, v) in props {
                item_lists(v, &format!("{path}.{k}"), out);
            }
        }
        if node["type"] == "array" {
            let items = &node["items"];
            if items["properties"].get("deviceGroup").is_some() {
                out.push(path.to_string());
            } else {
                item_lists(items, &format!("{path}[]"), out);
            }
        }
    }

    #[test]
    fn every_list_of_audience_items_in_the_schema_is_walked() {
        let crd = serde_json::to_value(ExpeditedDeployment::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut found = Vec::new();
        item_lists(spec, "spec", &mut found);
        found.sort();
        let mut known = AUDIENCE_ITEM_LISTS.to_vec();
        known.sort();
        assert_eq!(
            found, known,
            "a new list of audience items: add it to AUDIENCE_ITEM_LISTS and ExpeditedDeploymentSpec::items"
        );
    }

    #[test]
    fn a_group_is_found_in_every_list_that_can_name_it() {
        let spec: ExpeditedDeploymentSpec = serde_json::from_value(serde_json::json!({
            "content": {"latest": true},
            "audience": {"members": [{"deviceGroup": "m"}], "exclusions": [{"deviceGroup": "x"}]},
            "rollout": {"waves": [{"name": "a", "members": [{"deviceGroup": "w0"}]},
                                   {"name": "b", "members": [{"device": "d"}, {"deviceGroup": "w1"}]}]},
        }))
        .unwrap();
        let groups: Vec<&str> = spec.device_groups().collect();
        assert_eq!(groups, ["m", "x", "w0", "w1"]);
        let paths: Vec<String> = spec.items().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "spec.audience.members[0]",
                "spec.audience.exclusions[0]",
                "spec.rollout.waves[0].members[0]",
                "spec.rollout.waves[1].members[0]",
                "spec.rollout.waves[1].members[1]",
            ]
        );
        assert!(spec.uses_device_group("w1") && !spec.uses_device_group("d"));
    }
}
