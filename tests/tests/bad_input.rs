//! The bad-input corpus (`tests/bad-input/`): every malformed or hostile manifest is rejected with a
//! message naming the field: by `validate`; through `kubectl apply`, either refused by the API server
//! from the CRD's schema and CEL rules or stored and stalled by the controller; and, stored as sent (as
//! an older, looser CRD would have let them in), by the controller; always with no panic and no Graph
//! write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, PostParams};
use wufb_e2e::{Env, root};
use wufb_operator::cli::{manifests, validate};
use wufb_operator::crd::ExpeditedDeployment;

fn corpus() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/bad-input"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .expect("a '# expect: FIELD' header")
                .to_string();
            (p, expect)
        })
        .collect()
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(corpus().len() >= 40, "at least 40 bad manifests");
}

#[test]
fn validate_rejects_each_with_the_field_named() {
    for (path, expect) in corpus() {
        let (docs, load_errors) = manifests::load(std::slice::from_ref(&path));
        let findings = validate::check(&docs);
        let lines: Vec<String> = load_errors
            .iter()
            .map(|e| format!("{}: document: {}", e.location, e.message))
            .chain(findings.iter().map(ToString::to_string))
            .collect();
        assert!(!lines.is_empty(), "{}: accepted", path.display());
        let named = lines.iter().any(|l| {
            l.split_once(": ").is_some_and(|(_, rest)| {
                let rest = rest.strip_prefix("warning: ").unwrap_or(rest);
                rest.starts_with(&format!("{expect}:"))
                    || rest.starts_with(&format!("{expect}["))
                    || rest.starts_with(&format!("{expect}."))
            })
        });
        assert!(named, "{}: no message names {expect}: {lines:#?}", path.display());
        for l in &lines {
            assert!(l.len() < 2000, "{}: a message is unbounded", path.display());
            assert!(
                !l.contains('\u{202e}') && !l.contains('\u{200b}'),
                "{}: invisible characters echoed",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_stalls_each_it_can_read_without_writing_to_graph() {
    // Stored as sent (the schema checks off, as objects written under an older, looser CRD are): the
    // controller must still refuse each.
    let mut env = Env::start("bad-input").await;
    if env.skip_on_real_cluster("a real API server refuses these objects at apply, from the CRD's schema") {
        return;
    }
    env.apiserver.as_ref().unwrap().set_schema_checks(false);
    env.spawn_controller("a");
    let api: Api<ExpeditedDeployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut stored = Vec::new();
    for (path, expect) in corpus() {
        let (docs, errors) = manifests::load(std::slice::from_ref(&path));
        let Some(doc) = docs
            .first()
            .filter(|d| errors.is_empty() && d.kind() == "ExpeditedDeployment")
        else {
            continue;
        };
        let Ok(mut obj) = serde_json::from_value::<ExpeditedDeployment>(doc.value.clone()) else {
            continue;
        };
        if expect == "metadata.name" || expect == "apiVersion" {
            continue;
        }
        // Unknown fields are the schema's to refuse (a real API server prunes or rejects them before the
        // controller can see them; this test server stores them as sent).
        if validate::check(&docs)
            .iter()
            .all(|f| f.error.problem == "is not a known field")
        {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_lowercase();
        obj.metadata.name = Some(name.clone());
        api.create(&PostParams::default(), &obj).await.unwrap();
        stored.push((name, expect));
    }
    assert!(
        stored.len() >= 20,
        "most of the corpus reaches the controller: {}",
        stored.len()
    );
    for (name, expect) in &stored {
        let message = stall_message(&env, name).await;
        assert!(
            message.contains(expect.as_str()),
            "{name}: the message names {expect}: {message}"
        );
    }
    let writes: Vec<_> = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.operation != "token")
        .collect();
    assert!(writes.is_empty(), "no Graph write for bad input: {writes:?}");
    assert!(!env.controller_logs().contains("panicked"), "no panic");
}

/// The stall condition's message of a stored ExpeditedDeployment: Stalled, or waiting for a DeviceGroup
/// that may still be applied.
async fn stall_message(env: &Env, name: &str) -> String {
    env.eventually(&format!("{name} stalled"), Duration::from_secs(60), async || {
        let s = env.status_of(name).await;
        let c = s["conditions"]
            .as_array()?
            .iter()
            .find(|c| {
                (c["type"] == "Stalled" || c["reason"] == "WaitingForDeviceGroup") && c["status"] == "True"
            })?
            .clone();
        Some(c["message"].as_str().unwrap_or("").to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_kubectl_each_is_refused_at_apply_or_stalled_by_the_controller() {
    // kubectl with its default validation: the API server checks each object against the CRD's schema
    // and CEL rules (and refuses unknown fields), as a real one does.
    let mut env = Env::start("bad-kubectl").await;
    env.spawn_controller("a");
    // The server's OpenAPI documents are what lets kubectl leave validation to it; explain reads them too.
    let explained = env.kubectl_ok(&["explain", "expd.spec.content"]).await;
    assert!(
        explained.contains("catalogEntryId") && explained.contains("releaseDate"),
        "{explained}"
    );
    let mut refused = 0;
    let mut stalled = 0;
    for (path, expect) in corpus() {
        let run = env.kubectl(&["apply", "-f", path.to_str().unwrap()]).await;
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if !run.ok {
            // Refused: by the server naming the field, or by kubectl before any request (a document
            // that is no object, a version the cluster does not serve).
            let named = match expect.as_str() {
                "apiVersion" => run.stderr.contains("no matches for kind"),
                "document" => !run.stderr.is_empty(),
                field => run.stderr.contains(field),
            };
            assert!(named, "{file}: refused without naming {expect}: {}", run.stderr);
            assert!(run.stderr.len() < 4000, "{file}: an unbounded refusal");
            refused += 1;
            continue;
        }
        // Stored: the object must be one the schema cannot judge, and the controller stalls it. Many
        // files share a name, so each is judged and deleted before the next is applied.
        for line in run.stdout.lines() {
            if let Some(name) = line
                .strip_prefix("expediteddeployment.wufb.dev/")
                .and_then(|l| l.split_whitespace().next())
            {
                let message = stall_message(&env, name).await;
                assert!(
                    message.contains(expect.as_str()),
                    "{file}: the stall names {expect}: {message}"
                );
                stalled += 1;
            }
        }
        env.kubectl_ok(&["delete", "--wait=true", "-f", path.to_str().unwrap()])
            .await;
    }
    println!("refused at apply: {refused}, stored and stalled by the controller: {stalled}");
    assert!(
        refused >= 30,
        "most of the corpus is the schema's to refuse: {refused}"
    );
    assert!(stalled > 0, "some of the corpus only the controller can judge");
    let writes: Vec<_> = env
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.operation != "token")
        .collect();
    assert!(writes.is_empty(), "no Graph write for bad input: {writes:?}");
    assert!(!env.controller_logs().contains("panicked"), "no panic");
}
