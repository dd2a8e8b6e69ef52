//! The bench's `--heap-profile`: the operator built with its `dhat-heap` feature records every
//! allocation and writes a dhat profile on exit; [`breakdown`] sorts the bytes live at the heap's peak
//! (and at the end) by the part of the controller that allocated them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Builds the profiling operator (release code with line tables, so frames name functions) into
/// `target/dhat` and returns its path.
pub fn build_profiling_operator() -> anyhow::Result<PathBuf> {
    let root = crate::root();
    let target = root.join("target/dhat");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--locked", "-p", "wufb-operator"])
        .args(["--features", "dhat-heap", "--target-dir"])
        .arg(&target)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .status()?;
    anyhow::ensure!(status.success(), "building the profiling operator failed");
    Ok(target.join("release/wufb-operator"))
}

/// Where an allocation came from, decided by the frames of its stack (innermost first): the first
/// category whose marker any frame carries, in this order.
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "stores (reflector caches, decoded objects)",
        &["kube_runtime::reflector::store", "wufb_operator::runtime::decode"],
    ),
    (
        "Graph client (pages, bodies, models)",
        &["wufb_operator::graph::"],
    ),
    (
        "reconcile passes (observations, plans, status)",
        &["wufb_operator::reconcile::", "wufb_operator::runtime::gate"],
    ),
    (
        "watch streams and Kubernetes client",
        &["kube_runtime::watcher", "kube_client::", "kube_runtime::"],
    ),
    (
        "HTTP connections, TLS and pools",
        &[
            "hyper::",
            "hyper_util::",
            "h2::",
            "rustls::",
            "reqwest::",
            "tokio_rustls::",
        ],
    ),
    (
        "metrics",
        &["prometheus_client::", "wufb_operator::reconcile::metrics"],
    ),
    ("logging", &["tracing_subscriber::", "tracing::"]),
    ("async runtime", &["tokio::"]),
];

fn category(frames: &[&str]) -> &'static str {
    for (name, markers) in CATEGORIES {
        if frames.iter().any(|f| markers.iter().any(|m| f.contains(m))) {
            return name;
        }
    }
    "other"
}

/// The function a frame names, without its address and file.
fn function(frame: &str) -> &str {
    let f = frame.split_once(": ").map_or(frame, |x| x.1);
    f.split(" (").next().unwrap_or(f)
}

/// The innermost frame of the project's own code (or the first frame past the allocator).
fn site<'a>(frames: &[&'a str]) -> &'a str {
    frames
        .iter()
        .find(|f| f.contains("wufb_operator::"))
        .or_else(|| {
            frames.iter().find(|f| {
                let f = function(f);
                !f.starts_with("alloc::") && !f.starts_with("<alloc::") && !f.starts_with("dhat::")
            })
        })
        .map_or("?", |f| function(f))
}

/// The bytes live at the heap's peak (`gb`) and at the end (`eb`), by category and by allocation site,
/// from a dhat profile.
pub fn breakdown(profile: &Value) -> Value {
    let empty = Vec::new();
    let ftbl: Vec<&str> = profile["ftbl"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|f| f.as_str().unwrap_or(""))
        .collect();
    let mut by_category: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut by_site: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    let (mut peak, mut end, mut total) = (0, 0, 0);
    for pp in profile["pps"].as_array().unwrap_or(&empty) {
        let frames: Vec<&str> = pp["fs"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|i| i.as_u64().and_then(|i| ftbl.get(i as usize)).copied())
            .collect();
        let (gb, eb, tb) = (
            pp["gb"].as_u64().unwrap_or(0),
            pp["eb"].as_u64().unwrap_or(0),
            pp["tb"].as_u64().unwrap_or(0),
        );
        let c = category(&frames);
        let e = by_category.entry(c).or_default();
        e.0 += gb;
        e.1 += eb;
        e.2 += tb;
        let s = by_site.entry((c, site(&frames))).or_default();
        s.0 += gb;
        s.1 += eb;
        peak += gb;
        end += eb;
        total += tb;
    }
    let mut categories: Vec<_> = by_category.into_iter().collect();
    categories.sort_by_key(|c| std::cmp::Reverse(c.1.0));
    let mut sites: Vec<_> = by_site.into_iter().collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.1.0));
    json!({
        "peak_live_bytes": peak,
        "end_live_bytes": end,
        "allocated_bytes": total,
        "categories": categories.iter().map(|(c, (g, e, t))| json!({
            "category": c, "peak_bytes": g, "end_bytes": e, "allocated_bytes": t,
            "peak_share": if peak == 0 { 0.0 } else { *g as f64 / peak as f64 },
        })).collect::<Vec<_>>(),
        "top_sites_at_peak": sites.iter().take(15).map(|((c, s), (g, e))| json!({
            "category": c, "site": s, "peak_bytes": g, "end_bytes": e,
        })).collect::<Vec<_>>(),
    })
}

/// Reads a dhat profile, prints its breakdown and writes it next to the profile as `heap.json`.
pub fn report(profile: &Path) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(profile)?)?;
    let b = breakdown(&v);
    let mb = |v: &Value| v.as_u64().unwrap_or(0) as f64 / 1e6;
    println!(
        "  heap profile: {:.1} MB live at the peak, {:.1} MB at the end, {:.0} MB allocated in all",
        mb(&b["peak_live_bytes"]),
        mb(&b["end_live_bytes"]),
        mb(&b["allocated_bytes"])
    );
    for c in b["categories"].as_array().into_iter().flatten() {
        println!(
            "    {:<48} {:>7.1} MB at peak ({:>4.1}%), {:>6.1} MB at end",
            c["category"].as_str().unwrap_or(""),
            mb(&c["peak_bytes"]),
            c["peak_share"].as_f64().unwrap_or(0.0) * 100.0,
            mb(&c["end_bytes"])
        );
    }
    println!("    top allocation sites at the peak:");
    for s in b["top_sites_at_peak"].as_array().into_iter().flatten().take(10) {
        println!(
            "      {:>7.1} MB  {}",
            mb(&s["peak_bytes"]),
            s["site"].as_str().unwrap_or("")
        );
    }
    let out = profile.with_file_name("heap.json");
    std::fs::write(&out, serde_json::to_string_pretty(&b)?)?;
    println!("  written {}", out.display());
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_sorted_by_the_first_category_a_stack_names() {
        let profile = json!({
            "ftbl": [
                "[root]",
                "0x1: alloc::alloc::alloc (alloc.rs:1:1)",
                "0x2: wufb_operator::graph::client::GraphClient::members (client.rs:10:5)",
                "0x3: wufb_operator::reconcile::observe::observe (observe.rs:20:9)",
                "0x4: wufb_operator::runtime::decode::lean (decode.rs:30:1)",
                "0x5: hyper::proto::h1::io::Buffered::read (io.rs:1:1)",
            ],
            "pps": [
                {"tb": 500, "gb": 100, "eb": 10, "fs": [1, 2, 3]},
                {"tb": 70, "gb": 40, "eb": 40, "fs": [1, 4]},
                {"tb": 9, "gb": 0, "eb": 0, "fs": [1, 3]},
                {"tb": 30, "gb": 20, "eb": 5, "fs": [1, 5]},
            ],
        });
        let b = breakdown(&profile);
        assert_eq!(b["peak_live_bytes"], 160);
        assert_eq!(b["end_live_bytes"], 55);
        assert_eq!(b["allocated_bytes"], 609);
        let cats = b["categories"].as_array().unwrap();
        assert_eq!(cats[0]["category"], "Graph client (pages, bodies, models)");
        assert_eq!(cats[0]["peak_bytes"], 100);
        assert_eq!(cats[1]["category"], "stores (reflector caches, decoded objects)");
        assert_eq!(cats[2]["category"], "HTTP connections, TLS and pools");
        assert_eq!(
            cats[3]["category"],
            "reconcile passes (observations, plans, status)"
        );
        assert_eq!(cats[3]["allocated_bytes"], 9);
        assert_eq!(
            b["top_sites_at_peak"][0]["site"],
            "wufb_operator::graph::client::GraphClient::members"
        );
        assert_eq!(
            b["top_sites_at_peak"][2]["site"],
            "hyper::proto::h1::io::Buffered::read"
        );
    }
}
