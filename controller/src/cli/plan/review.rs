//! What in a plan asks for a second review: the flags of a change, and what `latest` or `newest`
//! content resolves to when the plan creates it.

use super::WavePlan;
use crate::crd::ExpeditedDeployment;
use crate::reconcile::plan::{Plan, Step};

/// The pull-request label a plan asks for when a change needs a second review.
pub const REVIEW_LABEL: &str = "wufb/needs-review";

/// Devices the live object offers now: none while it is paused or has no deployment.
pub fn offered_before(live: Option<&ExpeditedDeployment>) -> u64 {
    live.filter(|l| !l.spec.paused)
        .and_then(|l| l.status.as_ref())
        .filter(|s| s.graph_state.as_deref() != Some("paused"))
        .and_then(|s| s.audience.as_ref())
        .map_or(0, |a| a.devices)
}

/// The flags of a deletion the plan makes for a live object the files no longer hold.
pub fn deletion_flags(result: &str) -> Vec<String> {
    if result == "delete" {
        vec!["delete".into()]
    } else {
        Vec::new()
    }
}

/// Why an ExpeditedDeployment's change needs a second review (see [`ObjectPlan::flags`]); `widened` is
/// how many more devices it offers at once after the change than before.
pub fn review_flags(
    steps: &[Step],
    replace: bool,
    waves: &[WavePlan],
    widened: u64,
    threshold: u64,
) -> Vec<String> {
    use crate::reconcile::plan::Target;
    let mut flags = Vec::new();
    if replace {
        flags.push("replace".to_string());
    }
    if steps.iter().any(|s| {
        matches!(
            s,
            Step::SetPaused {
                target: Target::Existing(_),
                paused: false
            }
        )
    }) {
        flags.push("resume".into());
    }
    if widened > threshold {
        flags.push("blast-radius".into());
    }
    if waves.iter().skip(1).any(|w| w.state == "now") {
        flags.push("wave-at-once".into());
    }
    flags
}

/// For `latest` or `newest` content the plan resolves now for a create or replace: what it resolves to
/// today, and that the apply resolves it again.
pub fn resolved_at_apply(content: &crate::crd::ContentSpec, p: &Plan, resolving: bool) -> Option<String> {
    let form = if content.latest == Some(true) {
        "latest"
    } else if content.newest.is_some() {
        "newest"
    } else {
        return None;
    };
    let today = p.facts.content.as_ref()?.describe();
    resolving.then(|| {
        format!(
            "content.{form} resolves today to {today}; it is resolved again when the controller creates the deployment, so a newer release the catalog lists before then is the one deployed"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::Target;

    fn wave(state: &str) -> WavePlan {
        WavePlan {
            name: "w".into(),
            devices: 1,
            blast_radius: 1,
            state: state.into(),
            when: String::new(),
        }
    }

    /// What asks for a second review, one row per reason and per near miss.
    #[test]
    fn destructive_and_widening_changes_are_flagged() {
        let resume = Step::SetPaused {
            target: Target::Existing("d".into()),
            paused: false,
        };
        let pause = Step::SetPaused {
            target: Target::Existing("d".into()),
            paused: true,
        };
        let start_new = Step::SetPaused {
            target: Target::New,
            paused: false,
        };
        let replaced = Step::DeleteReplaced { id: "old".into() };
        /// What, the plan's steps, a replace, its waves, devices newly offered at once, the flags.
        type Row<'a> = (&'a str, Vec<Step>, bool, Vec<WavePlan>, u64, &'a [&'a str]);
        let rows: Vec<Row> = vec![
            ("nothing", vec![], false, vec![], 0, &[]),
            ("a replace", vec![replaced], true, vec![], 0, &["replace"]),
            ("a resume", vec![resume.clone()], false, vec![], 0, &["resume"]),
            ("a pause", vec![pause], false, vec![], 0, &[]),
            (
                "a new deployment offered",
                vec![start_new],
                false,
                vec![],
                10,
                &[],
            ),
            (
                "a jump above the threshold",
                vec![],
                false,
                vec![],
                501,
                &["blast-radius"],
            ),
            ("a jump at the threshold", vec![], false, vec![], 500, &[]),
            (
                "the first wave sent",
                vec![],
                false,
                vec![wave("now"), wave("gated")],
                0,
                &[],
            ),
            (
                "a later wave sent at once",
                vec![],
                false,
                vec![wave("sent"), wave("now")],
                0,
                &["wave-at-once"],
            ),
            (
                "all at once",
                vec![resume],
                true,
                vec![wave("sent"), wave("now")],
                900,
                &["replace", "resume", "blast-radius", "wave-at-once"],
            ),
        ];
        for (what, steps, replace, waves, widened, want) in rows {
            assert_eq!(
                review_flags(&steps, replace, &waves, widened, 500),
                want.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                "{what}"
            );
        }
        assert_eq!(deletion_flags("delete"), ["delete"]);
        assert!(
            deletion_flags("orphan").is_empty(),
            "an orphan keeps the deployment"
        );
    }
}
