//! One test per reconcile rule of DESIGN.md, named after it, run end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use wufb_e2e::fixtures::dev;
use wufb_e2e::fixtures::rollout;
use wufb_e2e::{Env, condition};
use wufb_graph_emulator::{EmulatorConfig, FaultConfig, RetryAfterForm};

async fn stalled(env: &Env, name: &str) -> Value {
    env.eventually(&format!("{name} Stalled"), Duration::from_secs(30), async || {
        let c = condition(&env.status_of(name).await, "Stalled");
        (c["status"] == "True").then_some(c)
    })
    .await
}

fn writes(env: &Env) -> usize {
    env.emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.operation != "token" && (200..300).contains(&r.status))
        .count()
}

/// A rollout of two devices, with more of the spec.
fn of_two_devices(name: &str, extra: &str) -> String {
    rollout(name, &[dev(1), dev(2)], extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_the_first_reconcile_always_writes_a_status() {
    let mut env = Env::start("first-status").await;
    env.spawn_controller("a");
    env.apply_yaml(&of_two_devices("waits", "    - deviceGroup: not-there-yet\n"))
        .await;
    let status = env
        .eventually("a status", Duration::from_secs(30), async || {
            let s = env.status_of("waits").await;
            (!s.is_null()).then_some(s)
        })
        .await;
    let r = condition(&status, "Reconciling");
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("True"), Some("WaitingForDeviceGroup"))
    );
    assert!(r["message"].as_str().unwrap().contains("not-there-yet"));
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(r["observedGeneration"], 1, "per condition too");
    assert_eq!(
        writes(&env),
        0,
        "nothing is written while a referenced group is missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_the_finalizer_is_added_before_the_first_graph_write() {
    let env_config = EmulatorConfig {
        faults: FaultConfig {
            throttle_rate: 1.0,
            retry_after_secs: 600.0,
            writes_only: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut env = Env::start_with("finalizer-first", env_config).await;
    env.spawn_controller("a");
    env.apply_yaml(&of_two_devices("guarded", "")).await;
    let obj = env
        .eventually("the finalizer", Duration::from_secs(30), async || {
            let o = env.get("expd/guarded").await;
            (o["metadata"]["finalizers"] == json!(["wufb.dev/cleanup"])).then_some(o)
        })
        .await;
    assert!(obj["metadata"]["finalizers"].is_array());
    assert_eq!(
        writes(&env),
        0,
        "no Graph write has succeeded yet, the finalizer is already there"
    );
    // The throttled create surfaces as a transient condition honouring Retry-After, not a stall.
    let ready = env
        .eventually("the throttled condition", Duration::from_secs(30), async || {
            let c = condition(&env.status_of("guarded").await, "Ready");
            (c["reason"] == "GraphThrottled").then_some(c)
        })
        .await;
    assert_eq!(
        condition(&env.status_of("guarded").await, "Stalled")["status"],
        "False",
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_exactly_once_create_adopts_the_deployment_after_a_lost_answer() {
    let mut env = Env::start("exactly-once").await;
    env.spawn_controller("a");
    // Every deployment create is carried out but its answer is lost: the create is ambiguous.
    env.emulator.set_faults(FaultConfig {
        lost_answer_rate: 1.0,
        operations: vec!["deployments.create".into()],
        ..Default::default()
    });
    env.apply_yaml(&of_two_devices("once", "")).await;
    env.eventually("an adopted deployment", Duration::from_secs(60), async || {
        env.status_of("once").await["deploymentId"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    env.emulator.set_faults(FaultConfig::default());
    env.wait_ready(&["expd/once"]).await;
    let deployments = env.graph_deployments();
    assert_eq!(deployments.len(), 1, "never two deployments for one object");
    assert_eq!(env.status_of("once").await["deploymentId"], deployments[0]["id"]);
    // The deployment was created with the audience the intent recorded, and no other was made.
    {
        let store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        let aid = store.deployments[deployments[0]["id"].as_str().unwrap()]
            .audience_id
            .clone();
        assert_eq!(
            store.audiences.len(),
            1,
            "one audience: {:?}",
            store.audiences.keys()
        );
        assert!(
            !store.audiences[&aid].implicit,
            "created first, then the deployment with it"
        );
    }
    // An Event tells the adoption.
    env.events_with(&["Adopted"]).await;
}

/// What a new object costs the API server: its finalizer, the create intent, the audience id, the
/// create pass's report (which records the deployment) and the verifying pass's Ready; the deployment id
/// has no write of its own between the create and the audience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_new_object_is_ready_after_five_writes_to_it() {
    use futures::StreamExt;
    let mut env = Env::start("five-writes").await;
    let api: kube::Api<wufb_operator::crd::ExpeditedDeployment> =
        kube::Api::namespaced(env.client.clone(), &env.namespace);
    let versions = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let seen = versions.clone();
    let (listed, watching) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(async move {
        let mut listed = Some(listed);
        let mut events = kube::runtime::watcher(api, Default::default()).boxed();
        while let Some(Ok(e)) = events.next().await {
            match e {
                kube::runtime::watcher::Event::InitDone => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                kube::runtime::watcher::Event::Apply(o) => {
                    let rv = o.metadata.resource_version.clone().unwrap_or_default();
                    let st = serde_json::to_value(&o.status).unwrap();
                    seen.lock().unwrap().push((rv, st));
                }
                _ => {}
            }
        }
    });
    // Every version from the first is a watch event: the list is done before the object exists.
    watching.await.unwrap();
    env.spawn_controller("a");
    env.apply_yaml(&of_two_devices("counted", "")).await;
    env.wait_ready(&["expd/counted"]).await;
    // The watch has seen the Ready version too.
    env.eventually("the Ready version watched", Duration::from_secs(10), async || {
        versions
            .lock()
            .unwrap()
            .iter()
            .any(|(_, st)| condition(st, "Ready")["status"] == "True")
            .then_some(())
    })
    .await;
    watch.abort();
    let versions = versions.lock().unwrap().clone();
    let until_ready = versions
        .iter()
        .position(|(_, st)| condition(st, "Ready")["status"] == "True")
        .unwrap();
    // The first version is the applied object; each one after it, up to Ready, is a write by the
    // operator.
    let statuses: Vec<String> = versions[..=until_ready]
        .iter()
        .map(|(rv, st)| format!("{rv}: {st}"))
        .collect();
    assert_eq!(until_ready, 5, "{statuses:#?}");
    let with_intent = versions
        .iter()
        .filter(|(_, st)| st["createIntent"].is_object())
        .count();
    assert_eq!(with_intent, 2, "the intent, then its audience id: {statuses:#?}");
    let report = &versions[4].1;
    assert!(
        report["deploymentId"].is_string() && report["createIntent"].is_null(),
        "{statuses:#?}"
    );
}

/// A create pass records the new deployment with its report, not with a write of its own: when the
/// pass then fails (here every audience write fails), the report still carries the id and ends the
/// intent, and the next pass goes on with that deployment; it neither makes another nor adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_create_pass_that_fails_after_the_create_records_the_deployment_in_its_report() {
    let mut env = Env::start("report-records").await;
    env.spawn_controller("a");
    env.emulator.set_faults(FaultConfig {
        error_rate: 1.0,
        operations: vec!["audience.updateAudience".into()],
        ..Default::default()
    });
    env.apply_yaml(&of_two_devices("failing", "")).await;
    let status = env
        .eventually("the failed pass's report", Duration::from_secs(60), async || {
            let st = env.status_of("failing").await;
            (st["deploymentId"].is_string() && !condition(&st, "Ready").is_null()).then_some(st)
        })
        .await;
    assert!(
        status["createIntent"].is_null(),
        "the report ends the intent: {status}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "False", "{status}");
    let deployments = env.graph_deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(status["deploymentId"], deployments[0]["id"]);
    assert!(
        env.emulator
            .requests()
            .iter()
            .any(|r| r.operation == "audience.updateAudience" && r.status >= 500),
        "the pass failed after the create"
    );
    env.emulator.set_faults(FaultConfig::default());
    env.wait_ready(&["expd/failing"]).await;
    assert_eq!(
        env.graph_deployments().len(),
        1,
        "never two deployments for one object"
    );
    let events = env.events_with(&["Created"]).await;
    assert!(!events.contains("Adopted"), "recorded, not adopted: {events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_group_create_whose_answer_was_lost_keeps_its_intent_and_is_told() {
    let mut env = Env::start("group-lost").await;
    env.spawn_controller("a");
    // Every group create is carried out but its answer is lost.
    env.emulator.set_faults(FaultConfig {
        lost_answer_rate: 1.0,
        operations: vec!["updatableAssets.createGroup".into()],
        ..Default::default()
    });
    env.apply_yaml(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring\nspec:\n  devices:\n  - {}\n",
        dev(1)
    ))
    .await;
    // The failed pass's own status write keeps the intent it recorded before the create.
    env.eventually(
        "the intent recorded after a lost answer",
        Duration::from_secs(30),
        async || {
            let creates = env
                .emulator
                .requests()
                .iter()
                .filter(|r| r.operation == "updatableAssets.createGroup")
                .count();
            let dg = env.get("dg/ring").await;
            let failed = dg["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reason"] == "GraphAmbiguousCreate"));
            (creates >= 1 && failed && dg["status"]["createIntent"].is_object()).then_some(())
        },
    )
    .await;
    env.emulator.set_faults(FaultConfig::default());
    env.wait_ready(&["dg/ring"]).await;
    // The group an interrupted create may have made cannot be adopted: the admin is told.
    env.events_with(&["CreateInterrupted"]).await;
    let st = env.get("dg/ring").await;
    assert!(
        st["status"]["createIntent"].is_null(),
        "the intent ends with the id: {st:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_ambiguous_adoption_stalls_listing_the_candidates() {
    let mut env = Env::start("ambiguous").await;
    // The object already recorded a create intent, and two matching deployments exist: a crash after
    // the create, with a second deployment of the same content made at the same time by someone else.
    env.apply_yaml(&of_two_devices("twins", "")).await;
    let entry = env.expeditable_entry();
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(env.graph_create_deployment(&entry));
    }
    let intent = json!({"status": {"createIntent": {"startedAt": chrono::Utc::now().to_rfc3339(), "catalogEntryId": entry}}});
    env.kubectl_ok(&[
        "patch",
        "expd",
        "twins",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        &intent.to_string(),
    ])
    .await;
    env.spawn_controller("a");
    let c = stalled(&env, "twins").await;
    assert_eq!(c["reason"], "AmbiguousAdoption");
    for id in &ids {
        assert!(
            c["message"].as_str().unwrap().contains(id.as_str()),
            "lists {id}: {c}"
        );
    }
    assert_eq!(env.graph_deployments().len(), 2, "no third deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_converged_object_makes_zero_graph_writes_on_resync() {
    let mut env = Env::start("steady").await;
    env.spawn_controller_as(
        "a",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &["--resync-interval=1s"],
    );
    env.apply_yaml(&of_two_devices("steady", "")).await;
    env.wait_ready(&["expd/steady"]).await;
    let before_writes = writes(&env);
    let before = env.graph_seq();
    env.eventually("two resync passes", Duration::from_secs(30), async || {
        let gets = env
            .emulator
            .requests()
            .iter()
            .filter(|r| r.seq >= before && r.operation == "deployments.get")
            .count();
        (gets >= 2).then_some(())
    })
    .await;
    let reads: Vec<String> = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.seq >= before)
        .map(|r| r.operation)
        .collect();
    assert_eq!(writes(&env), before_writes, "zero writes");
    let gets = reads.iter().filter(|o| *o == "deployments.get").count();
    assert!(gets >= 2, "resynced every second: {reads:?}");
    assert!(
        reads
            .iter()
            .all(|o| o == "deployments.get" || o.starts_with("audience.") && o.ends_with(".list")),
        "only the observe reads: {reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_transient_errors_requeue_with_backoff_and_converge() {
    let mut env = Env::start("transient").await;
    env.emulator.set_faults(FaultConfig {
        throttle_rate: 0.3,
        retry_after_secs: 0.2,
        retry_after_form: RetryAfterForm::Fractional,
        error_rate: 0.2,
        drop_rate: 0.1,
        seed: 77,
        ..Default::default()
    });
    env.spawn_controller("a");
    // Distinct settings make every request body distinct, so a repeat of one is a retry.
    for i in 0..4 {
        env.apply_yaml(&of_two_devices(
            &format!("r{i}"),
            &format!("  userExperience:\n    daysUntilForcedReboot: {i}\n"),
        ))
        .await;
    }
    // About two in five create passes fail here (a 500 or a dropped connection on the POST after
    // throttled retries); six in a row put the next try past a minute.
    env.wait_ready_within(&["expd", "--all"], 240).await;
    env.emulator.set_faults(FaultConfig::default());
    assert_eq!(env.graph_deployments().len(), 4, "one each, despite faults");
    for d in env.graph_deployments() {
        assert_eq!(
            env.graph_audience(d["id"].as_str().unwrap()).0,
            vec![dev(1), dev(2)]
        );
    }
    // Retry-After respected: no request for the same thing sooner than it allowed.
    let log = env.emulator.requests();
    // Writes are told apart by path and body (reads of different objects can look the same).
    // An audience create's body is the same for every object, so a later one is not told from a retry.
    for t in log
        .iter()
        .filter(|r| r.status == 429 && r.method != "GET" && r.operation != "deploymentAudiences.create")
    {
        if let Some(next) = log.iter().find(|r| {
            r.seq > t.seq
                && r.method == t.method
                && r.path == t.path
                && r.query == t.query
                && r.body_hash == t.body_hash
        }) {
            assert!(
                next.at_ms >= t.retry_not_before_ms.unwrap(),
                "retried {} {} too early",
                t.method,
                t.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_permanent_errors_stall_with_an_event() {
    let mut env = Env::start("permanent").await;
    env.spawn_controller_as(
        "a",
        wufb_graph_emulator::config::READONLY_CLIENT_ID,
        wufb_graph_emulator::config::READONLY_CLIENT_SECRET,
        &[],
    );
    env.apply_yaml(&of_two_devices("forbidden", "")).await;
    let c = stalled(&env, "forbidden").await;
    assert_eq!(c["reason"], "GraphForbidden");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("WindowsUpdates.ReadWrite.All"),
        "{c}"
    );
    // The message names the refused call's request-id, which the service answered with, and the
    // client-request-id the operator sent: what Microsoft support asks for.
    let message = c["message"].as_str().unwrap();
    let ids = message
        .split("[request-id: ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("no request ids in: {message}"));
    let (rid, cid) = ids.split_once(", client-request-id: ").unwrap();
    assert!(
        env.emulator
            .requests()
            .iter()
            .any(|r| r.status == 403 && r.request_id.as_deref() == Some(rid)),
        "request-id {rid} is not one the service answered a 403 with"
    );
    assert_eq!(cid.len(), 36, "{cid}");
    // The Warning links the reason's entry in the documentation.
    let events = env.events_with(&["GraphForbidden"]).await;
    assert!(
        events.contains(&format!(
            "(docs: {}/reasons.html#graph-forbidden)",
            wufb_operator::reconcile::reasons::DOCS_BASE
        )),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_adoption_by_deployment_id_and_observe_only() {
    let mut env = Env::start("adopt").await;
    let entry = env.expeditable_entry();
    let existing = env.graph_create_deployment(&entry);
    env.spawn_controller("a");
    let observe = of_two_devices(
        "watcher",
        &format!("  managementPolicy: ObserveOnly\n  deploymentId: {existing}\n"),
    )
    .replace("latest: true", &format!("catalogEntryId: {entry}"));
    env.apply_yaml(&observe).await;
    env.wait_ready(&["expd/watcher"]).await;
    assert_eq!(writes(&env), 0, "ObserveOnly never writes");
    assert_eq!(env.status_of("watcher").await["graphState"], "offering");
    env.kubectl_ok(&["delete", "expd", "watcher", "--timeout=30s"])
        .await;
    assert_eq!(env.graph_deployments().len(), 1, "ObserveOnly never deletes");

    // A deployment made outside with an audience (one that never had members lists 404, which for an
    // adopted deployment cannot be told from an Intune-managed one, and stalls).
    {
        let mut store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        let aid = store.deployments[&existing].audience_id.clone();
        let a = store.audiences.get_mut(&aid).unwrap();
        a.members
            .insert(dev(9), wufb_graph_emulator::store::AssetKind::Device);
        a.ever_used = true;
    }
    let adopt = of_two_devices("adopter", &format!("  deploymentId: {existing}\n"))
        .replace("latest: true", &format!("catalogEntryId: {entry}"));
    env.apply_yaml(&adopt).await;
    env.wait_ready(&["expd/adopter"]).await;
    assert_eq!(env.graph_deployments().len(), 1, "adopted, not created");
    assert_eq!(
        env.graph_audience(&existing).0,
        vec![dev(1), dev(2)],
        "and managed"
    );

    // Graph names the deployment's entry only by reference (`catalog/entries/{id}`): that is read, so
    // adopting it for other content stalls and writes nothing.
    let other = env
        .emulator
        .catalog()
        .iter()
        .filter(|e| e["isExpeditable"] == true)
        .filter_map(|e| e["id"].as_str())
        .find(|id| *id != entry)
        .expect("a second expeditable entry")
        .to_string();
    let before = writes(&env);
    let drifted = of_two_devices(
        "drifted",
        &format!(
            "  deploymentId: {existing}
"
        ),
    )
    .replace("latest: true", &format!("catalogEntryId: {other}"));
    env.apply_yaml(&drifted).await;
    let c = stalled(&env, "drifted").await;
    assert_eq!(c["reason"], "ContentDiffers", "{c}");
    let message = c["message"].as_str().unwrap_or_default();
    assert!(message.contains(&entry) && message.contains(&other), "{message}");
    assert_eq!(
        writes(&env) - before,
        0,
        "nothing written to a deployment of other content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_intune_owned_deployments_are_refused() {
    let mut env = Env::start("intune").await;
    let entry = env.expeditable_entry();
    let existing = env.graph_create_deployment(&entry);
    wufb_graph_emulator::state::lock(&env.emulator.shared.store)
        .deployments
        .get_mut(&existing)
        .unwrap()
        .intune_managed = true;
    env.spawn_controller("a");
    env.apply_yaml(
        &of_two_devices("intune", &format!("  deploymentId: {existing}\n"))
            .replace("latest: true", &format!("catalogEntryId: {entry}")),
    )
    .await;
    let c = stalled(&env, "intune").await;
    assert_eq!(c["reason"], "AudienceNotManageable");
    assert!(c["message"].as_str().unwrap().contains("Intune"), "{c}");
    assert_eq!(writes(&env), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_404_on_delete_is_success_and_nothing_gets_stuck() {
    let mut env = Env::start("gone").await;
    env.spawn_controller("a");
    env.apply_yaml(&of_two_devices("gone", "")).await;
    env.wait_ready(&["expd/gone"]).await;
    let id = env.status_of("gone").await["deploymentId"]
        .as_str()
        .unwrap()
        .to_string();
    wufb_graph_emulator::state::lock(&env.emulator.shared.store)
        .delete_deployment(&id)
        .unwrap();
    env.kubectl_ok(&["delete", "expd", "gone", "--timeout=30s"]).await;
    assert!(env.graph_deployments().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_legacy_release_date_deployment_keeps_working_and_is_not_replaced() {
    let mut env = Env::start("legacy").await;
    // Made the way an earlier version did: the legacy release-date content form.
    let legacy = {
        let mut store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        let body = json!({
            "content": {"@odata.type": "#microsoft.graph.windowsUpdates.expeditedQualityUpdateReference", "releaseDate": "2026-11-10", "equivalentContent": "latestSecurity"},
            "settings": {"@odata.type": "#microsoft.graph.windowsUpdates.windowsDeploymentSettings", "userExperience": {"daysUntilForcedReboot": 2}},
        });
        let wufb_graph_emulator::store::Reply::Json(_, d) = store
            .create_deployment(&body, &env.emulator.catalog(), chrono::Utc::now())
            .unwrap()
        else {
            panic!()
        };
        // In use already (a never-used audience of an adopted deployment cannot be told from an
        // Intune-managed one).
        let id = d["id"].as_str().unwrap().to_string();
        let aid = store.deployments[&id].audience_id.clone();
        let a = store.audiences.get_mut(&aid).unwrap();
        a.members
            .insert(dev(9), wufb_graph_emulator::store::AssetKind::Device);
        a.ever_used = true;
        id
    };
    env.spawn_controller("a");
    let spec = |paused: bool| {
        of_two_devices("kept", &format!("  paused: {paused}\n  deploymentId: {legacy}\n  userExperience:\n    daysUntilForcedReboot: 2\n"))
            .replace("latest: true", "releaseDate: \"2026-11-10\"")
    };
    env.apply_yaml(&spec(false)).await;
    env.wait_ready(&["expd/kept"]).await;
    assert_eq!(env.graph_deployments().len(), 1, "kept, not replaced");
    assert_eq!(
        env.graph_audience(&legacy).0,
        vec![dev(1), dev(2)],
        "its audience managed"
    );
    env.apply_yaml(&spec(true)).await;
    env.eventually("paused", Duration::from_secs(30), async || {
        let d = env.graph_deployments();
        (d[0]["state"]["requestedValue"] == "paused").then_some(())
    })
    .await;
    env.wait_ready(&["expd/kept"]).await;
    assert_eq!(env.graph_deployments().len(), 1);
    env.kubectl_ok(&["delete", "expd", "kept", "--timeout=30s"]).await;
    assert!(env.graph_deployments().is_empty(), "deleted with the object");
}
