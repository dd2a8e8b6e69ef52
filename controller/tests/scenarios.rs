//! Reconcile branches against a mock Kubernetes API (tower-test) that plays a named scenario: each
//! expected request is checked (method, path, parsed query, body) and answered; a missing call times out
//! and an extra call fails. Graph is the real emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};
use wufb_graph_emulator::{Emulator, EmulatorConfig, FaultConfig};
use wufb_operator::crd::DeviceGroup;
use wufb_operator::crd::{AudienceStatus, ExpeditedDeployment, ExpeditedDeploymentStatus, ResolvedContent};
use wufb_operator::graph::{Endpoints, GraphClient, GraphConfig, GraphMetrics, TransportConfig};
use wufb_operator::reconcile::device_group;
use wufb_operator::reconcile::events::Events;
use wufb_operator::reconcile::expedited::reconcile;
use wufb_operator::reconcile::status::{Outcome, conditions};
use wufb_operator::reconcile::{Context, ReconcileMetrics, Settings};

const NS: &str = "team-a";
const D1: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a01";
const D2: &str = "3d0a0c8e-1c5e-4c53-9b3f-2a1d6e0c9a02";

/// A scenario: the mock API server's side.
struct Scenario {
    name: &'static str,
    handle: Handle<Request<Body>, Response<Body>>,
    /// The controller's store: a pass works on the store's copy of its object.
    store: reflector::store::Writer<ExpeditedDeployment>,
}

/// One expected request.
struct Expect<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    content_type: Option<&'a str>,
}

impl Scenario {
    /// Puts `obj` in the store (as the watch would) and returns it for a pass.
    fn watched(&mut self, obj: ExpeditedDeployment) -> Arc<ExpeditedDeployment> {
        self.store
            .apply_watcher_event(&kube::runtime::watcher::Event::Apply(obj.clone()));
        Arc::new(obj)
    }

    /// Waits for the next request, checks it, answers `reply` and returns the request body.
    async fn expect(&mut self, e: Expect<'_>, reply: Value) -> Value {
        self.expect_answer(e, 200, reply).await
    }

    /// [`Scenario::expect`] with the answer's status code.
    async fn expect_answer(&mut self, e: Expect<'_>, status: u16, reply: Value) -> Value {
        let (request, body, send) = self.receive(&format!("{} {}", e.method, e.path)).await;
        self.check(&e, &request);
        answer(send, status, &reply);
        body
    }

    /// Waits for as many requests as `expected` in any order (an Event is sent in the background, so it
    /// may reach the server before or after the status write next to it); each is matched by method and
    /// path, checked and answered. Returns the bodies in the order of `expected`.
    async fn expect_unordered(&mut self, expected: Vec<(Expect<'_>, Value)>) -> Vec<Value> {
        let mut bodies = vec![Value::Null; expected.len()];
        let mut done = vec![false; expected.len()];
        for _ in 0..expected.len() {
            let (request, body, send) = self.receive("one of the expected calls").await;
            let i = (0..expected.len())
                .find(|&i| {
                    !done[i]
                        && request.method.as_str() == expected[i].0.method
                        && request.uri.path() == expected[i].0.path
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{}: unexpected call {} {}",
                        self.name, request.method, request.uri
                    )
                });
            self.check(&expected[i].0, &request);
            answer(send, 200, &expected[i].1);
            done[i] = true;
            bodies[i] = body;
        }
        bodies
    }

    async fn receive(
        &mut self,
        what: &str,
    ) -> (
        http::request::Parts,
        Value,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        let next = tokio::time::timeout(Duration::from_secs(5), self.handle.next_request()).await;
        let (request, send) = next
            .unwrap_or_else(|_| panic!("{}: expected {what}, but no call came", self.name))
            .expect("the client is alive");
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (parts, body, send)
    }

    fn check(&self, e: &Expect<'_>, request: &http::request::Parts) {
        assert_eq!(
            request.method.as_str(),
            e.method,
            "{}: method of {}",
            self.name,
            request.uri
        );
        assert_eq!(request.uri.path(), e.path, "{}: path", self.name);
        let query: HashMap<String, String> = request
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        for (k, v) in e.query {
            assert_eq!(
                query.get(*k).map(String::as_str),
                Some(*v),
                "{}: query {k} of {}",
                self.name,
                request.uri
            );
        }
        if let Some(ct) = e.content_type {
            let got = request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert_eq!(got, ct, "{}: content type", self.name);
        }
    }

    /// Fails if the reconcile made any further Kubernetes call.
    async fn no_more_calls(&mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(300), self.handle.next_request()).await
        {
            panic!(
                "{}: unexpected call {} {}",
                self.name,
                request.method(),
                request.uri()
            );
        }
    }
}

fn answer(send: tower_test::mock::SendResponse<Response<Body>>, status: u16, reply: &Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(reply).unwrap()))
            .unwrap(),
    );
}

async fn context(name: &'static str, emulator: &Emulator) -> (Arc<Context>, Scenario) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, NS);
    let graph = GraphClient::new(
        GraphConfig {
            endpoints: Endpoints::custom(&emulator.base_url(), &emulator.graph_url()).unwrap(),
            credential: None,
            transport: TransportConfig {
                max_retries: 0,
                ..Default::default()
            },
            batch_size: 1000,
        },
        GraphMetrics::default(),
    )
    .unwrap();
    let (deployments, store) = reflector::store();
    let ctx = Context {
        client: client.clone(),
        graph: Arc::new(graph),
        events: Events::spawn(
            client,
            Reporter {
                controller: "wufb-operator".into(),
                instance: Some("test".into()),
            },
        ),
        deployments: deployments.clone(),
        groups: reflector::store().0,
        metrics: ReconcileMetrics::default(),
        settings: Settings::default(),
        writes: Default::default(),
        namespaces: Vec::new(),
        entra: Default::default(),
        connections: Default::default(),
        connection_stores: None,
        connection: None,
        tenant_id: None,
    };
    (Arc::new(ctx), Scenario { name, handle, store })
}

fn object(spec: Value, finalizer: bool, status: Option<Value>) -> ExpeditedDeployment {
    let mut o = json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "ExpeditedDeployment",
        "metadata": {"name": "rollout", "namespace": NS, "uid": "0b6d2c4e-0000-4000-8000-000000000001", "generation": 3, "resourceVersion": "17"},
        "spec": spec,
    });
    if finalizer {
        o["metadata"]["finalizers"] = json!(["wufb.dev/cleanup"]);
    }
    if let Some(s) = status {
        o["status"] = s;
    }
    serde_json::from_value(o).unwrap()
}

const OBJECT_PATH: &str = "/apis/wufb.dev/v1alpha1/namespaces/team-a/expediteddeployments/rollout";

#[tokio::test]
async fn scenario_a_new_object_gets_the_finalizer_before_anything_else() {
    let emulator = Emulator::start(
        EmulatorConfig {
            auth: false,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let (ctx, mut s) = context("new object", &emulator).await;
    let obj = object(json!({"content": {"latest": true}}), false, None);
    let written = {
        let mut w = serde_json::to_value(&obj).unwrap();
        w["metadata"]["finalizers"] = json!(["wufb.dev/cleanup"]);
        w["metadata"]["resourceVersion"] = json!("18");
        w
    };
    let written_reply = || written.clone();
    let run = tokio::spawn(reconcile(s.watched(obj), ctx));
    let patch = s
        .expect(
            Expect {
                method: "PATCH",
                path: OBJECT_PATH,
                query: &[],
                content_type: Some("application/json-patch+json"),
            },
            written_reply(),
        )
        .await;
    assert_eq!(
        patch,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["wufb.dev/cleanup"]}])
    );
    // The pass goes on with the object as written: the create intent is recorded (a server-side apply
    // of the whole status, as every status write is) against the resourceVersion the finalizer write
    // returned. A conflict there ends the pass before any create.
    let intent = s
        .expect_answer(
            Expect {
                method: "PATCH",
                path: &format!("{OBJECT_PATH}/status"),
                query: &[("fieldManager", "wufb-operator"), ("force", "true")],
                content_type: Some("application/apply-patch+yaml"),
            },
            409,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
                   "message": "the object has been modified; please apply your changes to the latest version and try again"}),
        )
        .await;
    assert_eq!(intent["metadata"]["resourceVersion"], "18", "{intent}");
    assert!(intent["status"]["createIntent"].is_object(), "{intent}");
    // The object changed since it was read: nothing reached Graph, so the pass reads it again at once,
    // with no Warning and no status write (a conflict here is routine, not a failure).
    let action = run.await.unwrap().unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_millis(100))
    );
    s.no_more_calls().await;
    assert!(
        emulator
            .requests()
            .iter()
            .all(|r| r.operation.starts_with("catalog")),
        "no Graph write: only the content was resolved"
    );
}

#[tokio::test]
async fn scenario_an_invalid_spec_stalls_with_an_event_and_a_status() {
    let emulator = Emulator::start(
        EmulatorConfig {
            auth: false,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let (ctx, mut s) = context("invalid spec", &emulator).await;
    let obj = object(
        json!({"content": {"latest": true}, "audience": {"members": [{"device": "laptop-42"}]}}),
        true,
        None,
    );
    let reply = serde_json::to_value(&obj).unwrap();
    let run = tokio::spawn(reconcile(s.watched(obj), ctx));
    // The Event goes out in the background: it may reach the server before or after the status.
    let [event, status]: [Value; 2] = s
        .expect_unordered(vec![
            (
                Expect {
                    method: "POST",
                    path: "/apis/events.k8s.io/v1/namespaces/team-a/events",
                    query: &[],
                    content_type: None,
                },
                json!({}),
            ),
            (
                Expect {
                    method: "PATCH",
                    path: &format!("{OBJECT_PATH}/status"),
                    query: &[("fieldManager", "wufb-operator"), ("force", "true")],
                    content_type: Some("application/apply-patch+yaml"),
                },
                reply,
            ),
        ])
        .await
        .try_into()
        .unwrap();
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidSpec");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("spec.audience.members[0].device"),
        "{event}"
    );
    assert_eq!(status["kind"], "ExpeditedDeployment");
    let conds = status["status"]["conditions"].as_array().unwrap();
    let stalled = conds.iter().find(|c| c["type"] == "Stalled").unwrap();
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("InvalidSpec"))
    );
    assert_eq!(stalled["observedGeneration"], 3);
    assert_eq!(status["status"]["observedGeneration"], 3);
    run.await.unwrap().unwrap();
    s.no_more_calls().await;
    assert!(
        emulator.requests().is_empty(),
        "an invalid spec is never sent to Graph"
    );
}

#[tokio::test]
async fn scenario_a_converged_object_reads_graph_and_writes_nothing() {
    let emulator = Emulator::start(
        EmulatorConfig {
            auth: false,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let entry = emulator
        .catalog()
        .iter()
        .find(|e| e["isExpeditable"] == true)
        .unwrap()
        .clone();
    let (id, aid) = {
        let mut store = wufb_graph_emulator::state::lock(&emulator.shared.store);
        let body = json!({"content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent", "catalogEntry": {"id": entry["id"]}}, "settings": {"expedite": {"isExpedited": true}}});
        let wufb_graph_emulator::store::Reply::Json(_, d) = store
            .create_deployment(&body, &emulator.catalog(), chrono::Utc::now())
            .unwrap()
        else {
            panic!()
        };
        let id = d["id"].as_str().unwrap().to_string();
        let aid = store.deployments[&id].audience_id.clone();
        let a = store.audiences.get_mut(&aid).unwrap();
        for d in [D1, D2] {
            a.members
                .insert(d.into(), wufb_graph_emulator::store::AssetKind::Device);
        }
        (id, aid)
    };
    let converged = ExpeditedDeploymentStatus {
        observed_generation: Some(3),
        deployment_id: Some(id.clone()),
        tenant_id: None,
        audience_id: Some(aid),
        graph_state: Some("offering".into()),
        state_reasons: vec!["offeringByRequest".into()],
        resolved_content: Some(ResolvedContent {
            source: "latest".into(),
            catalog_entry_id: entry["id"].as_str().unwrap().into(),
            display_name: entry["displayName"].as_str().map(str::to_string),
            release_date: entry["releaseDateTime"].as_str().map(|d| d[..10].to_string()),
            deployable_until: None,
            ..Default::default()
        }),
        audience: Some(AudienceStatus {
            members: 2,
            exclusions: 0,
            devices: 2,
        }),
        device_errors: Vec::new(),
        // Read a moment ago: the next progress poll is not due yet.
        progress: Some(wufb_operator::crd::RolloutProgress {
            targeted: 2,
            pending: 2,
            installed: Some("0/2".into()),
            observed_time: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ..Default::default()
        }),
        rollout: None,
        last_sync_time: Some("2026-11-28T00:00:00Z".into()),
        last_write_time: None,
        missing_since: None,
        previous_content: None,
        create_intent: None,
        conditions: conditions(&Outcome::converged("Graph matches the spec"), Some(3), &[]),
    };
    let (ctx, mut s) = context("converged", &emulator).await;
    let obj = object(
        json!({"content": {"latest": true}, "audience": {"members": [{"device": D1}, {"device": D2}]}}),
        true,
        Some(serde_json::to_value(&converged).unwrap()),
    );
    let action = reconcile(s.watched(obj), ctx).await.unwrap();
    s.no_more_calls().await;
    assert!(
        format!("{action:?}").contains("requeue_after: Some"),
        "resync scheduled: {action:?}"
    );
    let ops: Vec<String> = emulator.requests().into_iter().map(|r| r.operation).collect();
    let mut sorted = ops.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "audience.exclusions.list",
            "audience.exclusions.list",
            "audience.members.list",
            "audience.members.list",
            "deployments.get"
        ],
        "observe reads only, no write (each list refuses the counted first page once, then is read by nextLink)"
    );
}

#[tokio::test]
async fn scenario_a_graph_outage_is_transient_with_an_event_and_a_status() {
    let emulator = Emulator::start(
        EmulatorConfig {
            auth: false,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    emulator.set_faults(FaultConfig {
        outage: true,
        retry_after_secs: 7.0,
        ..Default::default()
    });
    let (ctx, mut s) = context("outage", &emulator).await;
    let obj = object(json!({"content": {"latest": true}}), true, None);
    let reply = serde_json::to_value(&obj).unwrap();
    let run = tokio::spawn(reconcile(s.watched(obj), ctx));
    // The Event goes out in the background: it may reach the server before or after the status.
    let [event, status]: [Value; 2] = s
        .expect_unordered(vec![
            (
                Expect {
                    method: "POST",
                    path: "/apis/events.k8s.io/v1/namespaces/team-a/events",
                    query: &[],
                    content_type: None,
                },
                json!({}),
            ),
            (
                Expect {
                    method: "PATCH",
                    path: &format!("{OBJECT_PATH}/status"),
                    query: &[("fieldManager", "wufb-operator")],
                    content_type: None,
                },
                reply,
            ),
        ])
        .await
        .try_into()
        .unwrap();
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("GraphUnavailable"))
    );
    let conds = status["status"]["conditions"].as_array().unwrap();
    let reconciling = conds.iter().find(|c| c["type"] == "Reconciling").unwrap();
    assert_eq!(
        (reconciling["status"].as_str(), reconciling["reason"].as_str()),
        (Some("True"), Some("GraphUnavailable"))
    );
    assert_eq!(
        conds.iter().find(|c| c["type"] == "Stalled").unwrap()["status"],
        "False",
        "transient: not stalled"
    );
    let err = run.await.unwrap().unwrap_err();
    assert!(err.is_transient());
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(7)),
        "the service's Retry-After drives the requeue"
    );
    s.no_more_calls().await;
}

// ----- DeviceGroup and cleanup -----------------------------------------------------------------------

const GROUP_PATH: &str = "/apis/wufb.dev/v1alpha1/namespaces/team-a/devicegroups/ring";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";

async fn emulator() -> Emulator {
    Emulator::start(
        EmulatorConfig {
            auth: false,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

fn group(extra_meta: Value, status: Option<Value>) -> DeviceGroup {
    let mut o = json!({
        "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
        "metadata": {"name": "ring", "namespace": NS, "uid": "0b6d2c4e-0000-4000-8000-0000000000aa", "generation": 1,
                     "resourceVersion": "30", "finalizers": ["wufb.dev/cleanup"]},
        "spec": {"devices": [D1, D2]},
    });
    for (k, v) in extra_meta.as_object().unwrap() {
        o["metadata"][k] = v.clone();
    }
    if let Some(s) = status {
        o["status"] = s;
    }
    serde_json::from_value(o).unwrap()
}

/// A deployment straight in the emulator; returns its id.
fn graph_deployment(emulator: &Emulator) -> String {
    let entry = emulator
        .catalog()
        .iter()
        .find(|e| e["isExpeditable"] == true)
        .unwrap()
        .clone();
    let mut store = wufb_graph_emulator::state::lock(&emulator.shared.store);
    let body = json!({"content": {"@odata.type": "#microsoft.graph.windowsUpdates.catalogContent", "catalogEntry": {"id": entry["id"]}}, "settings": {"expedite": {"isExpedited": true}}});
    let wufb_graph_emulator::store::Reply::Json(_, d) = store
        .create_deployment(&body, &emulator.catalog(), chrono::Utc::now())
        .unwrap()
    else {
        panic!()
    };
    d["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn scenario_a_new_device_group_gets_a_graph_group_then_its_devices_then_a_status() {
    let emulator = emulator().await;
    let (ctx, mut s) = context("new group", &emulator).await;
    let obj = group(json!({}), None);
    let reply = serde_json::to_value(&obj).unwrap();
    let run = tokio::spawn(device_group::reconcile(Arc::new(obj), ctx));
    // A create intent first, checked against the resourceVersion the pass read: a pass on a stale copy
    // gets a conflict before any Graph group is made.
    let intent = s
        .expect(
            Expect {
                method: "PATCH",
                path: &format!("{GROUP_PATH}/status"),
                query: &[("fieldManager", "wufb-operator"), ("force", "true")],
                content_type: Some("application/apply-patch+yaml"),
            },
            reply.clone(),
        )
        .await;
    assert_eq!(intent["metadata"]["resourceVersion"], "30", "{intent}");
    assert!(
        intent["status"]["createIntent"]["startedAt"].is_string(),
        "{intent}"
    );
    assert!(emulator.requests().is_empty(), "no group before the intent");
    // The group id is recorded at once after the group is made, before its devices are sent.
    let recorded = s
        .expect(
            Expect {
                method: "PATCH",
                path: &format!("{GROUP_PATH}/status"),
                query: &[("fieldManager", "wufb-operator"), ("force", "true")],
                content_type: Some("application/apply-patch+yaml"),
            },
            reply.clone(),
        )
        .await;
    let id = recorded["status"]["groupId"].as_str().unwrap().to_string();
    assert!(
        recorded["status"]["createIntent"].is_null(),
        "the intent ends with the id: {recorded}"
    );
    let [created, members, status]: [Value; 3] = s
        .expect_unordered(vec![
            (
                Expect {
                    method: "POST",
                    path: EVENTS_PATH,
                    query: &[],
                    content_type: None,
                },
                json!({}),
            ),
            (
                Expect {
                    method: "POST",
                    path: EVENTS_PATH,
                    query: &[],
                    content_type: None,
                },
                json!({}),
            ),
            (
                Expect {
                    method: "PATCH",
                    path: &format!("{GROUP_PATH}/status"),
                    query: &[("fieldManager", "wufb-operator"), ("force", "true")],
                    content_type: Some("application/apply-patch+yaml"),
                },
                reply,
            ),
        ])
        .await
        .try_into()
        .unwrap();
    let reasons: BTreeSet<&str> = [&created, &members]
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["Created", "MembersUpdated"].into());
    assert_eq!(status["status"]["groupId"], id.as_str());
    assert_eq!(status["status"]["memberCount"], 2);
    let ready = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("Verifying"))
    );
    run.await.unwrap().unwrap();
    s.no_more_calls().await;
    let store = wufb_graph_emulator::state::lock(&emulator.shared.store);
    assert_eq!(
        store.group_members(&id).unwrap().count(),
        2,
        "the devices are in the Graph group"
    );
}

#[tokio::test]
async fn scenario_a_device_group_in_use_keeps_its_finalizer() {
    let emulator = emulator().await;
    let (ctx, mut s) = context("group in use", &emulator).await;
    s.watched(object(
        json!({"content": {"latest": true}, "audience": {"exclusions": [{"deviceGroup": "ring"}]}}),
        true,
        None,
    ));
    let obj = group(
        json!({"deletionTimestamp": "2026-11-28T10:00:00Z"}),
        Some(json!({"groupId": "g-1", "observedGeneration": 1})),
    );
    let reply = serde_json::to_value(&obj).unwrap();
    let run = tokio::spawn(device_group::reconcile(Arc::new(obj), ctx));
    let status = s
        .expect(
            Expect {
                method: "PATCH",
                path: &format!("{GROUP_PATH}/status"),
                query: &[("fieldManager", "wufb-operator")],
                content_type: Some("application/apply-patch+yaml"),
            },
            reply,
        )
        .await;
    let ready = &status["status"]["conditions"][0];
    assert_eq!(ready["reason"], "InUse");
    assert!(
        ready["message"].as_str().unwrap().contains("rollout"),
        "names the user: {ready}"
    );
    let err = run.await.unwrap().unwrap_err();
    assert!(err.is_transient(), "waits and tries again: {err}");
    s.no_more_calls().await;
    assert!(emulator.requests().is_empty(), "the Graph group is not touched");
}

/// An ExpeditedDeployment being deleted, whose status names deployment `id`.
fn deleting(spec: Value, id: &str) -> ExpeditedDeployment {
    let mut obj = object(
        spec,
        true,
        Some(json!({"deploymentId": id, "observedGeneration": 3})),
    );
    obj.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    obj
}

impl Scenario {
    /// A cleanup's two calls, in either order: its Event and the finalizer's removal (kube's helper).
    async fn event_and_finalizer_removal(&mut self, reply: Value) -> (Value, Value) {
        let [event, finalizer]: [Value; 2] = self
            .expect_unordered(vec![
                (
                    Expect {
                        method: "POST",
                        path: EVENTS_PATH,
                        query: &[],
                        content_type: None,
                    },
                    json!({}),
                ),
                (
                    Expect {
                        method: "PATCH",
                        path: OBJECT_PATH,
                        query: &[],
                        content_type: Some("application/json-patch+json"),
                    },
                    reply,
                ),
            ])
            .await
            .try_into()
            .unwrap();
        assert!(
            finalizer
                .as_array()
                .unwrap()
                .iter()
                .any(|op| op["op"] == "remove"),
            "{}: the finalizer goes: {finalizer}",
            self.name
        );
        (event, finalizer)
    }
}

#[tokio::test]
async fn scenario_deleting_a_deployment_deletes_it_in_graph_then_removes_the_finalizer() {
    let emulator = emulator().await;
    let id = graph_deployment(&emulator);
    let (ctx, mut s) = context("delete", &emulator).await;
    let obj = deleting(json!({"content": {"latest": true}}), &id);
    let reply = serde_json::to_value(&obj).unwrap();
    let run = tokio::spawn(reconcile(s.watched(obj), ctx));
    let (event, _) = s.event_and_finalizer_removal(reply).await;
    assert_eq!(event["reason"], "Deleted");
    run.await.unwrap().unwrap();
    s.no_more_calls().await;
    assert!(
        emulator
            .requests()
            .iter()
            .any(|r| r.operation == "deployments.delete" && (200..300).contains(&r.status)),
        "the Graph deployment was deleted"
    );
    assert!(
        wufb_graph_emulator::state::lock(&emulator.shared.store)
            .deployments
            .is_empty()
    );
}

#[tokio::test]
async fn scenario_an_orphaned_deployment_is_left_in_graph() {
    let emulator = emulator().await;
    let id = graph_deployment(&emulator);
    let (ctx, mut s) = context("orphan", &emulator).await;
    let obj = deleting(
        json!({"content": {"latest": true}, "deletionPolicy": "Orphan"}),
        &id,
    );
    let reply = serde_json::to_value(&obj).unwrap();
    let run = tokio::spawn(reconcile(s.watched(obj), ctx));
    let (event, _) = s.event_and_finalizer_removal(reply).await;
    assert_eq!(event["reason"], "Orphaned");
    run.await.unwrap().unwrap();
    s.no_more_calls().await;
    assert!(emulator.requests().is_empty(), "Graph is left alone");
    assert!(
        wufb_graph_emulator::state::lock(&emulator.shared.store)
            .deployments
            .contains_key(&id)
    );
}
