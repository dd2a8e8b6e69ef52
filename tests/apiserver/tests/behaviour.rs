//! Every behaviour of the test API server, over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use wufb_test_apiserver::{Options, TestApiServer};

const ED: &str = "/apis/wufb.dev/v1alpha1/namespaces/ns1/expediteddeployments";

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "expediteddeployments.wufb.dev"},
        "spec": {"group": "wufb.dev", "scope": "Namespaced",
                 "names": {"plural": "expediteddeployments", "singular": "expediteddeployment", "kind": "ExpeditedDeployment", "shortNames": ["expd"], "categories": ["wufb"]},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                               "additionalPrinterColumns": [
                                   {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                                   {"name": "Graph", "type": "string", "jsonPath": ".status.graphState"},
                                   {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}
    })
}

struct Ctx {
    server: TestApiServer,
    http: reqwest::Client,
}

impl Ctx {
    async fn new() -> Ctx {
        Self::with(Options {
            crds: vec![crd()],
            ..Default::default()
        })
        .await
    }

    async fn with(options: Options) -> Ctx {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ctx {
            server: TestApiServer::start(options).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn req(&self, method: &str, path: &str, content_type: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.server.url(), path));
        if let Some(b) = body {
            r = r.header("content-type", content_type).body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.req("GET", path, "", None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req("POST", path, "application/json", Some(body)).await
    }

    async fn patch(&self, path: &str, kind: &str, body: Value) -> (u16, Value) {
        self.req("PATCH", path, kind, Some(body)).await
    }

    async fn create(&self, name: &str) -> Value {
        let (code, o) = self.post(ED, json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "metadata": {"name": name}, "spec": {"paused": false}})).await;
        assert_eq!(code, 201, "{o}");
        o
    }

    /// Reads watch events until `n` arrived or the stream ended.
    async fn watch(&self, query: &str, n: usize) -> Vec<Value> {
        let mut resp = self
            .http
            .get(format!("{}{ED}?watch=true&{query}", self.server.url()))
            .send()
            .await
            .unwrap();
        let mut buf = String::new();
        let mut events = Vec::new();
        while events.len() < n {
            match tokio::time::timeout(std::time::Duration::from_secs(3), resp.chunk()).await {
                Ok(Ok(Some(c))) => {
                    buf.push_str(&String::from_utf8_lossy(&c));
                    while let Some(i) = buf.find('\n') {
                        events.push(serde_json::from_str(&buf[..i]).unwrap());
                        buf.drain(..=i);
                    }
                }
                _ => break,
            }
        }
        events
    }
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn discovery() {
    let c = Ctx::new().await;
    assert_eq!(c.get("/version").await.1["major"], "1");
    assert_eq!(c.get("/api").await.1["versions"], json!(["v1"]));
    let groups = c.get("/apis").await.1;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "wufb.dev",
        "events.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
    let list = c.get("/apis/wufb.dev/v1alpha1").await.1;
    let res: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(res, ["expediteddeployments", "expediteddeployments/status"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["expd"]));
    let core = c.get("/api/v1").await.1;
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "namespaces" && r["shortNames"] == json!(["ns"]))
    );
    // OpenAPI v3, as kubectl reads it: a document per group-version whose writes take fieldValidation.
    let (code, root) = c.get("/openapi/v3").await;
    assert_eq!(code, 200);
    let url = root["paths"]["apis/wufb.dev/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with("/openapi/v3/apis/wufb.dev/v1alpha1?hash="),
        "{url}"
    );
    let (code, doc) = c.get(&url).await;
    assert_eq!(code, 200);
    let schema = &doc["components"]["schemas"]["dev.wufb.v1alpha1.ExpeditedDeployment"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"],
        "ExpeditedDeployment"
    );
    let patch =
        &doc["paths"]["/apis/wufb.dev/v1alpha1/namespaces/{namespace}/expediteddeployments/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"),
        "{patch}"
    );
    assert_eq!(c.get("/openapi/v3/apis/nope.dev/v1").await.0, 404);
    assert_eq!(c.get("/apis/nope.dev/v1").await.0, 404);
}

#[tokio::test]
async fn create_get_list_and_error_reasons() {
    let c = Ctx::new().await;
    let o = c.create("a").await;
    assert_eq!(o["metadata"]["generation"], 1);
    assert!(o["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(o["metadata"]["creationTimestamp"].is_string());
    assert_eq!(o["metadata"]["namespace"], "ns1");
    c.create("b").await;
    let (code, dup) = c.post(ED, json!({"metadata": {"name": "a"}})).await;
    assert_eq!((code, dup["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, missing) = c.get(&format!("{ED}/zzz")).await;
    assert_eq!(
        (code, missing["reason"].as_str(), missing["kind"].as_str()),
        (404, Some("NotFound"), Some("Status"))
    );
    assert_eq!(
        missing["message"],
        "expediteddeployments.wufb.dev \"zzz\" not found"
    );
    let (_, list) = c.get(&format!("{ED}?limit=500")).await;
    assert_eq!(list["kind"], "ExpeditedDeploymentList");
    assert_eq!(list["apiVersion"], "wufb.dev/v1alpha1");
    assert!(!list["metadata"]["resourceVersion"].as_str().unwrap().is_empty());
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        c.get("/apis/wufb.dev/v1alpha1/expediteddeployments").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "all namespaces"
    );
    let (_, one) = c.get(&format!("{ED}?fieldSelector=metadata.name%3Db")).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.get(&format!("{ED}?fieldSelector=spec.paused%3Dtrue")).await.0,
        400
    );
    let (code, bad) = c
        .req("POST", ED, "application/json", Some(json!("not json object")))
        .await;
    assert_eq!((code, bad["reason"].as_str()), (400, Some("BadRequest")));
    let (code, e) = c
        .patch(
            &format!("{ED}/a"),
            "application/strategic-merge-patch+json",
            json!({}),
        )
        .await;
    assert_eq!((code, e["reason"].as_str()), (415, Some("UnsupportedMediaType")));
}

#[tokio::test]
async fn generation_and_status_isolation() {
    let c = Ctx::new().await;
    c.create("a").await;
    let path = format!("{ED}/a");
    let (_, o) = c
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"x": "1"}}}),
        )
        .await;
    assert_eq!(
        o["metadata"]["generation"], 1,
        "metadata-only writes keep the generation"
    );
    let (_, o) = c
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"spec": {"paused": true}, "status": {"graphState": "ignored"}}),
        )
        .await;
    assert_eq!(o["metadata"]["generation"], 2);
    assert!(o.get("status").is_none(), "main-resource writes ignore status");
    let before = rv(&o);
    let (_, s) = c
        .patch(
            &format!("{path}/status"),
            "application/merge-patch+json",
            json!({"status": {"graphState": "offering"}, "spec": {"paused": false}}),
        )
        .await;
    assert_eq!(s["status"]["graphState"], "offering");
    assert_eq!(s["spec"]["paused"], true, "status writes ignore spec");
    assert_eq!(s["metadata"]["generation"], 2);
    assert!(rv(&s) > before);
    // A write that changes nothing keeps the resourceVersion.
    let (_, same) = c
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"spec": {"paused": true}}),
        )
        .await;
    assert_eq!(rv(&same), rv(&s));
    let (_, got) = c.get(&format!("{path}/status")).await;
    assert_eq!(got["status"]["graphState"], "offering");
}

#[tokio::test]
async fn patch_types_and_conflicts() {
    let c = Ctx::new().await;
    let o = c.create("a").await;
    let path = format!("{ED}/a");
    // kube's finalizer(): a `test` for null on an absent path passes.
    let (code, f) = c
        .patch(&path, "application/json-patch+json", json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["wufb.dev/cleanup"]}]))
        .await;
    assert_eq!(code, 200, "{f}");
    assert_eq!(f["metadata"]["finalizers"], json!(["wufb.dev/cleanup"]));
    let (code, _) = c
        .patch(
            &path,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
        )
        .await;
    assert_eq!(code, 422, "the null test fails on a present path");
    let (code, e) = c.patch(&path, "application/merge-patch+json", json!({"metadata": {"resourceVersion": o["metadata"]["resourceVersion"]}, "spec": {"paused": true}})).await;
    assert_eq!(
        (code, e["reason"].as_str()),
        (409, Some("Conflict")),
        "stale resourceVersion"
    );
    let (code, put) = c
        .req(
            "PUT",
            &path,
            "application/json",
            Some(json!({"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {}})),
        )
        .await;
    assert_eq!((code, put["reason"].as_str()), (409, Some("Conflict")));
    // Server-side apply upserts.
    let (code, applied) = c
        .patch(&format!("{ED}/new?fieldManager=kubectl&force=false"), "application/apply-patch+yaml", json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "metadata": {"name": "new"}, "spec": {"paused": true}}))
        .await;
    assert_eq!((code, applied["metadata"]["generation"].as_i64()), (200, Some(1)));
    let (_, applied) = c
        .patch(
            &format!("{ED}/new?fieldManager=kubectl"),
            "application/apply-patch+yaml",
            json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "spec": {"paused": false}}),
        )
        .await;
    assert_eq!(applied["metadata"]["generation"], 2);
    let (code, _) = c
        .patch(
            &format!("{ED}/missing"),
            "application/merge-patch+json",
            json!({"spec": {}}),
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn finalizer_aware_delete() {
    let c = Ctx::new().await;
    c.create("a").await;
    let path = format!("{ED}/a");
    c.patch(
        &path,
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": ["wufb.dev/cleanup"]}}),
    )
    .await;
    let (code, d) = c
        .req(
            "DELETE",
            &path,
            "application/json",
            Some(json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(code, 200);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(d["metadata"]["generation"], 2, "deletion bumps the generation");
    let (_, again) = c.req("DELETE", &path, "", None).await;
    assert_eq!(
        again["metadata"]["deletionTimestamp"], d["metadata"]["deletionTimestamp"],
        "immutable once set"
    );
    let (code, e) = c
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["wufb.dev/cleanup", "other"]}}),
        )
        .await;
    assert_eq!(
        (code, e["reason"].as_str()),
        (422, Some("Invalid")),
        "no new finalizers while deleting"
    );
    let (code, _) = c
        .patch(
            &path,
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        c.get(&path).await.0,
        404,
        "gone once the last finalizer is removed"
    );
    c.create("b").await;
    assert_eq!(c.req("DELETE", &format!("{ED}/b"), "", None).await.0, 200);
    assert_eq!(c.get(&format!("{ED}/b")).await.0, 404);
    assert_eq!(c.req("DELETE", &format!("{ED}/b"), "", None).await.0, 404);
}

#[tokio::test]
async fn watch_replays_streams_and_expires() {
    let c = Ctx::new().await;
    let a = c.create("a").await;
    let from = rv(&a);
    c.create("b").await;
    c.patch(
        &format!("{ED}/a"),
        "application/merge-patch+json",
        json!({"spec": {"paused": true}}),
    )
    .await;
    let events = c
        .watch(&format!("resourceVersion={from}&timeoutSeconds=2"), 2)
        .await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("ADDED", "b"), ("MODIFIED", "a")]);
    assert!(
        events
            .iter()
            .all(|e| e["object"]["metadata"]["resourceVersion"].is_string())
    );
    // Without a resourceVersion: the current objects as ADDED.
    let events = c
        .watch("timeoutSeconds=1&fieldSelector=metadata.name%3Da", 5)
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ADDED");
    // Live events, filtered by field selector.
    let url = format!(
        "{}{ED}?watch=true&resourceVersion={}&fieldSelector=metadata.name%3Db&timeoutSeconds=3",
        c.server.url(),
        c.get(ED).await.1["metadata"]["resourceVersion"].as_str().unwrap()
    );
    let watcher = tokio::spawn({
        let http = c.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    c.patch(
        &format!("{ED}/a"),
        "application/merge-patch+json",
        json!({"spec": {"paused": false}}),
    )
    .await;
    c.req("DELETE", &format!("{ED}/b"), "", None).await;
    let body = watcher.await.unwrap();
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "only b's event: {body}");
    assert_eq!(lines[0]["type"], "DELETED");
    // Resuming from before the retained history: 410 Expired, then the stream ends.
    c.server.compact();
    let events = c.watch(&format!("resourceVersion={from}"), 5).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn bounded_history_expires_old_versions() {
    let c = Ctx::with(Options {
        crds: vec![crd()],
        history: 3,
        ..Default::default()
    })
    .await;
    let first = c.create("a").await;
    for n in ["b", "c", "d", "e"] {
        c.create(n).await;
    }
    let events = c.watch(&format!("resourceVersion={}", rv(&first)), 2).await;
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn events_leases_secrets_and_namespaces() {
    let c = Ctx::new().await;
    let (code, _) = c
        .post(
            "/apis/events.k8s.io/v1/namespaces/ns1/events",
            json!({"metadata": {"name": "e1"}, "reason": "Created", "note": "hello"}),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = c
        .patch(
            "/apis/events.k8s.io/v1/namespaces/ns1/events/e1",
            "application/merge-patch+json",
            json!({"series": {"count": 2}}),
        )
        .await;
    assert_eq!(code, 200);
    let (_, evs) = c.get("/apis/events.k8s.io/v1/namespaces/ns1/events").await;
    assert_eq!(evs["items"][0]["series"]["count"], 2);
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/l";
    assert_eq!(c.get(lease_path).await.0, 404);
    let (_, lease) = c
        .post(
            "/apis/coordination.k8s.io/v1/namespaces/ns1/leases",
            json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}),
        )
        .await;
    let mut taken = lease.clone();
    taken["spec"]["holderIdentity"] = json!("b");
    assert_eq!(
        c.req("PUT", lease_path, "application/json", Some(taken.clone()))
            .await
            .0,
        200
    );
    assert_eq!(
        c.req("PUT", lease_path, "application/json", Some(taken)).await.0,
        409,
        "the old resourceVersion lost the race"
    );
    assert_eq!(
        c.post(
            "/api/v1/namespaces/ns1/secrets",
            json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}})
        )
        .await
        .0,
        201
    );
    // stringData is write-only: it lands in data, base64, beside what data held, on create and patch.
    let (code, s) = c
        .post(
            "/api/v1/namespaces/ns1/secrets",
            json!({"metadata": {"name": "s2"}, "data": {"a": "YQ=="}, "stringData": {"b": "b-value"}}),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(s["data"], json!({"a": "YQ==", "b": "Yi12YWx1ZQ=="}));
    assert!(s.get("stringData").is_none(), "{s}");
    let (code, s) = c
        .patch(
            "/api/v1/namespaces/ns1/secrets/s2",
            "application/merge-patch+json",
            json!({"stringData": {"b": "rotated"}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s["data"]["b"], "cm90YXRlZA==");
    assert!(s.get("stringData").is_none(), "{s}");
    assert_eq!(
        c.post("/api/v1/namespaces", json!({"metadata": {"name": "team-a"}}))
            .await
            .0,
        201
    );
    let (_, ns) = c.get("/api/v1/namespaces/team-a").await;
    assert!(ns["metadata"].get("namespace").is_none());
}

#[tokio::test]
async fn crds_registered_by_post_are_served_at_once() {
    let c = Ctx::with(Options::default()).await;
    assert_eq!(c.get(ED).await.0, 404);
    let (code, _) = c
        .post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd())
        .await;
    assert_eq!(code, 201);
    assert_eq!(c.get(ED).await.0, 200);
    assert_eq!(c.get("/apis/wufb.dev/v1alpha1").await.0, 200);
}

#[tokio::test]
async fn table_output_uses_printer_columns() {
    let c = Ctx::new().await;
    c.create("a").await;
    c.patch(
        &format!("{ED}/a/status"),
        "application/merge-patch+json",
        json!({"status": {"graphState": "paused", "conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .await;
    let resp = c
        .http
        .get(format!("{}{ED}", c.server.url()))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Ready", "Graph", "Age"]);
    let cells = &t["rows"][0]["cells"];
    assert_eq!(
        (cells[0].as_str(), cells[1].as_str(), cells[2].as_str()),
        (Some("a"), Some("True"), Some("paused"))
    );
    assert!(cells[3].as_str().unwrap().ends_with('s'));
}

// ----- what a real server refuses and keeps ----------------------------------------------------------

/// The CRD with a schema: conditions are a map list keyed by type, tags a set.
fn crd_with_schema() -> Value {
    let mut c = crd();
    c["spec"]["versions"][0]["schema"] = json!({"openAPIV3Schema": {"type": "object", "properties": {
    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
        "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"], "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
    }}}}});
    c
}

async fn schema_ctx() -> Ctx {
    Ctx::with(Options {
        crds: vec![crd_with_schema()],
        ..Default::default()
    })
    .await
}

const APPLY: &str = "application/apply-patch+yaml";

fn status_apply(status: Value) -> Value {
    json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "status": status})
}

#[tokio::test]
async fn server_side_apply_removes_what_a_manager_stops_applying_and_keeps_what_others_own() {
    let c = schema_ctx().await;
    c.create("a").await;
    let status = format!("{ED}/a/status?fieldManager=op&force=true");
    let (code, o) = c
        .patch(
            &status,
            APPLY,
            status_apply(
                json!({"graphState": "offering", "deviceErrors": [{"id": "x"}], "deploymentId": "d1"}),
            ),
        )
        .await;
    assert_eq!(code, 200, "{o}");
    // The same manager sets deploymentId again by merge: its Update entry co-owns the field.
    let (_, _) = c
        .patch(
            &format!("{ED}/a/status?fieldManager=op"),
            "application/merge-patch+json",
            json!({"status": {"deploymentId": "d2"}}),
        )
        .await;
    let (_, o) = c
        .patch(&status, APPLY, status_apply(json!({"graphState": "paused"})))
        .await;
    assert!(
        o["status"].get("deviceErrors").is_none(),
        "dropped by its only owner: {o}"
    );
    assert_eq!(
        o["status"]["deploymentId"], "d2",
        "kept: the Update entry owns it"
    );
    assert_eq!(o["status"]["graphState"], "paused");
    let managers: Vec<(String, String)> = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().into(),
                e["operation"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(managers.contains(&("op".into(), "Apply".into())), "{managers:?}");
    assert!(managers.contains(&("op".into(), "Update".into())), "{managers:?}");
    // Map lists merge by key: another manager's condition stays.
    c.patch(
        &format!("{ED}/a/status?fieldManager=admin"),
        "application/merge-patch+json",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Audited", "status": "True"}]}}),
    )
    .await;
    let (_, o) = c
        .patch(
            &status,
            APPLY,
            status_apply(
                json!({"graphState": "paused", "conditions": [{"type": "Ready", "status": "True"}]}),
            ),
        )
        .await;
    let conds = o["status"]["conditions"].as_array().unwrap();
    assert!(conds.iter().any(|x| x["type"] == "Audited"), "{o}");
    assert!(
        conds
            .iter()
            .any(|x| x["type"] == "Ready" && x["status"] == "True"),
        "{o}"
    );
    // The body's apiVersion must be served.
    let (code, e) = c
        .patch(
            &status,
            APPLY,
            json!({"apiVersion": "wufb.dev/v1beta9", "kind": "ExpeditedDeployment", "status": {}}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        e["message"].as_str().unwrap().contains("Incorrect version"),
        "{e}"
    );
    // Without force, another manager's field with another value is a conflict.
    let (code, e) = c
        .patch(
            &format!("{ED}/a/status?fieldManager=kubectl&force=false"),
            APPLY,
            status_apply(json!({"graphState": "offering"})),
        )
        .await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")), "{e}");
}

#[tokio::test]
async fn size_limits_and_event_notes_are_enforced() {
    let c = schema_ctx().await;
    c.create("a").await;
    let big = "x".repeat(1024 * 1024);
    let (code, e) = c
        .patch(
            &format!("{ED}/a"),
            "application/merge-patch+json",
            json!({"spec": {"a": big, "b": big}}),
        )
        .await;
    assert_eq!(
        (code, e["message"].as_str()),
        (500, Some("etcdserver: request is too large"))
    );
    let (code, _) = c
        .patch(
            &format!("{ED}/a"),
            "application/merge-patch+json",
            json!({"spec": {"a": "y".repeat(3 * 1024 * 1024)}}),
        )
        .await;
    assert_eq!(code, 413, "a request over 3 MiB");
    let (code, e) = c
        .patch(
            &format!("{ED}/a"),
            "application/merge-patch+json",
            json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "z".repeat(300 * 1024)}}}),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("metadata.annotations: Too long"),
        "{e}"
    );
    let event = |note: String| {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"generateName": "e"},
               "reason": "Created", "action": "Create", "note": note, "type": "Normal"})
    };
    let (code, _) = c
        .post(
            "/apis/events.k8s.io/v1/namespaces/ns1/events",
            event("n".repeat(1025)),
        )
        .await;
    assert_eq!(code, 422, "a note over 1 KiB");
    let (code, _) = c
        .post(
            "/apis/events.k8s.io/v1/namespaces/ns1/events",
            event("n".repeat(1024)),
        )
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let c = Ctx::new().await;
    for i in 0..5 {
        c.create(&format!("o{i}")).await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        let q = if token.is_empty() {
            "?limit=2".to_string()
        } else {
            format!("?limit=2&continue={token}")
        };
        let (code, l) = c.get(&format!("{ED}{q}")).await;
        assert_eq!(code, 200, "{l}");
        names.extend(
            l["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string()),
        );
        if page == 0 {
            // Changes after the first page do not show in its pages: one consistent list.
            c.create("late").await;
        }
        match l["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(names, ["o0", "o1", "o2", "o3", "o4"]);
    let (_, l) = c.get(&format!("{ED}?limit=2")).await;
    let token = l["metadata"]["continue"].as_str().unwrap().to_string();
    c.server.compact();
    let (code, e) = c.get(&format!("{ED}?limit=2&continue={token}")).await;
    assert_eq!((code, e["reason"].as_str()), (410, Some("Expired")));
}

#[tokio::test]
async fn watch_events_arrive_after_the_write_and_bookmarks_come_periodically() {
    let c = Ctx::with(Options {
        crds: vec![crd()],
        watch_delay: std::time::Duration::from_millis(400),
        bookmark_interval: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let o = c.create("a").await;
    let from = o["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let watcher = {
        let url = format!(
            "{}{ED}?watch=true&allowWatchBookmarks=true&resourceVersion={from}",
            c.server.url()
        );
        tokio::spawn(async move {
            let mut resp = reqwest::get(url).await.unwrap();
            let mut seen = Vec::new();
            let started = std::time::Instant::now();
            while seen.len() < 3 {
                let Ok(Ok(Some(chunk))) =
                    tokio::time::timeout(std::time::Duration::from_secs(3), resp.chunk()).await
                else {
                    break;
                };
                for line in String::from_utf8_lossy(&chunk).lines() {
                    let v: Value = serde_json::from_str(line).unwrap();
                    seen.push((v["type"].as_str().unwrap().to_string(), started.elapsed()));
                }
            }
            seen
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let written = std::time::Instant::now();
    let (code, _) = c
        .patch(
            &format!("{ED}/a"),
            "application/merge-patch+json",
            json!({"spec": {"paused": true}}),
        )
        .await;
    assert_eq!(code, 200);
    let answered = written.elapsed();
    let seen = watcher.await.unwrap();
    assert!(
        answered < std::time::Duration::from_millis(300),
        "the write answered at once: {answered:?}"
    );
    assert!(seen.iter().any(|(t, _)| t == "BOOKMARK"), "{seen:?}");
    let modified = seen
        .iter()
        .find(|(t, _)| t == "MODIFIED")
        .expect("the change arrived");
    assert!(
        modified.1 >= std::time::Duration::from_millis(400),
        "the event came after the delay: {seen:?}"
    );
}

#[tokio::test]
async fn empty_finalizers_are_normalised_away() {
    let c = Ctx::new().await;
    let (code, o) = c
        .post(ED, json!({"apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment", "metadata": {"name": "f", "finalizers": []}, "spec": {}}))
        .await;
    assert_eq!(code, 201);
    assert!(o["metadata"].get("finalizers").is_none(), "{o}");
}

/// A status write changes the stored object in place: what it refuses (too large, invalid, a stale
/// resourceVersion) leaves the object as it was, and what it takes answers with the stored object, spec
/// and all, with the status manager's ownership.
#[tokio::test]
async fn refused_status_writes_leave_the_stored_object_as_it_was() {
    let c = schema_ctx().await;
    c.create("a").await;
    let path = format!("{ED}/a");
    let merge = "application/merge-patch+json";
    let (code, first) = c
        .patch(
            &format!("{path}/status?fieldManager=op"),
            merge,
            json!({"status": {"tags": ["one"]}}),
        )
        .await;
    assert_eq!(code, 200, "{first}");
    let (_, got) = c.get(&path).await;
    assert_eq!(got, first, "the answer is the stored object");
    assert_eq!(got["spec"]["paused"], false);
    let owners: Vec<(&str, &str)> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["subresource"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(owners.contains(&("op", "status")), "{owners:?}");
    let refused = [
        (
            json!({"status": {"tags": ["one"], "big": "x".repeat(1600 * 1024)}}),
            500,
        ),
        (json!({"status": {"tags": ["two", "two"]}}), 422),
        (
            json!({"status": {"tags": ["three"]}, "metadata": {"resourceVersion": "1"}}),
            409,
        ),
    ];
    for (body, want) in refused {
        let (code, e) = c
            .patch(&format!("{path}/status?fieldManager=op"), merge, body)
            .await;
        assert_eq!(code, want, "{e}");
        let (_, now) = c.get(&path).await;
        assert_eq!(now, first, "a refused status write changes nothing");
    }
    // The same through server-side apply.
    let applied = format!("{path}/status?fieldManager=op&force=true");
    let (code, e) = c
        .patch(
            &applied,
            APPLY,
            status_apply(json!({"big": "x".repeat(1600 * 1024)})),
        )
        .await;
    assert_eq!(code, 500, "{e}");
    assert_eq!(c.get(&path).await.1, first, "a refused apply changes nothing");
    let (code, second) = c
        .patch(
            &format!("{path}/status?fieldManager=op"),
            merge,
            json!({"status": {"tags": ["four"]}}),
        )
        .await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(
        rv(&second),
        rv(&first) + 1,
        "refused writes used no resourceVersion"
    );
    assert_eq!(c.get(&path).await.1, second);
}
