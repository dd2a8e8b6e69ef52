//! The Helm chart, rendered and linted with real Helm (helm-python-sdk): every rendered object parsed
//! strictly into its k8s-openapi type, the restricted pod security profile, least-privilege RBAC, schema
//! rejection of bad values, and a snapshot of the default render.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wufb_e2e::{operator_bin, python, root};

fn helm(args: &[&str]) -> (bool, Value) {
    helm_with(&root().join("charts/wufb-operator"), args)
}

/// Runs tests/chart/helm.py's `args[0]` on the chart at `chart`.
fn helm_with(chart: &std::path::Path, args: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(python())
        .arg(root().join("tests/chart/helm.py"))
        .arg(args[0])
        .arg(chart)
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("python with helm-python-sdk could not run ({e}); make test installs it into .tools/venv")
        });
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("helm.py: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), value)
}

/// Renders with `values`; returns the objects by `Kind/name`.
fn render(values: Value) -> BTreeMap<String, Value> {
    let (ok, out) = helm(&["render", &values.to_string(), "wufb", "wufb-system"]);
    assert!(ok, "render failed: {out}");
    let mut objects = BTreeMap::new();
    for (path, manifest) in out["templates"].as_object().unwrap() {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        for doc in serde_yaml::Deserializer::from_str(manifest.as_str().unwrap()) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let key = format!(
                "{}/{}",
                v["kind"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap()
            );
            let key = match v["metadata"]["namespace"].as_str() {
                Some(ns) if v["kind"] == "Role" || v["kind"] == "RoleBinding" => format!("{key}@{ns}"),
                _ => key,
            };
            assert!(objects.insert(key.clone(), v).is_none(), "{key} rendered twice");
        }
    }
    objects
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Parses into the k8s-openapi type and back: a field the type does not know is lost, and fails.
fn strict<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let typed: T =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{} does not parse: {e}", v["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        strip_nulls(&back),
        strip_nulls(v),
        "{} has fields its type does not know",
        v["kind"]
    );
    typed
}

fn check_all(objects: &BTreeMap<String, Value>) {
    for (key, v) in objects {
        match v["kind"].as_str().unwrap() {
            "Deployment" => drop(strict::<Deployment>(v)),
            "ServiceAccount" => drop(strict::<ServiceAccount>(v)),
            "Secret" => drop(strict::<Secret>(v)),
            "ConfigMap" => drop(strict::<k8s_openapi::api::core::v1::ConfigMap>(v)),
            "Service" => drop(strict::<Service>(v)),
            "ClusterRole" => drop(strict::<ClusterRole>(v)),
            "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(v)),
            "Role" => drop(strict::<Role>(v)),
            "RoleBinding" => drop(strict::<RoleBinding>(v)),
            "NetworkPolicy" => drop(strict::<NetworkPolicy>(v)),
            "PodDisruptionBudget" => drop(strict::<PodDisruptionBudget>(v)),
            "CustomResourceDefinition" => drop(strict::<CustomResourceDefinition>(v)),
            "PrometheusRule" => {
                assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
                let file: Value = serde_yaml::from_str(
                    &std::fs::read_to_string(root().join("charts/wufb-operator/files/prometheus-rules.yaml"))
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(
                    v["spec"], file,
                    "the PrometheusRule carries the checked rule file"
                );
            }
            "ServiceMonitor" => {
                assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
                assert_eq!(v["spec"]["endpoints"][0]["port"], "metrics");
            }
            other => panic!("unexpected kind {other} ({key})"),
        }
    }
}

/// The Kubernetes restricted pod security profile.
fn assert_restricted(d: &Deployment) {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    for c in &pod.containers {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert!(sc.privileged.is_none_or(|p| !p));
    }
    assert!(pod.host_network.is_none_or(|h| !h) && pod.host_pid.is_none_or(|h| !h));
    for v in pod.volumes.iter().flatten() {
        assert!(v.host_path.is_none(), "no hostPath volumes");
    }
}

fn args(objects: &BTreeMap<String, Value>) -> Vec<String> {
    let d: Deployment = strict(&objects["Deployment/wufb-wufb-operator"]);
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap()
}

#[test]
fn default_values_render_a_restricted_least_privilege_install() {
    let objects = render(json!({}));
    check_all(&objects);
    let d: Deployment = strict(&objects["Deployment/wufb-wufb-operator"]);
    assert_restricted(&d);
    assert_eq!(
        d.spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap()
            .type_
            .as_deref(),
        Some("Recreate"),
        "one replica: Recreate"
    );
    let a = args(&objects);
    assert!(
        a.contains(&"--credentials-secret=wufb-wufb-operator-credentials".to_string()),
        "{a:?}"
    );
    assert!(a.contains(&"--leader-election=true".to_string()));
    // The process stops (drain, release the Lease, exit 0) well inside the grace period.
    let grace = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .termination_grace_period_seconds;
    assert_eq!(grace, Some(30));
    let timeout = a
        .iter()
        .find_map(|x| x.strip_prefix("--shutdown-timeout="))
        .and_then(|v| wufb_operator::crd::duration::Bounds::secs(1, 3600).parse(v).ok())
        .expect("--shutdown-timeout is set");
    assert!(
        timeout.as_secs() + 10 <= 30,
        "the shutdown timeout leaves room for the Lease release and Events: {timeout:?}"
    );
    assert!(
        !objects.contains_key("Secret/wufb-wufb-operator-credentials"),
        "no Secret without credentials in the values"
    );
    // Cluster-wide, Secrets may only be read by name (for GraphConnections, which live in any watched
    // namespace): never listed or watched, so they cannot be enumerated.
    let cr: ClusterRole = strict(&objects["ClusterRole/wufb-wufb-operator"]);
    for rule in cr.rules.unwrap() {
        if rule
            .resources
            .clone()
            .unwrap_or_default()
            .iter()
            .any(|r| r == "secrets")
        {
            assert_eq!(rule.verbs, vec!["get"], "Secrets by name only");
        }
        assert!(
            !rule.verbs.iter().any(|v| v == "*" || v == "delete"),
            "least privilege"
        );
    }
    let own: Role = strict(&objects["Role/wufb-wufb-operator-self@wufb-system"]);
    let secret_rule = own
        .rules
        .unwrap()
        .into_iter()
        .find(|r| {
            r.resources
                .as_ref()
                .is_some_and(|r| r.contains(&"secrets".to_string()))
        })
        .unwrap();
    assert_eq!(
        secret_rule.resource_names,
        Some(vec!["wufb-wufb-operator-credentials".to_string()])
    );
    assert_eq!(secret_rule.verbs, vec!["get"]);
    for absent in [
        "ServiceMonitor/wufb-wufb-operator",
        "NetworkPolicy/wufb-wufb-operator",
        "PodDisruptionBudget/wufb-wufb-operator",
    ] {
        assert!(!objects.contains_key(absent), "{absent} is opt-in");
    }
}

#[test]
fn each_credential_mode() {
    let secret = render(json!({"credentials": {"tenantId": "t", "clientId": "c", "clientSecret": "s3cr3t"}}));
    check_all(&secret);
    let s: Secret = strict(&secret["Secret/wufb-wufb-operator-credentials"]);
    assert_eq!(
        s.string_data.unwrap().keys().cloned().collect::<Vec<_>>(),
        ["clientId", "clientSecret", "tenantId"]
    );

    let cert = render(
        json!({"credentials": {"mode": "certificate", "tenantId": "t", "clientId": "c", "clientCertificate": "-----BEGIN CERTIFICATE-----\n..."}}),
    );
    check_all(&cert);
    assert!(cert["Secret/wufb-wufb-operator-credentials"]["stringData"]["clientCertificate"].is_string());

    let existing = render(json!({"credentials": {"existingSecret": "graph-app"}}));
    check_all(&existing);
    assert!(args(&existing).contains(&"--credentials-secret=graph-app".to_string()));
    assert!(!existing.keys().any(|k| k.starts_with("Secret/")));

    let wi = render(json!({"credentials": {"mode": "workloadIdentity", "tenantId": "t", "clientId": "c"}}));
    check_all(&wi);
    assert!(!wi.keys().any(|k| k.starts_with("Secret/")), "no secret at all");
    assert!(!args(&wi).iter().any(|a| a.starts_with("--credentials-secret")));
    let sa: ServiceAccount = strict(&wi["ServiceAccount/wufb-wufb-operator"]);
    assert_eq!(
        sa.metadata.annotations.unwrap()["azure.workload.identity/client-id"],
        "c"
    );
    let d: Deployment = strict(&wi["Deployment/wufb-wufb-operator"]);
    assert_restricted(&d);
    let pod = d.spec.unwrap().template;
    assert_eq!(
        pod.metadata.unwrap().labels.unwrap()["azure.workload.identity/use"],
        "true"
    );
    let env: Vec<String> = pod.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(env.contains(&"AZURE_FEDERATED_TOKEN_FILE".to_string()));
    let token = &pod.spec.unwrap().volumes.unwrap()[0];
    assert_eq!(
        token.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
            .service_account_token
            .as_ref()
            .unwrap()
            .audience
            .as_deref(),
        Some("api://AzureADTokenExchange")
    );
    // With connections off (a single tenant through workload identity), no Secret may be read at all.
    let single = render(
        json!({"credentials": {"mode": "workloadIdentity", "tenantId": "t", "clientId": "c"}, "connections": {"enabled": false}}),
    );
    check_all(&single);
    assert!(args(&single).contains(&"--connections=false".to_string()));
    let reads_secrets = |rules: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>| {
        rules.unwrap_or_default().iter().any(|r| {
            r.resources
                .as_ref()
                .is_some_and(|r| r.contains(&"secrets".to_string()))
        })
    };
    let own: Role = strict(&single["Role/wufb-wufb-operator-self@wufb-system"]);
    assert!(!reads_secrets(own.rules), "no secret access needed");
    let cr: ClusterRole = strict(&single["ClusterRole/wufb-wufb-operator"]);
    assert!(!reads_secrets(cr.rules));
    assert!(
        !single.contains_key("ClusterRole/wufb-wufb-operator-connections"),
        "no connection or namespace permissions"
    );
}

#[test]
fn connections_grant_secrets_by_name_only_where_they_live() {
    let objects = render(json!({"connections": {"secretNamespaces": ["tenant-a"]}}));
    check_all(&objects);
    let secret_verbs = |rules: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>| -> Vec<Vec<String>> {
        rules
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r.resources
                    .as_ref()
                    .is_some_and(|r| r.contains(&"secrets".to_string()))
            })
            .map(|r| r.verbs)
            .collect()
    };
    let cr: ClusterRole = strict(&objects["ClusterRole/wufb-wufb-operator"]);
    assert!(
        secret_verbs(cr.rules).is_empty(),
        "secretNamespaces: none cluster-wide"
    );
    let r: Role = strict(&objects["Role/wufb-wufb-operator-connection-secrets@tenant-a"]);
    assert_eq!(secret_verbs(r.rules), vec![vec!["get".to_string()]]);
    let c: ClusterRole = strict(&objects["ClusterRole/wufb-wufb-operator-connections"]);
    let resources: Vec<String> = c
        .rules
        .unwrap()
        .into_iter()
        .flat_map(|r| r.resources.unwrap_or_default())
        .collect();
    assert_eq!(
        resources,
        [
            "clustergraphconnections",
            "clustergraphconnections/status",
            "namespaces"
        ]
    );
    assert!(args(&objects).contains(&"--connections=true".to_string()));
    let wi = render(json!({"connections": {"namespacedWorkloadIdentity": true}}));
    check_all(&wi);
    assert!(args(&wi).contains(&"--namespaced-workload-identity".to_string()));
    let sharded = render(json!({"connections": {"shards": 3, "shard": 2}}));
    check_all(&sharded);
    let a = args(&sharded);
    assert!(
        a.contains(&"--shards=3".to_string()) && a.contains(&"--shard=2".to_string()),
        "{a:?}"
    );
}

#[test]
fn namespace_scoped_mode_uses_roles() {
    let objects =
        render(json!({"watchNamespaces": ["team-a", "team-b"], "credentials": {"existingSecret": "graph"}}));
    check_all(&objects);
    // Cluster-wide only what connections need (cluster connections and namespace labels); none with
    // connections off. (The aggregated view and edit roles are for people, bound to nobody.)
    assert_eq!(
        objects
            .keys()
            .filter(|k| k.starts_with("ClusterRole") && !k.ends_with("-view") && !k.ends_with("-edit"))
            .cloned()
            .collect::<Vec<_>>(),
        [
            "ClusterRole/wufb-wufb-operator-connections",
            "ClusterRoleBinding/wufb-wufb-operator-connections"
        ]
    );
    let off = render(
        json!({"watchNamespaces": ["team-a"], "credentials": {"existingSecret": "graph"}, "connections": {"enabled": false}}),
    );
    assert!(
        !off.keys().any(|k| k.starts_with("ClusterRoleBinding")),
        "no cluster-wide RBAC for the operator"
    );
    assert!(
        off.keys()
            .filter(|k| k.starts_with("ClusterRole/"))
            .all(|k| k.ends_with("-view") || k.ends_with("-edit")),
        "only the aggregated roles for people: {:?}",
        off.keys().collect::<Vec<_>>()
    );
    for ns in ["team-a", "team-b"] {
        let r: Role = strict(&objects[&format!("Role/wufb-wufb-operator@{ns}")]);
        assert!(r.rules.unwrap().iter().any(|r| {
            r.resources
                .as_ref()
                .is_some_and(|r| r.contains(&"expediteddeployments".to_string()))
        }));
        let b: RoleBinding = strict(&objects[&format!("RoleBinding/wufb-wufb-operator@{ns}")]);
        assert_eq!(b.subjects.unwrap()[0].namespace.as_deref(), Some("wufb-system"));
    }
    assert!(args(&objects).contains(&"--watch-namespaces=team-a,team-b".to_string()));
}

#[test]
fn monitoring_network_policy_and_disruption_budget() {
    let objects = render(json!({
        "replicaCount": 2,
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}, "prometheusRule": {"enabled": true, "labels": {"release": "prom"}}, "dashboard": {"enabled": true}},
        "networkPolicy": {"enabled": true, "egressCIDRs": ["20.190.128.0/18"]},
        "podDisruptionBudget": {"enabled": true},
        "controller": {"maxAudienceDevices": 5000, "resyncInterval": "5m"},
        "cloud": "us-gov",
        "credentials": {"existingSecret": "graph"},
    }));
    check_all(&objects);
    assert_eq!(
        objects["ServiceMonitor/wufb-wufb-operator"]["metadata"]["labels"]["release"],
        "prom"
    );
    assert_eq!(
        objects["PrometheusRule/wufb-wufb-operator"]["metadata"]["labels"]["release"],
        "prom"
    );
    let dashboard = &objects["ConfigMap/wufb-wufb-operator-dashboard"];
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value =
        serde_json::from_str(dashboard["data"]["wufb-operator.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["uid"], "wufb-operator");
    let np: NetworkPolicy = strict(&objects["NetworkPolicy/wufb-wufb-operator"]);
    let egress = np.spec.unwrap().egress.unwrap();
    assert!(egress.iter().any(|e| {
        e.ports
            .as_ref()
            .unwrap()
            .iter()
            .any(|p| p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(53)))
    }));
    assert!(egress.iter().any(|e| {
        e.to.as_ref()
            .is_some_and(|t| t[0].ip_block.as_ref().unwrap().cidr == "20.190.128.0/18")
    }));
    let pdb: PodDisruptionBudget = strict(&objects["PodDisruptionBudget/wufb-wufb-operator"]);
    assert!(pdb.spec.unwrap().max_unavailable.is_some());
    // The Kubernetes API has its own egress rule, apart from Graph's CIDRs.
    assert!(egress.iter().any(|e| {
        e.to.is_none()
            && e.ports.as_ref().unwrap().iter().any(|p| {
                p.port
                    == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                        6443,
                    ))
            })
    }));
    let d: Deployment = strict(&objects["Deployment/wufb-wufb-operator"]);
    assert_eq!(
        d.spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap()
            .type_
            .as_deref(),
        Some("RollingUpdate")
    );
    let a = args(&objects);
    for want in [
        "--max-audience-devices=5000",
        "--resync-interval=5m",
        "--cloud=us-gov",
    ] {
        assert!(a.contains(&want.to_string()), "{want} in {a:?}");
    }
}

#[test]
fn values_that_break_the_schema_are_rejected() {
    for (values, needle) in [
        (json!({"replicaCount": "two"}), "/replicaCount"),
        (json!({"unknownKey": true}), "unknownKey"),
        (json!({"credentials": {"mode": "magic"}}), "/credentials/mode"),
        (
            json!({"controller": {"graphConcurrency": 0}}),
            "/controller/graphConcurrency",
        ),
        (
            json!({"graph": {"url": "http://graph.example.com/beta"}}),
            "/graph/url",
        ),
        (json!({"image": {"tag": 1}}), "/image/tag"),
    ] {
        let (ok, out) = helm(&["render", &values.to_string(), "wufb", "wufb-system"]);
        assert!(!ok, "{values} must be rejected");
        assert_eq!(out["error"], "HelmValuesError", "{out}");
        assert!(
            out["message"].as_str().unwrap().contains(needle),
            "{needle} named: {out}"
        );
    }
    // Inconsistent credentials fail with a message naming the fix.
    let (ok, out) = helm(&[
        "render",
        &json!({"credentials": {"tenantId": "t", "clientId": "c"}}).to_string(),
        "wufb",
        "wufb-system",
    ]);
    assert!(!ok);
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("credentials.clientSecret"),
        "{out}"
    );
}

#[test]
fn lint_passes_strict() {
    let (ok, report) = helm(&["lint", &json!({}).to_string()]);
    assert!(ok, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    let problems: Vec<&Value> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_i64() >= Some(2))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn default_render_matches_the_snapshot() {
    let (ok, out) = helm(&["render", "{}", "wufb", "wufb-system"]);
    assert!(ok);
    let mut text = String::new();
    for (path, manifest) in out["templates"].as_object().unwrap() {
        let m = manifest.as_str().unwrap().trim();
        if !m.is_empty() {
            text.push_str(&format!("# Source: {path}\n{m}\n"));
        }
    }
    let snapshot = root().join("tests/chart/snapshots/default.yaml");
    if std::env::var("WUFB_UPDATE_SNAPSHOTS").is_ok() {
        std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        std::fs::write(&snapshot, &text).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        want == text,
        "the default render changed; review it and run with WUFB_UPDATE_SNAPSHOTS=1 to update {}",
        snapshot.display()
    );
}

/// The operator container of a render: its args, its environment (a `fieldRef` resolved as the
/// kubelet would, from the pod's name and namespace) and its mount paths.
fn container(objects: &BTreeMap<String, Value>) -> (Vec<String>, BTreeMap<String, String>, Vec<String>) {
    let d: Deployment = strict(&objects["Deployment/wufb-wufb-operator"]);
    let c = d.spec.unwrap().template.spec.unwrap().containers[0].clone();
    let env = c
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let value = match (e.value, e.value_from.and_then(|f| f.field_ref)) {
                (Some(v), _) => v,
                (None, Some(f)) if f.field_path == "metadata.name" => "wufb-wufb-operator-7d9f-x2x".into(),
                (None, Some(f)) if f.field_path == "metadata.namespace" => "wufb-system".into(),
                (v, f) => panic!(
                    "env {} has a source the test does not resolve: {v:?} {f:?}",
                    e.name
                ),
            };
            (e.name, value)
        })
        .collect();
    let mounts = c
        .volume_mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_path)
        .collect();
    (c.args.unwrap(), env, mounts)
}

/// Runs the real binary's `run --check-config` with the rendered args and environment only.
fn check_config(args: &[String], env: &BTreeMap<String, String>) -> (bool, String) {
    let out = std::process::Command::new(operator_bin())
        .args(args)
        .arg("--check-config")
        .env_clear()
        .envs(env)
        .output()
        .expect("the operator binary runs (make unit builds it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_mode_and_scope_renders_args_the_binary_accepts() {
    let cases = [
        (
            "client secret, cluster-wide",
            json!({"credentials": {"tenantId": "t", "clientId": "c", "clientSecret": "s3cr3t"}}),
        ),
        (
            "certificate",
            json!({"credentials": {"mode": "certificate", "tenantId": "t", "clientId": "c", "clientCertificate": "-----BEGIN CERTIFICATE-----\n..."}}),
        ),
        (
            "existing Secret",
            json!({"credentials": {"existingSecret": "graph-app"}}),
        ),
        (
            "workload identity",
            json!({"credentials": {"mode": "workloadIdentity", "tenantId": "t", "clientId": "c"}}),
        ),
        (
            "namespaced",
            json!({"watchNamespaces": ["team-a", "team-b"], "credentials": {"existingSecret": "graph"}}),
        ),
        (
            "every controller value set",
            json!({
                "cloud": "us-gov",
                "graph": {"url": "https://graph.example.test/beta", "authorityHost": "https://login.example.test"},
                "replicaCount": 2,
                "metrics": {"port": 9090},
                "controller": {
                    "resyncInterval": "15m", "maxAudienceDevices": 5000, "graphRateLimit": 20,
                    "graphBurst": 40, "graphConcurrency": 8, "batchSize": 500, "logFormat": "text",
                    "leaderElection": false, "shutdownTimeout": "20s"
                },
                "credentials": {"existingSecret": "graph"}
            }),
        ),
    ];
    for (name, values) in cases {
        let objects = render(values);
        let (args, env, mounts) = container(&objects);
        let (ok, out) = check_config(&args, &env);
        assert!(ok, "{name}: the binary refused the chart's args {args:?}:\n{out}");
        assert!(out.contains("configuration ok"), "{name}: {out}");
        // Every file the binary would read sits under a path the chart mounts.
        for line in out.lines() {
            if let Some(file) = line.strip_prefix("reads file: ") {
                assert!(
                    mounts
                        .iter()
                        .any(|m| file.starts_with(&format!("{}/", m.trim_end_matches('/')))),
                    "{name}: the binary reads {file}, which no volumeMount {mounts:?} provides"
                );
            }
        }
        match name {
            "workload identity" => assert!(
                out.contains("credentials: workload identity federation for app c in tenant t"),
                "{out}"
            ),
            "namespaced" => assert!(out.contains("watching: namespaces team-a,team-b"), "{out}"),
            "every controller value set" => {
                assert!(out.contains("graph: https://graph.example.test/beta"), "{out}");
                assert!(
                    out.contains("metrics, health and readiness: 0.0.0.0:9090"),
                    "{out}"
                );
                assert!(out.contains("leader election: off"), "{out}");
                assert!(
                    out.contains("graph budget: 20 requests/s, burst 40, 8 at once, 500 assets per write"),
                    "{out}"
                );
            }
            _ => assert!(
                out.contains("credentials: Secret wufb-system/"),
                "{name}: the credentials come from the Secret in the release namespace: {out}"
            ),
        }
        assert!(!out.contains("s3cr3t"), "{name}: no secret in the output");
    }
}

#[test]
fn check_config_refuses_what_run_would_refuse() {
    let objects = render(json!({"credentials": {"existingSecret": "graph"}}));
    let (args, env, _) = container(&objects);
    // A flag renamed on one side fails the parse.
    let mut renamed = args.clone();
    renamed.push("--graph-ratelimit=5".into());
    let (ok, out) = check_config(&renamed, &env);
    assert!(!ok && out.contains("--graph-ratelimit"), "{out}");
    // Workload identity without its environment names what is missing.
    let wi = render(json!({"credentials": {"mode": "workloadIdentity", "tenantId": "t", "clientId": "c"}}));
    let (args, mut env, _) = container(&wi);
    env.remove("AZURE_FEDERATED_TOKEN_FILE");
    let (ok, out) = check_config(&args, &env);
    assert!(!ok && out.contains("AZURE_FEDERATED_TOKEN_FILE"), "{out}");
    // A bad address is named with its flag.
    let bad: Vec<String> = args
        .iter()
        .map(|a| {
            if a.starts_with("--metrics-addr=") {
                "--metrics-addr=8080".into()
            } else {
                a.clone()
            }
        })
        .collect();
    let (ok, out) = check_config(
        &bad,
        &BTreeMap::from([
            ("AZURE_TENANT_ID".to_string(), "t".to_string()),
            ("AZURE_CLIENT_ID".to_string(), "c".to_string()),
            ("AZURE_CLIENT_SECRET".to_string(), "x".to_string()),
        ]),
    );
    assert!(!ok && out.contains("--metrics-addr '8080'"), "{out}");
}

#[test]
fn the_crds_are_templates_kept_on_uninstall_and_carry_the_current_schema() {
    // `helm upgrade` applies templates (never crds/): the current schema reaches the cluster with the
    // operator that needs it. The render is what an upgrade applies.
    let objects = render(json!({}));
    check_all(&objects);
    for want in wufb_operator::crd::all() {
        let name = want.metadata.name.clone().unwrap();
        let got = &objects[&format!("CustomResourceDefinition/{name}")];
        assert_eq!(
            got["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            got["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{name}"
        );
        assert_eq!(
            got["spec"],
            serde_json::to_value(&want).unwrap()["spec"],
            "{name}: the generated schema"
        );
    }
    // The newest field of this version is in what an upgrade applies.
    let gc = &objects["CustomResourceDefinition/graphconnections.wufb.dev"];
    assert!(
        gc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            .get("serviceBehaviours")
            .is_some()
    );
    let objects = render(json!({"crds": {"keep": false}}));
    assert!(objects["CustomResourceDefinition/devicegroups.wufb.dev"]["metadata"]["annotations"].is_null());
    let objects = render(json!({"crds": {"enabled": false}}));
    assert!(!objects.keys().any(|k| k.starts_with("CustomResourceDefinition/")));
}

#[test]
fn scheduling_security_network_and_image_knobs_render() {
    let defaults = render(json!({}));
    let d: Deployment = strict(&defaults["Deployment/wufb-wufb-operator"]);
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.node_selector
            .unwrap()
            .get("kubernetes.io/os")
            .map(String::as_str),
        Some("linux"),
        "Linux nodes by default"
    );
    assert_eq!(pod.security_context.unwrap().run_as_user, Some(65532));
    assert!(
        !defaults.contains_key("PodDisruptionBudget/wufb-wufb-operator"),
        "no budget at one replica"
    );
    assert!(
        !render(json!({"podDisruptionBudget": {"enabled": true}}))
            .contains_key("PodDisruptionBudget/wufb-wufb-operator"),
        "a budget on one replica would block drains"
    );

    let digest = format!("sha256:{}", "a".repeat(64));
    let objects = render(json!({
        "image": {"digest": digest},
        "podSecurityContext": {"runAsUser": null, "runAsGroup": null, "fsGroup": null},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "wufb-operator"}}}],
        "proxy": {"httpsProxy": "http://proxy.corp:3128", "noProxy": "10.96.0.0/12,.svc,.cluster.local"},
        "caBundle": {"configMap": "corp-ca"},
        "extraEnv": [{"name": "RUST_LOG", "value": "debug"}],
        "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "controller": {"leaseDuration": "30s", "renewDeadline": "20s", "retryPeriod": "4s"},
    }));
    check_all(&objects);
    let d: Deployment = strict(&objects["Deployment/wufb-wufb-operator"]);
    assert_restricted(&d);
    let pod = d.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("ghcr.io/wufb-operator/wufb-operator@{digest}").as_str())
    );
    let psc = pod.security_context.as_ref().unwrap();
    assert!(
        psc.run_as_user.is_none() && psc.fs_group.is_none(),
        "OpenShift assigns the user: {psc:?}"
    );
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(pod.topology_spread_constraints.as_ref().unwrap()[0].max_skew, 1);
    let env: BTreeMap<String, String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    assert_eq!(env["HTTPS_PROXY"], "http://proxy.corp:3128");
    assert_eq!(env["NO_PROXY"], "10.96.0.0/12,.svc,.cluster.local");
    assert_eq!(env["RUST_LOG"], "debug");
    let a = c.args.clone().unwrap();
    for want in [
        "--ca-file=/etc/wufb/ca/ca.crt",
        "--lease-duration=30s",
        "--lease-renew-deadline=20s",
        "--lease-retry-period=4s",
    ] {
        assert!(a.contains(&want.to_string()), "{want} in {a:?}");
    }
    let mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/etc/wufb/ca", "/scratch"]);
    let volumes = pod.volumes.unwrap();
    assert_eq!(volumes[0].config_map.as_ref().unwrap().name, "corp-ca");
    assert_eq!(volumes[1].name, "scratch");
    // The binary accepts what the chart renders.
    let (container_args, container_env, _) = container(&objects);
    let (ok, out) = check_config(&container_args, &container_env);
    assert!(ok, "{out}");
    assert!(
        out.contains("lease 30s, renew deadline 20s, retry every 4s"),
        "{out}"
    );

    let objects = render(json!({"caBundle": {"secret": "corp-ca"}}));
    let d: Deployment = strict(&objects["Deployment/wufb-wufb-operator"]);
    let volumes = d.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert_eq!(
        volumes[0].secret.as_ref().unwrap().secret_name.as_deref(),
        Some("corp-ca")
    );
    let (ok, out) = helm(&[
        "render",
        &json!({"caBundle": {"secret": "a", "configMap": "b"}}).to_string(),
        "wufb",
        "wufb-system",
    ]);
    assert!(
        !ok && out["message"]
            .as_str()
            .unwrap()
            .contains("configMap or secret, not both"),
        "{out}"
    );
}

#[test]
fn aggregated_roles_let_namespace_viewers_read_and_editors_change_the_four_kinds() {
    let objects = render(json!({}));
    let view: ClusterRole = strict(&objects["ClusterRole/wufb-wufb-operator-view"]);
    let labels = view.metadata.labels.clone().unwrap();
    for role in ["view", "edit", "admin"] {
        assert_eq!(
            labels[&format!("rbac.authorization.k8s.io/aggregate-to-{role}")],
            "true"
        );
    }
    let edit: ClusterRole = strict(&objects["ClusterRole/wufb-wufb-operator-edit"]);
    let labels = edit.metadata.labels.clone().unwrap();
    assert!(
        !labels.contains_key("rbac.authorization.k8s.io/aggregate-to-view"),
        "viewers do not write"
    );
    let allows = |role: &ClusterRole, verb: &str, resource: &str| {
        role.rules.iter().flatten().any(|r| {
            r.api_groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|g| g == "wufb.dev"))
                && r.resources
                    .as_ref()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    for kind in [
        "expediteddeployments",
        "devicegroups",
        "graphconnections",
        "clustergraphconnections",
    ] {
        assert!(
            allows(&view, "list", kind) && allows(&view, "watch", kind),
            "{kind}"
        );
        assert!(!allows(&view, "patch", kind), "{kind}");
    }
    for kind in ["expediteddeployments", "devicegroups", "graphconnections"] {
        for verb in ["create", "patch", "delete"] {
            assert!(allows(&edit, verb, kind), "{verb} {kind}");
        }
    }
    assert!(
        !allows(&edit, "create", "clustergraphconnections"),
        "cluster connections stay with admins"
    );
    assert!(
        !edit
            .rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x.ends_with("/status"))),
        "status is the operator's"
    );
    let off = render(json!({"rbac": {"aggregateToDefaultRoles": false}}));
    assert!(!off.contains_key("ClusterRole/wufb-wufb-operator-view"));
}

/// Copies a directory tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_upgrade_carries_a_new_crd_field_and_uninstall_keeps_the_crds() {
    use kube::api::Api;
    // The previous chart: this one with the graphconnections CRD as it was before status.serviceBehaviours.
    let dir = root().join(format!("target/e2e/chart-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let previous = dir.join("previous");
    copy_tree(&root().join("charts/wufb-operator"), &previous);
    let mut old = serde_json::to_value(&wufb_operator::crd::all()[2]).unwrap();
    assert_eq!(old["metadata"]["name"], "graphconnections.wufb.dev");
    let status =
        &mut old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert!(
        status
            .as_object_mut()
            .unwrap()
            .remove("serviceBehaviours")
            .is_some()
    );
    std::fs::write(
        previous.join("templates/crds/graphconnections.wufb.dev.yaml"),
        wufb_operator::cli::crdgen::chart_template(&serde_yaml::to_string(&old).unwrap()),
    )
    .unwrap();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = wufb_test_apiserver::TestApiServer::start(Default::default())
        .await
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("wufb-system")).unwrap();
    let client = kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let has_field = async || {
        let crd = crds.get("graphconnections.wufb.dev").await.unwrap();
        let v = serde_json::to_value(crd).unwrap();
        v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            .get("serviceBehaviours")
            .is_some()
    };
    let values = json!({"credentials": {"existingSecret": "graph"}}).to_string();
    let mut helm = std::process::Command::new(python())
        .arg(root().join("tests/chart/helm.py"))
        .args(["lifecycle"])
        .arg(&previous)
        .arg(&values)
        .arg(root().join("charts/wufb-operator"))
        .args(["wufb", "wufb-system"])
        .arg(&kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(helm.stdout.take().unwrap()));
    let mut stdin = helm.stdin.take().unwrap();
    let mut step = |want: &str| {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("helm.py stopped before {want}"))
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap()["step"],
            want,
            "{line}"
        );
    };
    step("installed");
    assert!(!has_field().await, "the previous chart's schema");
    std::io::Write::write_all(&mut stdin, b"next\n").unwrap();
    step("upgraded");
    assert!(has_field().await, "the upgrade applied the new field");
    std::io::Write::write_all(&mut stdin, b"next\n").unwrap();
    step("uninstalled");
    assert!(
        has_field().await,
        "kept on uninstall (helm.sh/resource-policy: keep)"
    );
    std::io::Write::write_all(&mut stdin, b"next\n").unwrap();
    assert!(helm.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
