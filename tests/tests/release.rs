//! The released CLI: the release workflow's archives, the krew manifest template and the plan action's
//! installer name the same files, and the manifest renders from a release's SHA-256 sums.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use wufb_e2e::root;

fn yaml_file(path: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

/// The archive the release publishes for one platform, as its pack step names it.
fn archive_name(version: &str, os: &str, arch: &str) -> String {
    let ext = if os == "windows" { "zip" } else { "tar.gz" };
    format!("wufb-operator_{version}_{os}_{arch}.{ext}")
}

/// (os, arch) of every archive the release workflow builds.
fn released_platforms() -> BTreeSet<(String, String)> {
    let release = yaml_file(".github/workflows/release.yml");
    let job = &release["jobs"]["binaries"];
    let pack = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "pack")
        .unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pack.contains(r#"name="wufb-operator_${VERSION}_${OS}_${ARCH}""#),
        "{pack}"
    );
    assert!(pack.contains(r#""dist/$name.zip""#) && pack.contains(r#""dist/$name.tar.gz""#));
    job["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["os"].as_str().unwrap().to_string(),
                p["arch"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_release_builds_every_platform_the_krew_manifest_and_the_installer_name() {
    let platforms = released_platforms();
    let want: BTreeSet<(String, String)> = [
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("windows", "amd64"),
    ]
    .iter()
    .map(|(o, a)| (o.to_string(), a.to_string()))
    .collect();
    assert_eq!(platforms, want);

    let krew = yaml_file(".github/krew/wufb.yaml");
    assert_eq!(krew["kind"], "Plugin");
    assert_eq!(krew["metadata"]["name"], "wufb", "installed as kubectl wufb");
    let mut in_manifest = BTreeSet::new();
    for p in krew["spec"]["platforms"].as_array().unwrap() {
        let (os, arch) = (
            p["selector"]["matchLabels"]["os"].as_str().unwrap(),
            p["selector"]["matchLabels"]["arch"].as_str().unwrap(),
        );
        let uri = p["uri"].as_str().unwrap();
        assert_eq!(
            uri,
            format!(
                "https://github.com/wufb-operator/wufb-operator/releases/download/v${{VERSION}}/{}",
                archive_name("${VERSION}", os, arch)
            )
        );
        assert_eq!(p["sha256"], format!("${{SHA256_{os}_{arch}}}"));
        let bin = if os == "windows" {
            "wufb-operator.exe"
        } else {
            "wufb-operator"
        };
        assert_eq!(p["bin"], bin);
        in_manifest.insert((os.to_string(), arch.to_string()));
    }
    assert_eq!(
        in_manifest, platforms,
        "a krew platform for each archive, no more"
    );

    // The plan action installs the unix archives by the same names and sums file.
    let install = std::fs::read_to_string(root().join(".github/actions/plan/install.sh")).unwrap();
    assert!(install.contains(r#"archive="wufb-operator_${version}_${os}_${arch}.tar.gz""#));
    assert!(install.contains(r#"sums="wufb-operator_${version}_SHA256SUMS""#));
    let release = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    assert!(release.contains(r#""wufb-operator_${VERSION}_SHA256SUMS""#));
}

#[test]
fn the_krew_manifest_renders_from_the_release_sums_and_refuses_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("wufb-krew-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sums = dir.join("SHA256SUMS");
    let platforms = released_platforms();
    let sum = |os: &str, arch: &str| format!("{:0>64}", format!("{os}{arch}").len() * 7);
    let lines: String = platforms
        .iter()
        .map(|(os, arch)| format!("{}  {}\n", sum(os, arch), archive_name("0.2.0", os, arch)))
        .collect();
    std::fs::write(&sums, &lines).unwrap();
    let render = || {
        Command::new("bash")
            .arg(root().join("scripts/krew-manifest.sh"))
            .args(["0.2.0", sums.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = render();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["spec"]["version"], "v0.2.0");
    for p in manifest["spec"]["platforms"].as_array().unwrap() {
        let (os, arch) = (
            p["selector"]["matchLabels"]["os"].as_str().unwrap(),
            p["selector"]["matchLabels"]["arch"].as_str().unwrap(),
        );
        assert_eq!(p["sha256"], sum(os, arch), "{os}/{arch}");
        assert!(
            p["uri"]
                .as_str()
                .unwrap()
                .ends_with(&archive_name("0.2.0", os, arch))
        );
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("${"));
    // A platform without its sum: no manifest.
    std::fs::write(&sums, lines.lines().skip(1).collect::<Vec<_>>().join("\n")).unwrap();
    let out = render();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no sum for"));
    let _ = std::fs::remove_dir_all(&dir);
}
