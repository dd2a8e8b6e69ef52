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

/// Flux's healthCheckExprs of the example, evaluated with kube-cel as Flux evaluates them, one row per
/// state of a rollout and of a connection.
#[test]
fn flux_health_expressions_read_a_gate_as_current_and_a_halt_as_failed() {
    let state = |reason: &str, ready: &str, reconciling: &str, stalled: &str| {
        vec![
            cond("Ready", ready, reason, "m", 3),
            cond("Reconciling", reconciling, reason, "m", 3),
            cond("Stalled", stalled, reason, "m", 3),
        ]
    };
    let connection = |mut o: Value| {
        o["kind"] = json!("GraphConnection");
        o
    };
    let rows = [
        ("not observed yet", object(1, None, vec![]), "InProgress"),
        (
            "converged",
            object(3, Some(3), state("Converged", "True", "False", "False")),
            "Current",
        ),
        (
            "a newer spec",
            object(4, Some(3), state("Converged", "True", "False", "False")),
            "InProgress",
        ),
        (
            "verifying a write",
            object(3, Some(3), state("Verifying", "False", "True", "False")),
            "InProgress",
        ),
        (
            "a wave waiting on its gate",
            object(3, Some(3), state("WaitingForGate", "False", "True", "False")),
            "Current",
        ),
        (
            "halted",
            object(3, Some(3), state("RolloutHalted", "False", "False", "True")),
            "Failed",
        ),
        (
            "stalled",
            object(3, Some(3), state("InvalidSpec", "False", "False", "True")),
            "Failed",
        ),
        (
            "throttled",
            object(3, Some(3), state("GraphThrottled", "False", "True", "False")),
            "InProgress",
        ),
        (
            "a connection that cannot sign in",
            connection(object(
                2,
                Some(2),
                vec![
                    cond("Ready", "False", "ConnectionFailed", "refused", 2),
                    cond("Reconciling", "True", "ConnectionFailed", "refused", 2),
                ],
            )),
            "Failed",
        ),
        (
            "a connection signed in",
            connection(object(3, Some(3), state("Converged", "True", "False", "False"))),
            "Current",
        ),
    ];
    let objects: Vec<Value> = rows.iter().map(|r| r.1.clone()).collect();
    let got = wufb_e2e::flux_health(&objects);
    for ((what, _, want), got) in rows.iter().zip(got) {
        assert_eq!(&got, want, "{what}");
    }
}

/// The Flux and pipeline examples carry what the Flux reference requires and the README promises:
/// `dependsOn` names a Kustomization (kustomizations#dependencies), health is judged by
/// `healthCheckExprs` with `wait` (kustomizations#health-check-expressions: evaluated only with wait or
/// healthChecks) for all four kinds, the chart comes from an OCIRepository through `chartRef`
/// (guides/helmreleases#using-a-chart-reference), and the commit status follows the rollouts'
/// Kustomization (notification providers#git-commit-status-updates).
#[test]
fn flux_and_pipeline_examples_hold_what_the_readme_promises() {
    let parse = |file: &str| -> Vec<Value> {
        serde_yaml::Deserializer::from_str(
            &std::fs::read_to_string(root().join("examples/gitops/flux").join(file)).unwrap(),
        )
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
    };
    let docs = parse("kustomizations.yaml");
    let kustomization = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Kustomization {name}"))
            .clone()
    };
    let rollouts = kustomization("windows-rollouts");
    for dep in rollouts["spec"]["dependsOn"].as_array().unwrap() {
        let operator = kustomization(dep["name"].as_str().unwrap());
        assert_eq!(
            operator["metadata"]["namespace"],
            rollouts["metadata"]["namespace"]
        );
        assert_eq!(operator["spec"]["wait"], true, "it waits for the HelmRelease");
    }
    assert_eq!(rollouts["spec"]["wait"], true);
    assert!(
        rollouts["spec"]["healthChecks"].is_null(),
        "healthCheckExprs judge, not a list"
    );
    let kinds: Vec<&str> = rollouts["spec"]["healthCheckExprs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["apiVersion"], "wufb.dev/v1alpha1");
            assert!(e["current"].is_string() && e["failed"].is_string(), "{e}");
            e["kind"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ExpeditedDeployment",
            "DeviceGroup",
            "GraphConnection",
            "ClusterGraphConnection"
        ]
    );
    let operator = parse("operator.yaml");
    let oci = operator.iter().find(|d| d["kind"] == "OCIRepository").unwrap();
    assert!(oci["spec"]["url"].as_str().unwrap().starts_with("oci://"));
    assert_eq!(
        oci["spec"]["layerSelector"]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    let hr = operator.iter().find(|d| d["kind"] == "HelmRelease").unwrap();
    assert_eq!(hr["spec"]["chartRef"]["kind"], "OCIRepository");
    assert_eq!(hr["spec"]["chartRef"]["name"], oci["metadata"]["name"]);
    assert_eq!(hr["metadata"]["namespace"], oci["metadata"]["namespace"]);
    assert!(
        hr["spec"]["chart"].is_null(),
        "no chart copied into the repository"
    );
    let notifications = parse("notifications.yaml");
    let provider = notifications.iter().find(|d| d["kind"] == "Provider").unwrap();
    assert_eq!(provider["spec"]["type"], "github");
    let alert = notifications.iter().find(|d| d["kind"] == "Alert").unwrap();
    assert_eq!(alert["spec"]["providerRef"]["name"], provider["metadata"]["name"]);
    assert_eq!(
        alert["spec"]["eventSources"][0],
        json!({"kind": "Kustomization", "name": "windows-rollouts"})
    );
    // The pull-request workflow: the action at a release tag with the CLI version pinned, signing in by
    // OIDC (id-token: write, no secret), planning deletions by a selector the examples carry.
    let pipeline: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/github-actions/wufb-plan.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(pipeline["permissions"]["id-token"], "write");
    assert_eq!(pipeline["permissions"]["pull-requests"], "write");
    let step = pipeline["jobs"]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.contains("/.github/actions/plan@v"))
        })
        .expect("a step that uses the plan action at a release tag")
        .clone();
    let tag = step["uses"].as_str().unwrap().rsplit_once("@v").unwrap().1;
    assert_eq!(step["with"]["version"], tag, "the CLI of the action's release");
    assert!(step["with"].get("client-secret").is_none());
    let selector = step["with"]["selector"].as_str().unwrap();
    let (key, value) = selector.split_once('=').unwrap();
    let example = std::fs::read_to_string(root().join("examples/20-emergency-latest.yaml")).unwrap();
    assert!(
        example.contains(&format!("{key}: {value}")),
        "the examples carry {selector}"
    );
    let action: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join(".github/actions/plan/action.yml")).unwrap(),
    )
    .unwrap();
    for input in step["with"].as_object().unwrap().keys() {
        assert!(
            action["inputs"][input].is_object(),
            "the action has no input {input}"
        );
    }
}

/// The Argo CD examples: the operator from the chart's OCI registry (an `oci://` repoURL with path `.`,
/// user-guide/oci) in an earlier sync wave than the rollouts, the Application health check restored so
/// the waves wait (operator-manual/health#argocd-app), and a notification whose subscription names a
/// trigger that sends a defined template (operator-manual/notifications).
#[test]
fn argocd_examples_order_the_operator_first_and_notify_a_halt() {
    let apps: Vec<Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/argocd/applications.yaml")).unwrap(),
    )
    .map(|d| serde::Deserialize::deserialize(d).unwrap())
    .collect();
    let app = |name: &str| {
        apps.iter()
            .find(|a| a["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let wave = |a: &Value| -> i64 {
        a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (operator, rollouts) = (app("wufb-operator"), app("windows-rollouts"));
    assert!(wave(&operator) < wave(&rollouts));
    assert!(
        operator["spec"]["source"]["repoURL"]
            .as_str()
            .unwrap()
            .starts_with("oci://")
    );
    assert_eq!(operator["spec"]["source"]["path"], ".");
    let cm: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/argocd/argocd-cm-health.yaml")).unwrap(),
    )
    .unwrap();
    assert!(cm["data"]["resource.customizations.health.argoproj.io_Application"].is_string());
    let notifications: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("examples/gitops/argocd/notifications.yaml")).unwrap(),
    )
    .unwrap();
    let subscriptions: Vec<(String, String)> = rollouts["metadata"]["annotations"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_prefix("notifications.argoproj.io/subscribe."))
        .map(|k| {
            let (trigger, service) = k.split_once('.').unwrap();
            (trigger.to_string(), service.to_string())
        })
        .collect();
    assert!(!subscriptions.is_empty());
    for (trigger, service) in subscriptions {
        assert!(
            notifications["data"][format!("service.{service}")].is_string(),
            "{service}"
        );
        let defined: Value = serde_yaml::from_str(
            notifications["data"][format!("trigger.{trigger}")]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        for t in defined[0]["send"].as_array().unwrap() {
            let template = notifications["data"][format!("template.{}", t.as_str().unwrap())]
                .as_str()
                .unwrap_or_else(|| panic!("template {t} is not defined"));
            assert!(template.contains("ExpeditedDeployment"));
        }
        assert!(defined[0]["when"].as_str().unwrap().contains("Degraded"));
    }
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
