//! Subcommands: `run`, `crdgen`, `validate`, `plan`, `demo`.

pub mod cluster;
pub mod crdgen;
pub mod demo;
pub mod manifests;
pub mod plan;
pub mod run;
pub mod validate;

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
            (None, Some(a)) => Endpoints::custom(a, &format!("{}/beta", self.cloud.graph_host()))?,
            (None, None) => Endpoints::cloud(self.cloud)?,
        })
    }
}
