//! Cleanup: what deleting an object does in Graph.

use super::*;

#[test]
fn cleanup_honours_the_deletion_policy() {
    let obj = object(
        json!({"content": {"latest": true}, "deletionPolicy": "Orphan"}),
        Some(status_with_deployment()),
    );
    assert_eq!(
        plan_cleanup(&obj, None),
        Cleanup::Orphan {
            id: Some("d1".into())
        }
    );
    let obj = object(
        json!({"content": {"latest": true}}),
        Some(status_with_deployment()),
    );
    assert_eq!(
        plan_cleanup(&obj, None),
        Cleanup::Delete {
            ids: vec!["d1".into()],
            audiences: vec![],
        }
    );
    let pending = object(
        json!({"content": {"latest": true}}),
        Some(
            json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY, "audienceId": "aud"}}),
        ),
    );
    assert_eq!(
        plan_cleanup(&pending, Some(&adopt::Decision::Adopt("lost".into()))),
        Cleanup::Delete {
            ids: vec!["lost".into()],
            audiences: vec!["aud".into()],
        },
        "what a lost create made is deleted too, its audience after it"
    );
    // An adopted deployment's audience is not the operator's to delete.
    let mut status = status_with_deployment();
    status["audienceId"] = json!("theirs");
    let adopted = object(
        json!({"content": {"latest": true}, "deploymentId": "d1"}),
        Some(status.clone()),
    );
    assert_eq!(
        plan_cleanup(&adopted, None),
        Cleanup::Delete {
            ids: vec!["d1".into()],
            audiences: vec![],
        }
    );
    let own = object(json!({"content": {"latest": true}}), Some(status));
    assert_eq!(
        plan_cleanup(&own, None),
        Cleanup::Delete {
            ids: vec!["d1".into()],
            audiences: vec!["theirs".into()],
        }
    ); // A pending create whose adoption was not decided (the quarantine cannot match it): held.
    let undecided = object(
        json!({"content": {"latest": true}}),
        Some(
            json!({"createIntent": {"startedAt": "2026-11-28T10:00:00Z", "catalogEntryId": ENTRY, "audienceId": "aud"}}),
        ),
    );
    let held = plan_cleanup(&undecided, None);
    assert_eq!(
        held,
        Cleanup::Unresolved {
            started_at: "2026-11-28T10:00:00Z".into()
        }
    );
    assert_eq!(held.result(), "waiting");
    assert!(held.graph_writes().is_empty());
    assert_eq!(
        plan_cleanup(&undecided, Some(&adopt::Decision::None)).graph_writes(),
        ["delete deployment audience"],
        "nothing was created but the audience"
    );
}
