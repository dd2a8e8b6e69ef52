//! Hostile requests to every route of the emulator, sent as raw HTTP/1.1 (so nothing on the client side
//! cleans them up): malformed and oversized bodies, odd headers, query options out of their form or
//! range, and path segments that are not text. Each gets a 4xx answer, and the emulator keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wufb_graph_emulator::{Emulator, EmulatorConfig};

const U: &str = "/beta/admin/windows/updates";

/// Sends `request` as it is and returns the status code of the answer (`None`: the connection was
/// closed without one).
async fn raw(addr: &str, request: &[u8]) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A server may answer (and close) before it has read all of a large request.
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
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = r.into_bytes();
    out.extend_from_slice(body);
    out
}

fn json(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    request(method, target, &[("Content-Type", "application/json")], body)
}

async fn serving(addr: &str) {
    assert_eq!(
        raw(addr, &request("GET", "/_emulator/health", &[], b"")).await,
        Some(200),
        "the emulator keeps serving"
    );
}

/// Every case: what it is, and the request.
fn cases() -> Vec<(String, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long = "a".repeat(20_000);
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |what: &str, r: Vec<u8>| out.push((what.to_string(), r));
    // Path segments.
    for path in [
        format!("{U}/deployments/%ff%fe"),
        format!("{U}/deployments/{long}"),
        format!("{U}/deployments/%00"),
        format!("{U}/deployments('x')/audience"),
        format!("{U}/../../../etc/passwd"),
        format!("{U}/deploymentAudiences/%E2%80%AE/members"),
        format!("{U}/updatableAssets/%zz"),
        format!("{U}/catalog/entries/{}", "%2F".repeat(1000)),
        format!("{U}/nothing/here/at/all"),
    ] {
        add(
            &format!("GET {}", &path[..path.len().min(60)]),
            request("GET", &path, &[], b""),
        );
    }
    // Query options.
    for q in [
        "$top=-1".to_string(),
        "$top=99999999999999999999999".to_string(),
        "$top=1.5".to_string(),
        "$skip=abc".to_string(),
        format!("$filter={}", "(".repeat(5000)),
        "$filter=releaseDateTime%20ge%2099999-99-99".to_string(),
        "$filter=%ff%fe".to_string(),
        "$orderby=nonsense%20desc%20desc".to_string(),
        "$skiptoken=%25%25%25".to_string(),
        "$skiptoken=99999999999999999999999".to_string(),
        "$expand=*($levels=max)".to_string(),
        "$count=maybe".to_string(),
        format!("$select={long}"),
    ] {
        add(
            &format!("query {}", &q[..q.len().min(40)]),
            request("GET", &format!("{U}/catalog/entries?{q}"), &[], b""),
        );
    }
    // Bodies.
    for (what, target) in [
        ("deployments", format!("{U}/deployments")),
        ("audiences", format!("{U}/deploymentAudiences")),
        (
            "updateAudience",
            format!("{U}/deploymentAudiences/x/updateAudience"),
        ),
        (
            "updateAudienceById",
            format!("{U}/deploymentAudiences/x/updateAudienceById"),
        ),
        (
            "group add",
            format!("{U}/updatableAssets/x/microsoft.graph.windowsUpdates.addMembersById"),
        ),
        ("enroll", format!("{U}/updatableAssets/enrollAssetsById")),
    ] {
        add(&format!("{what}: not JSON"), json("POST", &target, b"{"));
        add(
            &format!("{what}: deeply nested"),
            json("POST", &target, deep.as_bytes()),
        );
        add(
            &format!("{what}: wrong types"),
            json(
                "POST",
                &target,
                br#"{"content": 5, "addMembers": "x", "ids": {}}"#,
            ),
        );
        add(
            &format!("{what}: not UTF-8"),
            json("POST", &target, &[0x7b, 0xff, 0xfe, 0x7d]),
        );
        add(
            &format!("{what}: 20 MB"),
            json("POST", &target, &vec![b' '; 20 << 20]),
        );
        add(
            &format!("{what}: text/plain"),
            request("POST", &target, &[("Content-Type", "text/plain")], b"{}"),
        );
    }
    add(
        "PATCH deployment: not JSON",
        json("PATCH", &format!("{U}/deployments/x"), b"nope"),
    );
    add(
        "updateAudience: 100,000 garbage ids",
        json(
            "POST",
            &format!("{U}/deploymentAudiences/x/updateAudience"),
            format!(
                r#"{{"addMembers": [{}]}}"#,
                vec![
                    r##"{"@odata.type":"#microsoft.graph.windowsUpdates.azureADDevice","id":"\u202e"}"##;
                    100_000
                ]
                .join(",")
            )
            .as_bytes(),
        ),
    );
    // Headers.
    add(
        "a Content-Type that is not text",
        [
            b"POST /beta/admin/windows/updates/deployments HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                .as_slice(),
            &[0xff, 0xfe],
            b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        ]
        .concat(),
    );
    add(
        "a 1 MiB header",
        request(
            "GET",
            &format!("{U}/deployments"),
            &[("X-Big", &"b".repeat(1 << 20))],
            b"",
        ),
    );
    add(
        "a request line that is not HTTP",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
    );
    out
}

fn auth_cases(tenant: &str) -> Vec<(String, Vec<u8>)> {
    let token = format!("/{tenant}/oauth2/v2.0/token");
    let form = |b: &[u8]| {
        request(
            "POST",
            &token,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b,
        )
    };
    vec![
        ("token: no grant".into(), form(b"client_id=x")),
        ("token: not UTF-8".into(), form(&[b'a', b'=', 0xff, 0xfe])),
        (
            "token: huge assertion".into(),
            form(format!("grant_type=client_credentials&client_id=x&client_assertion={}", "e".repeat(1 << 20)).as_bytes()),
        ),
        (
            "token: percent garbage".into(),
            form(b"grant_type=%zz&client_id=%ff&client_secret=%00&scope=%"),
        ),
        (
            "token: wrong tenant path".into(),
            request("POST", "/%ff%fe/oauth2/v2.0/token", &[("Content-Type", "application/x-www-form-urlencoded")], b"grant_type=client_credentials"),
        ),
        (
            "a bearer token that is garbage".into(),
            request("GET", &format!("{U}/deployments"), &[("Authorization", &format!("Bearer {}", "x.y.z".repeat(2000)))], b""),
        ),
        (
            "a bearer token that is no JWT".into(),
            request("GET", &format!("{U}/deployments"), &[("Authorization", "Bearer \u{7f}")], b""),
        ),
        (
            "a bearer token that is not text".into(),
            [
                b"GET /beta/admin/windows/updates/deployments HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ".as_slice(),
                &[0xff, 0xfe],
                b"\r\nConnection: close\r\n\r\n",
            ]
            .concat(),
        ),
        (
            "basic instead of bearer".into(),
            request("GET", &format!("{U}/deployments"), &[("Authorization", "Basic Zm9vOmJhcg==")], b""),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_hostile_requests_with_a_4xx_and_keeps_serving() {
    let emu = Emulator::start(
        EmulatorConfig {
            auth: false,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let addr = emu.base_url().trim_start_matches("http://").to_string();
    for (what, r) in cases() {
        let code = raw(&addr, &r).await;
        assert!(
            code.is_some_and(|c| (400..500).contains(&c)),
            "{what}: answered {code:?}, not a 4xx"
        );
        serving(&addr).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_bearer_tokens_answer_hostile_requests_with_a_4xx() {
    let emu = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let addr = emu.base_url().trim_start_matches("http://").to_string();
    for (what, r) in auth_cases(wufb_graph_emulator::config::DEFAULT_TENANT_ID) {
        let code = raw(&addr, &r).await;
        assert!(
            code.is_some_and(|c| (400..500).contains(&c)),
            "{what}: answered {code:?}, not a 4xx"
        );
        serving(&addr).await;
    }
}
