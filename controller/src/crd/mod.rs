//! The API: `ExpeditedDeployment`, `DeviceGroup`, `GraphConnection` and `ClusterGraphConnection`
//! (`wufb.dev/v1alpha1`). The only place the API shape is defined; `crds/` and the chart are generated
//! from these types.

pub mod annotations;
pub mod audience_item;
pub mod device_group;
pub mod device_id;
pub mod duration;
pub mod expedited_deployment;
pub mod graph_connection;
pub mod schema;
pub mod text;
pub mod validate;

pub use audience_item::{AudienceItem, AudienceItemFields};
pub use device_group::{DeviceGroup, DeviceGroupSpec, DeviceGroupStatus};
pub use device_id::DeviceId;
pub use expedited_deployment::*;
pub use graph_connection::{
    ClusterGraphConnection, ClusterGraphConnectionSpec, ConnectionKind, ConnectionRef, ConnectionSpec,
    GraphConnection, GraphConnectionSpec, GraphConnectionStatus, ServiceBehaviour,
};

use kube::CustomResourceExt;

/// The finalizer that guards Graph cleanup.
pub const FINALIZER: &str = "wufb.dev/cleanup";

/// The oldest Kubernetes (major, minor) the CRDs work on: CEL validation rules are GA from 1.29 and CRD
/// validation ratcheting (an upgraded schema never refuses an unchanged field stored under the old one)
/// is on by default from 1.30 (KEP-4008: beta 1.30, GA 1.33). The chart's `kubeVersion`, the README and
/// the test API server's `/version` agree with it (a test keeps them so).
pub const MIN_KUBERNETES: (u32, u32) = (1, 30);
pub use annotations::{
    ABORT as ABORT_ANNOTATION, CATALOG_POLL as CATALOG_POLL_ANNOTATION, PROGRESS as PROGRESS_ANNOTATION,
    PROMOTE as PROMOTE_ANNOTATION, RECONCILE_REQUESTED as RECONCILE_REQUESTED_ANNOTATION,
    RESYNC as RESYNC_ANNOTATION, RETRY as RETRY_ANNOTATION,
};

type Crd = k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD of the operator, in a stable order, as published (descriptions reflowed).
pub fn all() -> Vec<Crd> {
    vec![
        published(ExpeditedDeployment::crd()),
        published(DeviceGroup::crd()),
        published(GraphConnection::crd()),
        published(ClusterGraphConnection::crd()),
    ]
}

/// The CRDs as YAML documents, in a stable order.
pub fn crd_yaml() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    let names = [
        "expediteddeployments.wufb.dev.yaml",
        "devicegroups.wufb.dev.yaml",
        "graphconnections.wufb.dev.yaml",
        "clustergraphconnections.wufb.dev.yaml",
    ];
    names
        .into_iter()
        .zip(all())
        .map(|(name, crd)| Ok((name, serde_yaml::to_string(&crd)?)))
        .collect()
}

/// A CRD with every schema description reflowed: the doc comments' line breaks inside a paragraph
/// become spaces, so `kubectl explain` wraps the text to the terminal; paragraph breaks and list
/// items stay.
fn published(crd: Crd) -> Crd {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    match child {
                        serde_json::Value::String(text) if k == "description" => *text = reflow(text),
                        _ => walk(child),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

/// `text` with each single line break joined into a space, unless the next line starts a list item.
pub fn reflow(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        let Some(next) = lines.get(i + 1) else { break };
        let item = |l: &str| {
            let l = l.trim_start();
            l.starts_with("- ")
                || l.starts_with("* ")
                || l.split_once(". ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        };
        if line.is_empty() || next.is_empty() || item(next) {
            out.push('\n');
        } else {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_reflowed_so_kubectl_explain_wraps_them() {
        assert_eq!(reflow("one\ntwo\n\nthree"), "one two\n\nthree");
        assert_eq!(reflow("ways:\n- a\n- b\n1. c"), "ways:\n- a\n- b\n1. c");
        let yaml: String = crd_yaml().unwrap().into_iter().map(|(_, y)| y).collect();
        let crds: Vec<serde_json::Value> = all().iter().map(|c| serde_json::to_value(c).unwrap()).collect();
        fn broken(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, c) in m {
                        match c {
                            serde_json::Value::String(t) if k == "description" => {
                                if reflow(t) != *t {
                                    out.push(t.clone());
                                }
                            }
                            _ => broken(c, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|c| broken(c, out)),
                _ => {}
            }
        }
        let mut left = Vec::new();
        crds.iter().for_each(|c| broken(c, &mut left));
        assert!(left.is_empty(), "descriptions with hard line breaks: {left:#?}");
        // The doc comments do break lines, so the reflow is what removed them.
        let raw = serde_json::to_value(ExpeditedDeployment::crd())
            .unwrap()
            .to_string();
        assert!(raw.contains("own\\ncredentials"), "the source has hard breaks");
        assert!(
            yaml.contains("own credentials. A GraphConnection"),
            "the published CRD does not"
        );
    }
}
