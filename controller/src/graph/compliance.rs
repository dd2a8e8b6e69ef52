//! Whether a device is at or above a catalog entry, from its `osBuild` and the entry's
//! `productRevisions`: a pure rule the progress features build on.
//!
//! The rule: the entry's revisions for the device's Windows build (same major, minor and build number)
//! decide. The device is up to date when its build revision is at or above one of them: the
//! restart-requiring revision, or a hotpatch revision (which has a lower build revision and still counts
//! as installed; the reference does not say how a hotpatch device reports, so any listed revision of its
//! build is taken as enough). A build the entry lists no revision for (another Windows version, whether
//! its build number is lower or higher) is not decided by this entry.

use std::collections::{BTreeMap, HashMap};

use crate::crd::DeviceId;

pub use super::build::OsBuild;

/// What a device is, against one catalog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compliance {
    /// At or above one of the entry's revisions of its build (a hotpatch revision counts).
    UpToDate,
    /// Below every revision of its build.
    Behind,
    /// The entry lists no revision for the device's build.
    NotListed,
}

/// See the module documentation for the rule.
pub fn compliance(device: &OsBuild, revisions: &[super::models::ProductRevision]) -> Compliance {
    let mut listed = revisions
        .iter()
        .filter_map(|r| r.os_build.as_ref())
        .filter(|b| b.same_build(device))
        .peekable();
    if listed.peek().is_none() {
        return Compliance::NotListed;
    }
    if listed.any(|b| device.update_build_revision >= b.update_build_revision) {
        Compliance::UpToDate
    } else {
        Compliance::Behind
    }
}

/// The build each reporting device runs, by lower-case device id: a tenant-wide table (every device
/// the tenant has, read once per progress interval and shared by every rollout), so it is held
/// compactly. A GUID id is kept as its 16 bytes beside the index of its build in a table of the
/// distinct builds (a fleet runs a handful), sorted for lookup: 20 bytes a device, against about 40 in
/// a map of ids to builds. Ids in any other spelling are kept in a map of their own.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Builds {
    guids: Vec<([u8; 16], u32)>,
    others: BTreeMap<DeviceId, u32>,
    table: Vec<OsBuild>,
}

impl Builds {
    /// The build `device` (lower case) runs, if it reports one.
    pub fn get(&self, device: &DeviceId) -> Option<&OsBuild> {
        let at = match device.guid_bytes() {
            Some(g) => {
                let i = self.guids.binary_search_by(|(k, _)| k.cmp(&g)).ok()?;
                self.guids[i].1
            }
            None => *self.others.get(device)?,
        };
        self.table.get(at as usize)
    }

    /// Devices with a build.
    pub fn len(&self) -> usize {
        self.guids.len() + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gathers [`Builds`] a page at a time; a device listed twice keeps the build listed last.
#[derive(Default)]
pub struct BuildsBuilder {
    builds: Builds,
    index: HashMap<OsBuild, u32>,
}

impl BuildsBuilder {
    pub fn push(&mut self, device: DeviceId, build: OsBuild) {
        let next = self.builds.table.len() as u32;
        let at = *self.index.entry(build).or_insert(next);
        if at == next {
            self.builds.table.push(build);
        }
        match device.guid_bytes() {
            Some(g) => self.builds.guids.push((g, at)),
            None => {
                self.builds.others.insert(device, at);
            }
        }
    }

    pub fn finish(mut self) -> Builds {
        let guids = &mut self.builds.guids;
        // The last listing of a device first, kept through the stable sort, and the one dedup keeps.
        guids.reverse();
        guids.sort_by_key(|e| e.0);
        guids.dedup_by_key(|e| e.0);
        guids.shrink_to_fit();
        self.builds
    }
}

impl FromIterator<(DeviceId, OsBuild)> for Builds {
    fn from_iter<I: IntoIterator<Item = (DeviceId, OsBuild)>>(iter: I) -> Self {
        let mut b = BuildsBuilder::default();
        for (device, build) in iter {
            b.push(device, build);
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::models::ProductRevision;
    use serde_json::json;

    fn build(major: u32, build_number: u32, ubr: u32) -> OsBuild {
        OsBuild {
            major_version: major,
            minor_version: 0,
            build_number,
            update_build_revision: ubr,
        }
    }

    fn revision(b: OsBuild, hotpatch: bool) -> ProductRevision {
        serde_json::from_value(json!({
            "osBuild": {"majorVersion": b.major_version, "minorVersion": b.minor_version,
                        "buildNumber": b.build_number, "updateBuildRevision": b.update_build_revision},
            "isHotpatchUpdate": hotpatch,
        }))
        .unwrap()
    }

    #[test]
    fn device_profile_builds_parse_in_both_forms() {
        assert_eq!(OsBuild::parse("10.0.26100.2605"), Some(build(10, 26100, 2605)));
        assert_eq!(OsBuild::parse("26100.2605"), Some(build(10, 26100, 2605)));
        for bad in ["", "24H2", "10.0.26100", "10.0.x.1", "1.2.3.4.5"] {
            assert_eq!(OsBuild::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_compliance_table() {
        // One entry: Windows 11 24H2 (26100) at .4349 or its hotpatch .4270, Windows 11 23H2 (22631)
        // at .5262, Windows 10 22H2 (19045) at .6093.
        let entry = [
            revision(build(10, 26100, 4349), false),
            revision(build(10, 26100, 4270), true),
            revision(build(10, 22631, 5262), false),
            revision(build(10, 19045, 6093), false),
        ];
        use Compliance::*;
        let rows = [
            ("exactly the revision", build(10, 26100, 4349), UpToDate),
            ("above it", build(10, 26100, 4400), UpToDate),
            (
                "the hotpatch revision, lower, counts as installed",
                build(10, 26100, 4270),
                UpToDate,
            ),
            (
                "between hotpatch and full: at or above the hotpatch",
                build(10, 26100, 4300),
                UpToDate,
            ),
            ("below both", build(10, 26100, 4061), Behind),
            (
                "another version, its own revision",
                build(10, 22631, 5262),
                UpToDate,
            ),
            ("another version, below", build(10, 22631, 5000), Behind),
            (
                "Windows 10 with a higher revision number than 11 needs",
                build(10, 19045, 6093),
                UpToDate,
            ),
            (
                "a build number no revision lists (lower)",
                build(10, 19044, 9999),
                NotListed,
            ),
            (
                "a build number no revision lists (higher)",
                build(10, 27000, 1),
                NotListed,
            ),
        ];
        for (name, device, want) in rows {
            assert_eq!(compliance(&device, &entry), want, "{name}");
        }
        // A lower build number on another version never passes by its revision alone.
        assert_eq!(compliance(&build(10, 22631, 9000), &entry[..2]), NotListed);
        // Revisions without a build decide nothing.
        let bare: ProductRevision = serde_json::from_value(json!({"id": "x"})).unwrap();
        assert_eq!(compliance(&build(10, 26100, 1), &[bare]), NotListed);
    }

    #[test]
    fn builds_are_found_by_id_in_either_spelling_and_the_last_listing_wins() {
        let b = |ubr| OsBuild {
            major_version: 10,
            build_number: 26100,
            update_build_revision: ubr,
            ..Default::default()
        };
        let ids: Vec<DeviceId> = (0..300)
            .map(|i| DeviceId::new(&format!("{i:08x}-0000-4000-8000-000000000000")))
            .collect();
        // Listed out of order, one device twice, one id not a GUID.
        let mut listed: Vec<(DeviceId, OsBuild)> = ids
            .iter()
            .rev()
            .enumerate()
            .map(|(i, d)| (d.clone(), b(i as u32 % 3)))
            .collect();
        listed.push((ids[7].clone(), b(4349)));
        listed.push((DeviceId::new("laptop-42"), b(1)));
        let builds: Builds = listed.clone().into_iter().collect();
        assert_eq!(builds.len(), 301);
        assert_eq!(builds.table.len(), 4, "each distinct build held once");
        for (d, want) in &listed[..300] {
            if *d != ids[7] {
                assert_eq!(builds.get(d), Some(want), "{d}");
            }
        }
        assert_eq!(builds.get(&ids[7]), Some(&b(4349)));
        assert_eq!(builds.get(&DeviceId::new("laptop-42")), Some(&b(1)));
        assert_eq!(
            builds.get(&DeviceId::new("ffffffff-0000-4000-8000-000000000000")),
            None
        );
        assert_eq!(builds.get(&DeviceId::new("desktop-1")), None);
        assert!(Builds::default().is_empty());
        assert!(std::mem::size_of::<([u8; 16], u32)>() <= 20);
    }
}
