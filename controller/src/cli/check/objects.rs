//! The objects: by Ready, Reconciling and Stalled, those this version cannot read (listed raw, decoded
//! one by one), finalizers held while no operator runs, and the connections the caller may read.

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::Check;
use super::Found;
use crate::connections::ConnKey;
use crate::crd::{ClusterGraphConnection, DeviceGroup, ExpeditedDeployment, FINALIZER, GraphConnection};
use crate::reconcile::reasons::Reason;

const GROUP: &str = "cluster";

/// Objects of one kind by where they stand.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Tally {
    pub total: usize,
    pub ready: usize,
    pub reconciling: usize,
    pub stalled: Vec<String>,
    pub undecodable: Vec<String>,
    /// Objects holding the cleanup finalizer, and of them those being deleted.
    pub finalized: usize,
    pub deleting: Vec<String>,
}

fn is_true(obj: &DynamicObject, type_: &str) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

/// Tallies objects as listed (raw, so one this version cannot read is counted, not lost).
pub fn tally<K: serde::de::DeserializeOwned>(items: &[DynamicObject]) -> Tally {
    let mut t = Tally::default();
    for o in items {
        let key = format!(
            "{}/{}",
            o.metadata.namespace.as_deref().unwrap_or(""),
            o.metadata.name.as_deref().unwrap_or("")
        );
        t.total += 1;
        let mut whole = o.data.clone();
        if let Value::Object(m) = &mut whole {
            m.insert(
                "metadata".into(),
                serde_json::to_value(&o.metadata).unwrap_or_default(),
            );
            if let Some(tm) = &o.types {
                m.insert("apiVersion".into(), tm.api_version.clone().into());
                m.insert("kind".into(), tm.kind.clone().into());
            }
        }
        if serde_json::from_value::<K>(whole).is_err() {
            t.undecodable.push(key.clone());
        }
        if is_true(o, crate::reconcile::reasons::READY) {
            t.ready += 1;
        } else if is_true(o, crate::reconcile::reasons::STALLED) {
            t.stalled.push(key.clone());
        } else if is_true(o, crate::reconcile::reasons::RECONCILING) {
            t.reconciling += 1;
        }
        if o.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER) {
            t.finalized += 1;
            if o.metadata.deletion_timestamp.is_some() {
                t.deleting.push(key);
            }
        }
    }
    t
}

fn few(keys: &[String]) -> String {
    let mut s = keys.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if keys.len() > 5 {
        s.push_str(&format!(" and {} more", keys.len() - 5));
    }
    s
}

async fn list_raw<K>(client: &kube::Client) -> Result<Vec<DynamicObject>, kube::Error>
where
    K: kube::Resource<DynamicType = ()>,
{
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    Ok(api.list(&ListParams::default()).await?.items)
}

pub(super) async fn objects(client: &kube::Client, running: bool, found: &mut Found, out: &mut Vec<Check>) {
    let (expd, groups) = futures::join!(
        list_raw::<ExpeditedDeployment>(client),
        list_raw::<DeviceGroup>(client)
    );
    let (expd, groups) = match (expd, groups) {
        (Ok(e), Ok(g)) => (e, g),
        (Err(e), _) | (_, Err(e)) => {
            out.push(Check::warning(
                GROUP,
                "objects",
                format!("the objects could not be listed in every namespace: {e}"),
                Reason::CALLER_PERMISSION_MISSING,
            ));
            return;
        }
    };
    found.entra_groups = groups
        .iter()
        .filter_map(|g| g.data["spec"]["entraGroupId"].as_str().map(str::to_string))
        .collect();
    let tallies = [
        ("ExpeditedDeployments", tally::<ExpeditedDeployment>(&expd)),
        ("DeviceGroups", tally::<DeviceGroup>(&groups)),
    ];
    let describe = |(kind, t): &(&str, Tally)| {
        format!(
            "{} {kind}: {} Ready, {} Reconciling, {} Stalled",
            t.total,
            t.ready,
            t.reconciling,
            t.stalled.len()
        )
    };
    let counts = tallies.iter().map(describe).collect::<Vec<_>>().join("; ");
    let stalled: Vec<String> = tallies.iter().flat_map(|(_, t)| t.stalled.clone()).collect();
    if stalled.is_empty() {
        out.push(Check::ok(GROUP, "objects", counts));
    } else {
        out.push(Check::warning(
            GROUP,
            "objects",
            format!("{counts}; Stalled: {}", few(&stalled)),
            Reason::OBJECTS_STALLED,
        ));
    }
    let undecodable: Vec<String> = tallies.iter().flat_map(|(_, t)| t.undecodable.clone()).collect();
    if undecodable.is_empty() {
        out.push(Check::ok(
            GROUP,
            "objects-readable",
            "this version reads every object",
        ));
    } else {
        out.push(Check::warning(
            GROUP,
            "objects-readable",
            format!("this version cannot read {}", few(&undecodable)),
            Reason::OBJECTS_UNDECODABLE,
        ));
    }
    let finalized: usize = tallies.iter().map(|(_, t)| t.finalized).sum();
    let deleting: Vec<String> = tallies.iter().flat_map(|(_, t)| t.deleting.clone()).collect();
    if finalized == 0 || running {
        out.push(Check::ok(
            GROUP,
            "cleanup-finalizers",
            format!("{finalized} object(s) hold {FINALIZER}; an operator runs to clean them up"),
        ));
    } else {
        out.push(Check::failed(
            GROUP,
            "cleanup-finalizers",
            format!(
                "{finalized} object(s) hold {FINALIZER} while no operator runs{}",
                if deleting.is_empty() {
                    String::new()
                } else {
                    format!("; stuck deleting: {}", few(&deleting))
                }
            ),
            Reason::FINALIZERS_WITHOUT_OPERATOR,
        ));
    }
}

/// The connections the caller may read.
pub(super) async fn connections(client: &kube::Client) -> Vec<ConnKey> {
    let mut keys = Vec::new();
    if let Ok(list) = Api::<GraphConnection>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for c in list.items {
            keys.push(ConnKey::graph(
                c.metadata.namespace.as_deref().unwrap_or(""),
                c.metadata.name.as_deref().unwrap_or(""),
            ));
        }
    }
    if let Ok(list) = Api::<ClusterGraphConnection>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        for c in list.items {
            keys.push(ConnKey::cluster(c.metadata.name.as_deref().unwrap_or("")));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_tallied_raw_and_an_unreadable_one_is_counted() {
        let obj = |name: &str, spec: Value, cond: Option<&str>, finalizer: bool, deleting: bool| {
            let mut v = json!({
                "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
                "metadata": {"name": name, "namespace": "n"},
                "spec": spec,
            });
            if let Some(c) = cond {
                v["status"] = json!({"conditions": [{"type": c, "status": "True", "reason": "X", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
            }
            if finalizer {
                v["metadata"]["finalizers"] = json!([FINALIZER]);
            }
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            serde_json::from_value::<DynamicObject>(v).unwrap()
        };
        let items = [
            obj("a", json!({"devices": []}), Some("Ready"), true, false),
            obj("b", json!({"devices": 7}), Some("Stalled"), true, true),
            obj("c", json!({}), Some("Reconciling"), false, false),
        ];
        let t = tally::<DeviceGroup>(&items);
        assert_eq!(
            t,
            Tally {
                total: 3,
                ready: 1,
                reconciling: 1,
                stalled: vec!["n/b".into()],
                undecodable: vec!["n/b".into()],
                finalized: 2,
                deleting: vec!["n/b".into()],
            }
        );
    }
}
