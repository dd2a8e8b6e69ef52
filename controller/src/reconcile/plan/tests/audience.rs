//! The audience: blast radius and each wave's devices.

use super::*;

#[test]
fn the_blast_radius_counts_group_devices_less_exclusions() {
    let facts = AudienceFacts {
        members: vec![
            ItemFact::Device("a".into()),
            ItemFact::Group {
                id: "g".into(),
                devices: std::sync::Arc::new(["a".into(), "b".into(), "c".into()].into()),
            },
        ],
        exclusions: vec![ItemFact::Group {
            id: "x".into(),
            devices: std::sync::Arc::new(["c".into()].into()),
        }],
        waves: Vec::new(),
    };
    assert_eq!(
        offered_devices(&facts)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn each_wave_counts_its_own_devices_once_less_exclusions_and_only_sent_waves_are_offered() {
    let group = |id: &str, ids: &[&str]| ItemFact::Group {
        id: id.into(),
        devices: std::sync::Arc::new(ids.iter().map(|d| (*d).into()).collect()),
    };
    let facts = AudienceFacts {
        members: Vec::new(),
        exclusions: vec![ItemFact::Device("x".into())],
        waves: vec![
            vec![group("w1", &["b", "a", "x"]), ItemFact::Device("a".into())],
            vec![group("w2", &["a", "c", "d"]), ItemFact::Waiting("later".into())],
            vec![ItemFact::Device("d".into()), ItemFact::Device("e".into())],
        ],
    };
    let names = |ids: Vec<&DeviceId>| ids.into_iter().map(String::from).collect::<Vec<_>>();
    let per_wave: Vec<Vec<String>> = wave_devices(&facts).into_iter().map(names).collect();
    assert_eq!(per_wave, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    assert_eq!(names(offered_devices(&facts)), ["a", "b", "c", "d", "e"]);
    assert_eq!(
        names(offered_devices_of(&facts, Some(&[true, false, true]))),
        ["a", "b", "d", "e"]
    );
    assert_eq!(names(offered_devices_of(&facts, Some(&[]))), Vec::<String>::new());
}
