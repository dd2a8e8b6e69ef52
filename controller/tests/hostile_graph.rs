//! Malformed and hostile Graph answers (truncated JSON, wrong types, oversized pages, endless or foreign
//! next links, unknown enum members) give a clear error or a tolerant read, never a panic or a hang.
//! A small server plays the hostile service; the emulator cannot be made to misbehave this way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use proptest::prelude::*;
use serde_json::json;
use wufb_operator::graph::models::{CatalogEntry, Deployment, Page, UpdatableAsset};
use wufb_operator::graph::{Endpoints, GraphClient, GraphConfig, GraphMetrics, TransportConfig};

async fn hostile() -> String {
    let app = Router::new().fallback(|req: Request| async move {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
        let json = |v: serde_json::Value| ([("content-type", "application/json")], v.to_string()).into_response();
        match path.as_str() {
            p if p.ends_with("/deployments/truncated") => ([("content-type", "application/json")], r#"{"id": "x", "state": {"effec"#.to_string()).into_response(),
            p if p.ends_with("/deployments/wrong-types") => json(json!({"id": 42, "state": "offering"})),
            p if p.ends_with("/deployments/unknown-enum") => json(json!({"id": "d", "state": {"effectiveValue": "hibernating", "requestedValue": "frozen"}, "extra": {"x": 1}})),
            p if p.ends_with("/deployments/huge") => json(json!({"id": "d", "padding": "x".repeat(10 * 1024 * 1024)})),
            p if p.ends_with("/audience/members") && !query.contains("skiptoken") => {
                json(json!({"value": [{"id": "a"}], "@odata.nextLink": format!("http://{host}{path}?$skiptoken=again")}))
            }
            // The same next link again and again: an endless loop if followed blindly.
            p if p.ends_with("/audience/members") => json(json!({"value": [], "@odata.nextLink": format!("http://{host}{path}?$skiptoken=again")})),
            p if p.ends_with("/audience/exclusions") => json(json!({"value": [], "@odata.nextLink": "https://attacker.example/steal"})),
            _ => (http::StatusCode::NOT_FOUND, "{}").into_response(),
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn client(base: &str) -> GraphClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    GraphClient::new(
        GraphConfig {
            endpoints: Endpoints::custom(base, &format!("{base}/beta")).unwrap(),
            credential: None,
            transport: TransportConfig {
                max_retries: 1,
                base_backoff: Duration::from_millis(10),
                ..Default::default()
            },
            batch_size: 1000,
        },
        GraphMetrics::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn malformed_answers_are_clear_errors() {
    let base = hostile().await;
    let g = client(&base);
    let within = |f| tokio::time::timeout(Duration::from_secs(20), f);
    let err = within(g.get_deployment("truncated")).await.unwrap().unwrap_err();
    assert_eq!(err.category(), "GraphBadResponse");
    assert!(err.to_string().contains("get deployment"), "{err}");
    let err = within(g.get_deployment("wrong-types"))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.category(), "GraphBadResponse", "{err}");
    let err = within(g.get_deployment("huge")).await.unwrap().unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    let d = within(g.get_deployment("unknown-enum"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        d.state.effective().unwrap().as_str(),
        "hibernating",
        "unknown members are kept"
    );
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        g.audience(wufb_operator::graph::AudienceOf::Deployment("loop")),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        err.to_string().contains("nextLink") || err.to_string().contains("another host"),
        "no endless loop, no token sent elsewhere: {err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any JSON at all parses into the models or fails cleanly.
    #[test]
    fn model_parsing_never_panics(v in arb_json()) {
        let _ = serde_json::from_value::<Deployment>(v.clone());
        let _ = serde_json::from_value::<Page<UpdatableAsset>>(v.clone());
        let _ = serde_json::from_value::<CatalogEntry>(v);
    }

    /// Any bytes too.
    #[test]
    fn byte_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<Deployment>(&bytes);
        let _ = serde_json::from_slice::<Page<CatalogEntry>>(&bytes);
    }

    /// Manifests of any shape are checked without panicking, and every message stays bounded.
    #[test]
    fn manifest_validation_never_panics(v in arb_json(), kind in prop_oneof![Just("ExpeditedDeployment"), Just("DeviceGroup")]) {
        let doc = json!({"apiVersion": "wufb.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": v});
        let text = serde_yaml::to_string(&doc).unwrap();
        let (docs, _) = wufb_operator::cli::manifests::parse("fuzz.yaml", &text);
        for f in wufb_operator::cli::validate::check(&docs) {
            prop_assert!(f.to_string().len() < 4096);
        }
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9#.:/-]{0,24}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("offering"),
            Just("#microsoft.graph.windowsUpdates.catalogContent"),
            Just("2026-11-10")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("state".to_string()),
                    Just("content".to_string()),
                    Just("value".to_string()),
                    Just("audience".to_string()),
                    Just("members".to_string()),
                    Just("devices".to_string()),
                    Just("@odata.type".to_string()),
                    Just("effectiveValue".to_string()),
                    "[a-z]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A group member list of 250 devices in pages of 100, served three ways: honestly (count, `$skip` and
/// `$top` honoured), with a count but `$skip` ignored (an unstable order), and without a count.
async fn paged_service(log: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> String {
    let app = Router::new().fallback(move |req: Request| {
        let log = log.clone();
        async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            log.lock().unwrap().push(format!("{path}?{query}"));
            let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
            let param = |k: &str| {
                form_urlencoded::parse(query.as_bytes())
                    .find(|(n, _)| n == k)
                    .and_then(|(_, v)| v.trim_start_matches('o').parse::<usize>().ok())
            };
            let mode = path.split('/').rev().nth(2).unwrap_or("").to_string();
            let all: Vec<String> = (0..250).map(|i| format!("d{i:03}")).collect();
            let start = param("$skiptoken")
                .or(if mode == "unstable" { None } else { param("$skip") })
                .unwrap_or(0);
            let end = (start + param("$top").unwrap_or(100).min(100)).min(all.len());
            let mut body = json!({"value": all[start..end].iter().map(|id| json!({"@odata.type": "#microsoft.graph.windowsUpdates.azureADDevice", "id": id})).collect::<Vec<_>>()});
            if query.contains("$count=true") && mode != "nocount" {
                body["@odata.count"] = json!(all.len());
            }
            if end < all.len() && !query.contains("$top") {
                body["@odata.nextLink"] = json!(format!("http://{host}{path}?$skiptoken=o{end}"));
            }
            ([("content-type", "application/json")], body.to_string()).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn large_lists_are_read_in_parallel_pages_and_fall_back_to_next_links_when_they_do_not_add_up() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let base = paged_service(log.clone()).await;
    let g = client(&base);
    let expected: Vec<String> = (0..250).map(|i| format!("d{i:03}")).collect();
    for mode in ["honest", "unstable", "nocount"] {
        log.lock().unwrap().clear();
        let mut ids: Vec<String> = g
            .group_devices(mode)
            .await
            .unwrap()
            .unwrap()
            .devices
            .iter()
            .map(|d| d.to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, expected, "{mode}: every member, once");
        let requests = log.lock().unwrap().clone();
        let skipped = requests.iter().filter(|r| r.contains("$skip=")).count();
        let followed = requests.iter().filter(|r| r.contains("$skiptoken")).count();
        match mode {
            // The first page gives the count; pages 2 and 3 are asked at once.
            "honest" => assert_eq!((requests.len(), skipped, followed), (3, 2, 0), "{requests:?}"),
            // The parallel pages repeat the first one: read again by nextLink.
            "unstable" => assert_eq!((skipped, followed), (2, 2), "{requests:?}"),
            // No count: the next links are followed from the first page on.
            _ => assert_eq!((requests.len(), skipped, followed), (3, 0, 2), "{requests:?}"),
        }
    }
}

/// An updateAudience that refuses every request with 400, three ways: naming a device in its message,
/// pointing into `addMembers` without naming one (only requests holding `bad` are refused), or naming
/// nothing (a structural error, as a wrong path or body gets).
async fn refusing_service(log: std::sync::Arc<std::sync::Mutex<Vec<usize>>>) -> String {
    let app = Router::new().fallback(move |req: Request| {
        let log = log.clone();
        async move {
            let path = req.uri().path().to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let ids: Vec<String> = body["addMembers"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            log.lock().unwrap().push(ids.len());
            let refuse = |error: serde_json::Value| {
                (http::StatusCode::BAD_REQUEST, [("content-type", "application/json")], json!({"error": error}).to_string())
                    .into_response()
            };
            let mode = path.split('/').rev().nth(2).unwrap_or("").to_string();
            match mode.as_str() {
                "names" => refuse(json!({"code": "BadRequest", "message": "Invalid request.", "details": [
                    {"code": "InvalidAsset", "message": format!("The device '{}' cannot be added.", ids[3].to_uppercase()), "target": "addMembers"}
                ]})),
                "points" if ids.iter().any(|i| i.ends_with("bad")) => refuse(json!({"code": "BadRequest", "message": "An item is invalid.", "target": "addMembers"})),
                "points" => http::StatusCode::ACCEPTED.into_response(),
                _ => refuse(json!({"code": "BadRequest", "message": "Resource not found for the segment 'updateAudience'."})),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_refused_audience_write_blames_an_asset_only_when_the_error_names_one() {
    use wufb_operator::graph::AssetRef;
    use wufb_operator::graph::models::AudienceUpdate;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let base = refusing_service(log.clone()).await;
    let g = client(&base);
    let mut devices: Vec<AssetRef> = (0..16)
        .map(|i| AssetRef::device(format!("6a6b6c6d-0000-4000-8000-{i:012}")))
        .collect();
    let send = async |mode: &str, devices: &[AssetRef]| {
        log.lock().unwrap().clear();
        let update = AudienceUpdate {
            add_members: devices.iter().collect(),
            ..Default::default()
        };
        let result = g
            .update_audience(wufb_operator::graph::AudienceOf::Deployment(mode), &update)
            .await;
        (result, log.lock().unwrap().clone())
    };
    // Named (in another case, in a detail): blamed at once, with no split.
    let (result, sent) = send("names", &devices).await;
    let err = result.unwrap_err().to_string();
    assert_eq!(sent, vec![16], "one request");
    assert!(err.contains(&format!("(asset {})", devices[3].id)), "{err}");
    // Named by nobody: Graph's message as it is, one request, no device blamed.
    let (result, sent) = send("structural", &devices).await;
    let err = result.unwrap_err().to_string();
    assert_eq!(sent, vec![16], "a structural 400 is not bisected");
    assert!(
        err.contains("Resource not found for the segment") && !err.contains("(asset"),
        "{err}"
    );
    // Pointed at but not named: halved down to the one asset.
    devices[11] = AssetRef::device("6a6b6c6d-0000-4000-8000-000000000bad");
    let (result, sent) = send("points", &devices).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("(asset 6a6b6c6d-0000-4000-8000-000000000bad)"),
        "{err}"
    );
    // 0..8 accepted, 8..16 refused; 8..12 refused; 8..10 accepted, 10..12 refused; 10 accepted, 11 named.
    assert_eq!(
        sent,
        vec![16, 8, 8, 4, 2, 2, 1, 1],
        "halves down the refused side only"
    );
}

/// A service that answers 404 for the member list of a group that exists (as it has been seen to do for
/// empty audiences): the group itself is read before it is taken as gone.
#[tokio::test]
async fn a_group_whose_member_list_answers_404_is_checked_against_the_group_itself() {
    let app = Router::new().fallback(|req: Request| async move {
        let path = req.uri().path().to_string();
        let json =
            |v: serde_json::Value| ([("content-type", "application/json")], v.to_string()).into_response();
        if path.ends_with("/members") {
            return (http::StatusCode::NOT_FOUND, "{}").into_response();
        }
        match path.rsplit('/').next() {
            Some("exists") => json(
                json!({"@odata.type": "#microsoft.graph.windowsUpdates.updatableAssetGroup", "id": "exists"}),
            ),
            _ => (http::StatusCode::NOT_FOUND, "{}").into_response(),
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let g = client(&format!("http://{addr}"));
    let group = |id: &str| -> wufb_operator::crd::DeviceGroup {
        serde_json::from_value(json!({
            "apiVersion": "wufb.dev/v1alpha1", "kind": "DeviceGroup",
            "metadata": {"name": "ring", "namespace": "ns"},
            "spec": {"devices": []},
            "status": {"groupId": id},
        }))
        .unwrap()
    };
    use wufb_operator::reconcile::observe::{Known, observe_group};
    let o = observe_group(&group("exists"), &g, None).await;
    assert!(
        matches!(&o.group, Known::Found(m) if m.devices.is_empty()),
        "{:?}",
        o.group
    );
    let o = observe_group(&group("gone"), &g, None).await;
    assert!(
        matches!(&o.group, Known::Missing(id) if id == "gone"),
        "{:?}",
        o.group
    );
}
