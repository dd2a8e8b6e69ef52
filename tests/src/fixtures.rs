//! The objects and ids the end-to-end tests share: one definition each.

use std::fmt::Display;

/// A device id of the test fleet. Each test world has its own emulator, so one prefix serves them all;
/// ids compare in the order of `i`.
pub fn dev(i: impl Display) -> String {
    format!("5a5b5c5d-0000-4000-8000-{i:0>12}")
}

/// Device `i` of ring `ring` (a fleet of rings, each of its own devices).
pub fn ring_device(ring: u32, i: u32) -> String {
    format!("6f1c2a10-7d4b-4c8e-{ring:04}-{i:012}")
}

/// An ExpeditedDeployment for `latest` content offered to `members`; `extra` is more of the spec, in YAML
/// lines indented as in the spec (`  paused: true\n`) or in its audience (`    exclusions:\n...`).
pub fn rollout(name: &str, members: &[String], extra: &str) -> String {
    let members: String = members.iter().map(|d| format!("    - device: {d}\n")).collect();
    format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: {name}\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n{members}{extra}"
    )
}

/// A DeviceGroup of `devices`.
pub fn device_group(name: &str, devices: &[String]) -> String {
    let devices: String = devices.iter().map(|d| format!("  - {d}\n")).collect();
    format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: {name}\nspec:\n  devices:\n{devices}"
    )
}

/// An emulator whose seeded catalog is cut at a fixed day (2026-12-07) instead of today, for tests whose
/// assertions depend on which entries it holds. A catalog cut at today changes on every Patch Tuesday: on
/// 2026-12-08 its newest security release became one that fixes an exploited critical CVE (so the
/// examples' filtered intent chose the newest entry too), and a release published "now" was no newer by
/// day than the one seeded that morning.
pub fn emulator_with_fixed_catalog() -> wufb_graph_emulator::EmulatorConfig {
    wufb_graph_emulator::EmulatorConfig {
        catalog_until: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_ordered() {
        assert_eq!(dev(7), "5a5b5c5d-0000-4000-8000-000000000007");
        assert_eq!(dev(7usize), dev(7u32));
        assert!(dev(9) < dev(10));
        assert_eq!(ring_device(3, 4), "6f1c2a10-7d4b-4c8e-0003-000000000004");
    }

    #[test]
    fn manifests_are_the_objects_they_say() {
        // `extra` at spec level after the audience is still spec-level.
        let r: serde_yaml::Value =
            serde_yaml::from_str(&rollout("r", &[dev(1), dev(2)], "  paused: true\n")).unwrap();
        assert_eq!(r["spec"]["paused"], serde_yaml::Value::Bool(true));
        assert_eq!(
            r["spec"]["audience"]["members"][1]["device"].as_str(),
            Some(dev(2).as_str())
        );
        let g: serde_yaml::Value = serde_yaml::from_str(&device_group("g", &[dev(3)])).unwrap();
        assert_eq!(g["spec"]["devices"][0].as_str(), Some(dev(3).as_str()));
    }
}
