//! The committed CRD YAML is what the Rust types generate (run `cargo run -p wufb-operator -- crdgen`
//! after changing them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let targets = wufb_operator::cli::crdgen::default_targets(&root);
    assert_eq!(targets.len(), 2, "crds/ and the chart's templates/crds/");
    for (dir, form) in targets {
        for (name, want) in wufb_operator::cli::crdgen::expected_in(form).unwrap() {
            let path = dir.join(name);
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is out of date with controller/src/crd: run `cargo run -p wufb-operator -- crdgen` and commit the result",
                path.display()
            );
        }
    }
}

#[test]
fn crds_carry_the_api_contract() {
    use kube::CustomResourceExt;
    use wufb_operator::crd::{DeviceGroup, ExpeditedDeployment};
    let ed = serde_json::to_value(ExpeditedDeployment::crd()).unwrap();
    assert_eq!(ed["spec"]["names"]["shortNames"], serde_json::json!(["expd"]));
    assert_eq!(ed["spec"]["names"]["categories"], serde_json::json!(["wufb"]));
    let v = &ed["spec"]["versions"][0];
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Reason",
            "Graph",
            "Members",
            "Devices",
            "Installed",
            "Wave",
            "Deployment",
            "Age"
        ]
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["deletionPolicy"]["default"], "Delete");
    assert_eq!(
        spec["properties"]["deletionPolicy"]["enum"],
        serde_json::json!(["Delete", "Orphan"])
    );
    assert_eq!(
        spec["properties"]["managementPolicy"]["enum"],
        serde_json::json!(["Manage", "ObserveOnly"])
    );
    assert!(
        spec["properties"]["content"]["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("releaseDate")
    );
    assert_eq!(
        spec["properties"]["userExperience"]["properties"]["daysUntilForcedReboot"]["maximum"],
        30.0
    );
    let dg = serde_json::to_value(DeviceGroup::crd()).unwrap();
    assert_eq!(dg["spec"]["names"]["shortNames"], serde_json::json!(["dg"]));
    let devices = &dg["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["devices"];
    assert_eq!(devices["x-kubernetes-list-type"], "set");
}
