//! Content: catalog resolution of every form, and the `newest` filters.

use super::*;

#[test]
fn content_resolution_rules() {
    let entry = |id: &str, expeditable: bool| -> CatalogEntry {
        serde_json::from_value(
            json!({"@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry",
            "id": id, "isExpeditable": expeditable, "releaseDateTime": "2026-11-10T00:00:00Z",
            "qualityUpdateClassification": "security"}),
        )
        .unwrap()
    };
    // releaseDate: the one expeditable security update of that day.
    let on = |date: &str, entries: Vec<CatalogEntry>, nearby: &[&str]| {
        resolve_content(
            format!("releaseDate:{date}"),
            &CatalogFact::ReleaseDate {
                date: date.into(),
                entries,
                nearby: nearby.iter().map(|d| d.to_string()).collect(),
            },
            Utc::now(),
        )
    };
    let reason_and_message = |r: Result<ResolvedContent, Blocker>| match r {
        Err(Blocker::Content { reason, message }) => (reason, message),
        other => panic!("{other:?}"),
    };
    let picked = on(
        "2026-11-10",
        vec![entry("not-expeditable", false), entry("expeditable", true)],
        &[],
    )
    .unwrap();
    assert_eq!(picked.catalog_entry_id, "expeditable");
    assert_eq!(picked.release_date.as_deref(), Some("2026-11-10"));
    // Only entries that cannot be expedited: refused, naming them, never deployed as an expedite.
    let (reason, message) = reason_and_message(on("2026-11-10", vec![entry("slow", false)], &[]));
    assert_eq!(reason, Reason::CONTENT_NOT_EXPEDITABLE);
    assert!(message.contains("slow"), "{message}");
    // Several expeditable: never a guess.
    let (reason, message) =
        reason_and_message(on("2026-11-10", vec![entry("a", true), entry("b", true)], &[]));
    assert_eq!(reason, Reason::CONTENT_AMBIGUOUS);
    assert!(
        message.contains("a (") && message.contains("b (") && message.contains("catalogEntryId"),
        "{message}"
    );
    // None that day: the nearest dates are named.
    let (reason, message) = reason_and_message(on(
        "2026-11-11",
        vec![],
        &["2026-12-08", "2026-11-10", "2026-10-14", "2026-09-09"],
    ));
    assert_eq!(reason, Reason::CONTENT_NOT_FOUND);
    assert!(
        message.contains("2026-11-10, 2026-12-08, 2026-10-14") && !message.contains("2026-09-09"),
        "{message}"
    );
    let slow = resolve_content(
        "catalogEntryId:x".into(),
        &CatalogFact::Entry {
            id: "x".into(),
            entry: Some(entry("x", false)),
        },
        Utc::now(),
    );
    assert!(
        matches!(slow, Err(Blocker::Content { reason, .. }) if reason == Reason::CONTENT_NOT_EXPEDITABLE)
    );
}

#[test]
fn each_newest_filter_resolves_the_right_entry_and_none_stalls_naming_the_filter() {
    use crate::crd::{Cadence, Classification, NewestSpec, Severity};
    // Newest first, as the catalog lists them.
    let catalog = vec![
        intent_entry("2026.11 D", "2026-11-24", "nonSecurity", "monthly", "low", &[]),
        intent_entry("2026.11 B", "2026-11-10", "security", "monthly", "important", &[]),
        intent_entry(
            "2026.10 OOB",
            "2026-10-21",
            "security",
            "outOfBand",
            "critical",
            &["CVE-2026-21013"],
        ),
        intent_entry("2026.10 B", "2026-10-14", "security", "monthly", "critical", &[]),
        intent_entry(
            "2026.09 B",
            "2026-09-09",
            "security",
            "monthly",
            "moderate",
            &["CVE-2026-20001"],
        ),
    ];
    let f = NewestSpec::default;
    let rows: Vec<(&str, NewestSpec, Option<&str>)> = vec![
        ("default: newest security", f(), Some("2026.11 B")),
        (
            "all classifications",
            NewestSpec {
                classification: Some(Classification::All),
                ..f()
            },
            Some("2026.11 D"),
        ),
        (
            "non-security",
            NewestSpec {
                classification: Some(Classification::NonSecurity),
                ..f()
            },
            Some("2026.11 D"),
        ),
        (
            "out-of-band",
            NewestSpec {
                cadence: Some(Cadence::OutOfBand),
                ..f()
            },
            Some("2026.10 OOB"),
        ),
        (
            "monthly",
            NewestSpec {
                cadence: Some(Cadence::Monthly),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "critical at least",
            NewestSpec {
                min_severity: Some(Severity::Critical),
                ..f()
            },
            Some("2026.10 OOB"),
        ),
        (
            "critical and monthly",
            NewestSpec {
                min_severity: Some(Severity::Critical),
                cadence: Some(Cadence::Monthly),
                ..f()
            },
            Some("2026.10 B"),
        ),
        (
            "important at least",
            NewestSpec {
                min_severity: Some(Severity::Important),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "exploited only",
            NewestSpec {
                exploited_only: Some(true),
                ..f()
            },
            Some("2026.10 OOB"),
        ),
        // Cumulative: every entry from the first one listing the CVE fixes it, the newest wins.
        (
            "a CVE fixed in September",
            NewestSpec {
                cve: Some("CVE-2026-20001".into()),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "a CVE and monthly",
            NewestSpec {
                cve: Some("CVE-2026-21013".into()),
                cadence: Some(Cadence::Monthly),
                ..f()
            },
            Some("2026.11 B"),
        ),
        (
            "a CVE no entry lists",
            NewestSpec {
                cve: Some("CVE-2026-99999".into()),
                ..f()
            },
            None,
        ),
        (
            "out-of-band and exploited non-security",
            NewestSpec {
                classification: Some(Classification::NonSecurity),
                exploited_only: Some(true),
                ..f()
            },
            None,
        ),
    ];
    for (row, filter, want) in rows {
        let got = resolve_content(
            "newest:x".into(),
            &CatalogFact::Newest {
                filter: filter.clone(),
                entries: catalog.clone(),
            },
            Utc::now(),
        );
        match (want, got) {
            (Some(short), Ok(r)) => {
                assert_eq!(r.short_name.as_deref(), Some(short), "{row}");
                assert_eq!(r.catalog_entry_id, format!("id-{short}"), "{row}");
                assert!(r.resolved_time.is_some(), "{row}");
            }
            (None, Err(Blocker::Content { reason, message })) => {
                assert_eq!(reason, Reason::CONTENT_NOT_FOUND, "{row}");
                assert!(
                    message.starts_with("spec.content.newest: ") && message.contains("classification="),
                    "{row}: {message}"
                );
                assert!(
                    message.contains("2026.11 D"),
                    "{row}: names the newest expeditable entry: {message}"
                );
                if filter.cve.is_some() {
                    assert!(message.contains("CVE-2026-99999"), "{row}: {message}");
                }
            }
            (want, got) => panic!("{row}: wanted {want:?}, got {got:?}"),
        }
    }
    // Status carries what the entry fixes.
    let r = resolve_content(
        "latest".into(),
        &CatalogFact::Newest {
            filter: NewestSpec {
                exploited_only: Some(true),
                ..f()
            },
            entries: catalog.clone(),
        },
        Utc::now(),
    )
    .unwrap();
    assert_eq!(r.cves, vec!["CVE-2026-21013".to_string()]);
    assert_eq!(r.max_severity.as_deref(), Some("critical"));
    assert!(r.describe().contains("2026.10 OOB") && r.describe().contains("CVE-2026-21013"));
    // `latest` with an empty catalog names its own field.
    let none = resolve_content(
        "latest".into(),
        &CatalogFact::Newest {
            filter: f(),
            entries: vec![],
        },
        Utc::now(),
    );
    assert!(
        matches!(none, Err(Blocker::Content { message, .. }) if message.starts_with("spec.content.latest: "))
    );
}
