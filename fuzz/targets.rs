//! The fuzz targets: every parser and decision that takes what a user (or a peer) writes. Each takes
//! raw bytes, must never panic, and checks what it can of its result. Shared by the AFL++ binaries
//! (`fuzz/src/bin`, `make fuzz`) and the corpus replay test (`controller/tests/fuzz_corpus.rs`, `make
//! test`), which runs every corpus input and every crash found.

use std::collections::BTreeMap;

use wufb_operator::crd::annotations::{self, Interval, Request};
use wufb_operator::crd::duration::{self, Bounds};

/// A target's body.
pub type Target = fn(&[u8]);

/// The targets by name (the corpus directory and the binary have the same name).
pub const TARGETS: &[(&str, Target)] = &[
    ("duration", duration),
    ("annotations", annotation_values),
    ("manifest", manifest),
    ("secret", secret),
    ("decode", decode),
    ("odata", odata),
    ("label_selector", label_selector),
];

/// The duration grammar against every bound.
pub fn duration(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for b in [
        duration::RESYNC,
        duration::PROGRESS,
        duration::CATALOG_POLL,
        duration::GATE_WAIT,
        Bounds::secs(0, u64::MAX),
    ] {
        if let Ok(d) = b.parse(s) {
            assert!(d >= b.min && d <= b.max, "{s:?} parsed to {d:?} outside {b:?}");
        }
    }
}

/// Annotations: lines of `key=value`; every value is used within its bounds or refused by name, and a
/// refusal never quotes more than 80 characters nor an invisible one.
pub fn annotation_values(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let keys = [
        annotations::RESYNC,
        annotations::PROGRESS,
        annotations::CATALOG_POLL,
        annotations::PROMOTE,
        annotations::ABORT,
        annotations::RETRY,
        annotations::RECONCILE_REQUESTED,
    ];
    let map: BTreeMap<String, String> = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let (k, v) = line.split_once('=').unwrap_or(("", line));
            let key = if k.is_empty() { keys[i % keys.len()] } else { k };
            (key.to_string(), v.to_string())
        })
        .collect();
    for which in [Interval::Resync, Interval::Progress, Interval::CatalogPoll] {
        if let Some(d) = annotations::interval(Some(&map), which) {
            assert!(d >= which.bounds().min && d <= which.bounds().max);
        }
    }
    for which in [Request::Promote, Request::Abort, Request::Retry] {
        let _ = annotations::request(Some(&map), which);
    }
    for i in annotations::ignored(Some(&map)) {
        assert!(i.value.chars().count() <= 81);
        assert!(!i.value.chars().any(wufb_operator::crd::validate::is_invisible));
    }
}

/// `wufb-operator validate` on any text: YAML, the schema check, every rule and annotation.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (docs, errors) = wufb_operator::cli::manifests::parse("fuzz.yaml", &text);
    for e in &errors {
        assert!(e.message.len() < 100_000);
    }
    for f in wufb_operator::cli::validate::check(&docs) {
        assert!(f.to_string().len() < 100_000, "an unbounded finding");
    }
}

/// A connection's Secret: `key\0value` pairs separated by `\0\0`.
pub fn secret(data: &[u8]) {
    let mut map = BTreeMap::new();
    for pair in data.split(|b| *b == 0xfe) {
        let mut parts = pair.splitn(2, |b| *b == 0);
        let key = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        map.insert(key, parts.next().unwrap_or_default().to_vec());
    }
    let _ = wufb_operator::graph::Credential::for_connection("t", "c", &map);
    let _ = wufb_operator::graph::Credential::from_secret_data(&map);
}

/// An ExpeditedDeployment and a DeviceGroup as a watch delivers them: decoded, or held apart with the
/// field named.
pub fn decode(data: &[u8]) {
    use wufb_operator::crd::{DeviceGroup, ExpeditedDeployment};
    use wufb_operator::runtime::decode::Decoded;
    if let Ok(d) = serde_json::from_slice::<Decoded<ExpeditedDeployment>>(data)
        && let Ok(obj) = &d.object
    {
        let _ = wufb_operator::crd::validate::expedited_deployment(&obj.spec);
        let _ = wufb_operator::crd::annotations::ignored(obj.metadata.annotations.as_ref());
    }
    if let Ok(d) = serde_json::from_slice::<Decoded<DeviceGroup>>(data)
        && let Ok(obj) = &d.object
    {
        let _ = wufb_operator::crd::validate::device_group(&obj.spec);
    }
}

/// The emulator's OData query options (`$filter` and the rest), as a request carries them.
pub fn odata(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = wufb_graph_emulator::odata::parse_filter(s);
    let _ = wufb_graph_emulator::odata::Query::parse(Some(s));
}

/// The test API server's label and field selectors.
pub fn label_selector(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = wufb_test_apiserver::store::parse_label_selector(s);
    let _ = wufb_test_apiserver::store::parse_field_selector(s);
}
