//! The seeded update catalog: two years of monthly Patch-Tuesday security releases ("B" releases, all
//! expeditable), optional non-security previews ("D" releases, fourth Tuesday, not expeditable), a few
//! out-of-band security releases, and feature updates. Everything is derived from the anchor date, so the
//! same anchor always yields the same ids.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::odata::NS;

/// A deterministic 64-hex-digit entry id, like the ids current catalog examples use.
pub fn entry_id(key: &str) -> String {
    let digest = Sha256::digest(format!("wufb-emulator-catalog/{key}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `n`th `weekday` of a month (1-based).
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8)
}

/// Second Tuesday of the month: the monthly security release.
pub fn patch_tuesday(year: i32, month: u32) -> Option<NaiveDate> {
    nth_weekday(year, month, Weekday::Tue, 2)
}

fn ts(d: NaiveDate) -> String {
    format!("{}T00:00:00Z", d.format("%Y-%m-%d"))
}

struct Product {
    name: &'static str,
    version: &'static str,
    major: u32,
    build: u32,
    /// Update build revision of the first month in the window, grown every month.
    base_ubr: u32,
    from: NaiveDate,
}

/// The Windows builds the catalog's entries carry revisions for: major version, build number, the
/// first revision in the catalog's window, and the version name.
pub fn product_builds() -> Vec<(u32, u32, u32, &'static str)> {
    products()
        .iter()
        .map(|p| (p.major, p.build, p.base_ubr, p.version))
        .collect()
}

fn products() -> Vec<Product> {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    vec![
        Product {
            name: "Windows 10",
            version: "22H2",
            major: 10,
            build: 19045,
            base_ubr: 3803,
            from: d(2022, 10, 18),
        },
        Product {
            name: "Windows 11",
            version: "23H2",
            major: 10,
            build: 22631,
            base_ubr: 2861,
            from: d(2023, 10, 31),
        },
        Product {
            name: "Windows 11",
            version: "24H2",
            major: 10,
            build: 26100,
            base_ubr: 2033,
            from: d(2024, 10, 1),
        },
        Product {
            name: "Windows 11",
            version: "25H2",
            major: 10,
            build: 26200,
            base_ubr: 6584,
            from: d(2025, 9, 30),
        },
    ]
}

/// One product revision of an entry.
fn revision(p: &Product, release: NaiveDate, ubr: u32, kb: u32, hotpatch: bool) -> Value {
    let kind = if hotpatch { " Hotpatch" } else { "" };
    json!({
        "id": format!("{}.0.{}.{}", p.major, p.build, ubr),
        "displayName": format!("{} {}{kind} {}.{}", p.name, p.version, p.build, ubr),
        "releaseDateTime": ts(release),
        "version": p.version,
        "product": p.name,
        "isHotpatchUpdate": hotpatch,
        "osBuild": {"majorVersion": p.major, "minorVersion": 0, "buildNumber": p.build, "updateBuildRevision": ubr},
        "knowledgeBaseArticle": {
            "id": format!("KB{kb}"),
            "url": format!("https://support.microsoft.com/help/{kb}")
        }
    })
}

/// How far below the standard revision a hotpatch revision's build revision sits.
pub const HOTPATCH_UBR_GAP: u32 = 40;

/// The revisions of one release: one per Windows version out by then; a security release outside a
/// hotpatch baseline month (January, April, July, October) also carries a hotpatch revision for each
/// Windows 11 version from 24H2 on, with a lower build revision than the standard one.
fn revisions(release: NaiveDate, month_index: u32, kb_base: u32, security: bool) -> Vec<Value> {
    let baseline = release.month() % 3 == 1;
    let mut out = Vec::new();
    for (i, p) in products().iter().enumerate().filter(|(_, p)| p.from <= release) {
        let ubr = p.base_ubr + month_index * 67;
        let kb = kb_base + i as u32 * 3;
        out.push(revision(p, release, ubr, kb, false));
        if security && !baseline && p.build >= 26100 {
            out.push(revision(p, release, ubr - HOTPATCH_UBR_GAP, kb + 1, true));
        }
    }
    out
}

fn quality(
    key: &str,
    release: NaiveDate,
    short: &str,
    classification: &str,
    cadence: &str,
    expeditable: bool,
    month_index: u32,
) -> Value {
    let kb_base = 5_031_000 + month_index * 40 + if classification == "security" { 0 } else { 20 };
    let label = if classification == "security" {
        "Security Updates"
    } else {
        "Non-Security Updates"
    };
    let score = 7.0 + f64::from((month_index * 7) % 29) / 10.0;
    json!({
        "@odata.type": format!("#{NS}qualityUpdateCatalogEntry"),
        "id": entry_id(key),
        "displayName": format!("{} - {} {} for Windows 10 and later", release.format("%m/%d/%Y"), short, label),
        "releaseDateTime": ts(release),
        "deployableUntilDateTime": null,
        "isExpeditable": expeditable,
        "qualityUpdateClassification": classification,
        "qualityUpdateCadence": cadence,
        "catalogName": format!("{} Cumulative Update for Windows 10 and later", release.format("%Y-%m")),
        "shortName": short,
        "cveSeverityInformation": if classification == "security" {
            json!({
                "maxSeverity": if score >= 9.0 { "critical" } else { "important" },
                "maxBaseScore": (score * 10.0).round() / 10.0,
                "exploitedCves": if month_index.is_multiple_of(3) {
                    json!([{"number": format!("CVE-{}-{}", release.year(), 21_000 + month_index * 13),
                            "url": format!("https://msrc.microsoft.com/update-guide/vulnerability/CVE-{}-{}", release.year(), 21_000 + month_index * 13)}])
                } else { json!([]) }
            })
        } else { Value::Null },
        "productRevisions": revisions(release, month_index, kb_base, classification == "security"),
    })
}

fn feature(key: &str, release: NaiveDate, name: &str, version: &str, build: &str) -> Value {
    json!({
        "@odata.type": format!("#{NS}featureUpdateCatalogEntry"),
        "id": entry_id(key),
        "displayName": name,
        "releaseDateTime": ts(release),
        "deployableUntilDateTime": null,
        "version": version,
        "buildNumber": build,
    })
}

/// The catalog always reaches back at least to this month, so dates in documentation and examples
/// (such as 2026-11-10) stay valid.
const FIRST_MONTH: (i32, u32) = (2025, 1);

/// Builds the catalog as it stood on `until`: the releases of the last 24 months (and at least since
/// January 2025) up to that date.
pub fn seed(until: NaiveDate) -> Vec<Value> {
    let mut out = Vec::new();
    let (mut year, mut month) = (until.year(), until.month());
    let since_first = (until.year() - FIRST_MONTH.0) * 12 + until.month() as i32 - FIRST_MONTH.1 as i32 + 1;
    let months = since_first.max(24) as u32;
    for back in 0..months {
        let month_index = months - back;
        if let Some(b) = patch_tuesday(year, month).filter(|d| *d <= until) {
            let short = format!("{}.{:02} B", year, month);
            out.push(quality(
                &format!("{year}-{month:02}-B"),
                b,
                &short,
                "security",
                "monthly",
                true,
                month_index,
            ));
            // An out-of-band security fix in every sixth month, a week after the B release.
            if month % 6 == 1 && b + Duration::days(7) <= until {
                let oob = b + Duration::days(7);
                let short = format!("{}.{:02} OOB", year, month);
                out.push(quality(
                    &format!("{year}-{month:02}-OOB"),
                    oob,
                    &short,
                    "security",
                    "outOfBand",
                    true,
                    month_index,
                ));
            }
        }
        if let Some(d) = nth_weekday(year, month, Weekday::Tue, 4).filter(|d| *d <= until) {
            let short = format!("{}.{:02} D", year, month);
            out.push(quality(
                &format!("{year}-{month:02}-D"),
                d,
                &short,
                "nonSecurity",
                "monthly",
                false,
                month_index,
            ));
        }
        if month == 1 {
            year -= 1;
            month = 12;
        } else {
            month -= 1;
        }
    }
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    for (key, date, name, version, build) in [
        (
            "feature-win10-22h2",
            d(2022, 10, 18),
            "Windows 10, version 22H2",
            "22H2",
            "19045",
        ),
        (
            "feature-win11-23h2",
            d(2023, 10, 31),
            "Windows 11, version 23H2",
            "23H2",
            "22631",
        ),
        (
            "feature-win11-24h2",
            d(2024, 10, 1),
            "Windows 11, version 24H2",
            "24H2",
            "26100",
        ),
        (
            "feature-win11-25h2",
            d(2025, 9, 30),
            "Windows 11, version 25H2",
            "25H2",
            "26200",
        ),
    ] {
        if date <= until {
            out.push(feature(key, date, name, version, build));
        }
    }
    out.sort_by(|a, b| b["releaseDateTime"].as_str().cmp(&a["releaseDateTime"].as_str()));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn patch_tuesday_is_the_second_tuesday() {
        assert_eq!(patch_tuesday(2026, 11), NaiveDate::from_ymd_opt(2026, 11, 10));
        assert_eq!(patch_tuesday(2024, 1), NaiveDate::from_ymd_opt(2024, 1, 9));
    }

    #[test]
    fn two_years_of_security_releases_with_unique_ids() {
        let until = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default();
        let cat = seed(until);
        let b: Vec<_> = cat
            .iter()
            .filter(|e| e["shortName"].as_str().is_some_and(|s| s.ends_with(" B")))
            .collect();
        assert_eq!(b.len(), 24);
        assert!(b.iter().all(|e| e["isExpeditable"] == true));
        assert!(cat.iter().any(|e| e["isExpeditable"] == false));
        assert!(cat.iter().any(|e| {
            e["@odata.type"]
                .as_str()
                .is_some_and(|t| t.ends_with("featureUpdateCatalogEntry"))
        }));
        let mut ids: Vec<_> = cat
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cat.len());
        assert_eq!(
            cat[0]["releaseDateTime"], "2026-11-24T00:00:00Z",
            "newest first: the D preview"
        );
    }

    #[test]
    fn security_releases_carry_windows_10_and_11_revisions_and_hotpatch_ones_below_them() {
        let until = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap_or_default();
        let cat = seed(until);
        let entry = |short: &str| {
            cat.iter()
                .find(|e| e["shortName"] == short)
                .unwrap_or_else(|| panic!("{short} is in the catalog"))
        };
        let revs = |short: &str| {
            entry(short)["productRevisions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let nov = revs("2026.11 B");
        let products: BTreeSet<_> = nov.iter().filter_map(|r| r["product"].as_str()).collect();
        assert_eq!(products, BTreeSet::from(["Windows 10", "Windows 11"]));
        let ubr = |r: &Value| r["osBuild"]["updateBuildRevision"].as_u64().unwrap_or_default();
        for build in [26100, 26200] {
            let of = |hot: bool| {
                nov.iter()
                    .find(|r| r["osBuild"]["buildNumber"] == build && r["isHotpatchUpdate"] == hot)
                    .map(ubr)
                    .unwrap_or_else(|| panic!("{build} hotpatch={hot}"))
            };
            assert_eq!(of(false) - of(true), u64::from(HOTPATCH_UBR_GAP), "{build}");
        }
        // A baseline month (October) and a non-security release have standard revisions only.
        for short in ["2026.10 B", "2026.11 D"] {
            assert!(
                revs(short).iter().all(|r| r["isHotpatchUpdate"] == false),
                "{short}"
            );
        }
        let cve = &entry("2026.11 B")["cveSeverityInformation"];
        assert!(cve["maxSeverity"].is_string() && cve["maxBaseScore"].is_number());
        assert!(cat.iter().any(|e| {
            e["cveSeverityInformation"]["exploitedCves"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c[0]["number"].is_string() && c[0]["url"].is_string())
        }));
    }
}
