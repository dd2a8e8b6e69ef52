//! National clouds and custom endpoints: where tokens come from and where Graph lives.

use std::net::IpAddr;

use reqwest::Url;

use super::error::GraphError;

/// A Microsoft cloud with its sign-in and Graph hosts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Microsoft Graph global service.
    #[default]
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDod,
    /// Microsoft Graph operated by 21Vianet in China.
    China,
}

impl From<crate::crd::graph_connection::ConnectionCloud> for Cloud {
    fn from(c: crate::crd::graph_connection::ConnectionCloud) -> Self {
        use crate::crd::graph_connection::ConnectionCloud;
        match c {
            ConnectionCloud::Global => Cloud::Global,
            ConnectionCloud::UsGov => Cloud::UsGov,
            ConnectionCloud::UsGovDod => Cloud::UsGovDod,
            ConnectionCloud::China => Cloud::China,
        }
    }
}

/// The reference page every availability claim below is read from.
pub const AVAILABILITY_PAGE: &str =
    "https://learn.microsoft.com/en-us/graph/api/adminwindowsupdates-post-deployments?view=graph-rest-beta";

/// Whether the deployment service is documented in a cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Documented,
    /// Some of the calls the operator makes are marked unavailable there.
    Partial,
    /// Every page of the service marks it unavailable.
    Unavailable,
}

impl Cloud {
    /// What the Graph reference pages of the deployment service say about this cloud: every page marks
    /// China (21Vianet) unavailable; several (group create and delete, get audience, older get and list
    /// pages) mark US Government L4 and L5 unavailable while newer ones mark them available.
    pub fn availability(self) -> Availability {
        match self {
            Cloud::Global => Availability::Documented,
            Cloud::UsGov | Cloud::UsGovDod => Availability::Partial,
            Cloud::China => Availability::Unavailable,
        }
    }

    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Resolved endpoints of one tenant connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// `https://login.microsoftonline.com` or a custom authority host.
    pub authority_host: Url,
    /// Graph root with the version, e.g. `https://graph.microsoft.com/beta`.
    pub graph_base: Url,
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn parse(field: &str, raw: &str) -> Result<Url, GraphError> {
    let url = Url::parse(raw.trim_end_matches('/')).map_err(|e| GraphError::Config {
        detail: format!("{field} '{raw}' is not a URL ({e}); give e.g. https://graph.microsoft.com/beta"),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(GraphError::Config {
            detail: format!("{field} '{raw}' uses plain http; only loopback hosts may, use https"),
        }),
        other => Err(GraphError::Config {
            detail: format!("{field} '{raw}' has unsupported scheme '{other}'; use https"),
        }),
    }
}

impl Endpoints {
    /// The preset endpoints of a cloud.
    pub fn cloud(cloud: Cloud) -> Result<Self, GraphError> {
        Self::custom(cloud.authority_host(), &format!("{}/beta", cloud.graph_host()))
    }

    /// Explicit endpoints. `graph_base` may omit the version (`/beta` is then added).
    pub fn custom(authority_host: &str, graph_base: &str) -> Result<Self, GraphError> {
        let authority_host = parse("authority host", authority_host)?;
        let mut graph_base = parse("Graph base URL", graph_base)?;
        if !graph_base.path().trim_end_matches('/').ends_with("/beta") {
            let path = format!("{}/beta", graph_base.path().trim_end_matches('/'));
            graph_base.set_path(&path);
        }
        Ok(Endpoints {
            authority_host,
            graph_base,
        })
    }

    /// The token endpoint of a tenant.
    pub fn token_url(&self, tenant: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.as_str().trim_end_matches('/'),
            tenant
        )
    }

    /// The `.default` scope of the Graph resource.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.graph_base.origin().ascii_serialization())
    }

    /// The absolute URL of a path under `/admin/windows/updates`.
    pub fn updates_url(&self, path: &str) -> String {
        format!(
            "{}/admin/windows/updates/{}",
            self.graph_base.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// Whether a server-supplied URL (a next link) points at the configured Graph origin.
    pub fn same_origin(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| u.origin() == self.graph_base.origin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_scope() {
        let e = Endpoints::cloud(Cloud::UsGovDod).unwrap();
        assert_eq!(
            e.token_url("t"),
            "https://login.microsoftonline.us/t/oauth2/v2.0/token"
        );
        assert_eq!(e.scope(), "https://dod-graph.microsoft.us/.default");
        assert_eq!(
            e.updates_url("deployments"),
            "https://dod-graph.microsoft.us/beta/admin/windows/updates/deployments"
        );
        assert_eq!(
            Endpoints::cloud(Cloud::China).unwrap().scope(),
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(Endpoints::custom("http://127.0.0.1:8917", "http://127.0.0.1:8917/beta").is_ok());
        assert!(Endpoints::custom("http://localhost:1", "http://[::1]:1").is_ok());
        let err = Endpoints::custom("http://login.example.com", "https://graph.example.com").unwrap_err();
        assert!(err.to_string().contains("only loopback"), "{err}");
        assert!(Endpoints::custom("https://a", "ftp://b").is_err());
        let e = Endpoints::custom("http://127.0.0.1:1", "http://127.0.0.1:1").unwrap();
        assert_eq!(e.graph_base.as_str(), "http://127.0.0.1:1/beta");
    }
}
