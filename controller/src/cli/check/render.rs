//! The report for people: text (a line per check, grouped) and Markdown (for an issue or a pull request).

use super::{Report, Status};

fn mark(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Skipped => "skipped",
        Status::Warning => "warning",
        Status::Failed => "FAILED",
    }
}

fn versions(r: &Report) -> String {
    format!(
        "CLI {}, operator {}",
        r.cli_version,
        r.operator_version.as_deref().unwrap_or("not found")
    )
}

fn summary(r: &Report) -> String {
    format!(
        "{} ok, {} warning(s), {} failed, {} skipped",
        r.summary.ok, r.summary.warnings, r.summary.failed, r.summary.skipped
    )
}

/// One line per check under its group's heading; a warning or failure adds its hint and link.
pub fn text(r: &Report) -> String {
    let mut out = format!("wufb-operator check ({})\n", versions(r));
    let mut group = None;
    for c in &r.checks {
        if group != Some(&c.group) {
            out.push_str(&format!("\n{}\n", c.group));
            group = Some(&c.group);
        }
        out.push_str(&format!(
            "  {:<8} {:<28} {}\n",
            mark(c.status),
            c.name,
            one_line(&c.found)
        ));
        if let Some(h) = c.hint.as_deref().filter(|h| !h.is_empty()) {
            out.push_str(&format!("  {:<8} {:<28} hint: {h}\n", "", ""));
        }
        if let Some(d) = &c.docs {
            out.push_str(&format!("  {:<8} {:<28} see {d}\n", "", ""));
        }
    }
    out.push_str(&format!("\n{}\n", summary(r)));
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// A table per report, then the hints of what needs attention.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "### wufb-operator check\n\n{}; {}\n\n| Group | Check | Status | Found |\n|---|---|---|---|\n",
        versions(r),
        summary(r)
    );
    for c in &r.checks {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&c.group),
            cell(&c.name),
            mark(c.status),
            cell(&c.found)
        ));
    }
    let attention: Vec<_> = r
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Warning | Status::Failed))
        .collect();
    if !attention.is_empty() {
        out.push_str("\n#### What to do\n\n");
        for c in attention {
            out.push_str(&format!(
                "- **{} / {}** ({}): {}",
                c.group,
                c.name,
                c.reason.as_deref().unwrap_or(""),
                c.hint.as_deref().unwrap_or("")
            ));
            if let Some(d) = &c.docs {
                out.push_str(&format!(" [docs]({d})"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Check;
    use super::*;
    use crate::reconcile::reasons::Reason;

    #[test]
    fn text_and_markdown_show_each_check_and_the_hints() {
        let r = Report::new(
            vec![
                Check::ok("cluster", "kubernetes-version", "v1.32.0"),
                Check::failed("cluster", "crd-devicegroups", "a | b\nc", Reason::CRD_MISSING),
            ],
            None,
        );
        let t = text(&r);
        assert!(t.contains("ok       kubernetes-version"), "{t}");
        assert!(t.contains("FAILED   crd-devicegroups             a | b c"), "{t}");
        assert!(t.contains("hint: Install the chart"), "{t}");
        assert!(t.contains("reasons.html#crd-missing"), "{t}");
        assert!(t.contains("1 ok, 0 warning(s), 1 failed, 0 skipped"), "{t}");
        let m = markdown(&r);
        assert!(
            m.contains("| cluster | crd-devicegroups | FAILED | a \\| b c |"),
            "{m}"
        );
        assert!(m.contains("- **cluster / crd-devicegroups** (CrdMissing)"), "{m}");
    }
}
