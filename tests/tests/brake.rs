//! The brake always holds: `paused: true` reaches Graph first, whatever else in the spec blocks the pass,
//! and a resume (which widens exposure) waits for a spec that passes every check. Through kubectl, the
//! operator binary and the Graph emulator, one case per reason a pass can stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wufb_e2e::fixtures::dev;
use wufb_e2e::fixtures::{device_group, rollout};
use wufb_e2e::{Env, condition};

fn device(d: &str) -> String {
    format!("    - device: {d}\n")
}

/// One way a pass can stop, and the patch that sets `paused: true` together with it.
struct Case {
    name: &'static str,
    /// The reason the pass reports after the patch.
    reason: &'static str,
    patch: String,
}

/// A rollout of pre-rendered member and exclusion lines, with more of the spec.
fn blocked_rollout(name: &str, members: &str, exclusions: &str, extra: &str) -> String {
    rollout(
        name,
        &[],
        &format!("{members}    exclusions:\n{exclusions}{extra}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_is_written_first_whatever_blocks_the_pass() {
    let mut env = Env::start("brake").await;
    env.spawn_controller("a");
    env.apply_yaml(&device_group("dnd", &[dev(90)])).await;
    // A spec only the operator's rules catch (a member listed twice): the API server, like a real
    // one, refuses what the CRD's schema can see at the patch.
    let invalid = format!(
        r#"{{"spec":{{"paused":true,"audience":{{"members":[{{"device":"{0}"}},{{"device":"{0}"}}],"exclusions":[{{"deviceGroup":"dnd"}}]}}}}}}"#,
        dev(1)
    );
    let cases = [
        Case {
            name: "invalid-spec",
            reason: "InvalidSpec",
            patch: invalid,
        },
        Case {
            name: "too-large",
            reason: "AudienceTooLarge",
            patch: r#"{"spec":{"paused":true,"maxDevices":1}}"#.into(),
        },
        Case {
            name: "waiting-group",
            reason: "WaitingForDeviceGroup",
            patch: format!(
                r#"{{"spec":{{"paused":true,"audience":{{"members":[{{"device":"{}"}},{{"deviceGroup":"not-created-yet"}}],"exclusions":[{{"deviceGroup":"dnd"}}]}}}}}}"#,
                dev(1)
            ),
        },
    ];
    for c in &cases {
        env.apply_yaml(&blocked_rollout(
            c.name,
            &(device(&dev(1)) + &device(&dev(2))),
            "    - deviceGroup: dnd\n",
            "",
        ))
        .await;
    }
    // The exclusion group that will be deleted while a deployment uses it.
    env.apply_yaml(&device_group("leaving", &[dev(91)])).await;
    env.apply_yaml(&blocked_rollout(
        "group-deleting",
        &device(&dev(1)),
        "    - deviceGroup: leaving\n",
        "",
    ))
    .await;
    env.wait_ready(&["expd", "--all"]).await;
    let mut ids = Vec::new();
    for name in cases.iter().map(|c| c.name).chain(["group-deleting"]) {
        let id = env.status_of(name).await["deploymentId"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(env.graph_state(&id), "offering", "{name}");
        ids.push((name, id));
    }

    // The group goes into deletion; the deployment now waits for it (and the group waits, InUse).
    env.kubectl_ok(&["delete", "dg", "leaving", "--wait=false"]).await;
    env.eventually("the group InUse", Duration::from_secs(30), async || {
        let dg = env.get("dg/leaving").await;
        (condition(&dg["status"], "Ready")["reason"] == "InUse").then_some(())
    })
    .await;

    let since = env.graph_seq();
    for c in &cases {
        env.kubectl_ok(&["patch", "expd", c.name, "--type", "merge", "-p", &c.patch])
            .await;
    }
    env.kubectl_ok(&[
        "patch",
        "expd",
        "group-deleting",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ])
    .await;

    for (name, id) in &ids {
        env.eventually(
            &format!("{name} paused in Graph"),
            Duration::from_secs(30),
            async || (env.graph_state(id) == "paused").then_some(()),
        )
        .await;
    }
    // Each pass still reports why it stopped.
    for (name, reason) in cases
        .iter()
        .map(|c| (c.name, c.reason))
        .chain([("group-deleting", "WaitingForDeviceGroup")])
    {
        let ready = env
            .eventually(
                &format!("{name} reports {reason}"),
                Duration::from_secs(30),
                async || {
                    let c = condition(&env.status_of(name).await, "Ready");
                    (c["reason"] == reason).then_some(c)
                },
            )
            .await;
        assert_eq!(ready["status"], "False", "{name}: {ready}");
        assert_eq!(
            env.status_of(name).await["graphState"],
            "paused",
            "{name}: status shows the pause"
        );
    }
    // The pause was the only write: nothing else of a blocked spec reached Graph.
    let writes: Vec<String> = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.seq >= since && r.method != "GET" && r.operation != "token")
        .map(|r| r.operation)
        .collect();
    assert_eq!(
        writes,
        vec!["deployments.update"; ids.len()],
        "one pause each and nothing more"
    );

    // A resume widens exposure: it waits until the spec passes every check.
    let since = env.graph_seq();
    env.kubectl_ok(&[
        "patch",
        "expd",
        "invalid-spec",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ])
    .await;
    env.kubectl_ok(&[
        "patch",
        "expd",
        "too-large",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ])
    .await;
    for (name, reason) in [("invalid-spec", "InvalidSpec"), ("too-large", "AudienceTooLarge")] {
        env.eventually(
            &format!("{name} still blocked after the resume request"),
            Duration::from_secs(30),
            async || {
                let s = env.status_of(name).await;
                (s["observedGeneration"] == env.get(&format!("expd/{name}")).await["metadata"]["generation"]
                    && condition(&s, "Stalled")["reason"] == reason)
                    .then_some(())
            },
        )
        .await;
    }
    // The sign that each pass saw the resume request: its status at the new generation (above), written
    // after the pass acted; what it did not do is asserted after that.
    for (name, id) in &ids[..2] {
        assert_eq!(env.graph_state(id), "paused", "{name} stays paused");
    }
    assert!(
        env.graph_writes("deployments.update", since).is_empty(),
        "no resume from a blocked spec"
    );
    // Fixed, it resumes.
    env.kubectl_ok(&[
        "patch",
        "expd",
        "too-large",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"maxDevices":10}}"#,
    ])
    .await;
    env.eventually("too-large offering again", Duration::from_secs(30), async || {
        (env.graph_state(&ids[1].1) == "offering").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_only_never_writes_not_even_a_pause() {
    let mut env = Env::start("brake-observe").await;
    env.spawn_controller("a");
    let entry = env.expeditable_entry();
    let id = env.graph_create_deployment(&entry);
    env.apply_yaml(&blocked_rollout(
        "watched",
        &device(&dev(1)),
        "",
        &format!("  managementPolicy: ObserveOnly\n  deploymentId: {id}\n"),
    ))
    .await;
    env.wait_ready(&["expd/watched"]).await;
    let since = env.graph_seq();
    env.kubectl_ok(&[
        "patch",
        "expd",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ])
    .await;
    env.eventually(
        "the new generation observed",
        Duration::from_secs(30),
        async || (env.status_of("watched").await["observedGeneration"] == 2).then_some(()),
    )
    .await;
    assert_eq!(env.graph_state(&id), "offering");
    let writes = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.seq >= since && r.method != "GET" && r.operation != "token")
        .count();
    assert_eq!(writes, 0, "ObserveOnly never writes");
}
