//! The spec readers that observe and plan share: what a spec names, resolves from and asks Graph for.

use kube::ResourceExt;

use crate::crd::{
    Cadence, Classification, ExpeditedDeployment, ExpeditedDeploymentSpec, NewestSpec, Refresh,
};
use crate::graph::SettingsRequest;
use crate::graph::models::CatalogEntry;

/// The deployment an object owns or names: `spec.deploymentId`, else the id status recorded.
pub fn deployment_id(obj: &ExpeditedDeployment) -> Option<String> {
    obj.spec
        .deployment_id
        .clone()
        .or_else(|| obj.status.as_ref().and_then(|s| s.deployment_id.clone()))
}

/// `releaseDate:…`, `catalogEntryId:…` or `latest`: what the content is resolved from.
pub fn content_source(spec: &ExpeditedDeploymentSpec) -> String {
    let c = &spec.content;
    match (&c.release_date, &c.catalog_entry_id) {
        (Some(d), _) => format!("releaseDate:{d}"),
        (None, Some(id)) => format!("catalogEntryId:{id}"),
        _ => match &c.newest {
            Some(n) => format!("newest:{}", describe_newest(n)),
            None => "latest".into(),
        },
    }
}

/// The filters of `newest`, in a fixed order (`classification=security,cadence=any,...`).
pub fn describe_newest(n: &NewestSpec) -> String {
    let mut parts = vec![
        format!(
            "classification={}",
            spelled(&n.classification.unwrap_or_default())
        ),
        format!("cadence={}", spelled(&n.cadence.unwrap_or_default())),
    ];
    if let Some(s) = n.min_severity {
        parts.push(format!("minSeverity={}", spelled(&s)));
    }
    if n.exploited_only == Some(true) {
        parts.push("exploitedOnly=true".into());
    }
    if let Some(c) = &n.cve {
        parts.push(format!("cve={c}"));
    }
    parts.join(",")
}

/// The filters `spec.content` picks the newest entry by, for `latest` (`newest: {}`) and `newest`.
pub fn newest_filter(spec: &ExpeditedDeploymentSpec) -> Option<NewestSpec> {
    let c = &spec.content;
    if c.release_date.is_some() || c.catalog_entry_id.is_some() {
        return None;
    }
    Some(c.newest.clone().unwrap_or_default())
}

/// The manifest spelling of a filter value.
fn spelled<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The Graph settings a spec asks for.
pub fn settings_of(spec: &ExpeditedDeploymentSpec) -> SettingsRequest {
    let ux = spec.user_experience.clone().unwrap_or_default();
    SettingsRequest {
        days_until_forced_reboot: ux.days_until_forced_reboot,
        offer_as_optional: ux.offer_as_optional,
        readiness_test: spec.readiness_test,
    }
}

/// Whether `spec.content` follows new releases (`refresh: OnNewRelease` on latest or newest).
pub fn follows_releases(spec: &ExpeditedDeploymentSpec) -> bool {
    spec.content.refresh == Some(Refresh::OnNewRelease) && newest_filter(spec).is_some()
}

/// How often the object's catalog is read again: its annotation, else `default`.
pub fn catalog_poll(obj: &ExpeditedDeployment, default: std::time::Duration) -> std::time::Duration {
    crate::crd::annotations::interval(
        obj.metadata.annotations.as_ref(),
        crate::crd::annotations::Interval::CatalogPoll,
    )
    .unwrap_or(default)
}

/// Whether `e` passes the `newest` filters (`all` and `any` pass everything; an entry that does not
/// say its cadence or severity does not pass a filter on it).
pub fn passes(filter: &NewestSpec, e: &CatalogEntry) -> bool {
    let class = e.quality_update_classification.as_deref();
    let classification = match filter.classification.unwrap_or_default() {
        Classification::All => true,
        Classification::Security => class == Some("security"),
        Classification::NonSecurity => class == Some("nonSecurity"),
    };
    let cadence = match filter.cadence.unwrap_or_default() {
        Cadence::Any => true,
        Cadence::Monthly => e.quality_update_cadence.as_deref() == Some("monthly"),
        Cadence::OutOfBand => e.quality_update_cadence.as_deref() == Some("outOfBand"),
    };
    let severity = filter.min_severity.is_none_or(|min| {
        e.max_severity()
            .and_then(crate::crd::Severity::parse)
            .is_some_and(|s| s >= min)
    });
    let exploited = filter.exploited_only != Some(true) || !e.cves().is_empty();
    classification && cadence && severity && exploited
}

/// The ExpeditedDeployments in `ns` that reference DeviceGroup `name` anywhere in their spec (the
/// audience and every wave), by name.
pub fn referencing<'a>(
    deployments: impl IntoIterator<Item = &'a ExpeditedDeployment>,
    ns: &str,
    name: &str,
) -> Vec<String> {
    let mut out: Vec<String> = deployments
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns))
        .filter(|d| d.spec.uses_device_group(name))
        .map(|d| d.name_any())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ExpeditedDeploymentSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn only_latest_or_newest_with_on_new_release_follows_releases_and_polls_the_catalog() {
        let follows = |y| follows_releases(&spec(y));
        assert!(follows("content: {latest: true, refresh: OnNewRelease}"));
        assert!(follows(
            "content: {newest: {cadence: outOfBand}, refresh: OnNewRelease}"
        ));
        assert!(!follows("content: {newest: {}}"));
        assert!(!follows("content: {latest: true, refresh: Never}"));
        assert!(!follows("content: {catalogEntryId: x, refresh: OnNewRelease}"));
        // Sources differ by filter, so a changed filter is resolved again.
        assert_eq!(content_source(&spec("content: {latest: true}")), "latest");
        assert_eq!(
            content_source(&spec(
                "content: {newest: {minSeverity: critical, exploitedOnly: true}}"
            )),
            "newest:classification=security,cadence=any,minSeverity=critical,exploitedOnly=true"
        );
    }

    #[test]
    fn a_severity_filter_never_passes_an_entry_that_does_not_say_its_severity() {
        let filter = NewestSpec {
            min_severity: Some(crate::crd::Severity::Low),
            ..Default::default()
        };
        let e = |cve: serde_json::Value| -> CatalogEntry {
            serde_json::from_value(
                serde_json::json!({"id": "e", "qualityUpdateClassification": "security",
                "cveSeverityInformation": cve}),
            )
            .unwrap()
        };
        assert!(!passes(&filter, &e(serde_json::Value::Null)));
        assert!(!passes(
            &filter,
            &e(serde_json::json!({"maxSeverity": "unknownFutureValue"}))
        ));
        assert!(passes(&filter, &e(serde_json::json!({"maxSeverity": "low"}))));
    }
}
