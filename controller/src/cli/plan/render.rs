//! The plan report as text (a terminal), Markdown (a pull-request comment) or JSON.

use std::collections::BTreeMap;

use super::{Output, Report};

/// The report in the asked form.
pub fn render(report: &Report, output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Output::Text => {
            let mut s = String::new();
            if let Some(why) = &report.offline {
                s.push_str(&format!(
                    "Offline plan (no cluster read: {why}): every object is planned as new and none for deletion.\n"
                ));
            }
            for o in &report.objects {
                s.push_str(&format!("{} {}/{}: {}", o.kind, o.namespace, o.name, o.result));
                if o.kind == "ExpeditedDeployment" && o.result != "delete" && o.result != "orphan" {
                    s.push_str(&format!(" ({} devices)", o.devices));
                }
                s.push('\n');
                for c in &o.changes {
                    s.push_str(&format!("  - {c}\n"));
                }
                for (k, w) in o.waves.iter().enumerate() {
                    s.push_str(&format!(
                        "  wave {} {}: +{} devices, {} offered once sent; {}: {}\n",
                        k + 1,
                        w.name,
                        w.devices,
                        w.blast_radius,
                        w.state,
                        w.when
                    ));
                }
            }
            s.push_str(&format!(
                "Blast radius: {} distinct devices would be offered an expedite{}.\n",
                report.blast_radius,
                staged(report)
            ));
            s.push_str(&summary(report));
            s
        }
        Output::Markdown => {
            let mut s = String::from("### wufb-operator plan\n\n");
            if let Some(why) = &report.offline {
                s.push_str(&format!(
                    "> **Offline plan** (no cluster read: {why}): every object is planned as new and none for deletion.\n\n"
                ));
            }
            s.push_str("| Object | Result | Devices | Changes |\n|---|---|---:|---|\n");
            for o in &report.objects {
                let changes = if o.changes.is_empty() {
                    "-".to_string()
                } else {
                    o.changes.join("<br>")
                };
                s.push_str(&format!(
                    "| {} `{}/{}` | **{}** | {} | {} |\n",
                    o.kind,
                    o.namespace,
                    o.name,
                    o.result,
                    o.devices,
                    changes.replace('|', "\\|")
                ));
            }
            for o in report.objects.iter().filter(|o| !o.waves.is_empty()) {
                s.push_str(&format!(
                    "\nWaves of `{}/{}`:\n\n| Wave | Adds | Offered once sent | State | When |\n|---|---:|---:|---|---|\n",
                    o.namespace, o.name
                ));
                for (k, w) in o.waves.iter().enumerate() {
                    s.push_str(&format!(
                        "| {}. {} | {} | {} | {} | {} |\n",
                        k + 1,
                        w.name,
                        w.devices,
                        w.blast_radius,
                        w.state,
                        w.when.replace('|', "\\|")
                    ));
                }
            }
            s.push_str(&format!(
                "\n**Blast radius:** {} distinct devices would be offered an expedite{}.\n\n",
                report.blast_radius,
                staged(report)
            ));
            s.push_str(&summary(report));
            s
        }
    }
}

/// How much of the blast radius waits behind wave gates, when any does.
fn staged(report: &Report) -> String {
    if report.blast_radius_now < report.blast_radius {
        format!(
            ", {} at once and the rest as wave gates open",
            report.blast_radius_now
        )
    } else {
        String::new()
    }
}

fn summary(report: &Report) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &report.objects {
        *counts.entry(o.result.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("Plan: {}.\n", parts.join(", "))
}
