//! Hostile input through the live path: kubectl, the operator binary and the Graph emulator. Every
//! annotation of the operator's is set to values at and past its bounds (0, negative, beyond u64, a
//! float, NaN, 60,000 characters, right-to-left and control characters); gate waits go to their bound
//! and past it; waves of 1 and 1,000 members; connection Secrets that are empty, huge or not UTF-8;
//! and `run` flags out of range. The process never exits and never panics, each refused value is named
//! in the object's Ready condition and in exactly one Warning Event, and an object applied afterwards
//! converges as usual.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use wufb_e2e::fixtures::dev;
use wufb_e2e::fixtures::rollout;
use wufb_e2e::{Env, condition};
use wufb_operator::crd::annotations::{
    self, ABORT, CATALOG_POLL, PROGRESS, PROMOTE, RECONCILE_REQUESTED, RESYNC, RETRY,
};

const KEYS: [&str; 7] = [
    RESYNC,
    PROGRESS,
    CATALOG_POLL,
    PROMOTE,
    ABORT,
    RETRY,
    RECONCILE_REQUESTED,
];

/// A rollout of device `device`.
fn of_device(name: &str, device: usize) -> String {
    rollout(name, &[dev(device)], "")
}

fn waves(name: &str, first: std::ops::Range<usize>, second: Option<(usize, &str)>) -> String {
    let members: String = first.map(|i| format!("      - device: {}\n", dev(i))).collect();
    let mut y = format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: {name}\nspec:\n  content:\n    latest: true\n  rollout:\n    waves:\n    - name: pilot\n      members:\n{members}"
    );
    if let Some((device, wait)) = second {
        y.push_str(&format!(
            "    - name: broad\n      members:\n      - device: {}\n      gate:\n        wait: \"{wait}\"\n",
            dev(device)
        ));
    }
    y
}

/// Every Event's message in the namespace (core/v1 `message`, or events.k8s.io `note`) with its count.
async fn event_messages(env: &Env) -> Vec<(String, u64)> {
    let events: Value =
        serde_json::from_str(&env.kubectl_ok(&["get", "events", "-o", "json"]).await).unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = e["message"]
                .as_str()
                .or(e["note"].as_str())
                .unwrap_or("")
                .to_string();
            let count = e["count"].as_u64().or(e["series"]["count"].as_u64()).unwrap_or(1);
            (text, count)
        })
        .collect()
}

fn alive(env: &mut Env) {
    let exited = env.controllers[0].child.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "the operator exited: {exited:?}\n{}",
        env.tail_logs()
    );
    let logs = env.controller_logs();
    assert!(
        !logs.contains("panicked"),
        "no thread panicked:\n{}",
        env.tail_logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_refused_by_name_and_the_operator_keeps_converging() {
    let mut env = Env::start("hostile").await;
    env.spawn_controller("a");
    env.apply_yaml(&of_device("target", 1)).await;
    env.wait_ready(&["expd/target"]).await;

    // Each short value goes into every annotation at once (60,000 characters into one at a time: the
    // API server holds at most 256 KiB of annotations); the Ready condition then names each refused one.
    let long = "9".repeat(60_000);
    let short = [
        "0",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "1.5",
        "NaN",
        "\u{202e}5m",
        "5m\u{7}",
        "99999999999d",
    ];
    let mut rounds: Vec<BTreeMap<String, String>> = short
        .iter()
        .map(|v| KEYS.iter().map(|k| (k.to_string(), v.to_string())).collect())
        .collect();
    rounds.extend(
        KEYS.iter()
            .map(|k| BTreeMap::from([(k.to_string(), long.clone())])),
    );
    let mut named = Vec::new();
    for set in rounds {
        let mut args = vec!["annotate".to_string(), "--overwrite".into(), "expd/target".into()];
        for k in KEYS {
            args.push(match set.get(k) {
                Some(v) => format!("{k}={v}"),
                None => format!("{k}-"),
            });
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.kubectl_ok(&args).await;
        let refused: Vec<String> = annotations::ignored(Some(&set))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(!refused.is_empty(), "{set:.60?} is refused somewhere");
        let ready = env
            .eventually(
                "Ready names the refused values",
                Duration::from_secs(60),
                async || {
                    let c = condition(&env.status_of("target").await, "Ready");
                    let m = c["message"].as_str().unwrap_or("");
                    refused.iter().all(|r| m.contains(r.as_str())).then_some(c)
                },
            )
            .await;
        // The object itself is as it was: Ready, with the defaults applied.
        assert_eq!(ready["status"], "True", "{ready}");
        let message = ready["message"].as_str().unwrap();
        assert!(message.len() < 4096, "a bounded message");
        assert!(!message.contains(&long), "a long value is never echoed whole");
        assert!(
            !message.contains('\u{202e}') && !message.contains('\u{7}'),
            "invisible characters are never echoed: {message:?}"
        );
        named.extend(refused);
    }
    // Back to valid values: a sign the controller saw the last change, before counting Events.
    let mut args = vec!["annotate", "--overwrite", "expd/target"];
    args.extend([
        "wufb.dev/resync-interval=5m",
        "wufb.dev/progress-interval=1m",
        "wufb.dev/catalog-poll-interval=1h",
        "wufb.dev/promote-",
        "wufb.dev/abort-",
        "wufb.dev/retry-",
        "wufb.dev/reconcile-requested-at=2026-12-07T00:00:00Z",
    ]);
    env.kubectl_ok(&args).await;
    env.eventually(
        "Ready names nothing ignored",
        Duration::from_secs(60),
        async || {
            let c = condition(&env.status_of("target").await, "Ready");
            (c["status"] == "True" && !c["message"].as_str().unwrap_or("").contains("ignored")).then_some(())
        },
    )
    .await;
    named.sort();
    named.dedup();
    // Events go out in the background: wait until each refused value has one, then count.
    let events = env
        .eventually(
            "an Event for every refused value",
            Duration::from_secs(30),
            async || {
                let events = event_messages(&env).await;
                named
                    .iter()
                    .all(|t| events.iter().any(|(m, _)| m.contains(t.as_str())))
                    .then_some(events)
            },
        )
        .await;
    for text in &named {
        let matching: Vec<&(String, u64)> =
            events.iter().filter(|(m, _)| m.contains(text.as_str())).collect();
        assert_eq!(
            matching.len(),
            1,
            "one Warning Event for {text}: {matching:?} in {:?}",
            events
                .iter()
                .filter(|(m, _)| m.contains("ignored"))
                .collect::<Vec<_>>()
        );
        assert_eq!(matching[0].1, 1, "sent once, not once per pass: {text}");
    }
    alive(&mut env);

    // Gate waits: the bound itself is accepted and waited for; past it the API server refuses it.
    env.apply_yaml(&waves("wait-at-bound", 10..11, Some((11, "90d"))))
        .await;
    let waiting = env
        .eventually("the 90d gate waits", Duration::from_secs(60), async || {
            let c = condition(&env.status_of("wait-at-bound").await, "Ready");
            (c["reason"] == "WaitingForGate").then_some(c)
        })
        .await;
    assert!(
        waiting["message"].as_str().unwrap().contains("waits until"),
        "{waiting}"
    );
    for past in ["91d", "2161h", "99999999999d", "0s"] {
        let file = env.dir.join("past.yaml");
        std::fs::write(&file, waves("wait-past-bound", 12..13, Some((13, past)))).unwrap();
        let run = env.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
        assert!(!run.ok, "{past} is refused at apply");
        assert!(
            run.stderr.contains("spec.rollout.waves[1].gate"),
            "{past}: {}",
            run.stderr
        );
    }

    // Waves of 1 and of 1,000 members.
    env.apply_yaml(&waves("one-member", 20..21, None)).await;
    env.apply_yaml(&waves("thousand-members", 1000..2000, None)).await;
    env.wait_ready_within(&["expd/one-member", "expd/thousand-members"], 120)
        .await;
    assert_eq!(
        env.status_of("thousand-members").await["audience"]["devices"],
        1000
    );

    // Connection Secrets: empty, huge, not UTF-8. Each connection names its problem; none panics.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let cases: [(&str, Value, &str); 3] = [
        (
            "empty",
            json!({}),
            "neither a 'clientSecret' nor a 'clientCertificate'",
        ),
        (
            "huge",
            json!({"clientSecret": base64(&vec![b'a'; 900 * 1024])}),
            "'clientSecret' holds 921600 bytes",
        ),
        (
            "binary",
            json!({"clientSecret": base64(&[0xff, 0xfe, 0x00, 0x80])}),
            "not UTF-8",
        ),
    ];
    for (name, data, _) in &cases {
        let s: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data,
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
        env.apply_yaml(&format!(
            "apiVersion: wufb.dev/v1alpha1\nkind: GraphConnection\nmetadata:\n  name: {name}\nspec:\n  tenantId: {}\n  clientId: {}\n  credential:\n    secretRef:\n      name: {name}\n  endpoints:\n    graphUrl: {}\n    authorityHost: {}\n",
            wufb_graph_emulator::config::DEFAULT_TENANT_ID,
            wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
            env.emulator.graph_url(),
            env.emulator.base_url()
        ))
        .await;
    }
    for (name, _, problem) in &cases {
        let c = env
            .eventually(
                &format!("connection {name} names its Secret's problem"),
                Duration::from_secs(60),
                async || {
                    let c = condition(
                        &env.get(&format!("graphconnection/{name}")).await["status"],
                        "Ready",
                    );
                    (c["status"] == "False" && c["message"].as_str().unwrap_or("").contains(problem))
                        .then_some(c)
                },
            )
            .await;
        assert!(
            c["message"]
                .as_str()
                .unwrap()
                .contains("spec.credential.secretRef"),
            "{c}"
        );
    }
    alive(&mut env);

    // Afterwards an object converges as usual.
    env.apply_yaml(&of_device("after", 3000)).await;
    env.wait_ready(&["expd/after"]).await;
    alive(&mut env);
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `run` refuses every out-of-range flag or environment value at start-up, naming the flag, before it
/// connects to anything.
#[tokio::test]
async fn run_refuses_flags_out_of_range_naming_them() {
    let bin = wufb_e2e::operator_bin();
    /// Flags, environment, and the flag the refusal must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 14] = [
        (&["--graph-rate-limit", "1e-300"], &[], "--graph-rate-limit"),
        (&["--graph-rate-limit", "NaN"], &[], "--graph-rate-limit"),
        (&["--graph-rate-limit=-1"], &[], "--graph-rate-limit"),
        (&["--graph-rate-limit", "inf"], &[], "--graph-rate-limit"),
        (&[], &[("WUFB_GRAPH_RATE_LIMIT", "1e-300")], "--graph-rate-limit"),
        (&["--graph-burst", "0"], &[], "--graph-burst"),
        (&["--graph-concurrency", "100000"], &[], "--graph-concurrency"),
        (&["--reconcile-concurrency", "0"], &[], "--reconcile-concurrency"),
        (&["--batch-size", "0"], &[], "--batch-size"),
        (
            &["--resync-interval", "18446744073709551615"],
            &[],
            "--resync-interval",
        ),
        (&["--resync-interval", "8d"], &[], "--resync-interval"),
        (&["--progress-interval", "0s"], &[], "--progress-interval"),
        (
            &[],
            &[("WUFB_SHUTDOWN_TIMEOUT", "99999999999d")],
            "--shutdown-timeout",
        ),
        (&["--max-audience-devices", "0"], &[], "--max-audience-devices"),
    ];
    for (args, envs, flag) in cases {
        let out = tokio::process::Command::new(&bin)
            .arg("run")
            .args(args)
            .envs(envs.iter().copied())
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {envs:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} {envs:?} names {flag}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
