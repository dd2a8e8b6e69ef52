//! One object that this operator version cannot decode never blocks the others: at start-up and during
//! watches, it gets a Stalled condition and a Warning Event naming the field, a bounded log line and a
//! metric; it is still paused when its raw spec asks; and it can still be deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use wufb_e2e::fixtures::dev;
use wufb_e2e::fixtures::rollout;
use wufb_e2e::{Env, condition};

async fn stalled_undecodable(env: &Env, what: &str) -> String {
    env.eventually(
        &format!("{what} stalled as undecodable"),
        Duration::from_secs(30),
        async || {
            let c = condition(&env.get(what).await["status"], "Stalled");
            (c["status"] == "True" && c["reason"] == "UndecodableObject")
                .then(|| c["message"].as_str().unwrap_or_default().to_string())
        },
    )
    .await
}

/// A rollout of one device, with more of the spec.
fn of_one_device(name: &str, extra: &str) -> String {
    rollout(name, &[dev(1)], extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_objects_are_contained_and_every_other_object_reconciles() {
    let mut env = Env::start("poison").await;
    if env.skip_on_real_cluster("a real API server refuses values its CRD schema does not know at apply") {
        return;
    }
    // Present before the controller starts: values a newer operator version would know.
    let bad = [
        ("shred", "  deletionPolicy: Shred\n", "spec.deletionPolicy"),
        (
            "future-policy",
            "  managementPolicy: Audit\n",
            "spec.managementPolicy",
        ),
        ("stringly", "  paused: \"yes\"\n", "spec.paused"),
        (
            "reboot-text",
            "  userExperience:\n    daysUntilForcedReboot: soon\n",
            "spec.userExperience.daysUntilForcedReboot",
        ),
        (
            "equivalent",
            "  equivalentContent: everything\n",
            "spec.equivalentContent",
        ),
        ("no-content", "", "missing field `content`"),
    ];
    for (name, extra, _) in &bad[..5] {
        env.apply_yaml_unchecked(&of_one_device(name, extra)).await;
    }
    env.apply_yaml_unchecked(&format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: no-content\nspec:\n  audience:\n    members:\n    - device: {}\n",
        dev(2)
    ))
    .await;
    env.apply_yaml_unchecked("apiVersion: wufb.dev/v1alpha1\nkind: DeviceGroup\nmetadata:\n  name: numbers\nspec:\n  devices:\n  - 42\n")
        .await;
    for i in 0..3 {
        env.apply_yaml(&of_one_device(&format!("good-{i}"), "")).await;
    }
    let a = env.spawn_controller("a");

    env.wait_ready(&["expd/good-0", "expd/good-1", "expd/good-2"])
        .await;
    for (name, _, field) in &bad {
        let message = stalled_undecodable(&env, &format!("expd/{name}")).await;
        assert!(message.contains(field), "{name}: names {field}: {message}");
    }
    let message = stalled_undecodable(&env, "dg/numbers").await;
    assert!(message.contains("spec.devices[0]"), "{message}");
    let events = env.events_with(&["UndecodableObject"]).await;
    let events: Value = serde_json::from_str(&events).unwrap();
    let warned: std::collections::BTreeSet<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "UndecodableObject" && e["type"] == "Warning")
        .map(|e| e["regarding"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    env.eventually("an Event for each", Duration::from_secs(20), async || {
        let events: Value = serde_json::from_str(&env.events_with(&["UndecodableObject"]).await).ok()?;
        let n = events["items"]
            .as_array()?
            .iter()
            .filter(|e| e["reason"] == "UndecodableObject")
            .count();
        (n > bad.len()).then_some(())
    })
    .await;
    assert!(warned.contains("shred"), "{warned:?}");
    assert_eq!(
        env.metric(a, "wufb_undecodable_objects{kind=\"ExpeditedDeployment\"}")
            .await,
        Some(bad.len() as f64)
    );
    assert_eq!(
        env.metric(a, "wufb_undecodable_objects{kind=\"DeviceGroup\"}")
            .await,
        Some(1.0)
    );
    // Nothing was written to Graph for them: three deployments, the good ones'.
    assert_eq!(env.graph_deployments().len(), 3);

    // During watches: a deployment that offers the update becomes unreadable with paused: true. It is
    // still paused, and the others go on.
    let id = env.status_of("good-0").await["deploymentId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.graph_state(&id), "offering");
    // A value from a newer version, written past the schema (as under a newer CRD since rolled back).
    env.set_schema_checks(false);
    env.kubectl_ok(&[
        "patch",
        "expd",
        "good-0",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true,"deletionPolicy":"Shred"}}"#,
    ])
    .await;
    env.set_schema_checks(true);
    env.eventually("paused in Graph", Duration::from_secs(30), async || {
        (env.graph_state(&id) == "paused").then_some(())
    })
    .await;
    let message = stalled_undecodable(&env, "expd/good-0").await;
    assert!(message.contains("is paused, as spec.paused asks"), "{message}");
    env.apply_yaml(&of_one_device("good-3", "")).await;
    env.wait_ready(&["expd/good-3"]).await;

    // Fixed, it reconciles again as usual.
    env.kubectl_ok(&[
        "patch",
        "expd",
        "stringly",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ])
    .await;
    env.wait_ready(&["expd/stringly"]).await;

    // Deleting: an unreadable deletionPolicy holds the finalizer with a message; once readable the
    // object goes and its deployment with it.
    env.kubectl_ok(&["delete", "expd", "good-0", "--wait=false"])
        .await;
    let message = env
        .eventually("the deletion stalls", Duration::from_secs(30), async || {
            let m = stalled_undecodable(&env, "expd/good-0").await;
            m.contains("cannot be deleted").then_some(m)
        })
        .await;
    assert!(message.contains("spec.deletionPolicy"), "{message}");
    assert_eq!(
        env.graph_state(&id),
        "paused",
        "nothing deleted while the policy is unknown"
    );
    env.kubectl_ok(&[
        "patch",
        "expd",
        "good-0",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Delete"}}"#,
    ])
    .await;
    env.eventually(
        "the object and its deployment gone",
        Duration::from_secs(30),
        async || {
            (!env.kubectl(&["get", "expd", "good-0"]).await.ok && env.graph_state(&id).is_empty())
                .then_some(())
        },
    )
    .await;
    // An undecodable DeviceGroup can be deleted too.
    env.kubectl_ok(&["delete", "dg", "numbers", "--timeout=30s"])
        .await;

    // One bounded log line per object version.
    let logs = env.controller_logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("object cannot be decoded"))
        .collect();
    assert!(lines.iter().all(|l| l.len() < 1024), "bounded: {lines:?}");
    let shred = lines.iter().filter(|l| l.contains("\"name\":\"shred\"")).count();
    assert_eq!(shred, 1, "once per version: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_undecodable_deployment_deletes_its_deployment_and_the_audience_the_operator_made() {
    let mut env = Env::start("poison-delete").await;
    if env.skip_on_real_cluster("a real API server refuses values its CRD schema does not know at apply") {
        return;
    }
    env.apply_yaml(&of_one_device("skewed", "")).await;
    env.spawn_controller("a");
    env.wait_ready(&["expd/skewed"]).await;
    let status = env.status_of("skewed").await;
    let id = status["deploymentId"].as_str().unwrap().to_string();
    let audience = status["audienceId"].as_str().unwrap().to_string();
    assert!(
        env.graph_audience_exists(&audience),
        "the operator made audience {audience}"
    );

    // A value from a newer version, written past the schema: the object is quarantined.
    env.set_schema_checks(false);
    env.kubectl_ok(&[
        "patch",
        "expd",
        "skewed",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"equivalentContent":"everything"}}"#,
    ])
    .await;
    env.set_schema_checks(true);
    let message = stalled_undecodable(&env, "expd/skewed").await;
    assert!(message.contains("spec.equivalentContent"), "{message}");
    // The stall wrote the conditions alone: what the operator recorded stays.
    let kept = env.get("expd/skewed").await["status"].clone();
    assert_eq!(kept["deploymentId"].as_str(), Some(id.as_str()), "{kept}");
    assert_eq!(kept["audienceId"].as_str(), Some(audience.as_str()), "{kept}");

    let since = env.graph_seq();
    env.kubectl_ok(&["delete", "expd", "skewed", "--wait=false"])
        .await;
    env.eventually(
        "the object, its deployment and its audience gone",
        Duration::from_secs(30),
        async || {
            (!env.kubectl(&["get", "expd", "skewed"]).await.ok
                && env.graph_state(&id).is_empty()
                && !env.graph_audience_exists(&audience))
            .then_some(())
        },
    )
    .await;
    assert_eq!(env.graph_writes("deployments.delete", since).len(), 1);
    assert_eq!(env.graph_writes("deploymentAudiences.delete", since).len(), 1);
}
