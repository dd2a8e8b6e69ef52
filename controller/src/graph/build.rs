//! A Windows build as Graph reports it, the value device progress compares.

use serde::Deserialize;

/// `osBuild`: a Windows build as Graph reports it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct OsBuild {
    pub major_version: u32,
    pub minor_version: u32,
    pub build_number: u32,
    pub update_build_revision: u32,
}

impl OsBuild {
    /// `deviceProfile.osBuild`, which the reference types as a string without giving its format:
    /// `10.0.26100.2605` (major, minor, build, revision) or `26100.2605` (build and revision, of
    /// Windows 10.0). Anything else is not a build.
    pub fn parse(s: &str) -> Option<OsBuild> {
        let parts: Vec<u32> = s
            .trim()
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        match parts.as_slice() {
            [major, minor, build, ubr] => Some(OsBuild {
                major_version: *major,
                minor_version: *minor,
                build_number: *build,
                update_build_revision: *ubr,
            }),
            [build, ubr] => Some(OsBuild {
                major_version: 10,
                minor_version: 0,
                build_number: *build,
                update_build_revision: *ubr,
            }),
            _ => None,
        }
    }

    pub(super) fn same_build(&self, other: &OsBuild) -> bool {
        (self.major_version, self.minor_version, self.build_number)
            == (other.major_version, other.minor_version, other.build_number)
    }
}
