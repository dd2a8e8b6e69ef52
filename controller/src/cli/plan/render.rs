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
                if o.kind == "ExpeditedDeployment"
                    && !matches!(o.result.as_str(), "delete" | "orphan" | "unknown")
                {
                    s.push_str(&format!(" ({} devices)", o.devices));
                }
                s.push('\n');
                for c in &o.changes {
                    s.push_str(&format!("  - {c}\n"));
                }
                if !o.flags.is_empty() {
                    s.push_str(&format!("  ! needs a second review: {}\n", o.flags.join(", ")));
                }
                if let Some(r) = &o.resolved_at_apply {
                    s.push_str(&format!("  ~ {r}\n"));
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
            if let Some(review) = review(report) {
                s.push_str(&format!("{review}\n"));
            }
            if let Some(left) = left_out(report) {
                s.push_str(&format!("{left}\n"));
            }
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
            if let Some(review) = review(report) {
                s.push_str(&format!("> [!WARNING]\n> {review}\n\n"));
            }
            s.push_str("| Object | Result | Devices | Changes |\n|---|---|---:|---|\n");
            for o in &report.objects {
                let mut changes = o.changes.clone();
                if !o.flags.is_empty() {
                    changes.push(format!("**needs a second review: {}**", o.flags.join(", ")));
                }
                if let Some(r) = &o.resolved_at_apply {
                    changes.push(format!("_{r}_"));
                }
                let changes = if changes.is_empty() {
                    "-".to_string()
                } else {
                    changes.join("<br>")
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
            if let Some(left) = left_out(report) {
                s.push_str(&format!("{left}\n\n"));
            }
            s.push_str(&summary(report));
            s
        }
    }
}

/// The second-review line, when a change asks for one.
fn review(report: &Report) -> Option<String> {
    report.review_label.as_ref().map(|label| {
        format!(
            "Needs a second review ({}): label {label}.",
            report.flags.join(", ")
        )
    })
}

/// The live objects the plan did not plan for deletion, when there are any.
fn left_out(report: &Report) -> Option<String> {
    if report.not_planned.is_empty() {
        return None;
    }
    let shown: Vec<&str> = report.not_planned.iter().take(10).map(String::as_str).collect();
    let more = report.not_planned.len().saturating_sub(shown.len());
    let list = format!(
        "{}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    Some(match &report.prune {
        Some(selector) => format!("Not planned for deletion ({selector} does not select them): {list}."),
        None => format!(
            "Not in these files and not planned for deletion: {list}. To plan deleting the live objects these files manage, pass --prune -l KEY=VALUE."
        ),
    })
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
