//! Many tenants from one operator: GraphConnection and ClusterGraphConnection objects, each tenant a
//! Graph emulator of its own. Objects land only in the tenant their connection leads to; references a
//! namespace may not use, and deployments whose groups live elsewhere, never reach Graph; a rotated
//! Secret is picked up without a restart; a connection in use is not deleted; a throttled or broken
//! tenant does not keep the others from converging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use wufb_e2e::Env;
use wufb_e2e::fixtures::dev;
use wufb_e2e::fixtures::rollout;
use wufb_graph_emulator::config::READ_WRITE;
use wufb_graph_emulator::{AppRegistration, Emulator, EmulatorConfig, FaultConfig};

const TENANT_B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const TENANT_C: &str = "cccccccc-0000-4000-8000-00000000000c";
const APP: &str = "a0a0a0a0-0000-4000-8000-0000000000a0";

/// A tenant of its own: an emulator whose one app signs in with `secret`.
async fn tenant(tenant_id: &str, secret: &str, faults: FaultConfig) -> Emulator {
    Emulator::start(
        EmulatorConfig {
            apps: vec![app(tenant_id, secret)],
            faults,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

/// The issuer and subject of the operator's service-account token, as a tenant's app trusts them.
const ISSUER: &str = "https://cluster.issuer.test";
const SUBJECT: &str = "system:serviceaccount:wufb-system:wufb-operator";

fn app(tenant_id: &str, secret: &str) -> AppRegistration {
    AppRegistration {
        tenant_id: tenant_id.into(),
        client_id: APP.into(),
        client_secret: Some(secret.into()),
        certificate_pem: None,
        federated: vec![wufb_graph_emulator::config::FederatedCredential {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
        }],
        roles: vec![READ_WRITE.into()],
    }
}

/// The operator's projected service-account token, as the kubelet writes it.
fn service_account_token(env: &Env) -> std::path::PathBuf {
    let key = wufb_e2e::root().join("tests/fixtures/credentials/other-key.pem");
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": ISSUER, "sub": SUBJECT, "aud": "api://AzureADTokenExchange", "nbf": now, "exp": now + 3600});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(key).unwrap()).unwrap(),
    )
    .unwrap();
    let file = env.dir.join("sa-token");
    std::fs::write(&file, token).unwrap();
    file
}

async fn secret(env: &Env, name: &str, value: &str) {
    let api: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "stringData": {"clientSecret": value},
    }))
    .unwrap();
    match api.get_opt(name).await.unwrap() {
        None => {
            api.create(&PostParams::default(), &s).await.unwrap();
        }
        Some(_) => {
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"clientSecret": value}})),
            )
            .await
            .unwrap();
        }
    }
}

fn connection(kind: &str, name: &str, tenant_id: &str, emulator: &Emulator, extra: &str) -> String {
    format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  tenantId: {tenant_id}\n  clientId: {APP}\n  credential:\n    secretRef:\n      name: {name}\n  endpoints:\n    graphUrl: {}\n    authorityHost: {}\n{extra}",
        emulator.graph_url(),
        emulator.base_url()
    )
}

fn deployments(emulator: &Emulator) -> usize {
    wufb_graph_emulator::state::lock(&emulator.shared.store)
        .list_deployments(chrono::Utc::now())
        .len()
}

async fn reason(env: &Env, what: &str) -> (String, String) {
    let o = env.get(what).await;
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or_default();
    (
        ready["reason"].as_str().unwrap_or_default().to_string(),
        ready["message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn wait_reason(env: &Env, what: &str, want: &str) -> String {
    env.eventually(
        &format!("{what} to say {want}"),
        Duration::from_secs(30),
        async || {
            let (r, m) = reason(env, what).await;
            (r == want).then_some(m)
        },
    )
    .await
}

/// A rollout of pre-rendered member lines, through `connection` (kind, name) when given.
fn in_tenant(name: &str, connection: Option<(&str, &str)>, members: &str) -> String {
    let reference = connection.map_or(String::new(), |(kind, name)| {
        format!("  connectionRef:\n    kind: {kind}\n    name: {name}\n")
    });
    rollout(name, &[], &format!("{members}{reference}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_object_lands_in_its_connections_tenant_and_nowhere_else() {
    let mut env = Env::start("tenants").await;
    if env.skip_on_real_cluster("ClusterGraphConnections and namespace labels are cluster-wide") {
        return;
    }
    let b = tenant(TENANT_B, "secret-b-1", FaultConfig::default()).await;
    let c = tenant(TENANT_C, "secret-c", FaultConfig::default()).await;
    let token = service_account_token(&env);
    env.spawn_controller_as(
        "tenants",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &[
            "--connection-check-interval",
            "1s",
            "--federated-token-file",
            token.to_str().unwrap(),
        ],
    );
    secret(&env, "tenant-b", "secret-b-1").await;
    env.apply_yaml(&connection("GraphConnection", "tenant-b", TENANT_B, &b, ""))
        .await;
    env.wait_ready(&["graphconnection/tenant-b"]).await;

    // The connection's check found what the service does, as `wufb-operator check` reports it through
    // the same connection; the operator logs it and exports it.
    let found = env.get("graphconnection/tenant-b").await["status"]["serviceBehaviours"].clone();
    let by_name = |v: &serde_json::Value, name: &str| {
        v.as_array()
            .and_then(|a| a.iter().find(|b| b["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} in {v:#}"))
    };
    assert_eq!(
        by_name(&found, "deployment-filter")["value"],
        "served",
        "{found:#}"
    );
    assert_eq!(
        by_name(&found, "device-signals")["value"],
        "readable",
        "{found:#}"
    );
    let out = env
        .operator_cli(&[
            "check",
            "-n",
            &env.namespace,
            "--graph-url",
            &env.emulator.graph_url(),
            "--authority-host",
            &env.emulator.base_url(),
            "-o",
            "json",
        ])
        .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let group = format!("tenant GraphConnection/{}/tenant-b", env.namespace);
    let checked = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["group"] == group.as_str() && c["name"] == "deployment-filter")
        .unwrap_or_else(|| panic!("no {group} deployment-filter in {report:#}"))
        .clone();
    assert_eq!(
        checked["found"],
        by_name(&found, "deployment-filter")["found"],
        "{report:#}"
    );
    let sign_in = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["group"] == group.as_str() && c["name"] == "sign-in")
        .unwrap();
    assert!(
        sign_in["found"].as_str().unwrap().contains(TENANT_B),
        "{sign_in:#}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("secret-b-1"),
        "the report holds no secret"
    );
    assert!(env.controller_logs().contains("service behaviour"));
    let ready = format!(
        "wufb_connection_ready{{kind=\"GraphConnection\",namespace=\"{}\",name=\"tenant-b\",reason=\"Converged\"}}",
        env.namespace
    );
    assert_eq!(env.metric(0, &ready).await, Some(1.0), "{ready}");
    assert_eq!(
        env.metric(0, "wufb_graph_service_behaviour{connection=\"default\",behaviour=\"deployment-filter\",value=\"served\"}")
            .await,
        Some(1.0)
    );

    // `plan` reads a rollout that names the connection through it (its Secret from the cluster), and
    // writes nothing.
    let planned = env.dir.join("planned.yaml");
    std::fs::write(
        &planned,
        in_tenant(
            "planned-b",
            Some(("GraphConnection", "tenant-b")),
            &format!("    - device: {}\n", dev(9)),
        ),
    )
    .unwrap();
    let since = b.requests().last().map_or(0, |r| r.seq + 1);
    let out = env
        .operator_cli(&[
            "plan",
            "-f",
            planned.to_str().unwrap(),
            "--graph-url",
            &env.emulator.graph_url(),
            "-o",
            "json",
        ])
        .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["objects"][0]["result"], "create", "{report}");
    let read_b: Vec<_> = b.requests().into_iter().filter(|r| r.seq >= since).collect();
    assert!(
        read_b.iter().any(|r| r.operation == "catalog.entries.list"),
        "the plan read tenant B's catalog: {read_b:?}"
    );
    assert!(
        read_b.iter().all(|r| r.method == "GET" || r.operation == "token"),
        "the plan wrote nothing"
    );

    // A ring and a rollout in tenant B, a rollout in the operator's own tenant.
    let ring = format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring-b\nspec:\n  connectionRef:\n    name: tenant-b\n  devices:\n  - {}\n  - {}\n",
        dev(1),
        dev(2)
    );
    env.apply_yaml(&ring).await;
    env.apply_yaml(&in_tenant(
        "in-b",
        Some(("GraphConnection", "tenant-b")),
        "    - deviceGroup: ring-b\n",
    ))
    .await;
    env.apply_yaml(&in_tenant("in-own", None, &format!("    - device: {}\n", dev(3))))
        .await;
    env.wait_ready(&["expd/in-b", "expd/in-own", "dg/ring-b"]).await;
    assert_eq!(deployments(&b), 1, "tenant B holds its rollout");
    assert_eq!(
        env.graph_deployments().len(),
        1,
        "the operator's own tenant holds only its own rollout"
    );
    assert_eq!(deployments(&c), 0);
    let status = env.status_of("in-b").await;
    assert_eq!(status["tenantId"], TENANT_B, "{status}");
    // `status --devices` reads the rollout's devices through its connection too.
    let out = env
        .operator_cli(&[
            "status",
            "in-b",
            "--devices",
            "--graph-url",
            &env.emulator.graph_url(),
        ])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("in-b: 0 of 2 targeted devices"), "{text}");

    // The users, as the connection's next look records them.
    let users = json!([
        format!("{}/DeviceGroup/ring-b", env.namespace),
        format!("{}/ExpeditedDeployment/in-b", env.namespace)
    ]);
    env.eventually(
        "the connection lists its users",
        Duration::from_secs(20),
        async || {
            let gc = env.get("graphconnection/tenant-b").await;
            (gc["status"]["userCount"] == 2 && gc["status"]["users"] == users).then_some(())
        },
    )
    .await;

    // A deployment whose group lives in another tenant stalls without a write.
    let before = (deployments(&b), env.graph_deployments().len());
    env.apply_yaml(&in_tenant("mixed", None, "    - deviceGroup: ring-b\n"))
        .await;
    let why = wait_reason(&env, "expd/mixed", "ConnectionMismatch").await;
    assert!(
        why.contains("DeviceGroup ring-b") && why.contains("tenant-b"),
        "{why}"
    );
    assert_eq!((deployments(&b), env.graph_deployments().len()), before);
    env.kubectl_ok(&["delete", "expd/mixed"]).await;

    // A ClusterGraphConnection admits only the namespaces its selector matches.
    secret(&env, "shared-c", "secret-c").await;
    env.apply_yaml(&connection(
        "ClusterGraphConnection",
        "shared-c",
        TENANT_C,
        &c,
        "  namespaceSelector:\n    matchLabels:\n      wufb.dev/tenant: c\n",
    ))
    .await;
    env.wait_ready(&["clustergraphconnection/shared-c"]).await;
    env.apply_yaml(&in_tenant(
        "in-c",
        Some(("ClusterGraphConnection", "shared-c")),
        &format!("    - device: {}\n", dev(4)),
    ))
    .await;
    let why = wait_reason(&env, "expd/in-c", "ConnectionNotAllowed").await;
    assert!(
        why.contains(&env.namespace) && why.contains("namespaceSelector"),
        "{why}"
    );
    assert!(
        env.events_with(&["ConnectionNotAllowed"])
            .await
            .contains("Warning"),
        "a Warning Event says it"
    );
    assert_eq!(deployments(&c), 0, "nothing reached tenant C");
    Api::<Namespace>::all(env.client.clone())
        .patch(
            &env.namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"wufb.dev/tenant": "c"}}})),
        )
        .await
        .unwrap();
    env.wait_ready(&["expd/in-c"]).await;
    assert_eq!(deployments(&c), 1);

    // Workload identity: a ClusterGraphConnection signs in to tenant C as the operator's own service
    // account (its token exchanged, no Secret at all); a namespaced GraphConnection may not.
    let federated = |kind: &str, name: &str, extra: &str| {
        format!(
            "apiVersion: wufb.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  tenantId: {TENANT_C}\n  clientId: {APP}\n  credential:\n    workloadIdentity: {{}}\n  endpoints:\n    graphUrl: {}\n    authorityHost: {}\n{extra}",
            c.graph_url(),
            c.base_url()
        )
    };
    env.apply_yaml(&federated(
        "ClusterGraphConnection",
        "federated-c",
        "  namespaceSelector: {}\n",
    ))
    .await;
    env.wait_ready(&["clustergraphconnection/federated-c"]).await;
    env.apply_yaml(&in_tenant(
        "in-c-federated",
        Some(("ClusterGraphConnection", "federated-c")),
        &format!("    - device: {}\n", dev(5)),
    ))
    .await;
    env.wait_ready(&["expd/in-c-federated"]).await;
    assert_eq!(deployments(&c), 2);
    assert!(
        c.requests()
            .iter()
            .any(|r| r.operation == "token" && r.status == 200),
        "tenant C gave a token"
    );
    env.apply_yaml(&federated("GraphConnection", "federated-local", ""))
        .await;
    let why = wait_reason(&env, "graphconnection/federated-local", "InvalidSpec").await;
    assert!(why.contains("--namespaced-workload-identity"), "{why}");

    // The Secret rotates: tenant B accepts only the new secret (and forgets the tokens it gave), and
    // the operator picks it up without a restart.
    let since = b.requests().last().map_or(0, |r| r.seq + 1);
    wufb_graph_emulator::state::lock(&b.shared.settings).apps = vec![app(TENANT_B, "secret-b-2")];
    wufb_graph_emulator::state::lock(&b.shared.tokens).clear();
    secret(&env, "tenant-b", "secret-b-2").await;
    env.eventually(
        "the rotated secret signs in to tenant B",
        Duration::from_secs(30),
        async || {
            b.requests()
                .iter()
                .any(|r| r.seq >= since && r.operation == "token" && r.status == 200)
                .then_some(())
        },
    )
    .await;
    env.request_reconcile("expd/in-b", &chrono::Utc::now().timestamp().to_string())
        .await;
    env.wait_ready(&["expd/in-b", "graphconnection/tenant-b"]).await;
    let logs = env.controller_logs();
    for s in ["secret-b-1", "secret-b-2", "secret-c"] {
        assert!(!logs.contains(s), "no secret in the logs");
    }
    let events = env.kubectl_ok(&["get", "events", "-o", "json"]).await;
    assert!(!events.contains("secret-b-2"), "no secret in Events");

    // A connection in use is not deleted; it goes once its objects do, and they clean tenant B up.
    env.kubectl_ok(&["delete", "graphconnection/tenant-b", "--wait=false"])
        .await;
    let why = wait_reason(&env, "graphconnection/tenant-b", "InUse").await;
    assert!(why.contains("ExpeditedDeployment/in-b"), "{why}");
    env.kubectl_ok(&["delete", "expd/in-b", "dg/ring-b", "--timeout=60s"])
        .await;
    env.eventually(
        "the connection goes once nothing uses it",
        Duration::from_secs(30),
        async || {
            (!env
                .kubectl_ok(&["get", "graphconnection", "-o", "name"])
                .await
                .contains("tenant-b"))
            .then_some(())
        },
    )
    .await;
    assert_eq!(deployments(&b), 0, "its rollout was deleted in tenant B");
    env.kubectl_ok(&[
        "delete",
        "expd/in-c",
        "expd/in-c-federated",
        "expd/in-own",
        "--timeout=60s",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_or_broken_tenant_does_not_keep_the_others_from_converging() {
    let mut env = Env::start("fair").await;
    // Tenant B answers every Graph call 429 with a minute's Retry-After; tenant C's sign-in is refused
    // (a wrong secret); tenant D is healthy.
    let b = tenant(
        TENANT_B,
        "secret-b",
        FaultConfig {
            throttle_rate: 1.0,
            retry_after_secs: 60.0,
            operations: vec!["deployments.create".into(), "deploymentAudiences.create".into()],
            ..Default::default()
        },
    )
    .await;
    let c = tenant(TENANT_C, "secret-c", FaultConfig::default()).await;
    let tenant_d = "dddddddd-0000-4000-8000-00000000000d";
    let d = tenant(tenant_d, "secret-d", FaultConfig::default()).await;
    // Tenant E answers everything 3 s late: its passes are long, and may hold only their share of the
    // admission gate (half of it: 2 of the 4 slots here), so its six rollouts take several rounds.
    let tenant_e = "eeeeeeee-0000-4000-8000-00000000000e";
    let e = tenant(
        tenant_e,
        "secret-e",
        FaultConfig {
            latency_ms: 3000,
            ..Default::default()
        },
    )
    .await;
    env.spawn_controller_as(
        "fair",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &["--reconcile-concurrency", "4"],
    );
    for (name, value) in [
        ("b", "secret-b"),
        ("c", "wrong-secret"),
        ("d", "secret-d"),
        ("e", "secret-e"),
    ] {
        secret(&env, name, value).await;
    }
    env.apply_yaml(&connection("GraphConnection", "b", TENANT_B, &b, ""))
        .await;
    env.apply_yaml(&connection("GraphConnection", "c", TENANT_C, &c, ""))
        .await;
    env.apply_yaml(&connection("GraphConnection", "d", tenant_d, &d, ""))
        .await;
    env.apply_yaml(&connection("GraphConnection", "e", tenant_e, &e, ""))
        .await;
    env.wait_ready(&["graphconnection/b", "graphconnection/d", "graphconnection/e"])
        .await;
    let why = wait_reason(&env, "graphconnection/c", "ConnectionFailed").await;
    assert!(why.contains(TENANT_C) && !why.contains("wrong-secret"), "{why}");

    let n = 6;
    let started = Instant::now();
    for i in 0..n {
        for t in ["e", "b", "c", "d"] {
            env.apply_yaml(&in_tenant(
                &format!("{t}-{i}"),
                Some(("GraphConnection", t)),
                &format!("    - device: {}\n", dev(i)),
            ))
            .await;
        }
    }
    let healthy: Vec<String> = (0..n).map(|i| format!("expd/d-{i}")).collect();
    let mut args: Vec<&str> = healthy.iter().map(String::as_str).collect();
    args.insert(0, "--timeout=60s");
    env.wait_ready_within(&args[1..], 60).await;
    let took = started.elapsed();
    let slow_done = deployments(&e);
    println!(
        "tenant D: {n} rollouts Ready in {:.1} s beside a throttled tenant, a broken one and a slow one ({slow_done} of {n} made by then); Graph calls: B {}, C {}, D {}, E {}",
        took.as_secs_f64(),
        b.requests().len(),
        c.requests().len(),
        d.requests().len(),
        e.requests().len()
    );
    let timeline = |t: &Emulator| {
        t.requests()
            .iter()
            .map(|r| format!("{} {}", r.at_ms % 100_000, r.operation))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(deployments(&d), n);
    assert!(
        slow_done < n,
        "tenant D waited for the slow tenant E\nD:\n{}\nE:\n{}",
        timeline(&d),
        timeline(&e)
    );
    assert_eq!(deployments(&b), 0, "tenant B made nothing while it throttles");
    assert_eq!(deployments(&c), 0);
    let (r, _) = reason(&env, "expd/b-0").await;
    assert_ne!(r, "Converged");
    let (r, m) = reason(&env, "expd/c-0").await;
    assert_eq!(r, "ConnectionNotReady", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_tenants_and_never_serve_the_same_one() {
    use wufb_operator::connections::{ConnKey, Shard};
    let mut env = Env::start("shards").await;
    let b = tenant(TENANT_B, "secret-b", FaultConfig::default()).await;
    let c = tenant(TENANT_C, "secret-c", FaultConfig::default()).await;
    // Two connection names that fall in different shards of two.
    let name_in = |shard: u32| {
        (0..)
            .map(|i| format!("tenant-{i}"))
            .find(|n| Shard::of(2, Some(&ConnKey::graph(&env.namespace, n))) == shard)
            .unwrap()
    };
    let (zero, one) = (name_in(0), name_in(1));
    let shard = |i: &str| -> Vec<String> { vec!["--shards".into(), "2".into(), "--shard".into(), i.into()] };
    let args0 = shard("0");
    let first = env.spawn_controller_as(
        "shard-0",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &args0.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    secret(&env, &zero, "secret-b").await;
    secret(&env, &one, "secret-c").await;
    env.apply_yaml(&connection("GraphConnection", &zero, TENANT_B, &b, ""))
        .await;
    env.apply_yaml(&connection("GraphConnection", &one, TENANT_C, &c, ""))
        .await;
    for (name, conn) in [("r-zero", &zero), ("r-one", &one)] {
        env.apply_yaml(&in_tenant(
            name,
            Some(("GraphConnection", conn)),
            &format!("    - device: {}\n", dev(7)),
        ))
        .await;
    }
    // Shard 0 alone: its tenant converges; the other shard's connection and rollout are left alone.
    env.wait_ready(&["expd/r-zero", &format!("graphconnection/{zero}")])
        .await;
    // A pass of shard 0 after r-one arrived, before asserting what it did not do to r-one.
    let since = b.requests().last().map_or(0, |r| r.seq + 1);
    env.request_reconcile("expd/r-zero", "after-r-one").await;
    env.settled_in(&b, "expd/r-zero", since).await;
    assert_eq!(deployments(&c), 0, "shard 0 never wrote tenant C");
    assert!(c.requests().is_empty(), "nor signed in to it");
    assert!(
        env.get("expd/r-one").await["status"].is_null(),
        "nor wrote the other shard's object"
    );
    // Shard 1 starts: its tenant converges, and shard 0 still writes only its own.
    let args1 = shard("1");
    env.spawn_controller_as(
        "shard-1",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &args1.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    env.wait_ready(&["expd/r-one", &format!("graphconnection/{one}")])
        .await;
    assert_eq!((deployments(&b), deployments(&c)), (1, 1));
    // Each shard leads through its own Lease.
    let leases = env.kubectl_ok(&["get", "leases", "-o", "name"]).await;
    assert!(
        leases.contains("wufb-operator-shard-0") && leases.contains("wufb-operator-shard-1"),
        "{leases}"
    );
    env.kill_controller(first).await;
}
