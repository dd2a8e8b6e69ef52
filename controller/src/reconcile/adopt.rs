//! Adoption after a create whose answer was lost. Graph deployments carry no client key, so a lost
//! answer is resolved by matching: deployments created since the recorded intent, with the same content
//! and settings, not claimed by another object. Objects with the same pending intent share the matches
//! in a fixed order (their specs are the same, so any assignment is equivalent), and more matches than
//! such objects is ambiguous.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::graph::SettingsRequest;
use crate::graph::models::{Content, Deployment};

/// What a pending create sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub uid: String,
    pub started_at: DateTime<Utc>,
    pub catalog_entry_id: String,
    pub release_date: Option<String>,
    /// The audience the deployment was created with, when it was.
    pub audience_id: Option<String>,
    /// The settings sent; `None` matches any (used when cleaning up).
    pub settings: Option<SettingsRequest>,
}

impl Pending {
    fn same_request(&self, other: &Pending) -> bool {
        self.catalog_entry_id == other.catalog_entry_id
            && self.release_date == other.release_date
            && self.settings == other.settings
    }

    /// Whether `d` is what this intent would have created: `Some(true)` or `Some(false)`, or `None`
    /// when it would be but for its content, which Graph did not name.
    fn matches(&self, d: &Deployment) -> Option<bool> {
        // The audience it was created with identifies it, where Graph names both.
        if let (Some(mine), Some(theirs)) = (&self.audience_id, d.audience_id()) {
            return Some(mine == theirs);
        }
        let content = match &d.content {
            Some(Content::Catalog { entry_id: Some(id) }) => Some(*id == self.catalog_entry_id),
            Some(Content::ExpeditedReleaseDate { release_date, .. }) => {
                Some(Some(release_date) == self.release_date.as_ref())
            }
            _ => None,
        };
        let settings = self.settings.as_ref().is_none_or(|want| {
            let s = d.settings.clone().unwrap_or_default();
            let ux = s.user_experience.unwrap_or_default();
            (want.days_until_forced_reboot.is_none()
                || want.days_until_forced_reboot == ux.days_until_forced_reboot)
                && (want.offer_as_optional.is_none() || want.offer_as_optional == ux.offer_as_optional)
                && want.readiness_test == s.expedite.is_some_and(|e| e.is_readiness_test)
        });
        // Clocks differ: allow a little skew before the intent.
        let recent = d
            .created()
            .is_none_or(|c| c >= self.started_at - chrono::Duration::seconds(30));
        if settings && recent { content } else { Some(false) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing was created: create now.
    None,
    Adopt(String),
    /// More matching deployments than objects waiting for them.
    Ambiguous(Vec<String>),
}

/// Decides what `me` adopts, given the other objects' pending intents, the ids claimed by other objects,
/// and the deployments Graph lists since the intent.
pub fn decide(
    me: &Pending,
    others: &[Pending],
    claimed: &BTreeSet<String>,
    found: &[Deployment],
) -> Decision {
    let unclaimed = || found.iter().filter(|d| !claimed.contains(&d.id));
    // Created with this intent's audience: it is this create's, whatever else matches.
    if let Some(d) =
        unclaimed().find(|d| me.audience_id.is_some() && d.audience_id() == me.audience_id.as_deref())
    {
        return Decision::Adopt(d.id.clone());
    }
    let mut candidates: Vec<&Deployment> = unclaimed().filter(|d| me.matches(d) == Some(true)).collect();
    // A deployment that matches but for content Graph did not name may be this create or another's:
    // it is never adopted, and it is never taken as proof that nothing was created either.
    let unnamed: Vec<&Deployment> = unclaimed().filter(|d| me.matches(d).is_none()).collect();
    if !unnamed.is_empty() {
        let mut ids: Vec<String> = candidates.iter().chain(&unnamed).map(|d| d.id.clone()).collect();
        ids.sort();
        return Decision::Ambiguous(ids);
    }
    if candidates.is_empty() {
        return Decision::None;
    }
    candidates.sort_by(|a, b| {
        a.created_date_time
            .cmp(&b.created_date_time)
            .then(a.id.cmp(&b.id))
    });
    let mut peers: Vec<&Pending> = others
        .iter()
        .filter(|o| o.uid != me.uid && o.same_request(me))
        .collect();
    peers.push(me);
    peers.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.uid.cmp(&b.uid)));
    if candidates.len() > peers.len() {
        return Decision::Ambiguous(candidates.iter().map(|d| d.id.clone()).collect());
    }
    let index = peers.iter().position(|p| p.uid == me.uid).unwrap_or(0);
    candidates
        .get(index)
        .map_or(Decision::None, |d| Decision::Adopt(d.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(id: &str, entry: &str, days: i32, created: &str) -> Deployment {
        serde_json::from_value(json!({
            "id": id,
            "createdDateTime": created,
            "content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent", "catalogEntry": {"id": entry}},
            "settings": {"userExperience": {"daysUntilForcedReboot": days}, "expedite": {"isExpedited": true}},
        }))
        .unwrap()
    }

    fn pending(uid: &str, at: &str, days: i32) -> Pending {
        Pending {
            uid: uid.into(),
            started_at: DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc),
            catalog_entry_id: "e1".into(),
            release_date: None,
            audience_id: None,
            settings: Some(SettingsRequest {
                days_until_forced_reboot: Some(days),
                offer_as_optional: None,
                readiness_test: false,
            }),
        }
    }

    const T0: &str = "2026-11-28T10:00:00Z";
    const T1: &str = "2026-11-28T10:00:01Z";

    #[test]
    fn the_single_match_is_adopted() {
        let found = [
            deployment("d1", "e1", 2, T1),
            deployment("other-content", "e2", 2, T1),
            deployment("other-settings", "e1", 5, T1),
        ];
        assert_eq!(
            decide(&pending("a", T0, 2), &[], &BTreeSet::new(), &found),
            Decision::Adopt("d1".into())
        );
    }

    #[test]
    fn nothing_found_means_create() {
        let old = [deployment("d0", "e1", 2, "2026-11-28T09:00:00Z")];
        assert_eq!(
            decide(&pending("a", T0, 2), &[], &BTreeSet::new(), &old),
            Decision::None,
            "created long before the intent"
        );
        let claimed: BTreeSet<String> = ["d1".to_string()].into();
        assert_eq!(
            decide(
                &pending("a", T0, 2),
                &[],
                &claimed,
                &[deployment("d1", "e1", 2, T1)]
            ),
            Decision::None
        );
    }

    #[test]
    fn identical_pending_objects_share_the_matches_in_order() {
        let found = [
            deployment("d2", "e1", 2, "2026-11-28T10:00:02Z"),
            deployment("d1", "e1", 2, T1),
        ];
        let a = pending("a", T0, 2);
        let b = pending("b", T1, 2);
        assert_eq!(
            decide(&a, std::slice::from_ref(&b), &BTreeSet::new(), &found),
            Decision::Adopt("d1".into())
        );
        assert_eq!(
            decide(&b, std::slice::from_ref(&a), &BTreeSet::new(), &found),
            Decision::Adopt("d2".into())
        );
        // One match, two waiting: the first takes it, the second creates its own.
        let one = [deployment("d1", "e1", 2, T1)];
        assert_eq!(
            decide(&b, std::slice::from_ref(&a), &BTreeSet::new(), &one),
            Decision::None
        );
    }

    #[test]
    fn a_deployment_whose_content_graph_does_not_name_is_never_adopted_nor_ignored() {
        let unnamed = |id: &str| -> Deployment {
            serde_json::from_value(json!({
                "id": id,
                "createdDateTime": T1,
                "content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent"},
                "settings": {"userExperience": {"daysUntilForcedReboot": 2}, "expedite": {"isExpedited": true}},
            }))
            .unwrap()
        };
        let me = pending("a", T0, 2);
        assert_eq!(
            decide(&me, &[], &BTreeSet::new(), &[unnamed("u1")]),
            Decision::Ambiguous(vec!["u1".into()]),
            "alone it is neither adopted nor read as 'nothing was created'"
        );
        assert_eq!(
            decide(
                &me,
                &[],
                &BTreeSet::new(),
                &[deployment("d1", "e1", 2, T1), unnamed("u1")]
            ),
            Decision::Ambiguous(vec!["d1".into(), "u1".into()])
        );
        // Other settings, or claimed by another object: not this create, whatever its content.
        let other_settings = {
            let mut d = unnamed("u2");
            d.settings = deployment("x", "e1", 5, T1).settings;
            d
        };
        let claimed: BTreeSet<String> = ["u1".to_string()].into();
        assert_eq!(
            decide(&me, &[], &claimed, &[unnamed("u1"), other_settings]),
            Decision::None
        );
    }

    #[test]
    fn the_deployment_made_with_the_intents_audience_is_adopted_whatever_else_matches() {
        let with_audience = |id: &str, aid: &str| {
            let mut d = deployment(id, "e1", 2, T1);
            d.audience = Some(crate::graph::models::AudienceRef { id: Some(aid.into()) });
            d
        };
        let mut me = pending("a", T0, 2);
        me.audience_id = Some("aud-a".into());
        let found = [
            deployment("d1", "e1", 2, T1),
            with_audience("d2", "aud-a"),
            with_audience("d3", "aud-b"),
        ];
        assert_eq!(
            decide(&me, &[], &BTreeSet::new(), &found),
            Decision::Adopt("d2".into())
        );
        // Another audience's deployment is not this create's, even with the same content and settings.
        assert_eq!(
            decide(&me, &[], &BTreeSet::new(), &[with_audience("d3", "aud-b")]),
            Decision::None
        );
    }

    #[test]
    fn more_matches_than_waiting_objects_is_ambiguous() {
        let found = [deployment("d1", "e1", 2, T1), deployment("d2", "e1", 2, T1)];
        assert_eq!(
            decide(&pending("a", T0, 2), &[], &BTreeSet::new(), &found),
            Decision::Ambiguous(vec!["d1".into(), "d2".into()])
        );
        // A different spec pending elsewhere does not share.
        assert_eq!(
            decide(
                &pending("a", T0, 2),
                &[pending("b", T0, 3)],
                &BTreeSet::new(),
                &found
            ),
            Decision::Ambiguous(vec!["d1".into(), "d2".into()])
        );
    }
}
