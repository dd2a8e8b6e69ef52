//! The planner's specification, by concept: table tests of every decision, and properties of the changes.
//! The fixtures every file builds from are here.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use chrono::Utc;

use super::*;
use crate::crd::{DeviceGroup, DeviceId, ResolvedContent};
use crate::graph::models::{CatalogEntry, Expedite, SettingsPatch};
use crate::graph::{AssetRef, AudienceUpdate, ContentRequest, SettingsRequest};
use crate::reconcile::adopt;
use crate::reconcile::observe::{
    AudienceFacts, CatalogFact, DeployedContent, DeploymentFacts, GroupObservation, ItemFact,
    ObservedDeployment,
};
use crate::reconcile::outcome::Next;
use crate::reconcile::reasons::Reason;

mod audience;
mod blockers;
mod changes;
mod cleanup;
mod content;
mod group;
mod model;
mod properties;
mod rollout;

fn dev(i: u32) -> AssetRef {
    AssetRef::device(format!("00000000-0000-4000-8000-{i:012}"))
}

fn desired() -> Desired {
    Desired {
        release_date: None,
        content: ContentRequest::CatalogEntry("e1".into()),
        settings: SettingsRequest {
            days_until_forced_reboot: Some(2),
            offer_as_optional: None,
            readiness_test: false,
        },
        paused: false,
        members: [dev(1), dev(2), AssetRef::group("g1")].into(),
        exclusions: [dev(3)].into(),
        devices: 2,
        rollout_devices: 2,
        device_limit: None,
        adopted: false,
    }
}

fn observed_of(d: &Desired) -> ObservedDeployment {
    ObservedDeployment {
        id: "d1".into(),
        content: match &d.content {
            ContentRequest::CatalogEntry(id) => DeployedContent::CatalogEntry(id.clone()),
            ContentRequest::ReleaseDate { date, .. } => DeployedContent::ReleaseDate(date.clone()),
        },
        settings: d.settings.clone(),
        ux_unowned: Default::default(),
        legacy: false,
        paused_requested: d.paused,
        members: d.members.clone(),
        exclusions: d.exclusions.clone(),
    }
}

const ENTRY: &str = "e1";

fn object(spec: serde_json::Value, status: Option<serde_json::Value>) -> ExpeditedDeployment {
    let mut o = json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
        "metadata": {"name": "r", "namespace": "n", "uid": "u", "generation": 2},
        "spec": spec,
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    serde_json::from_value(o).unwrap()
}

fn spec(extra: serde_json::Value) -> serde_json::Value {
    let mut s = json!({
        "content": {"latest": true},
        "paused": true,
        "audience": {"members": [{"device": dev(1).id}, {"deviceGroup": "ring"}], "exclusions": [{"device": dev(3).id}]},
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

fn status_with_deployment() -> serde_json::Value {
    json!({"deploymentId": "d1", "observedGeneration": 1, "audience": {"members": 2, "exclusions": 1, "devices": 2},
           "resolvedContent": {"source": "latest", "catalogEntryId": ENTRY}})
}

/// A deployment offering the update (not paused).
fn offering() -> Known<DeploymentFacts> {
    let mut o = observed_of(&desired());
    o.members = [dev(1), AssetRef::group("g1")].into();
    Known::Found(DeploymentFacts {
        observed: o,
        graph_state: Some("offering".into()),
        state_reasons: vec![],
        device_errors: vec![],
        audience_never_listed: false,
        audience_id: None,
    })
}

fn catalog() -> CatalogFact {
    CatalogFact::Recorded(ResolvedContent {
        source: "latest".into(),
        catalog_entry_id: ENTRY.into(),
        display_name: None,
        release_date: None,
        deployable_until: None,
        ..Default::default()
    })
}

fn ready_audience() -> AudienceFacts {
    AudienceFacts {
        members: vec![
            ItemFact::Device(dev(1).id.into()),
            ItemFact::Group {
                id: "g1".into(),
                devices: std::sync::Arc::new([dev(5).id.into(), dev(6).id.into()].into()),
            },
        ],
        exclusions: vec![ItemFact::Device(dev(3).id.into())],
        waves: Vec::new(),
    }
}

fn observation(deployment: Known<DeploymentFacts>) -> Observation {
    Observation {
        at: chrono::Utc::now(),
        adoption: None,
        deployment,
        audience: Some(ready_audience()),
        content: Some(catalog()),
        failed: None,
    }
}

fn pause() -> Step {
    Step::SetPaused {
        target: Target::Existing("d1".into()),
        paused: true,
    }
}

/// One catalog entry for the intent table: short name, date, classification, cadence, severity, CVEs.
fn intent_entry(
    short: &str,
    date: &str,
    class: &str,
    cadence: &str,
    severity: &str,
    cves: &[&str],
) -> CatalogEntry {
    serde_json::from_value(json!({
        "@odata.type": "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry",
        "id": format!("id-{short}"), "shortName": short, "isExpeditable": true,
        "releaseDateTime": format!("{date}T00:00:00Z"), "qualityUpdateClassification": class,
        "qualityUpdateCadence": cadence,
        "cveSeverityInformation": {"maxSeverity": severity, "maxBaseScore": 8.1,
            "exploitedCves": cves.iter().map(|c| json!({"number": c, "url": format!("https://msrc.microsoft.com/{c}")})).collect::<Vec<_>>()},
    }))
    .unwrap()
}

fn batch(batch_size: usize) -> PlanConfig {
    PlanConfig {
        batch_size,
        ..Default::default()
    }
}

fn expired() -> CatalogFact {
    let CatalogFact::Recorded(mut r) = catalog() else {
        unreachable!()
    };
    r.deployable_until = Some("2026-01-01T00:00:00Z".into());
    CatalogFact::Recorded(r)
}

/// `spec()` with its members moved into two waves (the second gated), for rollout tests.
fn wave_spec(extra: serde_json::Value) -> serde_json::Value {
    let mut s = spec(json!({"paused": false}));
    let members = s["audience"]["members"].take();
    s["audience"] = json!({"exclusions": s["audience"]["exclusions"].clone()});
    s["rollout"] = json!({"waves": [
        {"name": "pilot", "members": members},
        {"name": "broad", "members": [{"device": dev(7).id}], "gate": {"wait": "1h", "maxFailedPercent": 10}},
    ]});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// `ready_audience()` in waves: the pilot holds its members, broad one more device.
fn wave_audience() -> AudienceFacts {
    let mut a = ready_audience();
    a.waves = vec![
        std::mem::take(&mut a.members),
        vec![ItemFact::Device(dev(7).id.into())],
    ];
    a
}
