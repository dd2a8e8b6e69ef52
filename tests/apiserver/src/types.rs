//! Served resource types and the discovery documents built from them.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

/// One served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `status` subresource (status isolation and generation rules apply).
    pub status: bool,
    /// `additionalPrinterColumns` of a CRD version, for Table output.
    pub printer_columns: Vec<Value>,
    /// The version's `openAPIV3Schema` (list types for field ownership); `None` for built-in types.
    /// Shared: every request resolves its type, and a copy of a large schema per request would cost
    /// more than the request.
    pub schema: Option<Arc<Value>>,
    /// The schema field ownership follows, made from `schema` on first use (see `view_schema`).
    pub view: OnceLock<Arc<Value>>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The schema the owned view of an object follows: the CRD's, with `metadata.finalizers` as a set.
    pub fn view_schema(&self) -> &Value {
        self.view.get_or_init(|| {
            let mut schema = self.schema.as_deref().cloned().unwrap_or_else(|| json!({}));
            schema["properties"]["metadata"] =
                json!({"properties": {"finalizers": {"x-kubernetes-list-type": "set"}}});
            Arc::new(schema)
        })
    }

    /// `plural.group` (or `plural` for the core group), as error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            status: false,
            printer_columns: Vec::new(),
            schema: None,
            view: OnceLock::new(),
        }
    }

    /// The types every server has that the tests use: namespaces, secrets, events, leases, CRDs, and what
    /// a Helm release of the chart creates.
    pub fn builtins() -> Vec<ResourceType> {
        vec![
            Self::builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
            Self::builtin("", "v1", "secrets", "Secret", true, &[]),
            Self::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
            Self::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
            // What a Helm release of the chart creates: stored as sent, nothing runs them.
            Self::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
            Self::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
            Self::builtin("", "v1", "services", "Service", true, &["svc"]),
            Self::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
            Self::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
                &[],
            ),
            Self::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                &[],
            ),
            Self::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]),
            Self::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
                &[],
            ),
            Self::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
            ),
        ]
    }

    /// The served versions of a CRD object.
    pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
        let spec = crd.get("spec").ok_or("the CRD has no spec")?;
        let group = spec["group"].as_str().ok_or("spec.group is required")?;
        let names = &spec["names"];
        let plural = names["plural"].as_str().ok_or("spec.names.plural is required")?;
        let kind = names["kind"].as_str().ok_or("spec.names.kind is required")?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let versions = spec["versions"].as_array().ok_or("spec.versions is required")?;
        Ok(versions
            .iter()
            .filter(|v| v["served"] != false)
            .filter_map(|v| {
                Some(ResourceType {
                    group: group.into(),
                    version: v["name"].as_str()?.into(),
                    plural: plural.into(),
                    singular: names["singular"]
                        .as_str()
                        .map_or_else(|| kind.to_lowercase(), str::to_string),
                    kind: kind.into(),
                    namespaced: spec["scope"] != "Cluster",
                    short_names: strings(&names["shortNames"]),
                    categories: strings(&names["categories"]),
                    status: v.pointer("/subresources/status").is_some(),
                    printer_columns: v["additionalPrinterColumns"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
                    view: OnceLock::new(),
                })
            })
            .collect())
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "get",
    "list",
    "patch",
    "update",
    "watch",
    "deletecollection",
];

/// `/api`.
pub fn api_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

/// `/apis`.
pub fn api_group_list(types: &[ResourceType]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) if !versions.contains(&t.version) => versions.push(t.version.clone()),
            Some(_) => {}
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/G/V`.
pub fn api_resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let matching: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in &matching {
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": VERBS, "shortNames": t.short_names, "categories": t.categories,
        }));
        if t.status {
            resources.push(json!({"name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": matching[0].api_version(), "resources": resources}),
    )
}
