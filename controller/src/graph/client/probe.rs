//! Read-only probes for `wufb-operator check`: what the access token says of the app, and the service
//! behaviours the operator adapts to, each asked the way the operator asks it.

use super::*;
use crate::crd::ServiceBehaviour;

/// What an access token says of the app: never the token itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenClaims {
    /// `tid`.
    pub tenant: Option<String>,
    /// `appid` (v1 tokens) or `azp` (v2).
    pub app: Option<String>,
    /// The application permissions granted (`roles`), sorted.
    pub roles: Vec<String>,
    /// Whether the token was a JWT whose claims could be read (an opaque token tells nothing).
    pub readable: bool,
}

impl TokenClaims {
    /// The claims of a JWT access token, read without checking its signature (the token came from the
    /// token endpoint over TLS; the claims only describe what Graph will allow).
    pub fn of(token: &str) -> TokenClaims {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        });
        let Some(claims) = payload.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
            return TokenClaims::default();
        };
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let mut roles: Vec<String> = claims
            .get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        roles.sort();
        TokenClaims {
            tenant: text("tid"),
            app: text("appid").or_else(|| text("azp")),
            roles,
            readable: true,
        }
    }
}

/// The name of each service behaviour found.
pub const AUDIENCE_PAGING: &str = "audience-paging";
pub const DEPLOYMENT_FILTER: &str = "deployment-filter";
pub const DEVICE_SIGNALS: &str = "device-signals";

fn behaviour(name: &str, value: &str, found: impl Into<String>) -> ServiceBehaviour {
    ServiceBehaviour {
        name: name.into(),
        value: value.into(),
        found: found.into(),
    }
}

impl GraphClient {
    /// The service behaviours the operator adapts to, each asked as the operator asks it (read-only, a
    /// handful of small reads) and recorded in this client's metrics: whether audience member lists
    /// serve `$count`/`$skip`/`$top`, whether the deployments list serves the `createdDateTime` filter,
    /// and whether `data/deviceProfiles` can be read. `wufb-operator check`, the operator's start-up and
    /// each connection check report the same.
    pub async fn service_behaviours(&self) -> Vec<ServiceBehaviour> {
        let paging = match self
            .probe_get("list deployment audiences", "deploymentAudiences")
            .await
        {
            Err(e) => behaviour(
                AUDIENCE_PAGING,
                "unknown",
                format!("deploymentAudiences could not be listed: {e}"),
            ),
            Ok(list) => match list["value"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|a| a["id"].as_str())
            {
                None => behaviour(
                    AUDIENCE_PAGING,
                    "unknown",
                    "the tenant has no deployment audience to ask",
                ),
                Some(id) => match self.probe_audience_members(id, "?$count=true&$top=1").await {
                    Ok(_) => behaviour(
                        AUDIENCE_PAGING,
                        "served",
                        "$count, $skip and $top are served: large audiences are read in parallel pages",
                    ),
                    Err(e) if e.status() == Some(400) => behaviour(
                        AUDIENCE_PAGING,
                        "refused",
                        "$count, $skip and $top are refused (400): pages are followed one by one by $skiptoken",
                    ),
                    Err(e) if e.status() == Some(404) => behaviour(
                        AUDIENCE_PAGING,
                        "unknown",
                        "the audience asked has never had members (404)",
                    ),
                    Err(e) => behaviour(
                        AUDIENCE_PAGING,
                        "unknown",
                        format!("paging could not be told: {e}"),
                    ),
                },
            },
        };
        let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).format("%Y-%m-%dT%H:%M:%SZ");
        let filter = format!(
            "deployments?$filter={}",
            enc(&format!("createdDateTime ge {since}"))
        );
        let filter = match self.probe_get("list deployments", &filter).await {
            Ok(_) => behaviour(
                DEPLOYMENT_FILTER,
                "served",
                "the createdDateTime filter is served: a lost create is found among the newest deployments",
            ),
            Err(e) if matches!(e.status(), Some(400 | 501)) => behaviour(
                DEPLOYMENT_FILTER,
                "refused",
                format!(
                    "the createdDateTime filter is refused ({}): a lost create is found by reading every deployment",
                    e.status().unwrap_or_default()
                ),
            ),
            Err(e) => behaviour(
                DEPLOYMENT_FILTER,
                "unknown",
                format!("the deployments could not be listed: {e}"),
            ),
        };
        let signals = match self
            .probe_get("list device profiles", "data/deviceProfiles?$top=1")
            .await
        {
            Ok(_) => behaviour(
                DEVICE_SIGNALS,
                "readable",
                "data/deviceProfiles is readable: progress and health gates have figures",
            ),
            Err(e) if matches!(e.status(), Some(401 | 403)) => behaviour(
                DEVICE_SIGNALS,
                "refused",
                format!("data/deviceProfiles is refused: progress and health gates have no figures ({e})"),
            ),
            Err(e) => behaviour(
                DEVICE_SIGNALS,
                "unknown",
                format!("data/deviceProfiles could not be read: {e}"),
            ),
        };
        let found = vec![paging, filter, signals];
        for b in &found {
            self.transport.metrics.found(&b.name, &b.value);
        }
        found
    }

    /// Signs in (or uses the cached token) and reads the token's claims; `None` without a credential.
    pub async fn token_claims(&self) -> Result<Option<TokenClaims>, GraphError> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let token = tokens.token().await?;
        Ok(Some(TokenClaims::of(token.expose())))
    }

    /// A GET of a path under the deployment service (`deploymentAudiences?$top=1`, ...), the JSON
    /// answered or the error.
    pub async fn probe_get(&self, operation: &'static str, path: &str) -> Result<Value, GraphError> {
        self.transport
            .json(operation, Method::GET, &self.url(path), None, Idempotency::Safe)
            .await
    }

    /// Whether the tenant takes the deployment service's requests in a JSON batch (`$batch`).
    pub async fn json_batches(&self) -> Result<bool, GraphError> {
        self.transport.json_batches().await
    }

    /// The members of the audience `id`, with `query` (`""`, `"?$count=true&$top=1"`).
    pub async fn probe_audience_members(&self, id: &str, query: &str) -> Result<Value, GraphError> {
        let path = format!("deploymentAudiences/{}/members{query}", enc(id));
        self.probe_get("list audience members", &path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        use base64::Engine as _;
        let e = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            e(br#"{"alg":"none","typ":"JWT"}"#),
            e(claims.to_string().as_bytes()),
            e(b"sig")
        )
    }

    #[test]
    fn claims_are_read_from_a_jwt_and_an_opaque_token_tells_nothing() {
        let c = TokenClaims::of(&jwt(&json!({"tid": "t1", "appid": "a1", "roles": ["Z", "A"]})));
        assert_eq!(
            c,
            TokenClaims {
                tenant: Some("t1".into()),
                app: Some("a1".into()),
                roles: vec!["A".into(), "Z".into()],
                readable: true,
            }
        );
        assert_eq!(
            TokenClaims::of(&jwt(&json!({"azp": "a2"}))).app.as_deref(),
            Some("a2")
        );
        for opaque in ["", "emu.0123", "a.%%%.c", "a.bm90IGpzb24.c"] {
            assert_eq!(TokenClaims::of(opaque), TokenClaims::default(), "{opaque}");
        }
    }
}
