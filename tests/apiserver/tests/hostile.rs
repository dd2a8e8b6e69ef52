//! Hostile requests to every route of the test API server, sent as raw HTTP/1.1: malformed and
//! oversized bodies, patches of every type gone wrong, query options out of their form, path segments
//! that are not text, and bad credentials. Each gets a 4xx answer, and the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wufb_test_apiserver::{Access, Options, TestApiServer};

const ED: &str = "/apis/wufb.dev/v1alpha1/namespaces/ns1/expediteddeployments";
const TOKEN: &str = "good-token";

/// The operator's generated CRDs (schemas and CEL rules included).
fn crds() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_yaml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

async fn raw(addr: &str, request: &[u8]) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = r.into_bytes();
    out.extend_from_slice(body);
    out
}

fn with_type(method: &str, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    request(method, target, &[("Content-Type", content_type)], body)
}

const GOOD: &str = r#"{"apiVersion":"wufb.dev/v1alpha1","kind":"ExpeditedDeployment","metadata":{"name":"ok"},"spec":{"content":{"latest":true}}}"#;

fn cases() -> Vec<(String, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long = "a".repeat(20_000);
    let json = "application/json";
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |what: &str, r: Vec<u8>| out.push((what.to_string(), r));
    // Path segments.
    for path in [
        "/apis/wufb.dev/v1alpha1/namespaces/%ff%fe/expediteddeployments/x".to_string(),
        format!("{ED}/{long}"),
        format!("{ED}/%00"),
        format!("{ED}/a/b/c/d"),
        "/apis/wufb.dev/v9/namespaces/ns1/expediteddeployments".to_string(),
        "/apis/../../etc/passwd".to_string(),
        "/api/v1/namespaces/ns1/nothings".to_string(),
        format!("{ED}/%E2%80%AE"),
    ] {
        add(
            &format!("GET {}", &path[..path.len().min(60)]),
            request("GET", &path, &[], b""),
        );
    }
    // Query options.
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999999",
        "labelSelector=(((",
        "labelSelector=a%20in%20(b",
        "labelSelector=%ff%fe",
        "fieldSelector=metadata.name%3D%3D%3Dx",
        "fieldSelector=spec.nothing=x",
        "watch=true&resourceVersion=abc",
        "watch=true&timeoutSeconds=abc",
        "watch=true&timeoutSeconds=-5",
        "resourceVersion=-1",
        "continue=%ff%fe",
    ] {
        add(
            &format!("query {q}"),
            request("GET", &format!("{ED}?{q}"), &[], b""),
        );
    }
    // Bodies.
    add("POST: not JSON", with_type("POST", ED, json, b"{"));
    add(
        "POST: deeply nested",
        with_type("POST", ED, json, deep.as_bytes()),
    );
    add(
        "POST: not UTF-8",
        with_type("POST", ED, json, &[0x7b, 0xff, 0xfe, 0x7d]),
    );
    add("POST: 20 MB", with_type("POST", ED, json, &vec![b' '; 20 << 20]));
    add("POST: a list", with_type("POST", ED, json, b"[]"));
    add(
        "POST: another kind",
        with_type(
            "POST",
            ED,
            json,
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#,
        ),
    );
    add(
        "POST: a name that is no name",
        with_type(
            "POST",
            ED,
            json,
            format!(
                r#"{{"apiVersion":"wufb.dev/v1alpha1","kind":"ExpeditedDeployment","metadata":{{"name":"{long}"}},"spec":{{"content":{{"latest":true}}}}}}"#
            )
            .as_bytes(),
        ),
    );
    add(
        "POST: 300 KiB of annotations",
        with_type(
            "POST",
            ED,
            json,
            format!(
                r#"{{"apiVersion":"wufb.dev/v1alpha1","kind":"ExpeditedDeployment","metadata":{{"name":"big","annotations":{{"a":"{}"}}}},"spec":{{"content":{{"latest":true}}}}}}"#,
                "x".repeat(300 << 10)
            )
            .as_bytes(),
        ),
    );
    add(
        "POST: the gate wait past 90 days",
        with_type(
            "POST",
            ED,
            json,
            br#"{"apiVersion":"wufb.dev/v1alpha1","kind":"ExpeditedDeployment","metadata":{"name":"w"},"spec":{"content":{"latest":true},"rollout":{"waves":[{"name":"a","members":[{"device":"3b2a1c0d-5e4f-4a6b-9c8d-000000000101"}]},{"name":"b","members":[{"device":"3b2a1c0d-5e4f-4a6b-9c8d-000000000102"}],"gate":{"wait":"999999999d"}}]}}}"#,
        ),
    );
    add(
        "POST: text/plain",
        with_type("POST", ED, "text/plain", GOOD.as_bytes()),
    );
    add(
        "PUT: not JSON",
        with_type("PUT", &format!("{ED}/ok"), json, b"nope"),
    );
    add(
        "PUT: a name other than the path's",
        with_type("PUT", &format!("{ED}/other"), json, GOOD.as_bytes()),
    );
    // Patches of every type.
    let target = format!("{ED}/ok");
    add(
        "merge patch: not JSON",
        with_type("PATCH", &target, "application/merge-patch+json", b"{"),
    );
    add(
        "merge patch: deeply nested",
        with_type("PATCH", &target, "application/merge-patch+json", deep.as_bytes()),
    );
    add(
        "json patch: not a list",
        with_type("PATCH", &target, "application/json-patch+json", b"{}"),
    );
    add(
        "json patch: an unknown op",
        with_type(
            "PATCH",
            &target,
            "application/json-patch+json",
            br#"[{"op":"explode","path":"/spec"}]"#,
        ),
    );
    add(
        "json patch: a path that is not there",
        with_type(
            "PATCH",
            &target,
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/spec/nothing/at/all","value":1}]"#,
        ),
    );
    add(
        "json patch: a failing test",
        with_type(
            "PATCH",
            &target,
            "application/json-patch+json",
            br#"[{"op":"test","path":"/spec/paused","value":42}]"#,
        ),
    );
    add(
        "strategic merge patch on a custom resource",
        with_type("PATCH", &target, "application/strategic-merge-patch+json", b"{}"),
    );
    add(
        "apply patch: not YAML or JSON",
        with_type(
            "PATCH",
            &format!("{target}?fieldManager=x"),
            "application/apply-patch+yaml",
            b"{{{: ]",
        ),
    );
    add(
        "apply patch: no field manager",
        with_type("PATCH", &target, "application/apply-patch+yaml", GOOD.as_bytes()),
    );
    add(
        "patch: an unknown type",
        with_type("PATCH", &target, "application/x-unknown", b"{}"),
    );
    add(
        "merge patch that breaks the schema",
        with_type(
            "PATCH",
            &target,
            "application/merge-patch+json",
            br#"{"spec":{"paused":"yes"}}"#,
        ),
    );
    add(
        "status patch: not JSON",
        with_type(
            "PATCH",
            &format!("{target}/status"),
            "application/merge-patch+json",
            b"]",
        ),
    );
    // Credentials and framing.
    add(
        "no credentials",
        format!("GET {ED} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes(),
    );
    add(
        "a bearer token that is garbage",
        format!("GET {ED} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {long}\r\n\r\n")
            .into_bytes(),
    );
    add(
        "a bearer token that is not text",
        [
            format!("GET {ED} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer ")
                .as_bytes(),
            &[0xff, 0xfe],
            b"\r\n\r\n",
        ]
        .concat(),
    );
    add(
        "a request line that is not HTTP",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_hostile_requests_with_a_4xx_and_keeps_serving() {
    let server = TestApiServer::start(Options {
        crds: crds(),
        tokens: vec![(TOKEN.into(), Access::Full)],
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr.to_string();
    // The object the patches aim at.
    assert_eq!(
        raw(&addr, &with_type("POST", ED, "application/json", GOOD.as_bytes())).await,
        Some(201)
    );
    for (what, r) in cases() {
        let code = raw(&addr, &r).await;
        assert!(
            code.is_some_and(|c| (400..500).contains(&c)),
            "{what}: answered {code:?}, not a 4xx"
        );
        assert_eq!(
            raw(&addr, &request("GET", &format!("{ED}/ok"), &[], b"")).await,
            Some(200),
            "{what}: the server keeps serving"
        );
    }
}
