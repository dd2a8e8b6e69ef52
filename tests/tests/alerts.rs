//! The chart's alerts (`charts/wufb-operator/files/prometheus-rules.yaml`): checked and unit-tested by
//! the real promtool, one test per alert; each runbook links a registered reason in the documentation;
//! and every metric they and the dashboard (`files/dashboard.json`) use is one the operator serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::Value;
use wufb_e2e::{Env, root};

fn rules() -> Value {
    serde_yaml::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/files/prometheus-rules.yaml")).unwrap(),
    )
    .unwrap()
}

fn alert_rules() -> Vec<Value> {
    rules()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out =
        std::process::Command::new(std::env::var("WUFB_PROMTOOL").unwrap_or_else(|_| "promtool".into()))
            .args(args)
            .current_dir(root().join("tests/prometheus"))
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool could not run ({e}); `make test` installs Debian's prometheus package")
            });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_alerts_pass_promtool_with_a_unit_test_each() {
    let (ok, out) = promtool(&[
        "check",
        "rules",
        "../../charts/wufb-operator/files/prometheus-rules.yaml",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts-test.yaml"]);
    assert!(ok, "{out}");
    let tests: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("tests/prometheus/alerts-test.yaml")).unwrap(),
    )
    .unwrap();
    let tested: BTreeSet<String> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap().clone())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .map(|a| a["alertname"].as_str().unwrap().to_string())
        .collect();
    let alerts: BTreeSet<String> = alert_rules()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tested, alerts, "every alert has a test where it fires");
}

#[test]
fn every_runbook_links_a_registered_reason() {
    use wufb_operator::reconcile::reasons::{DOCS_BASE, REGISTRY};
    let anchors: BTreeSet<String> = REGISTRY.iter().map(|e| e.reason.anchor()).collect();
    for r in alert_rules() {
        let url = r["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url
            .strip_prefix(&format!("{DOCS_BASE}/reasons.html#"))
            .unwrap_or_else(|| panic!("{url} is not under the docs base"));
        assert!(
            anchors.contains(anchor),
            "{url}: #{anchor} names no registered reason"
        );
        assert!(r["labels"]["severity"].is_string(), "{r}");
    }
}

/// The metric names an expression reads.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("wufb_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.insert(name);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_read_is_one_the_operator_serves() {
    // A tenant that throttles and fails now and then, so the retry and 429 counters have series.
    let mut env = Env::start_with(
        "alerts",
        wufb_graph_emulator::EmulatorConfig {
            faults: wufb_graph_emulator::FaultConfig {
                throttle_rate: 0.2,
                retry_after_secs: 0.05,
                error_rate: 0.2,
                seed: 7,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    env.apply_yaml(&wufb_e2e::fixtures::rollout(
        "watched",
        &[wufb_e2e::fixtures::dev(1)],
        "",
    ))
    .await;
    env.spawn_controller("alerts");
    env.wait_ready(&["expd/watched"]).await;
    let body = reqwest::get(format!("{}/metrics", env.metrics_url(0).await))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The families the operator declares (`# TYPE NAME TYPE`), with the suffix a sample carries.
    let mut served = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            served.insert(match kind {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name.to_string(),
            });
        }
    }
    for r in alert_rules() {
        for m in metrics_in(r["expr"].as_str().unwrap()) {
            assert!(
                served.contains(&m),
                "{} reads {m}, which the operator does not serve:\n{body}",
                r["alert"]
            );
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/wufb-operator/files/dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut panels = 0;
    for p in dashboard["panels"].as_array().unwrap() {
        panels += 1;
        for t in p["targets"].as_array().unwrap() {
            for m in metrics_in(t["expr"].as_str().unwrap()) {
                let family = m.strip_suffix("_bucket").map_or(m.clone(), str::to_string);
                assert!(
                    served.contains(&family),
                    "panel {} reads {m}, which the operator does not serve",
                    p["title"]
                );
            }
        }
    }
    assert!(panels >= 9, "{panels} panels");
}
