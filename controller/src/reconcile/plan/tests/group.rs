//! The DeviceGroup planner.

use super::*;

#[test]
fn device_groups_create_fill_and_wait_while_in_use() {
    let group: DeviceGroup = serde_json::from_value(json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
        "metadata": {"name": "ring", "namespace": "n"},
        "spec": {"devices": [dev(1).id, dev(2).id, dev(3).id]},
    }))
    .unwrap();
    let p = plan_group(
        &group,
        &GroupObservation {
            at: chrono::Utc::now(),
            entra: None,
            group: Known::None,
            failed: None,
        },
        &batch(2),
    );
    assert_eq!(p.steps[0], GroupStep::Create);
    assert_eq!(
        p.graph_writes(),
        [
            "create device group",
            "add device group members",
            "add device group members"
        ]
    );
    let mut known = group.clone();
    known.status = Some(crate::crd::DeviceGroupStatus {
        group_id: Some("g".into()),
        ..Default::default()
    });
    let p = plan_group(
        &known,
        &GroupObservation {
            at: chrono::Utc::now(),
            entra: None,
            group: Known::Found(crate::graph::GroupDevices {
                devices: vec![DeviceId::new(&dev(1).id), DeviceId::new(&dev(9).id)],
                errors: Default::default(),
            }),
            failed: None,
        },
        &batch(1000),
    );
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].describe(), "update group devices: +2 -1");
    // One 404 for the group (and its members) is not proof: nothing is created until it has stayed
    // missing for the confirmation time.
    let now = chrono::Utc::now();
    let gone = GroupObservation {
        at: now,
        entra: None,
        group: Known::Missing("g".into()),
        failed: None,
    };
    let first = plan_group(&known, &gone, &batch(1000));
    assert!(
        first.steps.is_empty() && first.notices.is_empty(),
        "{:?}",
        first.steps
    );
    let since = first.missing_since.clone().expect("the first 404 is recorded");
    let End::Report { outcome, .. } = &first.end else {
        panic!("{:?}", first.end)
    };
    assert_eq!(outcome.reason(), Reason::CONFIRMING_ABSENCE);
    let mut still = known.clone();
    still.status.as_mut().unwrap().missing_since = Some(since);
    let confirmed = GroupObservation {
        at: now + chrono::Duration::seconds(121),
        ..gone
    };
    let missing = plan_group(&still, &confirmed, &batch(1000));
    assert_eq!(missing.notices[0].reason, Reason::GROUP_MISSING);
    assert_eq!(missing.steps[0], GroupStep::Create);
    assert!(matches!(
        plan_group_cleanup(&known, vec!["rollout".into()]),
        GroupCleanup::Wait { .. }
    ));
    assert_eq!(
        plan_group_cleanup(&known, vec![]),
        GroupCleanup::Delete { id: Some("g".into()) }
    );
}

proptest! {
    /// A group's read members (a sorted list) against the desired set: the walk in order gives exactly
    /// the set differences.
    #[test]
    fn the_group_diff_walk_gives_the_set_differences(
        desired in proptest::collection::btree_set(0u8..40, 0..30),
        current in proptest::collection::btree_set(0u8..40, 0..30),
    ) {
        let id = |n: &u8| DeviceId::new(&format!("00000000-0000-4000-8000-{n:012}"));
        let desired: BTreeSet<DeviceId> = desired.iter().map(id).collect();
        let current: Vec<DeviceId> = current.iter().map(id).collect::<BTreeSet<_>>().into_iter().collect();
        let held: BTreeSet<DeviceId> = current.iter().cloned().collect();
        let (add, remove) = sorted_diff(&desired, &current);
        prop_assert_eq!(add, desired.difference(&held).cloned().collect::<Vec<_>>());
        prop_assert_eq!(remove, held.difference(&desired).cloned().collect::<Vec<_>>());
    }
}
