//! The HTTP client: TLS with verification (compiled-in roots and an optional CA file), timeouts.

use super::*;

/// Builds the HTTP client: rustls with the ring provider, the public web roots and any extra CA file.
pub fn http_client(config: &TransportConfig) -> Result<reqwest::Client, GraphError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| GraphError::Config {
            detail: format!("cannot read CA file '{}': {e}", path.display()),
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| GraphError::Config {
                detail: format!("bad certificate in '{}': {e}", path.display()),
            })?;
            roots.add(cert).map_err(|e| GraphError::Config {
                detail: format!("unusable CA in '{}': {e}", path.display()),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GraphError::Config {
            detail: format!("TLS setup failed: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("wufb-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| GraphError::Config {
            detail: format!("HTTP client setup failed: {e}"),
        })
}
