//! The OpenAPI v3 documents kubectl reads. `/openapi/v3` lists one document per served group-version;
//! each holds the types' schemas (a CRD's `openAPIV3Schema`, with its group-version-kind) and their
//! paths, whose write operations declare `fieldValidation`. With them kubectl leaves field validation to
//! the server (`kubectl apply` needs no `--validate=false`, and sends `fieldValidation=Strict`), and
//! `kubectl explain` works for the CRDs.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::types::ResourceType;

/// `api/v1` or `apis/GROUP/VERSION`: a document's key in the root listing.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The component name of a type, as Kubernetes names them (`dev.wufb.v1alpha1.ExpeditedDeployment`).
fn component(t: &ResourceType) -> String {
    let prefix = if t.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        t.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{prefix}.{}.{}", t.version, t.kind)
}

fn gvk(t: &ResourceType) -> Value {
    json!({"group": t.group, "version": t.version, "kind": t.kind})
}

fn document(types: &[&ResourceType], group: &str, version: &str) -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for t in types {
        let name = component(t);
        let mut schema = t
            .schema
            .as_deref()
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        schema["x-kubernetes-group-version-kind"] = json!([gvk(t)]);
        schemas.insert(name.clone(), schema);
        let reply = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}});
        let write_params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "description": "Ignore, Warn or Strict: what to do with unknown or duplicate fields.", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let op = |action: &str, params: &Value| {
            json!({
                "operationId": format!("{action}{}", t.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk(t),
                "parameters": params,
                "responses": reply,
            })
        };
        let base = format!(
            "/{}{}",
            gv_path(group, version),
            if t.namespaced {
                "/namespaces/{namespace}"
            } else {
                ""
            }
        );
        let mut item = json!({
            "get": op("get", &json!([])),
            "put": op("put", &write_params),
            "patch": op("patch", &write_params),
            "delete": op("delete", &json!([])),
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}],
        });
        let mut collection = json!({
            "get": op("list", &json!([])),
            "post": op("post", &write_params),
            "parameters": [],
        });
        if t.namespaced {
            let ns = json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
            for params in [&mut item["parameters"], &mut collection["parameters"]] {
                if let Some(p) = params.as_array_mut() {
                    p.push(ns.clone());
                }
            }
        }
        paths.insert(format!("{base}/{}/{{name}}", t.plural), item);
        paths.insert(format!("{base}/{}", t.plural), collection);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn hash(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

fn group_versions(types: &[ResourceType]) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = types
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

/// `GET /openapi/v3`: every group-version's document, by path, with a content hash.
pub fn root(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(types) {
        let doc = group_version(types, &g, &v).unwrap_or(Value::Null);
        paths.insert(
            gv_path(&g, &v),
            json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", gv_path(&g, &v), hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`.
pub fn group_version(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    (!served.is_empty()).then(|| document(&served, group, version))
}
