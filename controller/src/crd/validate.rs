//! Semantic checks shared by the controller and `wufb-operator validate`. They repeat the schema's CEL
//! rules with the same wording (so an object that slipped past the schema, for example on a cluster
//! without CEL, still gets the same message) and add what a schema cannot check.

use std::collections::BTreeMap;

use super::{AudienceItem, DeviceGroupSpec, ExpeditedDeploymentSpec};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.audience.members[2].device`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.problem, self.fix)
    }
}

fn err(field: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Is this an Entra device id (a GUID)?
pub fn is_device_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Is this a valid Kubernetes object name (DNS-1123 subdomain)?
pub fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn describe(item: &AudienceItem) -> String {
    match (item.device(), item.device_group(), item.asset_group_id()) {
        (Some(d), None, None) => format!("device {d}"),
        (None, Some(g), None) => format!("deviceGroup {g}"),
        (None, None, Some(a)) => format!("assetGroupId {a}"),
        _ => "item".to_string(),
    }
}

/// `CVE-YYYY-NNNN` with four to seven digits after the year.
fn is_cve(s: &str) -> bool {
    let mut parts = s.split('-');
    let digits = |p: Option<&str>, min: usize, max: usize| {
        p.is_some_and(|p| (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    parts.next() == Some("CVE")
        && digits(parts.next(), 4, 4)
        && digits(parts.next(), 4, 7)
        && parts.next().is_none()
}

/// Checks one audience item's own fields (`path` names it); false when its form is wrong.
fn check_item(item: &AudienceItem, path: &dyn Fn() -> String, out: &mut Vec<FieldError>) -> bool {
    let forms = item.forms();
    if forms != 1 {
        out.push(err(
            path(),
            format!("{forms} forms are set"),
            "set exactly one of device, deviceGroup or assetGroupId",
        ));
        return false;
    }
    if let Some(d) = item.device()
        && !is_device_id(&d.as_str())
    {
        out.push(err(
            format!("{}.device", path()),
            format!("'{}' is not an Entra device id", printable(&d.as_str())),
            "use the device's Entra object id, a GUID such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01",
        ));
    }
    if let Some(g) = item.device_group()
        && !is_object_name(g)
    {
        out.push(err(
            format!("{}.deviceGroup", path()),
            format!("'{}' is not a valid object name", printable(g)),
            "use the metadata.name of a DeviceGroup in this namespace",
        ));
    }
    if let Some(a) = item.asset_group_id()
        && (a.trim().is_empty() || a.len() > 128)
    {
        out.push(err(
            format!("{}.assetGroupId", path()),
            "must be 1 to 128 characters",
            "give an updatableAssetGroup id",
        ));
    }
    true
}

/// Checks an ExpeditedDeployment spec. Empty when valid.
pub fn expedited_deployment(spec: &ExpeditedDeploymentSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    let c = &spec.content;
    let set = [
        c.release_date.is_some(),
        c.catalog_entry_id.is_some(),
        c.latest == Some(true),
        c.newest.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        out.push(err(
            "spec.content",
            format!("{set} content forms are set"),
            "set exactly one of releaseDate, catalogEntryId, latest: true or newest",
        ));
    }
    if c.refresh == Some(crate::crd::Refresh::OnNewRelease) && c.newest.is_none() && c.latest != Some(true) {
        out.push(err(
            "spec.content.refresh",
            "OnNewRelease follows new catalog entries, which only latest and newest pick",
            "use latest: true or newest with refresh: OnNewRelease, or remove refresh",
        ));
    }
    if let Some(cve) = c.newest.as_ref().and_then(|n| n.cve.as_ref())
        && !is_cve(cve)
    {
        out.push(err(
            "spec.content.newest.cve",
            format!("'{cve}' is not a CVE number"),
            "write it as CVE-YYYY-NNNN, e.g. CVE-2026-21000",
        ));
    }
    if let Some(d) = &c.release_date {
        if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() || d.len() != 10 {
            out.push(err(
                "spec.content.releaseDate",
                format!("'{d}' is not a date"),
                "use YYYY-MM-DD, e.g. 2026-11-10",
            ));
        }
        if spec.readiness_test {
            out.push(err(
                "spec.readinessTest",
                "a readiness test cannot be run for releaseDate content",
                "use content.catalogEntryId or content.latest, or remove readinessTest",
            ));
        }
    }
    if let Some(id) = &c.catalog_entry_id
        && (id.trim().is_empty() || id.len() > 128)
    {
        out.push(err(
            "spec.content.catalogEntryId",
            "must be 1 to 128 characters",
            "give a catalog entry id from the Graph update catalog",
        ));
    }
    if let Some(ux) = &spec.user_experience
        && let Some(d) = ux.days_until_forced_reboot
        && !(0..=30).contains(&d)
    {
        out.push(err(
            "spec.userExperience.daysUntilForcedReboot",
            format!("{d} is out of range"),
            "use 0 to 30 days",
        ));
    }
    if spec.max_devices == Some(0) {
        out.push(err(
            "spec.maxDevices",
            "0 would block every device",
            "use at least 1, or remove the limit",
        ));
    }
    if let Some(id) = &spec.deployment_id
        && (id.trim().is_empty() || id.len() > 128)
    {
        out.push(err(
            "spec.deploymentId",
            "must be 1 to 128 characters",
            "give the id of an existing Graph deployment",
        ));
    }
    if let Some(aud) = &spec.audience {
        // Where each item was first seen: (list, index). Paths are formatted only for an error.
        let mut seen: BTreeMap<&AudienceItem, (&str, usize)> = BTreeMap::new();
        for (list, items, max) in [
            ("members", &aud.members, 1000),
            ("exclusions", &aud.exclusions, 200),
        ] {
            if items.len() > max {
                out.push(err(
                    format!("spec.audience.{list}"),
                    format!("{} items, more than {max}", items.len()),
                    "put large device lists in a DeviceGroup and reference it",
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let path = || format!("spec.audience.{list}[{i}]");
                if !check_item(item, &path, &mut out) {
                    continue;
                }
                match seen.get(item) {
                    Some((first_list, j)) if *first_list == list => out.push(err(
                        path(),
                        format!(
                            "{} is listed twice (first at spec.audience.{list}[{j}])",
                            describe(item)
                        ),
                        "remove the duplicate",
                    )),
                    Some((first_list, j)) => out.push(err(
                        path(),
                        format!(
                            "{} is both a member (spec.audience.{first_list}[{j}]) and an exclusion",
                            describe(item)
                        ),
                        "an item cannot be both a member and an exclusion; remove one",
                    )),
                    None => {
                        seen.insert(item, (list, i));
                    }
                }
            }
        }
    }
    if let Some(r) = &spec.rollout {
        check_rollout(spec, r, &mut out);
    }
    out
}

/// Checks `spec.rollout`: named waves with their members, a gate for each but the first, and the
/// members in the waves rather than in spec.audience.members.
fn check_rollout(spec: &ExpeditedDeploymentSpec, r: &super::RolloutSpec, out: &mut Vec<FieldError>) {
    if spec.audience.as_ref().is_some_and(|a| !a.members.is_empty()) {
        out.push(err(
            "spec.audience.members",
            "members are listed here and in spec.rollout.waves",
            "with waves, list every member in spec.rollout.waves[].members and keep only exclusions in spec.audience",
        ));
    }
    if r.waves.is_empty() || r.waves.len() > 10 {
        out.push(err(
            "spec.rollout.waves",
            format!("{} waves", r.waves.len()),
            "list 1 to 10 waves, or remove spec.rollout",
        ));
    }
    let percent = |v: Option<u32>, field: String, out: &mut Vec<FieldError>| {
        if let Some(v) = v.filter(|v| *v > 100) {
            out.push(err(
                field,
                format!("{v} is above 100"),
                "give a percentage from 0 to 100",
            ));
        }
    };
    percent(r.max_failed_percent, "spec.rollout.maxFailedPercent".into(), out);
    let excluded: Vec<&AudienceItem> = spec.audience.iter().flat_map(|a| &a.exclusions).collect();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen: BTreeMap<&AudienceItem, usize> = BTreeMap::new();
    for (k, w) in r.waves.iter().enumerate() {
        let at = format!("spec.rollout.waves[{k}]");
        if !is_label(&w.name) {
            out.push(err(
                format!("{at}.name"),
                format!("'{}' is not a DNS label", printable(&w.name)),
                "use lower-case letters, digits and '-', at most 63, such as pilot or broad",
            ));
        }
        if let Some(j) = names.insert(&w.name, k) {
            out.push(err(
                format!("{at}.name"),
                format!(
                    "wave name '{}' is used twice (first at spec.rollout.waves[{j}])",
                    w.name
                ),
                "give each wave its own name",
            ));
        }
        if let Some(from) = &w.renamed_from
            && (from == &w.name || r.waves.iter().any(|o| &o.name == from))
        {
            out.push(err(
                format!("{at}.renamedFrom"),
                format!(
                    "'{}' is the name of a wave in spec.rollout.waves",
                    printable(from)
                ),
                "name the wave's previous name, which no wave has now (or remove renamedFrom)",
            ));
        }
        if w.members.is_empty() || w.members.len() > 1000 {
            out.push(err(
                format!("{at}.members"),
                format!("{} members", w.members.len()),
                "list 1 to 1000 members; put large device lists in a DeviceGroup",
            ));
        }
        for (i, item) in w.members.iter().enumerate() {
            let path = || format!("{at}.members[{i}]");
            if !check_item(item, &path, out) {
                continue;
            }
            if excluded.contains(&item) {
                out.push(err(
                    path(),
                    format!("{} is both a wave member and an exclusion", describe(item)),
                    "an item cannot be both a member and an exclusion; remove one",
                ));
            }
            if let Some(j) = seen.insert(item, k) {
                out.push(err(
                    path(),
                    format!(
                        "{} is listed twice (also in spec.rollout.waves[{j}])",
                        describe(item)
                    ),
                    "list each item in one wave",
                ));
            }
        }
        match (&w.gate, k) {
            (Some(_), 0) => out.push(err(
                format!("{at}.gate"),
                "the first wave is sent at once and has no gate",
                "remove the gate (set spec.paused to hold the whole rollout)",
            )),
            (None, k) if k > 0 => out.push(err(
                format!("{at}.gate"),
                "a wave after the first needs a gate",
                "set wait, minUpToDatePercent, maxFailedPercent or manual: true",
            )),
            (Some(g), _) => {
                if g.wait.is_none()
                    && g.min_up_to_date_percent.is_none()
                    && g.max_failed_percent.is_none()
                    && g.manual != Some(true)
                {
                    out.push(err(
                        format!("{at}.gate"),
                        "the gate sets no condition",
                        "set wait, minUpToDatePercent, maxFailedPercent or manual: true",
                    ));
                }
                if let Some(wait) = &g.wait {
                    let bounds = super::duration::GATE_WAIT;
                    let problem = if !wait.ends_with(['s', 'm', 'h', 'd']) {
                        Some("is not a duration")
                    } else {
                        match bounds.parse(wait) {
                            Ok(_) => None,
                            Err(super::duration::DurationError::Form) => Some("is not a duration"),
                            Err(super::duration::DurationError::Range) => Some("is out of range"),
                        }
                    };
                    if let Some(problem) = problem {
                        out.push(err(
                            format!("{at}.gate.wait"),
                            format!("'{}' {problem}", printable(wait)),
                            format!("write {}, such as 30m, 4h or 1d", bounds.expected()),
                        ));
                    }
                }
                percent(
                    g.min_up_to_date_percent,
                    format!("{at}.gate.minUpToDatePercent"),
                    out,
                );
                percent(g.max_failed_percent, format!("{at}.gate.maxFailedPercent"), out);
            }
            _ => {}
        }
    }
}

/// Is this a DNS-1123 label?
fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && is_object_name(s) && !s.contains('.')
}

/// The operator's annotations whose values the controller refuses (it goes on with the defaults): an
/// interval out of its form or range, a malformed rollout request. Empty when all are usable.
pub fn annotation_values(annotations: &BTreeMap<String, String>) -> Vec<FieldError> {
    super::annotations::ignored(Some(annotations))
        .into_iter()
        .map(|i| {
            err(
                format!("metadata.annotations[{}]", i.key),
                format!("'{}' is refused (the default applies)", i.value),
                format!("write {}, or remove the annotation", i.expected),
            )
        })
        .collect()
}

/// Checks the rollout annotations of an object (`wufb-operator validate` runs it offline): a promote
/// must name a wave of spec.rollout.waves, and the annotations need a rollout to act on.
pub fn rollout_annotations(
    spec: &ExpeditedDeploymentSpec,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    for key in [
        super::PROMOTE_ANNOTATION,
        super::ABORT_ANNOTATION,
        super::RETRY_ANNOTATION,
    ] {
        let Some(v) = annotations.get(key) else { continue };
        if super::annotations::ignored(Some(annotations))
            .iter()
            .any(|i| i.key == key)
        {
            // Reported by annotation_values.
            continue;
        }
        let field = format!("metadata.annotations[{key}]");
        let Some(r) = &spec.rollout else {
            out.push(err(
                field,
                "the object has no spec.rollout",
                "remove the annotation, or add spec.rollout.waves",
            ));
            continue;
        };
        if v.trim().is_empty() {
            out.push(err(
                field,
                "the value is empty",
                "set it with `wufb-operator promote|abort|retry`",
            ));
        } else if key == super::PROMOTE_ANNOTATION
            && !r
                .waves
                .iter()
                .any(|w| w.name == super::annotations::promote_wave(v))
        {
            let names: Vec<&str> = r.waves.iter().map(|w| w.name.as_str()).collect();
            out.push(err(
                field,
                format!("'{}' names no wave", printable(v)),
                format!("name one of {}", names.join(", ")),
            ));
        }
    }
    out
}

/// Checks a DeviceGroup spec. Empty when valid.
pub fn device_group(spec: &DeviceGroupSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    let max = super::device_group::MAX_DEVICES;
    if spec.devices.len() > max {
        out.push(err(
            "spec.devices",
            format!("{} devices, more than {max} (what one object of a cluster can hold)", spec.devices.len()),
            "take the devices from an Entra ID group with spec.entraGroupId, or split the ring into several DeviceGroups",
        ));
    }
    if let Some(g) = &spec.entra_group_id {
        if !spec.devices.is_empty() {
            out.push(err(
                "spec.entraGroupId",
                "set together with spec.devices",
                "set either devices or entraGroupId, not both",
            ));
        }
        if !is_device_id(g) {
            out.push(err(
                "spec.entraGroupId",
                format!("'{}' is not an Entra group object id", printable(g)),
                "use the group's object id from Entra ID, a GUID",
            ));
        }
    }
    let mut seen: BTreeMap<&crate::crd::DeviceId, usize> = BTreeMap::new();
    for (i, d) in spec.devices.iter().enumerate() {
        if !is_device_id(&d.as_str()) {
            out.push(err(
                format!("spec.devices[{i}]"),
                format!("'{}' is not an Entra device id", printable(&d.as_str())),
                "use the device's Entra object id, a GUID such as 3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01",
            ));
        } else if let Some(first) = seen.insert(d, i) {
            out.push(err(
                format!("spec.devices[{i}]"),
                format!("{d} is listed twice (first at spec.devices[{first}])"),
                "remove the duplicate",
            ));
        }
        if out.len() >= 100 {
            out.push(err(
                "spec.devices",
                "more problems not listed",
                "fix the ones above first",
            ));
            break;
        }
    }
    out
}

pub use super::text::{is_invisible, printable};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AudienceSpec, ContentSpec, UserExperienceSpec};

    const D1: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01";

    fn spec() -> ExpeditedDeploymentSpec {
        serde_json::from_value(serde_json::json!({"content": {"latest": true}})).unwrap()
    }

    fn dev(id: &str) -> AudienceItem {
        AudienceItem::of_device(id.into())
    }

    #[test]
    fn a_minimal_spec_is_valid() {
        assert_eq!(expedited_deployment(&spec()), vec![]);
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut s = spec();
        s.content = ContentSpec {
            release_date: Some("2026-02-30".into()),
            latest: Some(true),
            ..Default::default()
        };
        s.readiness_test = true;
        s.user_experience = Some(UserExperienceSpec {
            days_until_forced_reboot: Some(-1),
            ..Default::default()
        });
        s.max_devices = Some(0);
        s.audience = Some(AudienceSpec {
            members: vec![
                dev(D1),
                dev("laptop-42"),
                dev(D1),
                AudienceItem::default(),
                AudienceItem::of_device_group("Ring 1"),
            ],
            exclusions: vec![dev(D1)],
        });
        let fields: Vec<String> = expedited_deployment(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.content",
                "spec.content.releaseDate",
                "spec.readinessTest",
                "spec.userExperience.daysUntilForcedReboot",
                "spec.maxDevices",
                "spec.audience.members[1].device",
                "spec.audience.members[2]",
                "spec.audience.members[3]",
                "spec.audience.members[4].deviceGroup",
                "spec.audience.exclusions[0]",
            ]
        );
        let both = expedited_deployment(&s).pop().unwrap();
        assert_eq!(
            both.to_string(),
            format!(
                "spec.audience.exclusions[0]: device {D1} is both a member (spec.audience.members[0]) and an exclusion (an item cannot be both a member and an exclusion; remove one)"
            )
        );
    }

    #[test]
    fn device_groups_need_unique_guids() {
        let g = DeviceGroupSpec {
            devices: vec![D1.into(), "x".into(), D1.into()],
            ..Default::default()
        };
        let errs = device_group(&g);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "spec.devices[1]");
        assert!(errs[1].problem.contains("twice"));
    }

    #[test]
    fn names() {
        assert!(is_object_name("pilot-ring.v2"));
        assert!(!is_object_name("Pilot"));
        assert!(!is_object_name("-a"));
    }
}
