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
        // A connection that cannot sign in serves nothing: Degraded even while it retries.
        (
            {
                let mut o = object(
                    2,
                    Some(2),
                    vec![
                        cond(
                            "Ready",
                            "False",
                            "ConnectionFailed",
                            "sign-in refused: AADSTS7000215",
                            2,
                        ),
                        cond("Reconciling", "True", "ConnectionFailed", "sign-in refused", 2),
                    ],
                );
                o["kind"] = json!("GraphConnection");
                o
            },
            "Degraded",
            "ConnectionFailed: sign-in refused: AADSTS7000215",
        ),
        // The same conditions on a rollout are a pass still trying.
        (
            object(
                2,
                Some(2),
                vec![
                    cond("Ready", "False", "ConnectionFailed", "connection not ready", 2),
                    cond(
                        "Reconciling",
                        "True",
                        "ConnectionFailed",
                        "connection not ready",
                        2,
                    ),
                ],
            ),
            "Progressing",
            "ConnectionFailed",
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
fn argocd_config_carries_the_same_scripts_for_the_four_kinds_and_the_three_actions() {
    let script = std::fs::read_to_string(root().join("examples/gitops/argocd/health.lua")).unwrap();
    let actions = std::fs::read_to_string(root().join("examples/gitops/argocd/rollout-actions.lua")).unwrap();
    let cm: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/argocd/argocd-cm-health.yaml")).unwrap(),
    )
    .unwrap();
    for kind in [
        "ExpeditedDeployment",
        "DeviceGroup",
        "GraphConnection",
        "ClusterGraphConnection",
    ] {
        assert_eq!(
            cm["data"][format!("resource.customizations.health.wufb.dev_{kind}")].as_str(),
            Some(script.as_str()),
            "{kind}"
        );
    }
    let declared: Value = serde_yaml::from_str(
        cm["data"]["resource.customizations.actions.wufb.dev_ExpeditedDeployment"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let with = |action: &str| format!("local action = \"{action}\"\n{actions}");
    assert_eq!(
        declared["discovery.lua"].as_str(),
        Some(with("discover").as_str())
    );
    let names: Vec<&str> = declared["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["promote", "abort", "retry"]);
    for d in declared["definitions"].as_array().unwrap() {
        assert_eq!(
            d["action.lua"].as_str(),
            Some(with(d["name"].as_str().unwrap()).as_str())
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

/// Argo CD's promote, abort and retry write what `wufb-operator promote|abort|retry` writes and refuse
/// what it refuses, with the same words; discovery disables exactly what the CLI would refuse. One table
/// of rollout states for both.
#[test]
fn argocd_actions_write_what_the_cli_writes_and_refuse_what_it_refuses() {
    use wufb_operator::cli::rollout::{Request, annotation};
    let now: chrono::DateTime<chrono::Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
    let object = |paused: bool, rollout: bool, status: Value| {
        let mut spec = serde_json::json!({"content": {"latest": true}, "paused": paused,
            "audience": {"members": [{"device": wufb_e2e::fixtures::dev(9)}]}});
        if rollout {
            spec["rollout"] = serde_json::json!({"waves": [
                {"name": "pilot", "members": [{"device": wufb_e2e::fixtures::dev(1)}]},
                {"name": "broad", "members": [{"device": wufb_e2e::fixtures::dev(2)}], "gate": {"manual": true}},
            ]});
        }
        serde_json::json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
            "metadata": {"name": "staged", "namespace": "n", "generation": 3}, "spec": spec, "status": status})
    };
    let sent = |waves: &[&str]| -> Value {
        ["pilot", "broad"]
            .iter()
            .map(|w| {
                let mut v = serde_json::json!({"name": w, "devices": 1});
                if waves.contains(w) {
                    v["promotedTime"] = serde_json::json!("2026-12-07T11:00:00Z");
                }
                v
            })
            .collect()
    };
    let states = [
        ("nothing recorded", object(false, true, serde_json::json!({}))),
        (
            "pilot sent",
            object(
                false,
                true,
                serde_json::json!({"rollout": {"phase": "Waiting", "waves": sent(&["pilot"])}}),
            ),
        ),
        (
            "all sent",
            object(
                false,
                true,
                serde_json::json!({"rollout": {"phase": "Complete", "waves": sent(&["pilot", "broad"])}}),
            ),
        ),
        (
            "paused",
            object(
                true,
                true,
                serde_json::json!({"rollout": {"phase": "Paused", "waves": sent(&["pilot"])}}),
            ),
        ),
        (
            "halted",
            object(
                false,
                true,
                serde_json::json!({"rollout": {"phase": "Halted", "waves": sent(&["pilot"]),
            "halt": {"wave": "pilot", "time": "2026-12-07T11:30:00Z", "failed": 2, "devices": 3, "limitPercent": 10, "limitField": "spec.rollout.waves[1].gate.maxFailedPercent"}}}),
            ),
        ),
        (
            "aborted",
            object(
                false,
                true,
                serde_json::json!({"rollout": {"phase": "Aborted", "waves": sent(&["pilot"]),
            "aborted": {"time": "2026-12-07T11:30:00Z", "generation": 3}}}),
            ),
        ),
        ("no rollout", object(false, false, serde_json::json!({}))),
    ];
    let requests = [
        ("promote", Request::Promote),
        ("abort", Request::Abort),
        ("retry", Request::Retry),
    ];
    let mut cases = Vec::new();
    for (_, obj) in &states {
        for (action, _) in &requests {
            cases.push((*action, obj.clone()));
        }
        cases.push(("discover", obj.clone()));
    }
    let mut lua = wufb_e2e::argocd_actions(&cases, "2026-12-07T12:00:00").into_iter();
    let mut refused = 0;
    for (state, obj) in &states {
        let typed: wufb_operator::crd::ExpeditedDeployment = serde_json::from_value(obj.clone()).unwrap();
        let mut cli_refuses = std::collections::BTreeMap::new();
        for (action, request) in &requests {
            let got = lua.next().unwrap();
            match annotation(*request, &typed, None, now) {
                Ok((key, value)) => {
                    assert_eq!(got["annotations"][key], value.as_str(), "{state} {action}: {got}");
                    cli_refuses.insert(*action, false);
                }
                Err(e) => {
                    assert_eq!(
                        got["error"],
                        e.to_string().as_str(),
                        "{state} {action}: the same refusal"
                    );
                    cli_refuses.insert(*action, true);
                    refused += 1;
                }
            }
        }
        let discovered = lua.next().unwrap();
        for (action, refuses) in cli_refuses {
            assert_eq!(
                discovered["actions"][action]["disabled"], refuses,
                "{state}: {action} offered as the CLI allows"
            );
        }
    }
    assert!(refused >= 8, "the table reaches the refusals: {refused}");
}
