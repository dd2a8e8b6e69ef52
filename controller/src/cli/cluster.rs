//! How `plan` reaches the cluster: the kubeconfig (`--kubeconfig`, `--context`), the namespace (`-n`, else
//! the context's), and a read that proves the cluster answers. A cluster that cannot be read is an error,
//! never a reason to guess: planning without one happens only with `--offline`, or when no kubeconfig
//! exists at all, and says so.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::crd::ExpeditedDeployment;

/// The flags that pick a cluster.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Path of the kubeconfig (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster account).
    #[arg(long, env = "WUFB_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// Where the plan reads live objects from.
pub enum Cluster {
    Live {
        client: kube::Client,
        /// The namespace for manifests that name none.
        namespace: String,
        /// The cluster serves no `wufb.dev` kinds yet: nothing of ours exists there.
        no_crds: bool,
    },
    /// No cluster is read, and why.
    Offline { why: String, namespace: String },
}

/// Why the cluster could not be used; the message says what failed and how to plan offline.
#[derive(Debug, thiserror::Error)]
#[error("{what}; to plan without the cluster (every object as new), pass --offline")]
pub struct ClusterError {
    what: String,
}

impl ClusterError {
    /// What failed, without the advice for `plan`.
    pub fn what(&self) -> &str {
        &self.what
    }
}

fn fail(what: impl Into<String>) -> ClusterError {
    ClusterError { what: what.into() }
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Whether any kubeconfig or in-cluster account exists to read.
fn nothing_configured(args: &ClusterArgs) -> bool {
    args.kubeconfig.is_none()
        && std::env::var_os("KUBECONFIG").is_none_or(|v| v.is_empty())
        && home_kubeconfig().is_none_or(|p| !p.exists())
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_none()
}

/// The largest kubeconfig read: one with many contexts and embedded certificates is a few hundred
/// KiB; a larger file is refused before it is parsed.
pub const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Refuses a kubeconfig file larger than [`MAX_KUBECONFIG_BYTES`], naming it.
fn bounded_kubeconfigs(paths: impl IntoIterator<Item = PathBuf>) -> Result<(), ClusterError> {
    for p in paths {
        if let Ok(meta) = std::fs::metadata(&p)
            && meta.len() > MAX_KUBECONFIG_BYTES
        {
            return Err(fail(format!(
                "the kubeconfig {} holds {} bytes, more than {MAX_KUBECONFIG_BYTES}; point --kubeconfig at the cluster's own file",
                p.display(),
                meta.len()
            )));
        }
    }
    Ok(())
}

async fn config(args: &ClusterArgs) -> Result<kube::Config, ClusterError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let from_file = |kubeconfig: Result<Kubeconfig, kube::config::KubeconfigError>, source: String| async move {
        let kubeconfig = kubeconfig.map_err(|e| fail(format!("cannot read the kubeconfig {source}: {e}")))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| fail(format!("cannot use the kubeconfig {source}: {e}")))
    };
    if let Some(path) = &args.kubeconfig {
        bounded_kubeconfigs([path.clone()])?;
        return from_file(Kubeconfig::read_from(path), path.display().to_string()).await;
    }
    let env_or_home = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || home_kubeconfig().is_some_and(|p| p.exists());
    if env_or_home {
        match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(v) => bounded_kubeconfigs(std::env::split_paths(&v))?,
            None => bounded_kubeconfigs(home_kubeconfig())?,
        }
        return from_file(Kubeconfig::read(), "($KUBECONFIG or ~/.kube/config)".into()).await;
    }
    if args.context.is_some() {
        return Err(fail("--context needs a kubeconfig, and none was found"));
    }
    kube::Config::incluster().map_err(|e| fail(format!("cannot use the in-cluster service account: {e}")))
}

/// A failed read of one object, as a sentence naming it and what to do (never the API error's debug
/// form): `what` is `ExpeditedDeployment ns/name`, `list` the command that lists its kind.
pub fn object_error(e: kube::Error, what: &str, list: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            anyhow::anyhow!("{what} does not exist; `{list}` lists what does (check the name and -n)")
        }
        kube::Error::Api(s) if s.code == 403 => anyhow::anyhow!(
            "you may not read {what} (403 Forbidden: {}); ask for get on the kind in that namespace",
            s.message
        ),
        kube::Error::Api(s) => anyhow::anyhow!(
            "reading {what}: the API server answered {} {}: {}",
            s.code,
            s.reason,
            s.message
        ),
        other => anyhow::anyhow!("reading {what}: {other}"),
    }
}

/// A client for the cluster the flags pick, without reading anything yet (`check` reads the version
/// first, so that a cluster without the CRDs or a caller with few permissions is still checked).
pub async fn client(args: &ClusterArgs) -> Result<(kube::Client, String, String), ClusterError> {
    let config = config(args).await?;
    let server = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client =
        kube::Client::try_from(config).map_err(|e| fail(format!("cannot connect to {server}: {e}")))?;
    Ok((client, server, namespace))
}

/// A cluster a command must read or write (`status`, `promote`, ...): its client and namespace, or an
/// error saying there is none and why; `what` says what the command does with it.
pub async fn live(
    args: &ClusterArgs,
    namespace: Option<&str>,
    what: &str,
) -> anyhow::Result<(kube::Client, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The advice to plan offline is `plan`'s alone.
    let cluster = connect(args, false, namespace)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.what()))?;
    match cluster {
        Cluster::Live {
            client, namespace, ..
        } => Ok((client, namespace)),
        Cluster::Offline { why, .. } => anyhow::bail!("{what}, and there is none ({why})"),
    }
}

/// Connects as the flags say and proves the cluster answers by listing ExpeditedDeployments in the
/// namespace. `namespace` is `-n` when given; `offline` (`plan --offline`) reads no cluster.
pub async fn connect(
    args: &ClusterArgs,
    offline: bool,
    namespace: Option<&str>,
) -> Result<Cluster, ClusterError> {
    let fallback_ns = namespace.unwrap_or("default").to_string();
    if offline {
        return Ok(Cluster::Offline {
            why: "--offline".into(),
            namespace: fallback_ns,
        });
    }
    if nothing_configured(args) {
        return Ok(Cluster::Offline {
            why: "no kubeconfig exists ($KUBECONFIG, ~/.kube/config) and this is not a pod".into(),
            namespace: fallback_ns,
        });
    }
    let config = config(args).await?;
    let server = config.cluster_url.to_string();
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_string);
    let client =
        kube::Client::try_from(config).map_err(|e| fail(format!("cannot connect to {server}: {e}")))?;
    let probe: Api<ExpeditedDeployment> = Api::namespaced(client.clone(), &namespace);
    let read = tokio::time::timeout(
        Duration::from_secs(15),
        probe.list(&ListParams::default().limit(1)),
    )
    .await;
    let no_crds = match read {
        Err(_) => {
            return Err(fail(format!(
                "the cluster at {server} did not answer within 15 s"
            )));
        }
        Ok(Ok(_)) => false,
        Ok(Err(kube::Error::Api(s))) => match s.code {
            401 => {
                return Err(fail(format!(
                    "the cluster at {server} refused the kubeconfig's credentials (401 Unauthorized)"
                )));
            }
            403 => {
                return Err(fail(format!(
                    "the kubeconfig's user may not list expediteddeployments.wufb.dev in namespace {namespace} (403 Forbidden: {})",
                    s.message
                )));
            }
            404 => true,
            code => {
                return Err(fail(format!(
                    "the cluster at {server} answered {code} to a list of expediteddeployments: {}",
                    s.message
                )));
            }
        },
        Ok(Err(e)) => return Err(fail(format!("cannot reach the cluster at {server}: {e}"))),
    };
    Ok(Cluster::Live {
        client,
        namespace,
        no_crds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_forbidden_object_is_a_sentence_not_a_debug_dump() {
        let api = |code: u16, reason: &str| {
            kube::Error::Api(
                kube::core::Status::failure(
                    &format!("expediteddeployments.wufb.dev \"nope\" {reason}"),
                    reason,
                )
                .with_code(code)
                .boxed(),
            )
        };
        let e = object_error(
            api(404, "NotFound"),
            "ExpeditedDeployment it/nope",
            "kubectl get expd -n it",
        )
        .to_string();
        assert_eq!(
            e,
            "ExpeditedDeployment it/nope does not exist; `kubectl get expd -n it` lists what does (check the name and -n)"
        );
        let e = object_error(api(403, "Forbidden"), "ExpeditedDeployment it/nope", "x").to_string();
        assert!(
            e.starts_with("you may not read ExpeditedDeployment it/nope (403 Forbidden: "),
            "{e}"
        );
        for e in [
            e,
            object_error(api(500, "InternalError"), "ExpeditedDeployment it/nope", "x").to_string(),
        ] {
            assert!(!e.contains("ErrorResponse") && !e.contains("Status {"), "{e}");
        }
    }

    #[test]
    fn a_kubeconfig_past_the_bound_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("wufb-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_KUBECONFIG_BYTES + 1).unwrap();
        let err = bounded_kubeconfigs([dir.join("missing"), big.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&big.display().to_string()) && err.contains("more than"),
            "{err}"
        );
        std::fs::File::create(&big).unwrap().set_len(1024).unwrap();
        assert!(bounded_kubeconfigs([big]).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
