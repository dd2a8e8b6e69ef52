//! The README's first command: `wufb-operator demo` on its embedded defaults converges the examples,
//! promotes the staged rollout's broad wave once its pilot is healthy, halts the canary whose pilot
//! fails (its run time is printed; the README states it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use wufb_e2e::operator_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_converges_promotes_a_healthy_wave_and_halts_a_failing_pilot() {
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(operator_bin())
            .args(["demo", "--graph-latency-ms", "5"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the demo finishes")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("demo: converged in"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let last = |name: &str| {
        lines
            .iter()
            .rev()
            .find(|l| l.trim_start().starts_with(name) && l.contains(" wave "))
            .copied()
            .unwrap_or_default()
    };
    let staged = last("staged-rollout");
    assert!(
        staged.contains("wave 2/2 broad") && staged.contains("Complete"),
        "{staged}"
    );
    let canary = last("canary");
    assert!(
        canary.contains("wave 1/2 pilot")
            && canary.contains("Halted")
            && canary.contains("halted: 2 of 4 devices failed, above the 20% limit"),
        "{canary}"
    );
    // The final table: the halted canary is not Ready, with its reason; the staged rollout is.
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.contains("ExpeditedDeployment") && l.split_whitespace().nth(1) == Some(name))
            .copied()
            .unwrap_or_default()
    };
    assert!(row("canary").contains("False  RolloutHalted"), "{text}");
    assert!(row("staged-rollout").contains("True   Converged"), "{text}");
    assert!(
        row("canary").contains("paused"),
        "the canary's deployment is paused: {text}"
    );
    println!("demo ran in {:.1}s", started.elapsed().as_secs_f64());
}
