//! Corporate networks: Graph and sign-in through an HTTP CONNECT proxy, served over TLS by a private CA
//! (as a TLS-inspecting proxy re-signs them), while the Kubernetes API is reached directly (NO_PROXY).
//! Without the CA the operator says what is wrong and which setting fixes it; with `--ca-file` (the
//! chart's `caBundle`) it signs in and converges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wufb_e2e::Env;
use wufb_e2e::fixtures::{dev, rollout};
use wufb_graph_emulator::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn tls_fixtures() -> PathBuf {
    wufb_e2e::root().join("tests/fixtures/tls")
}

/// Graph over TLS: a listener on `localhost` with the private CA's server certificate, each connection
/// relayed to the emulator's plain port.
async fn tls_in_front_of(target: SocketAddr) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(tls_fixtures().join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(tls_fixtures().join("server-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// An HTTP CONNECT proxy on loopback; returns its port and the targets it was asked for.
async fn connect_proxy() -> (u16, Arc<Mutex<BTreeSet<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let mut first = String::new();
                if reader.read_line(&mut first).await.is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let mut parts = first.split_whitespace();
                let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                seen.lock().unwrap().insert(target.to_string());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                        .await;
                    return;
                };
                let mut client = reader.into_inner();
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, asked)
}

#[tokio::test]
async fn graph_through_a_proxy_with_a_private_ca_and_the_api_server_directly() {
    let mut env = Env::start("proxy").await;
    if env.skip_on_real_cluster("the API server must be on loopback for NO_PROXY to name it") {
        return;
    }
    let emulator: SocketAddr = env
        .emulator
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let tls_port = tls_in_front_of(emulator).await;
    let (proxy_port, asked) = connect_proxy().await;
    let base = format!("https://localhost:{tls_port}");
    let graph = format!("{base}/beta");
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let vars = [("HTTPS_PROXY", proxy.as_str()), ("NO_PROXY", "127.0.0.1")];
    let app = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    env.apply_yaml(&rollout("through-proxy", &[dev(1)], "")).await;

    // Without the private CA: the sign-in is refused, and the object says why and what fixes it.
    let first = env.spawn_controller_at(
        "no-ca",
        app,
        (&graph, &base),
        &["--leader-election", "false"],
        &vars,
    );
    let message = env
        .eventually(
            "the certificate problem named",
            Duration::from_secs(60),
            async || {
                let status = env.get("expd/through-proxy").await["status"].clone();
                let m = wufb_e2e::condition(&status, "Ready")["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                m.contains("certificate").then_some(m)
            },
        )
        .await;
    println!("without the CA: {message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("caBundle.configMap"), "{message}");
    env.kill_controller(first).await;
    assert!(env.graph_deployments().is_empty(), "nothing reached Graph");

    // With it (the chart's caBundle mounts it and passes --ca-file): signed in through the proxy.
    let ca = tls_fixtures().join("ca.pem");
    env.spawn_controller_at(
        "with-ca",
        app,
        (&graph, &base),
        &["--leader-election", "false", "--ca-file", ca.to_str().unwrap()],
        &vars,
    );
    env.wait_ready(&["expd/through-proxy"]).await;
    assert_eq!(env.graph_deployments().len(), 1);
    let asked = asked.lock().unwrap().clone();
    println!("the proxy was asked for {asked:?}");
    assert!(
        asked.contains(&format!("localhost:{tls_port}")),
        "Graph and sign-in went through the proxy: {asked:?}"
    );
    let api = env.apiserver.as_ref().unwrap().addr.port();
    assert!(
        !asked.iter().any(|t| t.ends_with(&format!(":{api}"))),
        "the Kubernetes API was reached directly: {asked:?}"
    );
}
