//! App-only authentication to the Microsoft identity platform: client secret, certificate (a signed client
//! assertion) and workload identity federation (a projected token file, re-read on every acquisition).
//! Tokens are cached and refreshed before expiry; concurrent callers share one refresh.
//!
//! These flows are three form POSTs, written on the project's own `reqwest` client instead of the
//! `azure_identity` crate: that crate rejects an authority host that is not `https://` (the emulator is
//! plain HTTP on loopback), its certificate credential needs OpenSSL, and it would bring a second HTTP
//! stack. The certificate assertion follows the documented format (PS256, `x5t#S256`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::endpoints::Endpoints;
use super::error::GraphError;

/// A credential value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the operator proves its identity.
#[derive(Clone, Debug)]
pub enum CredentialKind {
    ClientSecret(SecretString),
    /// A certificate credential: the private key signs a client assertion.
    Certificate {
        key_pem: SecretString,
        thumbprint_s256: String,
        /// When the certificate expires (its notAfter), in seconds since the Unix epoch.
        not_after: i64,
    },
    /// Workload identity federation: the file holds a token from the cluster's issuer.
    WorkloadIdentity {
        token_file: PathBuf,
    },
}

/// A tenant, an app and its credential.
#[derive(Clone, Debug)]
pub struct Credential {
    pub tenant_id: String,
    pub client_id: String,
    pub kind: CredentialKind,
}

/// The largest credential the operator reads, from a Secret key or a file: a client secret is about
/// 40 characters, a PEM with a 4096-bit key and a certificate chain, or a service-account token, a few
/// KiB.
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;

/// A Secret key's value as trimmed text (`None`: no such key).
fn secret_text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Result<Option<String>, GraphError> {
    data.get(key)
        .map(|v| {
            if v.len() > MAX_CREDENTIAL_BYTES {
                return Err(GraphError::Credential {
                    detail: format!(
                        "Secret key '{key}' holds {} bytes, more than {MAX_CREDENTIAL_BYTES} (a client secret or a certificate PEM is a few KiB); put only the credential there",
                        v.len()
                    ),
                });
            }
            String::from_utf8(v.clone())
                .map(|s| s.trim().to_string())
                .map_err(|_| GraphError::Credential {
                    detail: format!("Secret key '{key}' is not UTF-8 text"),
                })
        })
        .transpose()
}

/// A credential file's text, read no further than [`MAX_CREDENTIAL_BYTES`].
fn read_credential_file(path: &std::path::Path, what: &str) -> Result<String, GraphError> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CREDENTIAL_BYTES as u64 + 1).read_to_string(&mut text))
        .map_err(|e| GraphError::Credential {
            detail: format!("cannot read the {what} '{}': {e}", path.display()),
        })?;
    if text.len() > MAX_CREDENTIAL_BYTES {
        return Err(GraphError::Credential {
            detail: format!(
                "the {what} '{}' is larger than {MAX_CREDENTIAL_BYTES} bytes; it should hold only the credential",
                path.display()
            ),
        });
    }
    Ok(text)
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn pem_blocks(pem: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else { break };
        let b64: String = after[..stop].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
            out.push(der);
        }
        rest = &after[stop + end.len()..];
    }
    out
}

fn private_key_pem(pem: &str) -> Option<String> {
    ["PRIVATE KEY", "RSA PRIVATE KEY"].iter().find_map(|label| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let s = pem.find(&begin)?;
        let e = pem[s..].find(&end)? + s + end.len();
        Some(pem[s..e].to_string())
    })
}

impl Credential {
    /// A certificate credential from PEM text holding the certificate and its private key (the format
    /// `AZURE_CLIENT_CERTIFICATE_PATH` points at).
    pub fn certificate(tenant_id: &str, client_id: &str, pem: &str) -> Result<Self, GraphError> {
        let cert = pem_blocks(pem, "CERTIFICATE").into_iter().next().ok_or_else(|| GraphError::Credential {
            detail: "the certificate file holds no CERTIFICATE block; give a PEM with the certificate and its private key"
                .into(),
        })?;
        let parsed = {
            use x509_cert::der::Decode as _;
            x509_cert::Certificate::from_der(&cert).map_err(|_| GraphError::Credential {
                detail: "the CERTIFICATE block is not a DER certificate; give the certificate Entra ID holds, in PEM".into(),
            })?
        };
        let not_after = i64::try_from(
            parsed
                .tbs_certificate()
                .validity()
                .not_after
                .to_unix_duration()
                .as_secs(),
        )
        .unwrap_or(i64::MAX);
        let key = private_key_pem(pem).ok_or_else(|| GraphError::Credential {
            detail: "the certificate file holds no PRIVATE KEY block; give a PEM with the certificate and its private key"
                .into(),
        })?;
        jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).map_err(|_| GraphError::Credential {
            detail: "the private key in the certificate file is not an RSA key in PEM form".into(),
        })?;
        let thumbprint_s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&cert));
        Ok(Credential {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            kind: CredentialKind::Certificate {
                key_pem: SecretString::new(key),
                thumbprint_s256,
                not_after,
            },
        })
    }

    /// When a certificate credential's certificate expires (seconds since the Unix epoch); `None` for
    /// the other kinds.
    pub fn certificate_expiry(&self) -> Option<i64> {
        match &self.kind {
            CredentialKind::Certificate { not_after, .. } => Some(*not_after),
            _ => None,
        }
    }

    /// From the standard environment variables: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and one of
    /// `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH` or `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, GraphError> {
        let need = |k: &str| {
            get(k)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| GraphError::Credential {
                    detail: format!("{k} is not set; set it or configure a credentials Secret"),
                })
        };
        let tenant = need("AZURE_TENANT_ID")?;
        let client = need("AZURE_CLIENT_ID")?;
        if let Some(secret) = get("AZURE_CLIENT_SECRET").filter(|s| !s.is_empty()) {
            return Ok(Credential {
                tenant_id: tenant,
                client_id: client,
                kind: CredentialKind::ClientSecret(SecretString::new(secret)),
            });
        }
        if let Some(path) = get("AZURE_CLIENT_CERTIFICATE_PATH").filter(|s| !s.is_empty()) {
            let pem =
                read_credential_file(std::path::Path::new(&path), "AZURE_CLIENT_CERTIFICATE_PATH file")?;
            return Credential::certificate(&tenant, &client, &pem);
        }
        if let Some(path) = get("AZURE_FEDERATED_TOKEN_FILE").filter(|s| !s.is_empty()) {
            return Ok(Credential {
                tenant_id: tenant,
                client_id: client,
                kind: CredentialKind::WorkloadIdentity {
                    token_file: path.into(),
                },
            });
        }
        Err(GraphError::Credential {
            detail: "no credential: set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE"
                .into(),
        })
    }

    /// From a Kubernetes Secret's data: `tenantId`, `clientId`, and one of `clientSecret`,
    /// `clientCertificate` (PEM with certificate and key) or `federatedTokenFile` (a path in the pod).
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, GraphError> {
        let text = |k: &str| secret_text(data, k);
        let need = |k: &str| {
            text(k)?
                .filter(|v| !v.is_empty())
                .ok_or_else(|| GraphError::Credential {
                    detail: format!("the credentials Secret has no '{k}' key; add it"),
                })
        };
        let tenant = need("tenantId")?;
        let client = need("clientId")?;
        if let Some(secret) = text("clientSecret")?.filter(|s| !s.is_empty()) {
            return Ok(Credential {
                tenant_id: tenant,
                client_id: client,
                kind: CredentialKind::ClientSecret(SecretString::new(secret)),
            });
        }
        if let Some(pem) = text("clientCertificate")?.filter(|s| !s.is_empty()) {
            return Credential::certificate(&tenant, &client, &pem);
        }
        if let Some(path) = text("federatedTokenFile")?.filter(|s| !s.is_empty()) {
            return Ok(Credential {
                tenant_id: tenant,
                client_id: client,
                kind: CredentialKind::WorkloadIdentity {
                    token_file: path.into(),
                },
            });
        }
        Err(GraphError::Credential {
            detail: "the credentials Secret needs one of 'clientSecret', 'clientCertificate' or 'federatedTokenFile'".into(),
        })
    }

    /// Removes every credential value from a text that may be shown.
    /// A connection's credential: the tenant and app from its spec, the secret from its Secret's data
    /// (`clientSecret`, or `clientCertificate` with the certificate and its private key in PEM). A
    /// path to a token file is not taken from a Secret: it would let a Secret's author choose a file
    /// of the operator's to send.
    pub fn for_connection(
        tenant_id: &str,
        client_id: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, GraphError> {
        let text = |k: &str| secret_text(data, k).map(|v| v.filter(|s| !s.is_empty()));
        if let Some(secret) = text("clientSecret")? {
            return Ok(Credential {
                tenant_id: tenant_id.into(),
                client_id: client_id.into(),
                kind: CredentialKind::ClientSecret(SecretString::new(secret)),
            });
        }
        if let Some(pem) = text("clientCertificate")? {
            return Credential::certificate(tenant_id, client_id, &pem);
        }
        Err(GraphError::Credential {
            detail: "the Secret has neither a 'clientSecret' nor a 'clientCertificate' key; add one".into(),
        })
    }

    /// Workload identity federation: the operator's service-account token in `token_file`, read for
    /// every token request.
    pub fn workload_identity(tenant_id: &str, client_id: &str, token_file: &std::path::Path) -> Self {
        Credential {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            kind: CredentialKind::WorkloadIdentity {
                token_file: token_file.to_path_buf(),
            },
        }
    }

    pub fn redact(&self, text: &str) -> String {
        match &self.kind {
            CredentialKind::ClientSecret(s) if !s.expose().is_empty() => {
                text.replace(s.expose(), "[redacted]")
            }
            _ => text.to_string(),
        }
    }

    fn assertion(&self, token_url: &str) -> Result<Option<String>, GraphError> {
        match &self.kind {
            CredentialKind::ClientSecret(_) => Ok(None),
            CredentialKind::Certificate {
                key_pem,
                thumbprint_s256,
                ..
            } => {
                let now = chrono::Utc::now().timestamp();
                let claims = serde_json::json!({
                    "aud": token_url,
                    "iss": self.client_id,
                    "sub": self.client_id,
                    "jti": uuid::Uuid::new_v4().to_string(),
                    "nbf": now,
                    "iat": now,
                    "exp": now + 600,
                });
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
                header.x5t_s256 = Some(thumbprint_s256.clone());
                let key =
                    jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes()).map_err(|_| {
                        GraphError::Credential {
                            detail: "the certificate's private key cannot sign".into(),
                        }
                    })?;
                jsonwebtoken::encode(&header, &claims, &key)
                    .map(Some)
                    .map_err(|e| GraphError::Credential {
                        detail: format!("cannot sign the client assertion: {e}"),
                    })
            }
            CredentialKind::WorkloadIdentity { token_file } => {
                // Re-read every time: the kubelet rotates the projected token.
                let token = read_credential_file(token_file, "federated token file")?;
                Ok(Some(token.trim().to_string()))
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Clone)]
struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
    expires_at: Instant,
}

/// Caches a token and refreshes it before it expires.
pub struct TokenProvider {
    credential: Credential,
    token_url: String,
    scope: String,
    http: reqwest::Client,
    cache: Mutex<Option<CachedToken>>,
    acquisitions: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("client_id", &self.credential.client_id)
            .field("token_url", &self.token_url)
            .finish()
    }
}

impl TokenProvider {
    pub fn new(credential: Credential, endpoints: &Endpoints, http: reqwest::Client) -> Arc<Self> {
        Arc::new(TokenProvider {
            token_url: endpoints.token_url(&credential.tenant_id),
            scope: endpoints.scope(),
            credential,
            http,
            cache: Mutex::new(None),
            acquisitions: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Tokens fetched from the token endpoint so far.
    pub fn acquisitions(&self) -> u64 {
        self.acquisitions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid access token. Callers that arrive during a refresh wait for it and share its result.
    pub async fn token(&self) -> Result<SecretString, GraphError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.value.clone());
        }
        match self.fetch().await {
            Ok(t) => {
                let value = t.value.clone();
                *cache = Some(t);
                Ok(value)
            }
            // A refresh that fails while the old token is still valid keeps the old one.
            Err(e) => match cache.as_ref().filter(|t| Instant::now() < t.expires_at) {
                Some(t) => Ok(t.value.clone()),
                None => Err(e),
            },
        }
    }

    /// Forgets the cached token (after Graph answered 401 to it).
    pub async fn invalidate(&self, token: &SecretString) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|t| &t.value == token) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken, GraphError> {
        self.acquisitions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let c = &self.credential;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", c.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match (&c.kind, c.assertion(&self.token_url)?) {
            (CredentialKind::ClientSecret(s), _) => form.push(("client_secret", s.expose().to_string())),
            (_, Some(assertion)) => {
                form.push(("client_assertion_type", ASSERTION_TYPE.into()));
                form.push(("client_assertion", assertion));
            }
            (_, None) => {
                return Err(GraphError::Credential {
                    detail: "no assertion could be built".into(),
                });
            }
        }
        let started = Instant::now();
        let resp = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| GraphError::Token {
                error: "request_failed".into(),
                description: c.redact(&format!(
                    "the token endpoint {} could not be reached: {}",
                    self.token_url,
                    without_url(&e)
                )),
                status: 503,
            })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let err: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let error = if err.error.is_empty() {
                format!("http_{status}")
            } else {
                err.error
            };
            // The first line of an AADSTS description carries the code and the reason; the rest is trace ids.
            let description = err.error_description.lines().next().unwrap_or("").to_string();
            return Err(GraphError::Token {
                error,
                description: c.redact(&description),
                status,
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| GraphError::Token {
            error: "invalid_response".into(),
            description: "the token endpoint answered without an access_token".into(),
            status: 502,
        })?;
        let lifetime = parsed
            .expires_in
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .map_or(Duration::from_secs(3600), Duration::from_secs);
        // Refresh a fifth of the lifetime early, at most five minutes early.
        let margin = (lifetime / 5).min(Duration::from_secs(300));
        Ok(CachedToken {
            value: SecretString::new(parsed.access_token),
            refresh_at: started + lifetime.saturating_sub(margin),
            expires_at: started + lifetime,
        })
    }
}

/// A reqwest error's text without the URL (which is fine) and without any query string (which is not ours).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    let causes = super::error::causes(e);
    if !causes.is_empty() {
        s = format!("{s}: {causes}");
    }
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Credential {
            tenant_id: "t".into(),
            client_id: "c".into(),
            kind: CredentialKind::ClientSecret(SecretString::new("hunter2-very-secret")),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(
            c.redact("bad secret hunter2-very-secret given"),
            "bad secret [redacted] given"
        );
    }

    #[test]
    fn from_env_picks_the_credential_kind() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let c = Credential::from_env(env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]))
        .unwrap();
        assert!(matches!(c.kind, CredentialKind::ClientSecret(_)));
        let c = Credential::from_env(env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ]))
        .unwrap();
        assert!(matches!(c.kind, CredentialKind::WorkloadIdentity { .. }));
        let err = Credential::from_env(env(&[("AZURE_CLIENT_ID", "c")])).unwrap_err();
        assert!(err.to_string().contains("AZURE_TENANT_ID"), "{err}");
        let err =
            Credential::from_env(env(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")])).unwrap_err();
        assert!(err.to_string().contains("AZURE_CLIENT_SECRET"), "{err}");
    }

    #[test]
    fn from_secret_data_names_the_missing_key() {
        let mut data = BTreeMap::new();
        data.insert("tenantId".to_string(), b"t".to_vec());
        let err = Credential::from_secret_data(&data).unwrap_err();
        assert!(err.to_string().contains("'clientId'"), "{err}");
        data.insert("clientId".to_string(), b"c".to_vec());
        data.insert("clientSecret".to_string(), b"s\n".to_vec());
        let c = Credential::from_secret_data(&data).unwrap();
        assert!(matches!(&c.kind, CredentialKind::ClientSecret(s) if s.expose() == "s"));
    }

    #[test]
    fn certificate_needs_cert_and_key() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/credentials");
        let cert = std::fs::read_to_string(format!("{dir}/client-cert.pem")).unwrap();
        let key = std::fs::read_to_string(format!("{dir}/client-key.pem")).unwrap();
        let c = Credential::certificate("t", "c", &format!("{cert}{key}")).unwrap();
        let CredentialKind::Certificate { thumbprint_s256, .. } = &c.kind else {
            panic!("certificate")
        };
        assert_eq!(thumbprint_s256.len(), 43);
        // notAfter of the fixture (`openssl x509 -enddate`: Nov  4 13:19:40 2126 GMT).
        assert_eq!(c.certificate_expiry(), Some(4_949_471_980));
        assert!(!format!("{c:?}").contains("PRIVATE"));
        assert!(
            Credential::certificate("t", "c", &cert)
                .unwrap_err()
                .to_string()
                .contains("PRIVATE KEY")
        );
        assert!(
            Credential::certificate("t", "c", &key)
                .unwrap_err()
                .to_string()
                .contains("CERTIFICATE")
        );
    }

    #[test]
    fn hostile_secret_contents_are_refused_by_key_without_echoing_them() {
        let with = |k: &str, v: Vec<u8>| BTreeMap::from([(k.to_string(), v)]);
        let huge =
            Credential::for_connection("t", "c", &with("clientSecret", vec![b'a'; 1 << 20])).unwrap_err();
        assert!(
            huge.to_string().contains("'clientSecret' holds 1048576 bytes"),
            "{huge}"
        );
        let binary =
            Credential::for_connection("t", "c", &with("clientSecret", vec![0xff, 0xfe, 0x00])).unwrap_err();
        assert!(binary.to_string().contains("not UTF-8"), "{binary}");
        let empty = Credential::for_connection("t", "c", &with("clientSecret", Vec::new())).unwrap_err();
        assert!(empty.to_string().contains("neither"), "{empty}");
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let cert =
            Credential::for_connection("t", "c", &with("clientCertificate", garbage.into())).unwrap_err();
        assert!(cert.to_string().contains("not a DER certificate"), "{cert}");
    }

    #[test]
    fn a_huge_token_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("wufb-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, vec![b'x'; MAX_CREDENTIAL_BYTES + 1]).unwrap();
        let err = read_credential_file(&path, "federated token file").unwrap_err();
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
        std::fs::write(&path, "header.payload.signature\n").unwrap();
        assert_eq!(
            read_credential_file(&path, "federated token file")
                .unwrap()
                .trim(),
            "header.payload.signature"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    proptest::proptest! {
        #[test]
        fn any_secret_data_gives_a_credential_or_an_error_that_never_quotes_it(
            key in proptest::sample::select(vec!["clientSecret", "clientCertificate", "tenantId", "other"]),
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            pem in proptest::bool::ANY,
        ) {
            let mut v = value.clone();
            if pem {
                v = [b"-----BEGIN CERTIFICATE-----\n".as_slice(), &value, b"\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n", &value, b"\n-----END PRIVATE KEY-----\n"].concat();
            }
            let data = BTreeMap::from([(key.to_string(), v.clone())]);
            for result in [Credential::for_connection("t", "c", &data), Credential::from_secret_data(&data)] {
                if let Err(e) = result {
                    let text = e.to_string();
                    if let Ok(secret) = std::str::from_utf8(&v) {
                        let secret = secret.trim();
                        proptest::prop_assert!(secret.len() < 8 || !text.contains(secret), "{text}");
                    }
                }
            }
        }
    }
}
