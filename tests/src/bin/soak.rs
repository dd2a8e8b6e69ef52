//! `soak`: runs the fault and crash scenarios for a given time and checks, after every round, that each
//! object has exactly one Graph deployment with exactly its audience. Ends with one line:
//! `soak: operations=N faults=N crashes=N duplicates=N lost_members=N` (exit 1 unless both are 0).
//!
//! `cargo run --release -p wufb-e2e --bin soak -- --duration 10m`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use wufb_e2e::Env;
use wufb_graph_emulator::{FaultConfig, RetryAfterForm};
use wufb_operator::crd::ExpeditedDeployment;

#[derive(Parser, Debug)]
#[command(about = "wufb-operator soak: faults and crashes for a while, then exactness checks")]
struct Args {
    /// How long to run: 90s, 10m, 1h.
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Objects kept alive.
    #[arg(long, default_value_t = 12)]
    objects: usize,
    /// Seed of the fault generator and of the operations.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn parse_duration(s: &str) -> Duration {
    wufb_operator::crd::duration::Bounds::secs(1, 7 * 86_400)
        .parse(s)
        .unwrap_or_else(|e| panic!("--duration '{s}' is {e}: give 1s to 7d, like 90s, 10m or 1h"))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn dev(i: usize, j: u64) -> String {
    format!("50a50a50-{i:04x}-4000-8000-{j:012}")
}

/// The desired audience of object `i` in its current version.
#[derive(Clone)]
struct Want {
    members: BTreeSet<String>,
    exclusions: BTreeSet<String>,
    paused: bool,
}

fn manifest(i: usize, w: &Want) -> serde_json::Value {
    json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "metadata": {"name": format!("soak-{i}")},
        "spec": {
            "content": {"latest": true}, "paused": w.paused,
            "userExperience": {"daysUntilForcedReboot": i % 31},
            "audience": {
                "members": w.members.iter().map(|d| json!({"device": d})).collect::<Vec<_>>(),
                "exclusions": w.exclusions.iter().map(|d| json!({"device": d})).collect::<Vec<_>>(),
            }
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let duration = parse_duration(&args.duration);
    let started = Instant::now();
    let mut rng = Rng(args.seed);
    let mut env = Env::start("soak").await;
    let api: Api<ExpeditedDeployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let apply = PatchParams::apply("soak").force();
    let mut current = env.spawn_controller("soak-0");
    let mut wants: BTreeMap<usize, Want> = BTreeMap::new();
    let (mut operations, mut crashes, mut duplicates, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut round = 0u64;
    while started.elapsed() < duration {
        round += 1;
        env.emulator.set_faults(FaultConfig {
            seed: args.seed.wrapping_add(round),
            throttle_rate: 0.3,
            retry_after_secs: 0.2,
            retry_after_form: [
                RetryAfterForm::Seconds,
                RetryAfterForm::Fractional,
                RetryAfterForm::HttpDate,
            ][round as usize % 3],
            error_rate: 0.1,
            drop_rate: 0.05,
            lost_answer_rate: 0.02,
            spike_rate: 0.1,
            spike_ms: 200,
            answer_delay_ms: 50,
            token_error_rate: 0.1,
            ..Default::default()
        });
        // A burst of operations: create, edit the audience, pause or resume, delete.
        // A name deleted in this round is not applied again until the deletion finished (applying an
        // object that is being deleted edits it, and then it is gone).
        let mut deleted: BTreeSet<usize> = BTreeSet::new();
        for _ in 0..args.objects {
            let i = rng.next(args.objects as u64) as usize;
            let op = rng.next(10);
            if deleted.contains(&i) {
                continue;
            }
            operations += 1;
            if op == 0 && wants.contains_key(&i) {
                deleted.insert(i);
                let _ = api.delete(&format!("soak-{i}"), &DeleteParams::default()).await;
                wants.remove(&i);
                continue;
            }
            let w = wants.entry(i).or_insert_with(|| Want {
                members: (0..3).map(|j| dev(i, j)).collect(),
                exclusions: BTreeSet::new(),
                paused: false,
            });
            match op {
                1..=4 => {
                    let d = dev(i, 10 + rng.next(20));
                    if !w.members.remove(&d) && !w.exclusions.contains(&d) {
                        w.members.insert(d);
                    }
                }
                5 | 6 => {
                    let d = dev(i, 40 + rng.next(5));
                    if !w.exclusions.remove(&d) && !w.members.contains(&d) {
                        w.exclusions.insert(d);
                    }
                }
                7 => w.paused = !w.paused,
                _ => {}
            }
            let body = manifest(i, w);
            api.patch(&format!("soak-{i}"), &apply, &Patch::Apply(&body))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(rng.next(150))).await;
        }
        // A crash now and then, at a random point.
        if rng.next(2) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.next(400))).await;
            env.kill_controller(current).await;
            crashes += 1;
            current = env.spawn_controller(&format!("soak-{round}"));
        }
        // Settle without faults, then check exactness.
        env.emulator.set_faults(FaultConfig::default());
        let deadline = Instant::now() + Duration::from_secs(180);
        let settled = loop {
            let objects = api.list(&Default::default()).await.unwrap();
            let ready = |o: &ExpeditedDeployment| {
                let s = o.status.clone().unwrap_or_default();
                s.observed_generation == o.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            };
            if objects.items.len() == wants.len() && objects.items.iter().all(ready) {
                break objects;
            }
            if Instant::now() > deadline {
                for o in objects.items.iter().filter(|o| !ready(o)) {
                    let s = o.status.clone().unwrap_or_default();
                    let c: Vec<String> = s
                        .conditions
                        .iter()
                        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                        .collect();
                    eprintln!(
                        "not converged: {} gen {:?} observed {:?} deleting {} {c:?}",
                        o.metadata.name.clone().unwrap_or_default(),
                        o.metadata.generation,
                        s.observed_generation,
                        o.metadata.deletion_timestamp.is_some()
                    );
                }
                eprintln!("objects {} wanted {}", objects.items.len(), wants.len());
                println!(
                    "soak: operations={operations} faults=0 crashes={crashes} duplicates={duplicates} lost_members={lost} (not converged)"
                );
                return ExitCode::FAILURE;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let graph = env.graph_deployments();
        let claimed: BTreeMap<String, usize> = settled
            .items
            .iter()
            .filter_map(|o| {
                Some((
                    o.status.as_ref()?.deployment_id.clone()?,
                    o.metadata
                        .name
                        .clone()?
                        .trim_start_matches("soak-")
                        .parse()
                        .ok()?,
                ))
            })
            .collect();
        duplicates += graph.len().saturating_sub(claimed.len()) as u64
            + (settled.items.len().saturating_sub(claimed.len())) as u64;
        for (id, i) in &claimed {
            let (m, e) = env.graph_audience(id);
            let w = &wants[i];
            let (m, e): (BTreeSet<String>, BTreeSet<String>) =
                (m.into_iter().collect(), e.into_iter().collect());
            lost += w.members.difference(&m).count() as u64 + w.exclusions.difference(&e).count() as u64;
            let paused = graph
                .iter()
                .find(|d| d["id"] == id.as_str())
                .map(|d| d["state"]["requestedValue"] == "paused");
            if paused != Some(w.paused) {
                lost += 1;
            }
        }
        eprintln!(
            "round {round}: {} objects, {} deployments, {operations} operations, {crashes} crashes, {duplicates} duplicates, {lost} lost",
            settled.items.len(),
            graph.len()
        );
    }
    let faults = env
        .emulator
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    println!(
        "soak: operations={operations} faults={faults} crashes={crashes} duplicates={duplicates} lost_members={lost}"
    );
    if duplicates == 0 && lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
