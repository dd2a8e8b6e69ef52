//! Content: what `spec.content` resolves to in the catalog, and whether a deployment carries it.

use chrono::{DateTime, Utc};

use super::*;
use crate::crd::ResolvedContent;
use crate::graph::ContentRequest;
use crate::graph::models::CatalogEntry;
use crate::reconcile::observe::{CatalogFact, DeployedContent, describe_newest, passes};
use crate::reconcile::reasons::Reason;

pub(super) fn content_matches(desired: &Desired, deployed: &DeployedContent) -> bool {
    match (&desired.content, deployed) {
        (_, DeployedContent::Unknown) => true,
        // The legacy form an earlier version sent for the same release date: kept, not replaced.
        (_, DeployedContent::ReleaseDate(d)) => desired.release_date.as_ref() == Some(d),
        (ContentRequest::CatalogEntry(a), DeployedContent::CatalogEntry(b)) => a == b,
        (ContentRequest::ReleaseDate { .. }, DeployedContent::CatalogEntry(_)) => false,
    }
}

/// The (at most three) dates of `dates` nearest to `date` (both `YYYY-MM-DD`), or "none listed".
pub(super) fn nearest(date: &str, dates: &[String]) -> String {
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

pub(super) fn describe_content(c: &DeployedContent) -> String {
    match c {
        DeployedContent::CatalogEntry(id) => format!("catalog entry {id}"),
        DeployedContent::ReleaseDate(d) => format!("the {d} security update"),
        DeployedContent::Unknown => "unknown content".into(),
    }
}
