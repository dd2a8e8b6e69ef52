//! Rollout progress end to end, on the emulator's simulated fleet: the funnel in status counts exactly
//! what the fleet did (hotpatched devices as installed, silent ones never as success), a paused
//! deployment's devices stay where they were, milestones arrive as Events, the printer column and the
//! aggregate gauges show the figures, and the tenant's device reads are shared and bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use wufb_e2e::Env;
use wufb_e2e::fixtures::ring_device;
use wufb_e2e::fixtures::rollout;
use wufb_graph_emulator::EmulatorConfig;
use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use wufb_graph_emulator::fleet::FleetConfig;

/// What the funnel must say for these devices, from the fleet's truth.
fn truth(env: &Env, ring: u32, n: u32) -> [u64; 4] {
    let fleet = env.emulator.fleet();
    let mut counts = [0u64; 4];
    for i in 0..n {
        let d = &fleet[&ring_device(ring, i)];
        let slot = if d.reporting && d.installed_entry.is_some() {
            0
        } else if d.error.is_some() {
            2
        } else if d.reporting {
            1
        } else {
            3
        };
        counts[slot] += 1;
    }
    counts
}

fn funnel(status: &Value) -> Option<[u64; 4]> {
    let p = status.get("progress")?;
    Some(["upToDate", "pending", "failed", "notReporting"].map(|k| p[k].as_u64().unwrap_or(0)))
}

/// A rollout of the first `n` devices of `ring`.
fn ring_rollout(name: &str, ring: u32, n: u32, paused: bool) -> String {
    let members: Vec<String> = (0..n).map(|i| ring_device(ring, i)).collect();
    rollout(name, &members, &format!("  paused: {paused}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_counts_what_the_fleet_did_and_a_paused_rollout_stands_still() {
    let mut env = Env::start_with(
        "progress",
        EmulatorConfig {
            fleet: FleetConfig {
                // Ten simulated hours per real second: delays of 0.4 to 3.6 h pass within a second.
                time_scale: 36_000.0,
                install_hours: 2.0,
                hotpatch_rate: 0.5,
                failure_rate: 0.1,
                silent_rate: 0.1,
                seed: 11,
            },
            // Pages of 7: the tenant-wide reads must follow every page.
            page_size: 7,
            ..Default::default()
        },
    )
    .await;
    env.spawn_controller_as(
        "a",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &["--progress-interval=1s"],
    );
    env.apply_yaml(&ring_rollout("broad", 1, 40, false)).await;
    env.apply_yaml(&ring_rollout("held", 2, 20, true)).await;
    env.wait_ready(&["expd/broad", "expd/held"]).await;

    // The broad ring finishes: every reporting device is done, and the counts are the fleet's own.
    let settled = env
        .eventually("broad settles", Duration::from_secs(60), async || {
            let s = env.status_of("broad").await;
            let f = funnel(&s)?;
            (f[1] == 0 && f == truth(&env, 1, 40)).then_some(s)
        })
        .await;
    let p = &settled["progress"];
    assert_eq!(p["targeted"], 40);
    let [up, _, failed, silent] = funnel(&settled).unwrap();
    assert!(up > 0 && failed > 0 && silent > 0, "{p}");
    assert_eq!(p["installed"], format!("{up}/40"));
    assert!(p["observedTime"].is_string() && p["source"].as_str().unwrap().contains("deviceProfiles"));
    // Hotpatched devices are among those counted as installed.
    let fleet = env.emulator.fleet();
    let hotpatched = (0..40)
        .filter(|i| {
            let d = &fleet[&ring_device(1, *i)];
            d.reporting
                && d.installed_entry.is_some()
                && d.outcome == wufb_graph_emulator::fleet::Outcome::InstallHotpatch
        })
        .count();
    assert!(
        hotpatched > 0,
        "some installed devices took the hotpatch revision"
    );

    // The paused ring installed nothing: its devices report their old builds or nothing.
    let held = env.status_of("held").await;
    let f = funnel(&held).expect("a paused rollout still reports its progress");
    assert_eq!(f[0], 0, "paused: nobody installed: {held}");
    assert_eq!(f, truth(&env, 2, 20));

    // Milestones as Events, the printer column, and the gauges summing both objects.
    let events = env
        .events_with(&[
            "FirstDeviceUpdated",
            "HalfUpdated",
            "ReportingDevicesDone",
            "DevicesFailed",
        ])
        .await;
    assert!(events.contains("of 40 targeted devices up to date"), "{events}");
    let table = env.kubectl_ok(&["get", "expd", "broad"]).await;
    assert!(
        table.contains("INSTALLED") && table.contains(&format!("{up}/40")),
        "{table}"
    );
    let gauge = env
        .eventually("the gauges", Duration::from_secs(20), async || {
            let v = env.metric(0, "wufb_rollout_devices{state=\"upToDate\"}").await?;
            (v as u64 == up).then_some(v)
        })
        .await;
    assert_eq!(gauge as u64, up);

    // `kubectl wufb status`: the binary linked as kubectl-wufb on the PATH is a kubectl plugin.
    let plugins = env.dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let link = plugins.join("kubectl-wufb");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(wufb_e2e::operator_bin(), &link).unwrap();
    let path = format!(
        "{}:{}",
        plugins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new(wufb_e2e::kubectl_bin())
        .args(["wufb", "status", "broad", "--devices", "-n", &env.namespace])
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["--graph-url", &env.emulator.graph_url()])
        .env("PATH", path)
        .env("AZURE_TENANT_ID", wufb_graph_emulator::config::DEFAULT_TENANT_ID)
        // The reference lists WindowsUpdates.ReadWrite.All for reading a catalog entry.
        .env("AZURE_CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("INSTALLED") && text.contains(&format!("{up}/40")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{up} of 40 targeted devices up to date, 0 pending, {failed} failed, {silent} not reporting"
        )),
        "{text}"
    );
    // Each device not up to date is listed once, failed ones with their error.
    let listed: Vec<&str> = text.lines().filter(|l| l.starts_with("6f1c2a10-")).collect();
    assert_eq!(listed.len() as u64, failed + silent, "{text}");
    assert!(
        listed
            .iter()
            .any(|l| l.contains("failed") && l.contains("invalidAzureADJoin")),
        "{text}"
    );

    // Resuming the held ring: it progresses too.
    env.kubectl_ok(&[
        "patch",
        "expd",
        "held",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ])
    .await;
    env.eventually(
        "held progresses once resumed",
        Duration::from_secs(60),
        async || {
            let f = funnel(&env.status_of("held").await)?;
            (f[0] > 0 && f[1] == 0 && f == truth(&env, 2, 20)).then_some(())
        },
    )
    .await;

    // The tenant's device reads are shared by both objects: a poll (a first page without a skip
    // token, then every page) at most once per interval, not once per object pass.
    let requests = env.emulator.requests();
    let polls = requests
        .iter()
        .filter(|r| {
            r.operation == "deviceProfiles.list" && !r.query.as_deref().unwrap_or("").contains("skiptoken")
        })
        .count();
    let pages = requests
        .iter()
        .filter(|r| r.operation == "deviceProfiles.list")
        .count();
    let passes = requests
        .iter()
        .filter(|r| r.operation == "deployments.get")
        .count();
    println!("progress polls: {polls} ({pages} deviceProfiles pages), deployment reads: {passes}");
    assert!(
        polls > 0 && polls < passes,
        "shared: {polls} polls for {passes} deployment reads"
    );
    assert!(
        pages >= polls * 5,
        "every page is followed (50 or so reporting devices, 7 a page): {pages} for {polls}"
    );
}
