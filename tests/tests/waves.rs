//! Health-gated waves end to end, through kubectl and the operator's own commands, on the emulator's
//! simulated fleet: a healthy pilot opens the next wave's gate and a manual gate waits for `promote`;
//! a pilot whose devices fail halts the rollout by itself (the Graph deployment paused, a Warning Event
//! with the figures, the broad wave never sent), `retry` measures afresh (and halts again while the
//! failures stay), `abort` holds the deployment paused until the spec changes; new content carries the
//! waves sent to the new deployment; `plan` shows each wave and its blast radius; Argo CD reads a waiting
//! rollout as Progressing and a halted one as Degraded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use wufb_e2e::Env;
use wufb_e2e::fixtures::ring_device;
use wufb_graph_emulator::EmulatorConfig;
use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use wufb_graph_emulator::fleet::FleetConfig;

fn members(ring: u32, n: u32) -> String {
    (0..n)
        .map(|i| format!("      - device: {}\n", ring_device(ring, i)))
        .collect()
}

fn fleet(install_hours: f64) -> EmulatorConfig {
    EmulatorConfig {
        fleet: FleetConfig {
            // Ten simulated hours per real second.
            time_scale: 36_000.0,
            install_hours,
            hotpatch_rate: 0.0,
            failure_rate: 0.0,
            silent_rate: 0.0,
            seed: 5,
        },
        ..Default::default()
    }
}

async fn start(name: &str, install_hours: f64) -> Env {
    let mut env = Env::start_with(name, fleet(install_hours)).await;
    env.spawn_controller_as(
        "a",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &["--progress-interval=1s"],
    );
    env
}

/// The devices Graph offers the update to now (members less exclusions of unpaused deployments).
fn offered(env: &Env) -> BTreeSet<String> {
    env.graph_offered_devices()
}

fn ring(r: u32, n: u32) -> BTreeSet<String> {
    (0..n).map(|i| ring_device(r, i)).collect()
}

/// The devices in the deployment's audience, paused or not.
fn in_audience(env: &Env, status: &Value) -> BTreeSet<String> {
    let id = status["deploymentId"].as_str().unwrap_or_default();
    env.graph_audience(id)
        .0
        .into_iter()
        .map(|d| d.to_lowercase())
        .collect()
}

fn paused_in_graph(env: &Env, status: &Value) -> bool {
    let store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
    let id = status["deploymentId"].as_str().unwrap_or_default();
    store.deployments.get(id).is_some_and(|d| {
        store.render_deployment(d, chrono::Utc::now())["state"]["requestedValue"] == "paused"
    })
}

fn phase(status: &Value) -> &str {
    status["rollout"]["phase"].as_str().unwrap_or_default()
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

async fn wufb(env: &Env, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-n", &env.namespace]);
    let out = env.operator_cli(&all).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_pilot_opens_the_gate_and_a_manual_gate_waits_for_promote() {
    let env = start("waves-healthy", 2.0).await;
    let manifest = |content: &str| {
        format!(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: rings\nspec:\n  content:\n    {content}\n  rollout:\n    waves:\n    - name: pilot\n      members:\n{}    - name: early\n      members:\n{}      gate:\n        minUpToDatePercent: 100\n        maxFailedPercent: 20\n    - name: broad\n      members:\n{}      gate:\n        manual: true\n",
            members(1, 5),
            members(2, 5),
            members(3, 5)
        )
    };
    env.apply_yaml(&manifest("latest: true")).await;
    // The pilot installs, its gate holds, and early follows to the same deployment; broad waits.
    let status = env
        .eventually(
            "early is sent and broad waits for approval",
            Duration::from_secs(60),
            async || {
                let s = env.status_of("rings").await;
                (s["rollout"]["currentWave"] == "early" && phase(&s) == "Waiting").then_some(s)
            },
        )
        .await;
    let message = status["rollout"]["message"].as_str().unwrap();
    assert!(
        message.contains("waits for approval") && message.contains("--wave broad"),
        "{message}"
    );
    let sent: BTreeSet<String> = ring(1, 5).union(&ring(2, 5)).cloned().collect();
    assert_eq!(in_audience(&env, &status), sent, "pilot and early, not broad");
    assert_eq!(offered(&env), sent);
    // The pilot's own figures were what opened the gate: all five up to date, read after it was sent.
    let pilot = &status["rollout"]["waves"][0];
    assert_eq!(pilot["progress"]["upToDate"], 5, "{pilot}");
    assert!(pilot["progress"]["observedTime"].as_str().unwrap() >= pilot["promotedTime"].as_str().unwrap());
    // Waiting for a gate is progress, not failure (kstatus: Reconciling), and the column shows the wave.
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Ready")["reason"], "WaitingForGate");
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
    assert_ne!(condition(&status, "Stalled")["status"], "True");
    let table = env.kubectl_ok(&["get", "expd", "rings"]).await;
    assert!(table.contains("WAVE") && table.contains("early"), "{table}");
    let text = wufb(&env, &["status", "rings"]).await;
    assert!(
        text.contains("early (Waiting)") && text.contains("not sent"),
        "{text}"
    );

    // `promote` names the next wave not sent; broad goes, and the rollout is complete and Ready.
    let out = wufb(&env, &["promote", "rings"]).await;
    assert!(out.contains("wufb.dev/promote=broad"), "{out}");
    let status = env
        .eventually("broad is sent", Duration::from_secs(30), async || {
            let s = env.status_of("rings").await;
            (phase(&s) == "Complete" && condition(&s, "Ready")["status"] == "True").then_some(s)
        })
        .await;
    let all: BTreeSet<String> = sent.union(&ring(3, 5)).cloned().collect();
    assert_eq!(in_audience(&env, &status), all);
    assert_eq!(
        env.emulator.count("deployments.create"),
        1,
        "one deployment for every wave"
    );
    let events = env.events_with(&["WavePromoted"]).await;
    assert!(
        events.contains("wave broad (5 devices) sent to Graph: promoted by wufb.dev/promote"),
        "{events}"
    );
    assert!(
        events.contains("wave early (5 devices) sent to Graph: its gate holds"),
        "{events}"
    );

    // New content replaces the deployment: the waves sent go to the new one at once (no device loses
    // the offer), and the figures start again on the new content.
    let old_id = status["deploymentId"].as_str().unwrap().to_string();
    let latest = status["resolvedContent"]["catalogEntryId"]
        .as_str()
        .unwrap()
        .to_string();
    let other = env
        .emulator
        .catalog()
        .iter()
        .filter(|e| e["isExpeditable"] == true && e["qualityUpdateClassification"] == "security")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .find(|id| *id != latest)
        .expect("a second expeditable security entry");
    env.apply_yaml(&manifest(&format!("catalogEntryId: {other}")))
        .await;
    let replaced = env
        .eventually(
            "the new deployment carries every wave sent",
            Duration::from_secs(30),
            async || {
                let s = env.status_of("rings").await;
                (s["deploymentId"] != old_id.as_str()
                    && s["resolvedContent"]["catalogEntryId"] == other.as_str()
                    && condition(&s, "Ready")["status"] == "True"
                    && env.graph_deployments().len() == 1)
                    .then_some(s)
            },
        )
        .await;
    assert_eq!(phase(&replaced), "Complete");
    assert_eq!(in_audience(&env, &replaced), all, "every wave sent, at once");
    assert!(replaced["rollout"]["contentTime"].is_string(), "{replaced}");
    assert_eq!(env.emulator.count("deployments.create"), 2);
    assert_eq!(env.emulator.count("deployments.delete"), 1, "the old one is gone");

    // Deleting the object deletes the deployment and its audience, waves and all.
    env.kubectl_ok(&["delete", "expd", "rings", "--wait=true"]).await;
    env.eventually("Graph is clean", Duration::from_secs(30), async || {
        env.graph_deployments().is_empty().then_some(())
    })
    .await;
    assert!(offered(&env).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_each_wave_with_its_blast_radius_and_argo_cd_reads_the_rollout() {
    let env = start("waves-plan", 2000.0).await;
    let dir = env.dir.join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    // Broad's ring repeats one pilot device and one of its own is excluded: it adds 4 devices, not 6.
    let ring_devices: String = (0..5)
        .map(|i| ring_device(7, i))
        .chain([ring_device(6, 0)])
        .map(|d| format!("  - {d}\n"))
        .collect();
    let yaml = format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: broad-ring\nspec:\n  devices:\n{ring_devices}---\napiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: staged\nspec:\n  content:\n    latest: true\n  audience:\n    exclusions:\n    - device: {}\n  rollout:\n    waves:\n    - name: pilot\n      members:\n{}    - name: broad\n      members:\n      - deviceGroup: broad-ring\n      gate:\n        wait: 4h\n        maxFailedPercent: 20\n",
        ring_device(7, 4),
        members(6, 3),
    );
    std::fs::write(dir.join("staged.yaml"), &yaml).unwrap();
    let plan = |output: &'static str| {
        let dir = dir.clone();
        let url = env.emulator.graph_url();
        let env = &env;
        async move {
            let out = env
                .operator_cli(&[
                    "plan",
                    "-f",
                    dir.to_str().unwrap(),
                    "--graph-url",
                    &url,
                    "-o",
                    output,
                ])
                .await;
            assert_eq!(
                out.status.code(),
                Some(2),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let report: Value = serde_json::from_str(&plan("json").await).unwrap();
    let staged = |r: &Value| {
        r["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "staged")
            .cloned()
            .unwrap()
    };
    let waves = &staged(&report)["waves"];
    assert_eq!(waves[0]["name"], "pilot");
    assert_eq!(waves[0]["state"], "now");
    assert_eq!(
        (waves[0]["devices"].as_u64(), waves[0]["blast_radius"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(waves[1]["state"], "gated");
    assert_eq!(
        (waves[1]["devices"].as_u64(), waves[1]["blast_radius"].as_u64()),
        (Some(4), Some(7))
    );
    assert_eq!(waves[1]["when"], "4h after the previous wave, at most 20% failed");
    assert_eq!(report["blast_radius"], 7, "the whole rollout");
    assert_eq!(report["blast_radius_now"], 3, "the pilot at once");
    let text = plan("text").await;
    assert!(
        text.contains("wave 2 broad: +4 devices, 7 offered once sent; gated: 4h after the previous wave")
            && text.contains("Blast radius: 7 distinct devices would be offered an expedite, 3 at once and the rest as wave gates open."),
        "{text}"
    );
    assert!(plan("markdown").await.contains("| 2. broad | 4 | 7 | gated |"));

    // Applied: Graph offers what the plan said it would at once.
    env.kubectl_ok(&["apply", "-f", dir.to_str().unwrap()]).await;
    let waiting = env
        .eventually("the pilot is sent", Duration::from_secs(30), async || {
            let s = env.status_of("staged").await;
            (phase(&s) == "Waiting").then_some(s)
        })
        .await;
    assert_eq!(offered(&env), ring(6, 3));
    // A rollout waiting for its gate is Progressing to Argo CD (once the pass after the send has
    // verified it; until then it is Progressing while verifying); the plan now shows the pilot sent.
    let health = env
        .eventually("Argo CD reads the wait", Duration::from_secs(30), async || {
            // Until the DeviceGroup of the broad wave is Ready, the wait names the group instead.
            let health = wufb_e2e::argocd_health(&[env.get("expd/staged").await]);
            health[0]
                .1
                .starts_with("WaitingForGate: wave broad waits until")
                .then_some(health)
        })
        .await;
    assert_eq!(health[0].0, "Progressing", "{health:?}");
    assert!(
        health[0].1.starts_with("WaitingForGate: wave broad waits until"),
        "{health:?}"
    );
    // Flux's healthCheckExprs (examples/gitops/flux) read the same wait as Current: a gate that waits
    // hours does not fail the Kustomization; the DeviceGroup the waves use is Current too.
    assert_eq!(
        wufb_e2e::flux_health(&[env.get("expd/staged").await, env.get("dg/broad-ring").await]),
        ["Current", "Current"]
    );
    let again = env
        .operator_cli(&[
            "plan",
            "-f",
            dir.to_str().unwrap(),
            "--graph-url",
            &env.emulator.graph_url(),
            "-o",
            "json",
        ])
        .await;
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    let waves = &staged(&report)["waves"];
    assert_eq!(waves[0]["state"], "sent");
    assert_eq!(waves[0]["when"], waiting["rollout"]["waves"][0]["promotedTime"]);
    assert_eq!(waves[1]["state"], "gated");

    // Two of the three pilot devices fail: the rollout halts, and Argo CD shows it Degraded, with the
    // reason.
    for i in 0..2 {
        env.emulator.set_device(
            &ring_device(6, i),
            None,
            Some(Some("invalidAzureADJoin".to_string())),
        );
    }
    env.eventually("the rollout halts", Duration::from_secs(30), async || {
        (phase(&env.status_of("staged").await) == "Halted").then_some(())
    })
    .await;
    let halted = env.get("expd/staged").await;
    let health = wufb_e2e::argocd_health(std::slice::from_ref(&halted));
    assert_eq!(health[0].0, "Degraded", "{health:?}");
    assert_eq!(
        wufb_e2e::flux_health(&[halted]),
        ["Failed"],
        "a halt fails the Kustomization at once"
    );
    assert!(
        health[0]
            .1
            .starts_with("RolloutHalted: rollout halted at wave pilot: 2 of 3 devices"),
        "{health:?}"
    );

    // What to alert on: the halted rollout by name, its devices by state, objects by condition and
    // reason, the version.
    let url = format!("{}/metrics", env.metrics_url(0).await);
    let scraped = reqwest::get(url).await.unwrap().text().await.unwrap();
    let ns = env.namespace.clone();
    for want in [
        format!("wufb_rollout_info{{namespace=\"{ns}\",name=\"staged\",phase=\"Halted\",wave=\"pilot\"}} 1"),
        format!("wufb_rollout_progress_devices{{namespace=\"{ns}\",name=\"staged\",state=\"failed\"}} 2"),
        "wufb_objects{kind=\"ExpeditedDeployment\",condition=\"Stalled\",status=\"True\",reason=\"RolloutHalted\"} 1".to_string(),
        format!("wufb_build_info{{version=\"{}\"}} 1", wufb_operator::leader::VERSION),
        "wufb_leader 1".to_string(),
    ] {
        assert!(scraped.lines().any(|l| l == want), "{want} in\n{scraped}");
    }

    // Argo CD's actions on the live object: promote refused with the CLI's words, retry offered; the
    // annotation the retry action writes is one the controller acts on.
    let live = env.get("expd/staged").await;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let out = wufb_e2e::argocd_actions(
        &[
            ("discover", live.clone()),
            ("promote", live.clone()),
            ("retry", live),
        ],
        &now,
    );
    assert_eq!(out[0]["actions"]["promote"]["disabled"], true, "{out:?}");
    assert_eq!(out[0]["actions"]["retry"]["disabled"], false, "{out:?}");
    assert!(
        out[1]["error"]
            .as_str()
            .unwrap()
            .contains("is halted: run retry first"),
        "{out:?}"
    );
    let retry = out[2]["annotations"]["wufb.dev/retry"]
        .as_str()
        .unwrap()
        .to_string();
    env.kubectl_ok(&["annotate", "expd/staged", &format!("wufb.dev/retry={retry}")])
        .await;
    env.eventually(
        "the retry the action wrote is acted on",
        Duration::from_secs(30),
        async || {
            let s = env.status_of("staged").await;
            (s["rollout"]["lastRetry"]["value"] == retry.as_str()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pilot_halts_by_itself_until_retry_and_abort_holds_until_the_spec_changes() {
    // Slow installs (days): the pilot's devices stay pending unless failed.
    let env = start("waves-halt", 2000.0).await;
    let manifest = |wait: &str| {
        format!(
            "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: canary\nspec:\n  content:\n    latest: true\n  rollout:\n    waves:\n    - name: pilot\n      members:\n{}    - name: broad\n      members:\n{}      gate:\n        wait: {wait}\n        maxFailedPercent: 20\n",
            members(4, 10),
            members(5, 10)
        )
    };
    env.apply_yaml(&manifest("1h")).await;
    let status = env
        .eventually("the pilot is sent", Duration::from_secs(30), async || {
            let s = env.status_of("canary").await;
            (phase(&s) == "Waiting" && s["rollout"]["waves"][0]["progress"].is_object()).then_some(s)
        })
        .await;
    assert_eq!(in_audience(&env, &status), ring(4, 10));
    assert!(!paused_in_graph(&env, &status));

    // Three of the ten pilot devices fail: 30 % is above the gate's 20 %.
    let fail = |error: Option<&str>| {
        for i in 0..3 {
            env.emulator
                .set_device(&ring_device(4, i), None, Some(error.map(str::to_string)));
        }
    };
    fail(Some("invalidAzureADJoin"));
    let halted = env
        .eventually("the rollout halts", Duration::from_secs(30), async || {
            let s = env.status_of("canary").await;
            (phase(&s) == "Halted" && paused_in_graph(&env, &s)).then_some(s)
        })
        .await;
    let halt = &halted["rollout"]["halt"];
    assert_eq!(
        (halt["failed"].as_u64(), halt["devices"].as_u64()),
        (Some(3), Some(10)),
        "{halt}"
    );
    assert_eq!(halt["limitField"], "spec.rollout.waves[1].gate.maxFailedPercent");
    assert_eq!(condition(&halted, "Stalled")["status"], "True");
    assert_eq!(condition(&halted, "Ready")["reason"], "RolloutHalted");
    let events = env.events_with(&["RolloutHalted"]).await;
    assert!(
        events.contains("rollout halted at wave pilot: 3 of 10 devices offered so far failed (30.0%), above the 20% of spec.rollout.waves[1].gate.maxFailedPercent"),
        "{events}"
    );
    assert!(events.contains("\"type\": \"Warning\""), "{events}");
    assert_eq!(in_audience(&env, &halted), ring(4, 10), "broad is never sent");
    assert!(offered(&env).is_empty(), "a halted deployment offers nothing");

    // A retry with the failures still there: resumed, measured afresh, halted again.
    let first_halt = halt["time"].as_str().unwrap().to_string();
    let out = wufb(&env, &["retry", "canary"]).await;
    assert!(
        out.contains("retry requested") && out.contains("wufb.dev/retry="),
        "{out}"
    );
    env.events_with(&["RolloutRetried"]).await;
    let again = env
        .eventually(
            "halted again on figures read after the retry",
            Duration::from_secs(30),
            async || {
                let s = env.status_of("canary").await;
                let retried = s["rollout"]["lastRetry"]["time"].as_str()?.to_string();
                let t = s["rollout"]["halt"]["time"].as_str()?.to_string();
                (phase(&s) == "Halted" && t >= retried && t >= first_halt).then_some(s)
            },
        )
        .await;
    assert!(paused_in_graph(&env, &again));

    // The failures fixed, then a retry: the rollout resumes and waits for the gate's hour.
    fail(None);
    wufb(&env, &["retry", "canary"]).await;
    let waiting = env
        .eventually("resumed and waiting", Duration::from_secs(30), async || {
            let s = env.status_of("canary").await;
            (phase(&s) == "Waiting" && !paused_in_graph(&env, &s)).then_some(s)
        })
        .await;
    assert!(waiting["rollout"]["nextPromotionTime"].is_string(), "{waiting}");
    assert_eq!(offered(&env), ring(4, 10));

    // Abort: paused and held; a promote does not pass it.
    wufb(&env, &["abort", "canary"]).await;
    let aborted = env
        .eventually("aborted", Duration::from_secs(30), async || {
            let s = env.status_of("canary").await;
            (phase(&s) == "Aborted" && paused_in_graph(&env, &s)).then_some(s)
        })
        .await;
    assert_eq!(condition(&aborted, "Ready")["reason"], "RolloutAborted");
    // The CLI refuses, saying why; the same request through kubectl is ignored with a Warning.
    let mut args = vec!["promote", "canary", "--wave", "broad", "-n"];
    args.push(&env.namespace);
    let refused = env.operator_cli(&args).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is aborted"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    env.kubectl_ok(&["annotate", "--overwrite", "expd/canary", "wufb.dev/promote=broad"])
        .await;
    let events = env.events_with(&["RequestIgnored"]).await;
    assert!(
        events.contains("wufb.dev/promote ignored: the rollout is aborted"),
        "{events}"
    );
    let still = env.status_of("canary").await;
    assert_eq!(phase(&still), "Aborted", "{still}");
    assert_eq!(
        in_audience(&env, &still),
        ring(4, 10),
        "promote never passes an abort"
    );
    assert!(paused_in_graph(&env, &still));

    // A spec change lifts the abort; the promote refused before never fires: broad waits for its gate.
    env.apply_yaml(&manifest("2h")).await;
    let waiting = env
        .eventually(
            "resumed after the spec change",
            Duration::from_secs(30),
            async || {
                let s = env.status_of("canary").await;
                (phase(&s) == "Waiting" && !paused_in_graph(&env, &s)).then_some(s)
            },
        )
        .await;
    assert_eq!(
        in_audience(&env, &waiting),
        ring(4, 10),
        "the stale promote did not fire"
    );
    // A new promote sends it.
    wufb(&env, &["promote", "canary", "--wave", "broad"]).await;
    let done = env
        .eventually(
            "broad sent after a new promote",
            Duration::from_secs(30),
            async || {
                let s = env.status_of("canary").await;
                (phase(&s) == "Complete" && !paused_in_graph(&env, &s)).then_some(s)
            },
        )
        .await;
    let all: BTreeSet<String> = ring(4, 10).union(&ring(5, 10)).cloned().collect();
    assert_eq!(in_audience(&env, &done), all);
    assert_eq!(env.emulator.count("deployments.create"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_past_a_failing_gate_never_sends_the_next_wave() {
    // Quick installs: three of the four pilot devices are soon up to date (75% passes the gate's 50%),
    // the fourth failed (25% is above its 20%).
    let env = start("waves-retry", 2.0).await;
    env.emulator
        .set_device(&ring_device(6, 0), None, Some(Some("invalidAzureADJoin".into())));
    env.apply_yaml(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: gated\nspec:\n  content:\n    latest: true\n  rollout:\n    waves:\n    - name: pilot\n      members:\n{}    - name: broad\n      members:\n{}      gate:\n        minUpToDatePercent: 50\n        maxFailedPercent: 20\n",
        members(6, 4),
        members(7, 4)
    ))
    .await;
    let halted = env
        .eventually("the rollout halts", Duration::from_secs(60), async || {
            let s = env.status_of("gated").await;
            (phase(&s) == "Halted").then_some(s)
        })
        .await;
    assert_eq!(halted["rollout"]["halt"]["failed"], 1, "{halted}");
    let first_halt = halted["rollout"]["halt"]["time"].as_str().unwrap().to_string();

    // The retry: the failure is still there, so the gate does not open on the figures that halted it;
    // figures read after the retry halt the rollout again.
    let out = wufb(&env, &["retry", "gated"]).await;
    assert!(out.contains("retry requested"), "{out}");
    let again = env
        .eventually(
            "halted again after the retry",
            Duration::from_secs(60),
            async || {
                let s = env.status_of("gated").await;
                let retried = s["rollout"]["lastRetry"]["time"].as_str()?.to_string();
                let t = s["rollout"]["halt"]["time"].as_str()?.to_string();
                (phase(&s) == "Halted" && t >= retried && t > first_halt).then_some(s)
            },
        )
        .await;
    assert_eq!(in_audience(&env, &again), ring(6, 4), "broad was never sent");
    let events = env.events_with(&["RolloutRetried"]).await;
    assert!(
        !events.contains("wave broad"),
        "no WavePromoted for broad: {events}"
    );
    // A retry on a rollout that is halted is accepted; the CLI refuses one that is not.
    assert!(paused_in_graph(&env, &again));
}
