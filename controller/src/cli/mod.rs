//! Subcommands: `run`, `crdgen`, `validate`, `plan`, `status`, `check`, `demo`.

pub mod check;
pub mod cluster;
pub mod crdgen;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(not(feature = "demo"))]
#[path = "no_demo.rs"]
pub mod demo;
pub mod demo_args;
pub mod docgen;
pub mod flags;
pub mod manifests;
pub mod plan;
pub mod rollout;
pub mod run;
pub mod status;
pub mod tenants;
pub mod validate;

use crate::graph::endpoints::{AVAILABILITY_PAGE, Availability};
use crate::graph::{Cloud, Endpoints};

/// Where Graph is: shared by `run` and `plan`.
#[derive(clap::Args, Debug, Clone)]
pub struct GraphArgs {
    /// Microsoft cloud: global, us-gov, us-gov-dod or china.
    #[arg(long, env = "WUFB_CLOUD", value_enum, default_value = "global")]
    pub cloud: Cloud,
    /// Graph base URL, overriding the cloud's (e.g. the emulator's http://127.0.0.1:8917/beta).
    #[arg(long, env = "WUFB_GRAPH_URL")]
    pub graph_url: Option<String>,
    /// Sign-in authority host, overriding the cloud's (default: the Graph URL's origin when --graph-url is set).
    #[arg(long, env = "WUFB_AUTHORITY_HOST")]
    pub authority_host: Option<String>,
    /// Send no credentials (only for an emulator started with --no-auth).
    #[arg(long, env = "WUFB_GRAPH_NO_AUTH")]
    pub graph_no_auth: bool,
}

impl GraphArgs {
    /// A client for a one-off command (`plan`, `status`): these endpoints, the AZURE_* credentials from
    /// the environment (none with `--graph-no-auth`), default transport settings.
    pub fn client(&self) -> anyhow::Result<crate::graph::GraphClient> {
        let credential = if self.graph_no_auth {
            None
        } else {
            Some(crate::graph::Credential::from_env(|k| std::env::var(k).ok())?)
        };
        Ok(crate::graph::GraphClient::new(
            crate::graph::GraphConfig {
                endpoints: self.endpoints()?,
                credential,
                transport: crate::graph::TransportConfig::default(),
                batch_size: crate::graph::DEFAULT_BATCH_SIZE,
            },
            crate::graph::GraphMetrics::default(),
        )?)
    }

    /// The endpoints these flags select.
    pub fn endpoints(&self) -> anyhow::Result<Endpoints> {
        use anyhow::Context as _;
        Ok(match (&self.graph_url, &self.authority_host) {
            (Some(url), authority) => {
                let authority = match authority {
                    Some(a) => a.clone(),
                    None => reqwest::Url::parse(url)
                        .context("--graph-url is not a URL")?
                        .origin()
                        .ascii_serialization(),
                };
                Endpoints::custom(&authority, url)?
            }
            (None, authority) => {
                match self.cloud.availability() {
                    Availability::Unavailable => anyhow::bail!(
                        "--cloud {}: the Windows Update for Business deployment service is not available in this cloud (every Graph reference page of the service marks it unavailable, e.g. {AVAILABILITY_PAGE}); use --cloud global, or --graph-url for another endpoint",
                        self.cloud_name()
                    ),
                    Availability::Partial => tracing::warn!(
                        cloud = self.cloud_name(),
                        page = AVAILABILITY_PAGE,
                        "the Graph reference marks some deployment service calls (device groups, audience reads) unavailable in this cloud; a 400 or 404 for a path may mean the cloud lacks it"
                    ),
                    Availability::Documented => {}
                }
                match authority {
                    Some(a) => Endpoints::custom(a, &format!("{}/beta", self.cloud.graph_host()))?,
                    None => Endpoints::cloud(self.cloud)?,
                }
            }
        })
    }

    fn cloud_name(&self) -> String {
        use clap::ValueEnum as _;
        self.cloud
            .to_possible_value()
            .map_or_else(|| format!("{:?}", self.cloud), |v| v.get_name().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cloud: Cloud, graph_url: Option<&str>) -> GraphArgs {
        GraphArgs {
            cloud,
            graph_url: graph_url.map(str::to_string),
            authority_host: None,
            graph_no_auth: false,
        }
    }

    #[test]
    fn a_cloud_without_the_service_is_refused_naming_the_page() {
        let err = args(Cloud::China, None).endpoints().unwrap_err().to_string();
        assert!(err.starts_with("--cloud china:"), "{err}");
        assert!(err.contains(AVAILABILITY_PAGE), "{err}");
        // Partly documented clouds and explicit endpoints still work.
        assert!(args(Cloud::UsGov, None).endpoints().is_ok());
        assert!(args(Cloud::Global, None).endpoints().is_ok());
        assert!(
            args(Cloud::China, Some("http://127.0.0.1:8917/beta"))
                .endpoints()
                .is_ok()
        );
    }
}
