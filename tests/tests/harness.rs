//! The harness's own guarantees: a test that asserts nothing happened first waits for a sign that the
//! controller processed the change ([`Env::settled`]), and that sign fails when the controller does
//! nothing; no test sleeps a fixed time and then asserts absence.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wufb_e2e::{Env, root};

fn idle_rollout(name: &str) -> String {
    format!(
        "apiVersion: wufb.dev/v1alpha1\nkind: ExpeditedDeployment\nmetadata:\n  name: {name}\nspec:\n  content:\n    latest: true\n  audience:\n    members:\n    - device: 5e5e5e5e-0000-4000-8000-000000000001\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_fails_when_the_controller_does_nothing_and_passes_once_it_runs() {
    let mut env = Env::start("settled").await;
    env.apply_yaml(&idle_rollout("idle")).await;
    let since = env.graph_seq();
    let stopped = env.try_settled("expd/idle", since, Duration::from_secs(3)).await;
    assert!(stopped.is_err(), "no controller, no sign: {stopped:?}");

    env.spawn_controller("a");
    env.wait_ready(&["expd/idle"]).await;
    // A pass after `since` that reads the deployment: the sign.
    let since = env.graph_seq();
    env.request_reconcile("expd/idle", "1").await;
    env.try_settled("expd/idle", since, Duration::from_secs(30))
        .await
        .unwrap();
}

#[test]
fn no_test_sleeps_and_then_asserts_absence() {
    // A fixed sleep passes when the controller never ran: each one left is a pace (a rate measured, a
    // poll, a clock that must move), said so on the line before it.
    let mut unmarked = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let sleeps = line.contains(concat!("time::", "sleep(")) && !line.trim_start().starts_with("//");
            let marked =
                line.contains("// pace:") || (i > 0 && lines[i - 1].trim_start().starts_with("// pace:"));
            if sleeps && !marked {
                unmarked.push(format!(
                    "{}:{}",
                    path.file_name().unwrap().to_string_lossy(),
                    i + 1
                ));
            }
        }
    }
    assert!(
        unmarked.is_empty(),
        "a sleep that is not a pace (wait with Env::settled or eventually instead): {unmarked:?}"
    );
}

#[test]
fn no_test_helper_is_defined_in_more_than_one_test_file() {
    // Shared helpers live in `wufb_e2e` (`fixtures`, `Env`): a helper copied into two files drifts.
    let mut defined: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in std::fs::read_dir(root().join("tests/tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let name = line
                .strip_prefix("fn ")
                .or_else(|| line.strip_prefix("async fn "))
                .and_then(|rest| rest.split(['(', '<']).next());
            if let Some(name) = name {
                defined.entry(name.to_string()).or_default().push(file.clone());
            }
        }
    }
    let copied: Vec<_> = defined.into_iter().filter(|(_, files)| files.len() > 1).collect();
    assert!(
        copied.is_empty(),
        "helpers defined in more than one test file: {copied:?}"
    );
}

#[test]
fn every_test_file_is_a_module_of_its_crates_one_test_binary() {
    // Each crate builds its tests/ as one binary (`autotests = false`, tests/suite.rs): a file that
    // suite.rs does not name would never be compiled or run.
    let mut missing = Vec::new();
    for krate in ["controller", "emulator", "tests", "tests/apiserver"] {
        let dir = root().join(krate).join("tests");
        let suite = std::fs::read_to_string(dir.join("suite.rs")).unwrap();
        let declared: Vec<&str> = suite
            .lines()
            .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
            .collect();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "rs")
                && stem != "suite"
                && !declared.contains(&stem.as_str())
            {
                missing.push(format!("{krate}/tests/{stem}.rs"));
            }
        }
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("autotests = false") && manifest.contains("path = \"tests/suite.rs\""),
            "{krate}/Cargo.toml builds tests/suite.rs as its one test binary"
        );
    }
    assert!(
        missing.is_empty(),
        "test files not named in their crate's tests/suite.rs (add `mod <file>;`): {missing:?}"
    );
}
