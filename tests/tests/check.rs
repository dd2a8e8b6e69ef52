//! `wufb-operator check` through the binary against a cluster with a running operator: every cluster
//! check ok, then each made to fail as a real cluster can (an old API server, a CRD left at an older
//! schema, a missing verb for the operator's service account or the caller, an operator of another
//! version, no operator while objects hold the cleanup finalizer), each named with its hint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::Value;
use wufb_e2e::Env;
use wufb_e2e::fixtures::{dev, device_group};

/// `check -o json` as a CI job runs it (`--no-tenant`: the tenant's checks have their own tests);
/// the exit code and the report.
async fn check_report(env: &Env, extra: &[&str]) -> (i32, Value) {
    let graph = env.emulator.graph_url();
    let base = env.emulator.base_url();
    let mut args = vec![
        "check",
        "-n",
        &env.namespace,
        "--graph-url",
        &graph,
        "--authority-host",
        &base,
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = env.operator_cli(&args).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "check -o json printed no report ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The check named `name` in a report.
fn finding<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

#[tokio::test]
async fn check_passes_against_a_running_operator_and_each_cluster_check_can_fail() {
    let mut env = Env::start("check").await;
    env.apply_yaml(&device_group("ring-check", &[dev(1)])).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.namespace);
    let index = env.spawn_controller("check-a");
    env.wait_ready(&["devicegroup/ring-check"]).await;
    env.eventually("the operator's Lease", Duration::from_secs(30), async || {
        leases.get_opt("wufb-operator").await.ok().flatten()
    })
    .await;

    let (code, report) = check_report(&env, &["--no-tenant"]).await;
    for c in report["checks"].as_array().unwrap() {
        assert!(
            c["status"] == "ok" || (c["status"] == "skipped" && c["group"] == "tenant"),
            "{c:#}\n{report:#}"
        );
    }
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["operatorVersion"], report["cliVersion"]);
    assert!(
        finding(&report, "operator-running")["found"]
            .as_str()
            .unwrap()
            .contains("held by check-a")
    );
    assert!(
        finding(&report, "objects")["found"]
            .as_str()
            .unwrap()
            .contains("1 DeviceGroups: 1 Ready")
    );

    if !env.skip_on_real_cluster("the test API server's version, access reviews and CRDs are set to differ") {
        // An object this version cannot read (stored past the schema): Stalled, and named by both.
        env.apply_yaml_unchecked(
            "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: numbers\nspec:\n  devices:\n  - 42\n",
        )
        .await;
        env.eventually(
            "the unreadable group Stalled",
            Duration::from_secs(30),
            async || {
                let status = env.get("dg/numbers").await["status"].clone();
                (wufb_e2e::condition(&status, "Stalled")["status"] == "True").then_some(())
            },
        )
        .await;
        let (code, report) = check_report(&env, &["--no-tenant"]).await;
        assert_eq!(code, 3, "{report:#}");
        let objects = finding(&report, "objects");
        assert_eq!(
            (objects["status"].as_str(), objects["reason"].as_str()),
            (Some("warning"), Some("ObjectsStalled"))
        );
        assert!(
            objects["found"]
                .as_str()
                .unwrap()
                .ends_with(&format!("Stalled: {}/numbers", env.namespace)),
            "{objects:#}"
        );
        let readable = finding(&report, "objects-readable");
        assert_eq!(readable["reason"], "ObjectsUndecodable", "{readable:#}");
        assert!(
            readable["found"].as_str().unwrap().contains("/numbers"),
            "{readable:#}"
        );
        env.kubectl_ok(&["delete", "dg", "numbers", "--wait=true", "--timeout=60s"])
            .await;

        let server = env.apiserver.as_ref().unwrap();
        // An API server older than the CRDs need.
        server.set_version((1, 29));
        let (code, report) = check_report(&env, &["--no-tenant"]).await;
        let v = finding(&report, "kubernetes-version");
        assert_eq!((code, v["status"].as_str()), (1, Some("failed")), "{v:#}");
        assert_eq!(v["reason"], "KubernetesTooOld");
        assert!(
            v["found"].as_str().unwrap().contains("need 1.30 or newer"),
            "{v:#}"
        );
        server.set_version(wufb_test_apiserver::VERSION);

        // A verb missing for the operator's service account, and one for the caller.
        let account = format!("system:serviceaccount:{}:wufb-operator", env.namespace);
        server.deny(Some(&account), "patch", "expediteddeployments/status");
        server.deny(None, "patch", "expediteddeployments");
        let (code, report) = check_report(&env, &["--no-tenant"]).await;
        assert_eq!(code, 1);
        let op = finding(&report, "operator-permissions");
        assert_eq!(op["status"], "failed", "{op:#}");
        assert!(
            op["found"]
                .as_str()
                .unwrap()
                .contains("patch expediteddeployments.wufb.dev/status"),
            "{op:#}"
        );
        assert!(op["hint"].as_str().unwrap().contains("RBAC"), "{op:#}");
        let me = finding(&report, "your-permissions");
        assert_eq!(me["status"], "warning", "{me:#}");
        assert!(
            me["found"]
                .as_str()
                .unwrap()
                .contains("promote, abort, retry needs patch"),
            "{me:#}"
        );
        server.shared.denials.lock().unwrap().clear();

        // A CRD left at an older schema (a field this version added is missing).
        let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
        let original = crds.get("devicegroups.wufb.dev").await.unwrap();
        let mut crd = original.clone();
        let schema = crd.spec.versions[0]
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .unwrap();
        let spec = schema.properties.as_mut().unwrap().get_mut("spec").unwrap();
        assert!(spec.properties.as_mut().unwrap().remove("entraGroupId").is_some());
        crds.replace("devicegroups.wufb.dev", &PostParams::default(), &crd)
            .await
            .unwrap();
        let (code, report) = check_report(&env, &["--no-tenant"]).await;
        let c = finding(&report, "crd-devicegroups");
        assert_eq!((code, c["status"].as_str()), (1, Some("failed")), "{c:#}");
        assert_eq!(c["reason"], "CrdSchemaOutdated");
        assert!(
            c["found"]
                .as_str()
                .unwrap()
                .contains("schema.openAPIV3Schema.properties.spec.properties.entraGroupId: missing from the installed CRD"),
            "{c:#}"
        );
        assert!(
            c["docs"]
                .as_str()
                .unwrap()
                .ends_with("reasons.html#crd-schema-outdated")
        );
        // Upgraded again: the check passes.
        let mut fixed = original;
        fixed.metadata.resource_version = crds
            .get("devicegroups.wufb.dev")
            .await
            .unwrap()
            .metadata
            .resource_version;
        crds.replace("devicegroups.wufb.dev", &PostParams::default(), &fixed)
            .await
            .unwrap();
        let (_, report) = check_report(&env, &["--no-tenant"]).await;
        assert_eq!(finding(&report, "crd-devicegroups")["status"], "ok", "{report:#}");
    }

    // An operator of another version: the Lease renewed by a stand-in that records 0.0.1.
    env.kill_controller(index).await;
    let stand_in = {
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(mut l) = leases.get("wufb-operator").await {
                    l.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert("wufb.dev/operator-version".into(), "0.0.1".into());
                    let spec = l.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some("older-operator".into());
                    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                        k8s_openapi::jiff::Timestamp::now(),
                    ));
                    let _ = leases.replace("wufb-operator", &PostParams::default(), &l).await;
                }
                // pace: a stand-in operator renews its Lease every 400 ms, as a running one does.
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    let (code, report) = check_report(&env, &["--no-tenant"]).await;
    let v = finding(&report, "operator-version");
    assert_eq!((code, v["status"].as_str()), (3, Some("warning")), "{report:#}");
    assert!(
        v["found"]
            .as_str()
            .unwrap()
            .starts_with("the operator is 0.0.1, this CLI"),
        "{v:#}"
    );
    assert_eq!(report["operatorVersion"], "0.0.1");
    stand_in.abort();

    // No operator while an object holds the cleanup finalizer: the uninstall hazard.
    let (code, report) = check_report(&env, &["--no-tenant", "--lease-wait", "2s"]).await;
    assert_eq!(code, 1, "{report:#}");
    let running = finding(&report, "operator-running");
    assert_eq!(running["status"], "failed");
    assert!(
        running["found"]
            .as_str()
            .unwrap()
            .contains("was not renewed within 2s"),
        "{running:#}"
    );
    let hazard = finding(&report, "cleanup-finalizers");
    assert_eq!(hazard["status"], "failed", "{hazard:#}");
    assert_eq!(hazard["reason"], "FinalizersWithoutOperator");
    assert!(
        hazard["found"]
            .as_str()
            .unwrap()
            .starts_with("1 object(s) hold wufb.dev/cleanup while no operator runs")
    );
}

#[tokio::test]
async fn check_pre_needs_no_operator_and_text_and_markdown_carry_the_same_findings() {
    let env = Env::start("check-pre").await;
    let (code, report) = check_report(&env, &["--pre", "--no-tenant"]).await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(finding(&report, "install-permissions")["status"], "ok");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "operator-running")
    );
    if !env.skip_on_real_cluster("access reviews are set to differ") {
        env.apiserver
            .as_ref()
            .unwrap()
            .deny(None, "create", "customresourcedefinitions");
        let (code, report) = check_report(&env, &["--pre", "--no-tenant"]).await;
        let p = finding(&report, "install-permissions");
        assert_eq!((code, p["status"].as_str()), (1, Some("failed")), "{p:#}");
        assert!(
            p["found"]
                .as_str()
                .unwrap()
                .contains("create customresourcedefinitions.apiextensions.k8s.io")
        );
    }
    if !env.real_cluster() {
        // A CRD not installed: fine before installing, a failure after.
        let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
        crds.delete("graphconnections.wufb.dev", &Default::default())
            .await
            .unwrap();
        let (_, report) = check_report(&env, &["--pre", "--no-tenant"]).await;
        let c = finding(&report, "crd-graphconnections");
        assert_eq!(c["status"], "ok", "{c:#}");
        assert!(
            c["found"].as_str().unwrap().contains("not installed yet"),
            "{c:#}"
        );
        let (code, report) = check_report(&env, &["--no-tenant", "--lease-wait", "1s"]).await;
        let c = finding(&report, "crd-graphconnections");
        assert_eq!(
            (code, c["status"].as_str(), c["reason"].as_str()),
            (1, Some("failed"), Some("CrdMissing")),
            "{c:#}"
        );
    }
    for (form, expect) in [
        ("text", "FAILED   install-permissions"),
        ("markdown", "| cluster | install-permissions | FAILED |"),
    ] {
        let graph = env.emulator.graph_url();
        let out = env
            .operator_cli(&["check", "--pre", "--no-tenant", "--graph-url", &graph, "-o", form])
            .await;
        let text = String::from_utf8_lossy(&out.stdout);
        if env.real_cluster() {
            assert!(text.contains("install-permissions"), "{text}");
        } else {
            assert!(text.contains(expect), "{form}:\n{text}");
        }
    }
}

#[test]
fn the_minimum_kubernetes_version_is_stated_once_and_everything_agrees() {
    let (major, minor) = wufb_operator::crd::MIN_KUBERNETES;
    assert_eq!(
        wufb_test_apiserver::VERSION,
        (major, minor),
        "the test API server reports the minimum"
    );
    let chart = std::fs::read_to_string(wufb_e2e::root().join("charts/wufb-operator/Chart.yaml")).unwrap();
    assert!(
        chart.contains(&format!("kubeVersion: \">={major}.{minor}.0-0\"")),
        "the chart's kubeVersion: {chart}"
    );
    let readme = std::fs::read_to_string(wufb_e2e::root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("Kubernetes **{major}.{minor} or newer**")),
        "the README states the minimum"
    );
}
