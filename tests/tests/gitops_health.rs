//! The Argo CD health script, run by a Lua 5.1 interpreter against status fixtures; and the GitOps
//! examples parse and carry the settings the README promises.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use wufb_e2e::{argocd_health as health, root};

fn cond(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": generation})
}

fn object(generation: i64, observed: Option<i64>, conditions: Vec<Value>) -> Value {
    let mut o = json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "metadata": {"name": "x", "generation": generation}});
    if let Some(g) = observed {
        o["status"] = json!({"observedGeneration": g, "conditions": conditions});
    }
    o
}

#[test]
fn health_follows_every_condition() {
    let converged = vec![
        cond("Ready", "True", "Converged", "Graph matches the spec", 3),
        cond("Reconciling", "False", "Converged", "", 3),
        cond("Stalled", "False", "Converged", "", 3),
    ];
    let cases = [
        (object(1, None, vec![]), "Progressing", "Waiting for the operator"),
        (
            object(3, Some(3), converged.clone()),
            "Healthy",
            "Converged: Graph matches the spec",
        ),
        (
            object(4, Some(3), converged.clone()),
            "Progressing",
            "observe generation 4",
        ),
        (
            object(
                3,
                Some(3),
                vec![
                    cond(
                        "Ready",
                        "False",
                        "AudienceTooLarge",
                        "the audience reaches 60 devices",
                        3,
                    ),
                    cond("Reconciling", "False", "AudienceTooLarge", "", 3),
                    cond(
                        "Stalled",
                        "True",
                        "AudienceTooLarge",
                        "the audience reaches 60 devices",
                        3,
                    ),
                ],
            ),
            "Degraded",
            "AudienceTooLarge: the audience reaches 60 devices",
        ),
        (
            object(
                3,
                Some(3),
                vec![
                    cond("Ready", "False", "Verifying", "sent 2 changes", 3),
                    cond("Reconciling", "True", "Verifying", "sent 2 changes", 3),
                    cond("Stalled", "False", "Verifying", "", 3),
                ],
            ),
            "Progressing",
            "Verifying: sent 2 changes",
        ),
        (
            object(
                3,
                Some(3),
                vec![
                    cond("Ready", "False", "GraphThrottled", "retry later", 3),
                    cond("Reconciling", "True", "GraphThrottled", "retry later", 3),
                ],
            ),
            "Progressing",
            "GraphThrottled",
        ),
        // A stale Stalled condition from an older generation does not mark the new spec Degraded.
        (
            object(
                3,
                Some(3),
                vec![
                    cond("Stalled", "True", "InvalidSpec", "old", 2),
                    cond("Ready", "False", "Pending", "", 3),
                ],
            ),
            "Progressing",
            "Pending",
        ),
    ];
    let objects: Vec<Value> = cases.iter().map(|c| c.0.clone()).collect();
    for ((_, status, message), (got_status, got_message)) in cases.iter().zip(health(&objects)) {
        assert_eq!(&got_status, status, "{got_message}");
        assert!(
            got_message.contains(message),
            "{got_message} should contain {message}"
        );
    }
}

#[test]
fn argocd_config_carries_the_same_script_for_both_kinds() {
    let script = std::fs::read_to_string(root().join("examples/gitops/argocd/health.lua")).unwrap();
    let cm: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/argocd/argocd-cm-health.yaml")).unwrap(),
    )
    .unwrap();
    for kind in ["ExpeditedDeployment", "DeviceGroup"] {
        assert_eq!(
            cm["data"][format!("resource.customizations.health.wufb.dev_{kind}")].as_str(),
            Some(script.as_str()),
            "{kind}"
        );
    }
}

#[test]
fn flux_and_pipeline_examples_hold_what_the_readme_promises() {
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/flux/kustomizations.yaml")).unwrap(),
    )
    .map(|d| serde::Deserialize::deserialize(d).unwrap())
    .collect();
    let ks = docs.iter().find(|d| d["kind"] == "Kustomization").unwrap();
    assert_eq!(ks["spec"]["wait"], true);
    assert_eq!(ks["spec"]["healthChecks"][0]["kind"], "ExpeditedDeployment");
    let hr = docs.iter().find(|d| d["kind"] == "HelmRelease").unwrap();
    assert_eq!(hr["spec"]["upgrade"]["crds"], "CreateReplace");
    let pipeline =
        std::fs::read_to_string(root().join("examples/gitops/github-actions/wufb-plan.yaml")).unwrap();
    assert!(pipeline.contains("wufb-operator validate -f") && pipeline.contains("-o markdown"));
    let _: Value = serde_yaml::from_str(&pipeline).unwrap();
}
