//! Graph is reached over TLS with verification on: a server whose certificate no trusted CA signed is
//! refused; trusting its CA (the `--ca-file` option) lets the client through. Plain HTTP is refused for
//! anything but loopback (see `Endpoints`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wufb_operator::graph::{Endpoints, GraphClient, GraphConfig, GraphMetrics, TransportConfig};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tls")
}

/// An HTTPS server answering every request with an empty deployment list.
async fn https_server() -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(fixtures().join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(fixtures().join("server-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"value":[]}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://localhost:{port}")
}

fn client(base: &str, ca: Option<PathBuf>) -> GraphClient {
    GraphClient::new(
        GraphConfig {
            endpoints: Endpoints::custom(base, &format!("{base}/beta")).unwrap(),
            credential: None,
            transport: TransportConfig {
                ca_file: ca,
                max_retries: 0,
                ..Default::default()
            },
            batch_size: 1000,
        },
        GraphMetrics::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn certificates_are_verified() {
    let base = https_server().await;
    let err = client(&base, None)
        .deployments_created_since(chrono::Utc::now())
        .await
        .unwrap_err();
    assert_eq!(
        err.category(),
        "GraphUnreachable",
        "an unknown issuer is refused: {err}"
    );
    let ok = client(&base, Some(fixtures().join("ca.pem")))
        .deployments_created_since(chrono::Utc::now())
        .await
        .unwrap();
    assert!(ok.is_empty(), "trusting the CA file lets the client through");
}
