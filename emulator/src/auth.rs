//! The Microsoft identity platform token endpoint (`client_credentials` with a client secret or a client
//! assertion) and bearer-token checks on Graph calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

use crate::config::{AppRegistration, READ, READ_WRITE};
use crate::error::GraphError;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// An issued access token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub client_id: String,
    pub roles: Vec<String>,
    pub expires: Instant,
}

/// A token endpoint error, in the identity platform's shape.
#[derive(Debug)]
pub struct TokenError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        })
    }
}

fn decode_segment(seg: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn claim<'a>(claims: &'a Value, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or("")
}

fn audience_contains(claims: &Value, wanted: impl Fn(&str) -> bool) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => wanted(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(wanted),
        _ => false,
    }
}

/// Checks a client assertion: a certificate-signed JWT of the app itself, or a federated token from an
/// external issuer (workload identity).
fn check_assertion(app: &AppRegistration, tenant: &str, assertion: &str) -> Result<(), TokenError> {
    let invalid = |code, d: &str| TokenError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, d);
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(invalid(50027, "JWT token is invalid or malformed."));
    }
    let (Some(header), Some(claims)) = (decode_segment(parts[0]), decode_segment(parts[1])) else {
        return Err(invalid(50027, "JWT token is invalid or malformed."));
    };
    let now = chrono::Utc::now().timestamp();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now || nbf > now + 300 {
        return Err(invalid(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let iss = claim(&claims, "iss");
    if iss == app.client_id {
        // Certificate credential: iss and sub are the client id, aud is the token endpoint.
        if claim(&claims, "sub") != app.client_id {
            return Err(invalid(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            ));
        }
        let suffix = format!("/{tenant}/oauth2/v2.0/token");
        if !audience_contains(&claims, |a| a.ends_with(&suffix)) {
            return Err(invalid(
                700212,
                "The audience of the client assertion is not the token endpoint.",
            ));
        }
        if let Some(pem) = &app.certificate_pem {
            let alg = match header.get("alg").and_then(Value::as_str) {
                Some("RS256") => jsonwebtoken::Algorithm::RS256,
                Some("PS256") => jsonwebtoken::Algorithm::PS256,
                _ => {
                    return Err(invalid(
                        5002738,
                        "The client assertion must be signed with RS256 or PS256.",
                    ));
                }
            };
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
                .map_err(|_| invalid(700027, "The registered certificate could not be read."))?;
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.validate_aud = false;
            validation.leeway = 300;
            jsonwebtoken::decode::<Value>(assertion, &key, &validation)
                .map_err(|_| invalid(700027, "Client assertion failed signature validation."))?;
        }
        Ok(())
    } else {
        // Workload identity federation: an external issuer's token exchanged for this app.
        if !audience_contains(&claims, |a| a == FEDERATION_AUDIENCE) {
            return Err(invalid(
                700212,
                "No matching federated identity record found for presented assertion audience.",
            ));
        }
        let sub = claim(&claims, "sub");
        let allowed =
            app.federated.is_empty() || app.federated.iter().any(|f| f.issuer == iss && f.subject == sub);
        if !allowed {
            return Err(invalid(
                700213,
                &format!(
                    "No matching federated identity record found for presented assertion subject '{sub}'."
                ),
            ));
        }
        Ok(())
    }
}

/// Handles a token request for `tenant` with a parsed form body. Returns the token and its registration.
pub fn issue(
    apps: &[AppRegistration],
    tenant: &str,
    form: &HashMap<String, String>,
    tokens: &mut HashMap<String, Issued>,
    now: Instant,
    lifetime: Duration,
    new_token: impl FnOnce() -> String,
) -> Result<Value, TokenError> {
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let bad = |error, code, d: &str| TokenError::new(StatusCode::BAD_REQUEST, error, code, d);
    match get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(bad(
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
        None => {
            return Err(bad(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ));
        }
    }
    let client_id = get("client_id").ok_or_else(|| {
        bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    })?;
    if !apps.iter().any(|a| a.tenant_id == tenant) {
        return Err(bad(
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        ));
    }
    let app = apps
        .iter()
        .find(|a| a.tenant_id == tenant && a.client_id == client_id)
        .ok_or_else(|| {
            bad(
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            )
        })?;
    let scope = get("scope").unwrap_or("");
    if !scope.ends_with("/.default") || scope.contains(' ') {
        return Err(bad(
            "invalid_scope",
            70011,
            &format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        ));
    }
    if let Some(secret) = get("client_secret") {
        if app.client_secret.as_deref() != Some(secret) {
            return Err(TokenError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            ));
        }
    } else if let Some(assertion) = get("client_assertion") {
        if get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(bad(
                "invalid_request",
                70002,
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        check_assertion(app, tenant, assertion)?;
    } else {
        return Err(bad(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let token = access_token(tenant, app, lifetime, &new_token());
    tokens.retain(|_, t| t.expires > now);
    tokens.insert(
        token.clone(),
        Issued {
            client_id: app.client_id.clone(),
            roles: app.roles.clone(),
            expires: now + lifetime,
        },
    );
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": token,
    }))
}

/// An access token shaped as the identity platform's: a JWT whose claims name the tenant (`tid`), the
/// app (`appid`) and its application permissions (`roles`), as `wufb-operator check` reads them. Its
/// signature segment is the random `nonce`: the emulator knows its tokens by their whole text.
fn access_token(tenant: &str, app: &AppRegistration, lifetime: Duration, nonce: &str) -> String {
    let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now, "nbf": now,
        "exp": now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
        "tid": tenant,
        "appid": app.client_id,
        "roles": app.roles,
        "uti": nonce,
    });
    format!(
        "{}.{}.{}",
        e(br#"{"typ":"JWT","alg":"RS256"}"#),
        e(claims.to_string().as_bytes()),
        e(nonce.as_bytes())
    )
}

/// Checks the bearer token of a Graph call. Writes need `WindowsUpdates.ReadWrite.All`.
pub fn check_bearer(
    tokens: &HashMap<String, Issued>,
    now: Instant,
    authorization: Option<&str>,
    write: bool,
) -> Result<String, GraphError> {
    let unauthorized = |m: &str| GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m);
    let Some(token) =
        authorization.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
    else {
        return Err(unauthorized("Access token is empty."));
    };
    let issued = tokens
        .get(token.trim())
        .ok_or_else(|| unauthorized("Access token validation failure. Invalid audience."))?;
    if issued.expires <= now {
        return Err(unauthorized("Lifetime validation failed, the token is expired."));
    }
    let can_read = issued.roles.iter().any(|r| r == READ || r == READ_WRITE);
    let can_write = issued.roles.iter().any(|r| r == READ_WRITE);
    if (write && !can_write) || !can_read {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Missing role permissions on the request. API requires one of '{}'. Roles on the request '{}'.",
                if write {
                    READ_WRITE
                } else {
                    "WindowsUpdates.Read.All, WindowsUpdates.ReadWrite.All"
                },
                issued.roles.join(", ")
            ),
        ));
    }
    Ok(issued.client_id.clone())
}

/// Checks the bearer token of a directory read: listing a group's devices needs `GroupMember.Read.All`
/// (or `Group.Read.All`, or `Directory.Read.All`) and `Device.Read.All` (or `Directory.Read.All`).
pub fn check_directory(
    tokens: &HashMap<String, Issued>,
    now: Instant,
    authorization: Option<&str>,
) -> Result<String, GraphError> {
    let unauthorized = |m: &str| GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m);
    let Some(token) =
        authorization.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
    else {
        return Err(unauthorized("Access token is empty."));
    };
    let issued = tokens
        .get(token.trim())
        .ok_or_else(|| unauthorized("Access token validation failure. Invalid audience."))?;
    if issued.expires <= now {
        return Err(unauthorized("Lifetime validation failed, the token is expired."));
    }
    let has = |any: &[&str]| issued.roles.iter().any(|r| any.contains(&r.as_str()));
    let groups = has(&[
        crate::config::GROUP_MEMBER_READ,
        "Group.Read.All",
        "Directory.Read.All",
    ]);
    let devices = has(&[crate::config::DEVICE_READ, "Directory.Read.All"]);
    if !(groups && devices) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    Ok(issued.client_id.clone())
}
