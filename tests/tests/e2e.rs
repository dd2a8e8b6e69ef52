//! End to end through kubectl, the operator binary, the Graph emulator and a Kubernetes API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use wufb_e2e::fixtures::{dev, emulator_with_fixed_catalog};
use wufb_e2e::{Env, root};

fn deployment_yaml(name: &str, content: &str, members: &[String], extra: &str) -> String {
    let members: String = members.iter().map(|d| format!("      - device: {d}\n")).collect();
    format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: {name}\nspec:\n  content:\n    {content}\n  userExperience:\n    daysUntilForcedReboot: 2\n  audience:\n    members:\n{members}{extra}"
    )
}

async fn deployment_id(env: &Env, name: &str) -> String {
    env.status_of(name).await["deploymentId"]
        .as_str()
        .expect("deploymentId in status")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_examples_then_every_object_is_ready_and_graph_matches() {
    let mut env = Env::start_with("examples", emulator_with_fixed_catalog()).await;
    env.spawn_controller("replica-a");
    env.kubectl_ok(&["apply", "-f", root().join("examples").to_str().unwrap()])
        .await;
    env.wait_ready(&["dg", "--all"]).await;
    env.wait_ready(&["expd", "--all"]).await;

    let deployments = env.graph_deployments();
    assert_eq!(deployments.len(), 4, "{deployments:#?}");
    let by_id = |id: &str| deployments.iter().find(|d| d["id"] == id).cloned().unwrap();

    let latest = by_id(&deployment_id(&env, "emergency-latest").await);
    assert_eq!(latest["state"]["effectiveValue"], "offering");
    assert_eq!(latest["settings"]["userExperience"]["daysUntilForcedReboot"], 1);
    assert_eq!(latest["settings"]["expedite"]["isExpedited"], true);
    assert_eq!(
        latest["content"]["@odata.type"],
        "#microsoft.graph.windowsUpdates.catalogContent"
    );
    let (members, exclusions) = env.graph_audience(latest["id"].as_str().unwrap());
    let pilot = env.get("dg/pilot-ring").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    let dnd = env.get("dg/do-not-disturb").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        members.contains(&pilot) && members.contains(&"2b7e4c1a-9f3d-4e8b-a6c5-d4e3f2a1b0c9".to_string()),
        "{members:?}"
    );
    assert!(
        exclusions.contains(&dnd) && exclusions.contains(&"6f1c2a10-7d4b-4c8e-9a1f-0b2c3d4e5f05".to_string()),
        "{exclusions:?}"
    );

    // A release date is resolved through the catalog and deployed as that entry (catalogContent).
    let pinned = by_id(&deployment_id(&env, "november-baseline").await);
    assert_eq!(
        pinned["content"]["@odata.type"],
        "#microsoft.graph.windowsUpdates.catalogContent"
    );
    let resolved = env.status_of("november-baseline").await["resolvedContent"].clone();
    assert_eq!(resolved["releaseDate"], "2026-11-10", "{resolved}");
    assert_eq!(
        pinned["content"]["catalogEntry"]["@odata.id"],
        format!("catalog/entries/{}", resolved["catalogEntryId"].as_str().unwrap()).as_str()
    );
    assert_eq!(pinned["settings"]["expedite"]["isExpedited"], true);

    // A catalog intent: the newest entry fixing an exploited critical CVE, with what it fixes in status.
    let intent = by_id(&deployment_id(&env, "exploited-critical").await);
    let resolved = env.status_of("exploited-critical").await["resolvedContent"].clone();
    assert_eq!(resolved["maxSeverity"], "critical", "{resolved}");
    assert!(
        resolved["cves"].as_array().is_some_and(|c| !c.is_empty()) && resolved["shortName"].is_string(),
        "{resolved}"
    );
    assert_eq!(
        intent["content"]["catalogEntry"]["@odata.id"],
        format!("catalog/entries/{}", resolved["catalogEntryId"].as_str().unwrap()).as_str()
    );
    assert_ne!(
        resolved["catalogEntryId"],
        env.status_of("emergency-latest").await["resolvedContent"]["catalogEntryId"],
        "the filters chose an older entry than the newest security update"
    );

    let staged = by_id(&deployment_id(&env, "staged-broad-ring").await);
    assert_eq!(staged["state"]["effectiveValue"], "paused");
    assert_eq!(staged["state"]["reasons"][0]["value"], "pausedByRequest");

    // Printer columns show the Graph state.
    let table = env.kubectl_ok(&["get", "expd"]).await;
    let header = table.lines().next().unwrap();
    for col in ["READY", "REASON", "GRAPH", "MEMBERS", "DEPLOYMENT", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("staged-broad-ring") && l.contains("paused") && l.contains("True")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("emergency-latest") && l.contains("offering")),
        "{table}"
    );
    let status = env.status_of("emergency-latest").await;
    assert_eq!(
        status["audience"]["devices"], 5,
        "pilot ring (5) + 1 device - 1 excluded: {status}"
    );
    assert_eq!(status["resolvedContent"]["source"], "latest");

    // Audiences the documented way: each created first and recorded, each deployment created with its
    // own, and every audience read and write addressed by the audience id.
    for name in [
        "emergency-latest",
        "november-baseline",
        "staged-broad-ring",
        "exploited-critical",
    ] {
        let id = deployment_id(&env, name).await;
        let (aid, implicit) = {
            let store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
            let aid = store.deployments[&id].audience_id.clone();
            let implicit = store.audiences[&aid].implicit;
            (aid, implicit)
        };
        assert!(!implicit, "{name}: created with its audience");
        assert_eq!(env.status_of(name).await["audienceId"], aid.as_str(), "{name}");
    }
    let log = env.emulator.requests();
    assert_eq!(
        log.iter()
            .filter(|r| r.operation == "deploymentAudiences.create" && r.status == 201)
            .count(),
        4
    );
    let audience_calls: Vec<&str> = log
        .iter()
        .filter(|r| r.operation.starts_with("audience."))
        .map(|r| r.path.as_str())
        .collect();
    assert!(!audience_calls.is_empty());
    assert!(
        audience_calls
            .iter()
            .all(|p| p.starts_with("/beta/admin/windows/updates/deploymentAudiences/")),
        "{audience_calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_edits_reach_graph_with_the_fewest_calls() {
    let mut env = Env::start("audience").await;
    env.spawn_controller("replica-a");
    env.apply_yaml(&deployment_yaml(
        "rollout",
        "latest: true",
        &[dev(1), dev(2), dev(3)],
        "",
    ))
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    let id = deployment_id(&env, "rollout").await;
    assert_eq!(
        env.graph_writes("audience.updateAudience", 0).len(),
        1,
        "one write for the whole audience"
    );

    let since = env.graph_seq();
    env.apply_yaml(&deployment_yaml(
        "rollout",
        "latest: true",
        &[dev(1), dev(4), dev(5)],
        "    exclusions:\n      - device: 5a5b5c5d-0000-4000-8000-000000000009\n",
    ))
    .await;
    env.eventually(
        "the audience edit in Graph",
        Duration::from_secs(30),
        async || {
            let (m, e) = env.graph_audience(&id);
            (m == [dev(1), dev(4), dev(5)] && e == [dev(9)]).then_some(())
        },
    )
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    let writes = env.graph_writes("audience.updateAudience", since);
    assert_eq!(writes.len(), 1, "one updateAudience call");
    assert_eq!(
        writes[0].assets, 5,
        "+2 members, -2 members, +1 exclusion: never re-sending what is there"
    );
    assert!(env.graph_writes("deployments.create", since).is_empty());

    // A DeviceGroup edit: the group changes once in Graph, and deployments referencing it need no write.
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring\nspec:\n  devices:\n  - 5a5b5c5d-0000-4000-8000-000000000021\n  - 5a5b5c5d-0000-4000-8000-000000000022\n").await;
    env.wait_ready(&["dg/ring"]).await;
    env.apply_yaml(&deployment_yaml(
        "rollout",
        "latest: true",
        &[dev(1)],
        "      - deviceGroup: ring\n",
    ))
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    let since = env.graph_seq();
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring\nspec:\n  devices:\n  - 5a5b5c5d-0000-4000-8000-000000000021\n  - 5a5b5c5d-0000-4000-8000-000000000023\n").await;
    env.eventually("the group edit", Duration::from_secs(30), async || {
        let g = env.get("dg/ring").await;
        (g["status"]["observedGeneration"] == g["metadata"]["generation"]
            && g["status"]["conditions"][0]["status"] == "True")
            .then_some(())
    })
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    assert_eq!(env.graph_writes("group.addMembersById", since).len(), 1);
    assert_eq!(env.graph_writes("group.removeMembersById", since).len(), 1);
    assert!(
        env.graph_writes("audience.updateAudience", since).is_empty(),
        "the audience holds the group, not its devices"
    );
    assert_eq!(env.status_of("rollout").await["audience"]["devices"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_follow_spec_paused() {
    let mut env = Env::start("pause").await;
    env.spawn_controller("replica-a");
    env.apply_yaml(&deployment_yaml("rollout", "latest: true", &[dev(1)], ""))
        .await;
    env.wait_ready(&["expd/rollout"]).await;
    let id = deployment_id(&env, "rollout").await;
    let state = |env: &Env| {
        env.graph_deployments()
            .into_iter()
            .find(|d| d["id"] == id.as_str())
            .map(|d| d["state"]["effectiveValue"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state(&env).as_deref(), Some("offering"));
    env.kubectl_ok(&[
        "patch",
        "expd",
        "rollout",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ])
    .await;
    env.eventually("paused in Graph", Duration::from_secs(30), async || {
        (state(&env).as_deref() == Some("paused")).then_some(())
    })
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    assert_eq!(env.status_of("rollout").await["graphState"], "paused");
    env.kubectl_ok(&[
        "patch",
        "expd",
        "rollout",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ])
    .await;
    env.eventually("offering again", Duration::from_secs(30), async || {
        (state(&env).as_deref() == Some("offering")).then_some(())
    })
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    assert_eq!(
        env.graph_writes("deployments.update", 0).len(),
        2,
        "one PATCH each way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_change_replaces_the_deployment_keeping_the_audience() {
    let mut env = Env::start("replace").await;
    env.spawn_controller("replica-a");
    env.apply_yaml(&deployment_yaml(
        "rollout",
        "releaseDate: \"2026-10-13\"",
        &[dev(1), dev(2)],
        "    exclusions:\n      - device: 5a5b5c5d-0000-4000-8000-000000000003\n",
    ))
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    let old = deployment_id(&env, "rollout").await;
    env.apply_yaml(&deployment_yaml(
        "rollout",
        "releaseDate: \"2026-11-10\"",
        &[dev(1), dev(2)],
        "    exclusions:\n      - device: 5a5b5c5d-0000-4000-8000-000000000003\n",
    ))
    .await;
    let new = env
        .eventually("a new deployment id", Duration::from_secs(30), async || {
            let id = env.status_of("rollout").await["deploymentId"]
                .as_str()
                .map(str::to_string)?;
            (id != old).then_some(id)
        })
        .await;
    env.wait_ready(&["expd/rollout"]).await;
    let ids: Vec<String> = env
        .graph_deployments()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![new.clone()], "the old deployment is gone");
    assert_eq!(env.graph_audience(&new), (vec![dev(1), dev(2)], vec![dev(3)]));
    // The release date's catalog entry, as catalogContent.
    let d = &env.graph_deployments()[0];
    let resolved = env.status_of("rollout").await["resolvedContent"].clone();
    assert_eq!(resolved["releaseDate"], "2026-11-10", "{resolved}");
    assert_eq!(
        d["content"]["catalogEntry"]["@odata.id"],
        format!("catalog/entries/{}", resolved["catalogEntryId"].as_str().unwrap()).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_and_orphan_policy_leaves_graph_alone() {
    let mut env = Env::start("drift").await;
    env.spawn_controller_as(
        "replica-a",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &["--absence-confirm", "2s", "--read-lag-budget", "2s"],
    );
    env.apply_yaml(&deployment_yaml("rollout", "latest: true", &[dev(1)], ""))
        .await;
    env.wait_ready(&["expd/rollout"]).await;
    let first = deployment_id(&env, "rollout").await;
    // Someone deletes the deployment in Graph, and adds a member behind the operator's back.
    wufb_graph_emulator::state::lock(&env.emulator.shared.store)
        .delete_deployment(&first)
        .unwrap();
    let deleted = std::time::Instant::now();
    env.request_reconcile("expd/rollout", "1").await;
    let second = env
        .eventually("a recreated deployment", Duration::from_secs(30), async || {
            let id = env.status_of("rollout").await["deploymentId"]
                .as_str()
                .map(str::to_string)?;
            (id != first).then_some(id)
        })
        .await;
    assert!(
        deleted.elapsed() >= Duration::from_secs(2),
        "created again only after it stayed missing for --absence-confirm"
    );
    env.wait_ready(&["expd/rollout"]).await;
    assert_eq!(env.graph_audience(&second).0, vec![dev(1)]);
    // A Warning event tells the drift.
    env.events_with(&["DeploymentMissing"]).await;
    {
        let store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        let aid = store.deployments[&second].audience_id.clone();
        drop(store);
        let mut store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        store
            .audiences
            .get_mut(&aid)
            .unwrap()
            .members
            .insert(dev(99), wufb_graph_emulator::store::AssetKind::Device);
    }
    env.request_reconcile("expd/rollout", "2").await;
    env.eventually("the extra member removed", Duration::from_secs(30), async || {
        (env.graph_audience(&second).0 == [dev(1)]).then_some(())
    })
    .await;

    // Settings drift on an owned field, with settings made outside the operator beside it: the owned
    // field is set back, and what the operator does not own stays as it was.
    let outside = json!({
        "schedule": {"startDateTime": "2026-01-01T00:00:00Z"},
        "monitoring": {"monitoringRules": [{"signal": "rollback", "threshold": 5, "action": "pauseDeployment"}]},
    });
    {
        let mut store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        let s = &mut store.deployments.get_mut(&second).unwrap().settings;
        s["schedule"] = outside["schedule"].clone();
        s["monitoring"] = outside["monitoring"].clone();
        s["userExperience"] = json!({"daysUntilForcedReboot": 9, "isHotpatchEnabled": true});
    }
    env.request_reconcile("expd/rollout", "3").await;
    let settings = env
        .eventually(
            "the owned setting set back",
            Duration::from_secs(30),
            async || {
                let store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
                let s = store.deployments[&second].settings.clone();
                (s["userExperience"]["daysUntilForcedReboot"] == 2).then_some(s)
            },
        )
        .await;
    assert_eq!(
        settings["userExperience"]["isHotpatchEnabled"], true,
        "{settings}"
    );
    assert_eq!(settings["schedule"], outside["schedule"], "{settings}");
    assert_eq!(settings["monitoring"], outside["monitoring"], "{settings}");

    // Orphan: deleting the object leaves the Graph deployment.
    env.kubectl_ok(&[
        "patch",
        "expd",
        "rollout",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Orphan"}}"#,
    ])
    .await;
    env.wait_ready(&["expd/rollout"]).await;
    env.kubectl_ok(&["delete", "expd", "rollout", "--timeout=30s"])
        .await;
    assert!(
        env.graph_deployments().iter().any(|d| d["id"] == second.as_str()),
        "orphaned, not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_removes_the_graph_deployment_and_the_object() {
    let mut env = Env::start("delete").await;
    env.spawn_controller("replica-a");
    env.apply_yaml(&deployment_yaml("rollout", "latest: true", &[dev(1)], ""))
        .await;
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring\nspec:\n  devices:\n  - 5a5b5c5d-0000-4000-8000-000000000031\n").await;
    env.wait_ready(&["expd/rollout", "dg/ring"]).await;
    let group = env.get("dg/ring").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    env.kubectl_ok(&["delete", "expd", "rollout", "--timeout=30s"])
        .await;
    assert!(env.graph_deployments().is_empty());
    assert!(
        !env.kubectl(&["get", "expd", "rollout"]).await.ok,
        "the object is gone"
    );
    env.kubectl_ok(&["delete", "dg", "ring", "--timeout=30s"]).await;
    assert!(
        !wufb_graph_emulator::state::lock(&env.emulator.shared.store)
            .assets
            .contains_key(&group),
        "the Graph group is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_in_use_waits_for_its_deployments() {
    let mut env = Env::start("inuse").await;
    env.spawn_controller("replica-a");
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring\nspec:\n  devices:\n  - 5a5b5c5d-0000-4000-8000-000000000041\n").await;
    env.apply_yaml(&deployment_yaml(
        "rollout",
        "latest: true",
        &[dev(1)],
        "      - deviceGroup: ring\n",
    ))
    .await;
    env.wait_ready(&["expd/rollout", "dg/ring"]).await;
    held_in_use(&env, "ring", "rollout").await;
    released_with(&env, "rollout", "ring").await;
}

/// Deletes DeviceGroup `dg` and waits for it to be held InUse, naming deployment `user`.
async fn held_in_use(env: &Env, dg: &str, user: &str) {
    env.kubectl_ok(&["delete", "dg", dg, "--wait=false"]).await;
    let obj = env
        .eventually("the InUse condition", Duration::from_secs(30), async || {
            let obj = env.get(&format!("dg/{dg}")).await;
            (obj["status"]["conditions"][0]["reason"] == "InUse").then_some(obj)
        })
        .await;
    assert!(
        obj["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains(user),
        "names the deployment: {obj}"
    );
}

/// Deletes deployment `user` and waits for the DeviceGroup `dg` it held to go too.
async fn released_with(env: &Env, user: &str, dg: &str) {
    env.kubectl_ok(&["delete", "expd", user, "--timeout=30s"]).await;
    env.eventually("the group deleted", Duration::from_secs(30), async || {
        (!env.kubectl(&["get", "dg", dg]).await.ok).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_a_wave_names_wakes_its_rollout_and_is_held_while_the_wave_uses_it() {
    let mut env = Env::start("wave-group").await;
    env.spawn_controller("replica-a");
    let rollout = "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: waves\nspec:\n  content:\n    latest: true\n  rollout:\n    waves:\n    - name: pilot\n      members:\n      - deviceGroup: ring-p\n";
    env.apply_yaml(rollout).await;
    env.eventually(
        "the rollout waits for its wave's group",
        Duration::from_secs(30),
        async || {
            let s = env.status_of("waves").await;
            s["conditions"]
                .as_array()?
                .iter()
                .any(|c| {
                    c["type"] == "Ready"
                        && c["status"] == "False"
                        && c["message"].as_str().is_some_and(|m| m.contains("ring-p"))
                })
                .then_some(())
        },
    )
    .await;
    // The group arrives: the rollout is woken by it, not by a later poll (15 s or more away).
    let ring_device = "5a5b5c5d-0000-4000-8000-000000000051";
    env.apply_yaml(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring-p\nspec:\n  devices:\n  - {ring_device}\n"
    ))
    .await;
    env.wait_ready_within(&["dg/ring-p", "expd/waves"], 10).await;
    let group = env.get("dg/ring-p").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    // Deleting the group the sent wave uses is held, as for an audience member: nothing is withdrawn.
    held_in_use(&env, "ring-p", "waves").await;
    assert_eq!(
        env.graph_group_devices(&group),
        [ring_device],
        "the Graph group stays"
    );
    let (members, _) = env.graph_audience(&deployment_id(&env, "waves").await);
    assert_eq!(
        members,
        std::slice::from_ref(&group),
        "the wave's group stays in the audience"
    );
    // Once the rollout is gone, so is the group.
    released_with(&env, "waves", "ring-p").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cleanup_shows_in_the_conditions_until_it_succeeds() {
    let mut env = Env::start("cleanup-fails").await;
    env.spawn_controller("replica-a");
    env.apply_yaml(&deployment_yaml("doomed", "latest: true", &[dev(1)], ""))
        .await;
    env.wait_ready(&["expd/doomed"]).await;
    let id = deployment_id(&env, "doomed").await;
    // Graph refuses every delete for now.
    env.emulator.set_faults(wufb_graph_emulator::FaultConfig {
        error_rate: 1.0,
        operations: vec!["deployments.delete".into()],
        ..Default::default()
    });
    env.kubectl_ok(&["delete", "expd", "doomed", "--wait=false"])
        .await;
    let ready = env
        .eventually(
            "Ready says the cleanup fails",
            Duration::from_secs(60),
            async || {
                let s = env.status_of("doomed").await;
                let c = wufb_e2e::condition(&s, "Ready");
                (c["status"] == "False" && c["message"].as_str()?.contains("the Graph cleanup failed"))
                    .then_some(c)
            },
        )
        .await;
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("deletionPolicy: Orphan"),
        "says how to let it go: {ready}"
    );
    assert!(
        env.graph_deployments().iter().any(|d| d["id"] == id.as_str()),
        "still in Graph"
    );
    // Graph accepts deletes again: the object goes, and so does its deployment.
    env.emulator
        .set_faults(wufb_graph_emulator::FaultConfig::default());
    env.eventually("the object deleted", Duration::from_secs(60), async || {
        (!env.kubectl(&["get", "expd", "doomed"]).await.ok).then_some(())
    })
    .await;
    assert!(!env.graph_deployments().iter().any(|d| d["id"] == id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_and_graph_errors_surface_as_conditions_and_events() {
    let mut env = Env::start("errors").await;
    env.spawn_controller("replica-a");
    // A spec only the operator's rules catch (a device listed twice); the API server refuses what the
    // CRD's schema can see (a device id that is no GUID) at apply, as a real one does.
    let (bad_members, bad_field) = (vec![dev(5), dev(5)], "spec.audience.members[1]");
    env.apply_yaml(&deployment_yaml("bad-device", "latest: true", &bad_members, ""))
        .await;
    env.apply_yaml(&deployment_yaml(
        "no-such-entry",
        "catalogEntryId: does-not-exist",
        &[dev(1)],
        "",
    ))
    .await;
    env.apply_yaml(&deployment_yaml(
        "too-big",
        "latest: true",
        &[dev(1), dev(2), dev(3)],
        "  maxDevices: 2\n",
    ))
    .await;
    let stalled = async |name: &str| -> Value {
        env.eventually(&format!("{name} stalled"), Duration::from_secs(30), async || {
            let s = env.status_of(name).await;
            s["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Stalled" && c["status"] == "True")
                .cloned()
        })
        .await
    };
    let c = stalled("bad-device").await;
    assert_eq!(c["reason"], "InvalidSpec");
    assert!(c["message"].as_str().unwrap().contains(bad_field), "{c}");
    let c = stalled("no-such-entry").await;
    assert_eq!(c["reason"], "ContentNotFound");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.content.catalogEntryId"),
        "{c}"
    );
    let c = stalled("too-big").await;
    assert_eq!(c["reason"], "AudienceTooLarge");
    assert!(
        c["message"].as_str().unwrap().contains("3 devices")
            && c["message"].as_str().unwrap().contains("limit of 2"),
        "{c}"
    );
    assert!(env.graph_deployments().is_empty(), "nothing was written to Graph");
    // An Event for each reason.
    env.events_with(&["InvalidSpec", "ContentNotFound", "AudienceTooLarge"])
        .await;
    // Fixing the spec unblocks it.
    env.apply_yaml(&deployment_yaml("bad-device", "latest: true", &[dev(7)], ""))
        .await;
    env.wait_ready(&["expd/bad-device"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_only_the_leader_writes() {
    let mut config = wufb_graph_emulator::EmulatorConfig::default();
    let second_app = "77777777-7777-4777-8777-777777777777";
    config.apps.push(wufb_graph_emulator::AppRegistration {
        tenant_id: wufb_graph_emulator::config::DEFAULT_TENANT_ID.into(),
        client_id: second_app.into(),
        client_secret: Some("second-replica-secret".into()),
        certificate_pem: None,
        federated: Vec::new(),
        roles: vec!["WindowsUpdates.ReadWrite.All".into()],
    });
    let mut env = Env::start_with("leader", config).await;
    env.spawn_controller("replica-a");
    // Let the first replica take the lease before the second starts.
    env.eventually("a leader", Duration::from_secs(20), async || {
        let lease = env
            .kubectl(&["get", "lease", "wufb-operator", "-o", "json"])
            .await;
        lease.ok.then_some(())
    })
    .await;
    env.spawn_controller_as("replica-b", second_app, "second-replica-secret", &[]);
    for i in 0..3 {
        env.apply_yaml(&deployment_yaml(
            &format!("rollout-{i}"),
            "latest: true",
            &[dev(i)],
            "",
        ))
        .await;
    }
    env.wait_ready(&["expd", "--all"]).await;
    let lease = env.get("lease/wufb-operator").await;
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    let graph_writers: std::collections::BTreeSet<String> = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.operation != "token")
        .filter_map(|r| r.client_id)
        .collect();
    assert_eq!(
        graph_writers.into_iter().collect::<Vec<_>>(),
        vec![wufb_graph_emulator::config::DEFAULT_CLIENT_ID.to_string()],
        "the standby never wrote"
    );
    assert!(
        env.controller_logs()
            .contains("another replica leads; standing by")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_events_or_status() {
    let mut env = Env::start("secrets").await;
    env.spawn_controller("replica-a");
    env.kubectl_ok(&["apply", "-f", root().join("examples").to_str().unwrap()])
        .await;
    env.wait_ready(&["expd", "--all"]).await;
    // A wrong secret: the error must be clear and must not carry the secret.
    let wrong = "a-wrong-secret-that-must-not-leak";
    env.spawn_controller_as(
        "replica-wrong",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wrong,
        &["--lease-name", "other-lease"],
    );
    env.apply_yaml(&deployment_yaml("extra", "latest: true", &[dev(1)], ""))
        .await;
    env.eventually(
        "the wrong replica fails to authenticate",
        Duration::from_secs(30),
        async || env.controller_logs().contains("AADSTS7000215").then_some(()),
    )
    .await;
    // The authentication failure's Event is in before anything is scanned.
    let events = env.events_with(&["GraphAuthentication"]).await;
    let logs = env.controller_logs();
    let objects = env.kubectl_ok(&["get", "expd,dg", "-o", "json"]).await;
    for secret in [wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET, wrong] {
        assert!(!logs.contains(secret), "a secret in the controller log");
        assert!(!events.contains(secret), "a secret in an Event");
        assert!(!objects.contains(secret), "a secret in a status");
    }
    let tokens: Vec<String> = wufb_graph_emulator::state::lock(&env.emulator.shared.tokens)
        .keys()
        .cloned()
        .collect();
    assert!(!tokens.is_empty());
    for t in tokens {
        assert!(
            !logs.contains(&t) && !events.contains(&t) && !objects.contains(&t),
            "an access token leaked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_the_events_and_a_typo_names_the_kind() {
    let mut env = Env::start("describe").await;
    env.spawn_controller("replica-a");
    env.apply_yaml(&deployment_yaml("rollout", "latest: true", &[dev(1)], ""))
        .await;
    env.wait_ready(&["expd/rollout"]).await;
    env.events_with(&["Created"]).await;
    let described = env.kubectl_ok(&["describe", "expd", "rollout"]).await;
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events.contains("Created") && events.contains("wufb-operator"),
        "describe lists the object's Events:\n{described}"
    );
    let typo = env.kubectl(&["get", "expd", "rolout"]).await;
    assert!(!typo.ok);
    assert!(
        typo.stderr
            .contains("expediteddeployments.wufb.dev \"rolout\" not found"),
        "{}",
        typo.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_graph_refuses_to_delete_waits_with_the_reason() {
    let mut env = Env::start_with(
        "refused",
        wufb_graph_emulator::EmulatorConfig {
            refuse_group_delete_in_use: true,
            ..Default::default()
        },
    )
    .await;
    env.spawn_controller("replica-a");
    env.apply_yaml("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: ring\nspec:\n  devices:\n  - 5a5b5c5d-0000-4000-8000-000000000041\n").await;
    env.wait_ready(&["dg/ring"]).await;
    let gid = env.get("dg/ring").await["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    // A deployment made outside the cluster holds the group.
    let entry = env.expeditable_entry();
    let outside = env.graph_create_deployment(&entry);
    let aid = {
        let mut store = wufb_graph_emulator::state::lock(&env.emulator.shared.store);
        let aid = store.deployments[&outside].audience_id.clone();
        let a = store.audiences.get_mut(&aid).unwrap();
        a.members
            .insert(gid.clone(), wufb_graph_emulator::store::AssetKind::Group);
        a.ever_used = true;
        aid
    };
    env.kubectl_ok(&["delete", "dg", "ring", "--wait=false"]).await;
    let dg = env
        .eventually("the InUse condition", Duration::from_secs(30), async || {
            let dg = env.get("dg/ring").await;
            (dg["status"]["conditions"][0]["reason"] == "InUse").then_some(dg)
        })
        .await;
    let message = dg["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Graph refuses") && message.contains(&gid) && message.contains("409"),
        "{message}"
    );
    // Asked again at a waiting pace, not hammered.
    // pace: the deletes are counted over a 3 s window (a rate, not an absence).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deletes = env
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&gid))
        .count();
    assert!((1..=2).contains(&deletes), "{deletes} deletes in 3 s");
    // Once the outside deployment lets go, the group and the object go.
    wufb_graph_emulator::state::lock(&env.emulator.shared.store)
        .audiences
        .get_mut(&aid)
        .unwrap()
        .members
        .clear();
    env.request_reconcile("dg/ring", "1").await;
    env.eventually("the group deleted", Duration::from_secs(60), async || {
        (!env.kubectl(&["get", "dg", "ring"]).await.ok).then_some(())
    })
    .await;
    assert!(
        !wufb_graph_emulator::state::lock(&env.emulator.shared.store)
            .assets
            .contains_key(&gid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_matching_release_replaces_a_refreshing_deployment_with_the_same_audience() {
    // The catalog cut before today: a release published now is newer than every seeded one, by day too.
    let mut env = Env::start_with("refresh", emulator_with_fixed_catalog()).await;
    // The catalog read again every second (the per-object annotation allows a minute at least).
    env.spawn_controller_as(
        "a",
        wufb_graph_emulator::config::DEFAULT_CLIENT_ID,
        wufb_graph_emulator::config::DEFAULT_CLIENT_SECRET,
        &["--catalog-poll-interval=1s", "--resync-interval=1s"],
    );
    let members = [dev(1), dev(2)];
    let extra = "    exclusions:\n      - device: 5a5b5c5d-0000-4000-8000-000000000009\n";
    let yaml = deployment_yaml(
        "follow",
        "latest: true\n    refresh: OnNewRelease",
        &members,
        extra,
    );
    env.apply_yaml(&yaml).await;
    env.wait_ready(&["expd/follow"]).await;
    let first = deployment_id(&env, "follow").await;
    let before = env.status_of("follow").await["resolvedContent"].clone();
    // Passes that find nothing newer write nothing: a catalog poll and a pass run before that is asserted.
    let since = env.graph_seq();
    env.eventually(
        "a catalog poll after Ready",
        Duration::from_secs(30),
        async || {
            env.emulator
                .requests()
                .iter()
                .any(|r| r.seq >= since && r.operation == "catalog.entries.list")
                .then_some(())
        },
    )
    .await;
    env.settled("expd/follow", since).await;
    assert_eq!(deployment_id(&env, "follow").await, first);
    assert_eq!(env.graph_deployments().len(), 1);

    // Microsoft publishes a newer security release.
    let mut newer = env.emulator.catalog()[0].clone();
    for e in env.emulator.catalog() {
        if e["isExpeditable"] == true && e["qualityUpdateClassification"] == "security" {
            newer = e;
            break;
        }
    }
    newer["id"] = json!("f".repeat(64));
    newer["shortName"] = json!("2026.12 B");
    // Released now: newer than every seeded entry.
    newer["releaseDateTime"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    newer["displayName"] = json!("12/08/2026 - 2026.12 B Security Updates for Windows 10 and later");
    env.emulator.publish_catalog_entry(newer);

    let second = env
        .eventually("the replacement", Duration::from_secs(30), async || {
            let s = env.status_of("follow").await;
            let id = s["deploymentId"].as_str()?.to_string();
            (id != first && s["previousContent"].is_object()).then_some(id)
        })
        .await;
    let status = env.status_of("follow").await;
    assert_eq!(status["resolvedContent"]["shortName"], "2026.12 B", "{status}");
    assert_eq!(
        status["previousContent"]["catalogEntryId"], before["catalogEntryId"],
        "{status}"
    );
    let deployments = env.graph_deployments();
    assert_eq!(
        deployments.len(),
        1,
        "the old deployment is deleted: {deployments:#?}"
    );
    assert_eq!(deployments[0]["id"], second.as_str());
    assert_eq!(
        deployments[0]["content"]["catalogEntry"]["@odata.id"],
        format!("catalog/entries/{}", "f".repeat(64)).as_str()
    );
    let (m, x) = env.graph_audience(&second);
    assert_eq!(m, members.to_vec(), "the same audience");
    assert_eq!(x, vec!["5a5b5c5d-0000-4000-8000-000000000009".to_string()]);
    // New first, then the old one deleted; one replacement, not one per pass.
    let log = env.emulator.requests();
    let created = log
        .iter()
        .filter(|r| r.operation == "deployments.create" && r.status == 201)
        .count();
    assert_eq!(created, 2);
    let made = log
        .iter()
        .find(|r| r.created_id.as_deref() == Some(second.as_str()))
        .unwrap()
        .seq;
    let deleted = log
        .iter()
        .find(|r| r.method == "DELETE" && r.path.ends_with(&format!("/deployments/{first}")))
        .expect("the old deployment was deleted")
        .seq;
    assert!(made < deleted);
    let events = env.events_with(&["ContentRefreshed"]).await;
    assert!(events.contains("2026.12 B"), "{events}");
    let since = env.graph_seq();
    env.settled("expd/follow", since).await;
    assert_eq!(deployment_id(&env, "follow").await, second, "settled");
}
